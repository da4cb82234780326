//! Metrics that answer operators' questions: after a call, `/metrics` holds every catalogued and
//! every documented metric, and no label value could be a phone number, a CallSid or caller text.

mod helpers;

use std::collections::BTreeSet;

use helpers::spawn_app_with;
use myriam::metrics::{BRIDGE_ONLY, CATALOGUE};
use myriam::twilio::twiml::gather_action;

const CALL_SID: &str = "CA0b5e3f8a1c2d4e5f9a8b7c6d5e4f3a2b";

async fn post_form(app: &helpers::TestApp, path: &str, fields: &[(&str, &str)]) -> String {
    let (status, body) = app.post_form(path, fields).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

/// A whole French IVR call, qualified, then ended by Twilio's status callback.
async fn one_qualified_call(app: &helpers::TestApp) {
    let call = [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", CALL_SID),
        ("From", "+15145550142"),
        ("To", "+18195550100"),
    ];
    let mut twiml = post_form(app, "/twilio/voice", &call).await;
    for answer in [
        "Marie Gagnon",
        "pas de chiffres ici", // a validation failure on the phone
        "514 555 0142",
        "1234 rue Principale, Sherbrooke J1H 1A1",
        "élagage",
        "Trois érables à tailler",
        "non, pas urgent",
    ] {
        let action = gather_action(&twiml).expect("a question");
        let mut fields = call.to_vec();
        fields.push(("SpeechResult", answer));
        twiml = post_form(app, &action, &fields).await;
    }
    let mut fields = call.to_vec();
    fields.extend([("CallStatus", "completed"), ("CallDuration", "120")]);
    post_form(app, "/twilio/status", &fields).await;
}

fn exported_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn longest_digit_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// `name{a="x",b="y"} 1` → the label values.
fn label_values(line: &str) -> Vec<&str> {
    let Some(start) = line.find('{') else {
        return Vec::new();
    };
    let Some(end) = line.rfind('}') else {
        return Vec::new();
    };
    line[start + 1..end]
        .split("\",")
        .filter_map(|pair| pair.split_once("=\"").map(|(_, v)| v.trim_end_matches('"')))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_call_every_documented_metric_is_exported_with_bounded_labels() {
    let app = spawn_app_with(|s| s.telemetry.prometheus_port = Some(0)).await;
    one_qualified_call(&app).await;
    let metrics = app.scrape_metrics().await;
    let exported = exported_names(&metrics);

    // Every catalogued metric is exported.
    let missing: Vec<&str> = CATALOGUE
        .iter()
        .map(|spec| spec.name)
        .filter(|name| !exported.contains(*name) && !BRIDGE_ONLY.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "catalogued but not in /metrics: {missing:?}\n{metrics}"
    );
    // Every metric the operations guide names exists.
    let guide = std::fs::read_to_string("docs/OPERATIONS.md").unwrap();
    let mut documented = BTreeSet::new();
    for word in guide.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("myriam_") || word.starts_with("process_") {
            documented.insert(word.to_owned());
        }
    }
    assert!(documented.len() >= CATALOGUE.len(), "{documented:?}");
    for name in documented
        .iter()
        .filter(|n| !BRIDGE_ONLY.contains(&n.as_str()))
    {
        assert!(
            exported.contains(name),
            "docs/OPERATIONS.md names {name}, /metrics has no such metric"
        );
    }
    for spec in CATALOGUE {
        assert!(
            documented.contains(spec.name),
            "{} is not documented in docs/OPERATIONS.md",
            spec.name
        );
    }

    // The call was counted where operators look for it.
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
            .to_owned()
    };
    assert!(line(r#"myriam_calls_total{mode="ivr",outcome="qualifie"}"#).ends_with(" 1"));
    assert!(line(r#"myriam_qualification_steps_total{step="complete"}"#).ends_with(" 1"));
    assert!(
        !line(r#"myriam_qualification_validation_failures_total{field="telephone"}"#)
            .ends_with(" 0"),
        "the unreadable phone answer was counted"
    );
    assert!(metrics.contains(
        r#"myriam_store_operation_duration_seconds_count{operation="start_call",result="ok"}"#
    ));
    let rss: f64 = line("process_resident_memory_bytes ")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss > 1_000_000.0, "{rss}");

    // No label value could carry a phone number, a CallSid or caller text.
    for sample in metrics.lines().filter(|l| !l.starts_with('#')) {
        // The build's git revision is a hexadecimal hash (its digit runs are chance), checked
        // for that shape and left out of the caller-data checks.
        let sample = &without_revision(sample);
        for value in label_values(sample) {
            assert!(
                longest_digit_run(value) <= 4,
                "label value {value:?} in {sample}"
            );
            assert!(!value.contains("CA0b5e"), "CallSid in {sample}");
            assert!(
                !value.contains("Gagnon") && !value.contains("Principale"),
                "caller text in {sample}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_are_on_loopback_unless_a_token_guards_them() {
    // Without METRICS_TOKEN: loopback only, even when the gateway listens on every address.
    let open = spawn_app_with(|s| {
        s.bind_addr = "0.0.0.0:0".parse().unwrap();
        s.telemetry.prometheus_port = Some(0);
    })
    .await;
    let addr = open.metrics_addr.unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");
    assert!(open.scrape_metrics().await.contains("myriam_build_info"));

    // With it: BIND_ADDR's IP, and only the bearer token gets the metrics.
    let guarded = spawn_app_with(|s| {
        s.bind_addr = "127.0.0.1:0".parse().unwrap();
        s.telemetry.prometheus_port = Some(0);
        s.telemetry.metrics_token = Some("s3cret-metrics-token".to_owned().into());
    })
    .await;
    let url = format!("http://{}/metrics", guarded.metrics_addr.unwrap());
    let client = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong"), Some("s3cret-metrics-token")] {
        let mut request = client.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert!(!response.text().await.unwrap().contains("myriam_"));
    }
    let scraped = client
        .get(&url)
        .header("authorization", "Bearer s3cret-metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("myriam_build_info"));
}

/// `myriam_build_info{…,revision="1a2b…",…}` with the revision, which must be a short git hash,
/// replaced by `-`; any other sample unchanged.
fn without_revision(sample: &str) -> String {
    let Some(rest) = sample.strip_prefix("myriam_build_info{") else {
        return sample.to_owned();
    };
    let Some(at) = rest.find("revision=\"") else {
        return sample.to_owned();
    };
    let value_start = at + "revision=\"".len();
    let value_end = value_start + rest[value_start..].find('"').unwrap();
    let revision = &rest[value_start..value_end];
    assert!(
        revision == "unknown"
            || (revision.len() <= 40 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "revision label {revision:?} is not a git hash"
    );
    format!(
        "myriam_build_info{{{}-{}",
        &rest[..value_start],
        &rest[value_end..]
    )
}
