//! The server skeleton: health routes, request ids, limits, metrics, graceful shutdown and drain.

mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use helpers::{spawn_app, spawn_app_with};
use myriam::config::Settings;
use myriam::startup::{AppState, Lifecycle, router};
use myriam::store::AnyStore;
use secrecy::SecretString;
use tower::ServiceExt as _;

#[tokio::test]
async fn healthz_answers_ok_with_version_and_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn a_caller_request_id_is_propagated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "twilio-retry-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "twilio-retry-42");
}

#[tokio::test]
async fn readyz_reports_ready_with_the_environment() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["environment"], "test");
    assert_eq!(body["draining"], false);
    assert_eq!(
        body["store"],
        serde_json::json!({"kind": "sqlite", "ok": true})
    );
}

#[tokio::test]
async fn readyz_stays_ready_but_reports_an_unreachable_supabase() {
    let app = spawn_app_with(|s| {
        s.store.supabase_url = Some("http://127.0.0.1:9".parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from("sb_secret_x".to_owned()));
    })
    .await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "writes still become durable in the outbox"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["store"],
        serde_json::json!({
            "kind": "supabase", "ok": true,
            "supabase": {
                "ok": false, "error": "unavailable", "outbox_depth": 0,
                "outbox_oldest_age_secs": null, "outbox_max_age_secs": 300, "outbox_stale": false,
                "refusing": false
            }
        })
    );
}

#[tokio::test]
async fn readyz_fails_once_the_outbox_is_older_than_its_bound() {
    let app = spawn_app_with(|s| {
        s.store.supabase_url = Some("http://127.0.0.1:9".parse().unwrap());
        s.store.supabase_service_role_key = Some(SecretString::from("sb_secret_x".to_owned()));
        s.telemetry.readyz_max_outbox_age = std::time::Duration::from_secs(1);
    })
    .await;
    // A call arrives while Supabase is down: its lead and call rows wait in the outbox.
    let voice = app
        .client
        .post(app.url("/twilio/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "AccountSid=AC0123456789abcdef0123456789abcdef&CallSid=CA0123456789abcdef0123456789abcdef\
             &From=%2B15145550142&To=%2B14505550100\
             &CallStatus=ringing&Direction=inbound",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(voice.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "a fresh outbox is fine");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"]["ok"], true, "writes are still durable");
    assert_eq!(body["store"]["supabase"]["outbox_stale"], true);
    // The call's start (lead and call row, insert-or-get by CallSid) is one queued write.
    assert!(body["store"]["supabase"]["outbox_depth"].as_u64().unwrap() >= 1);
    assert!(
        body["store"]["supabase"]["outbox_oldest_age_secs"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn readyz_is_503_while_draining() {
    let lifecycle = Lifecycle::default();
    let settings = Settings::for_tests();
    let state = AppState::new(
        settings.clone(),
        AnyStore::open(&settings).unwrap(),
        lifecycle.clone(),
    );
    lifecycle.shutdown();
    let response = router(state)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["status"], "draining");
    assert_eq!(body["draining"], true);
}

#[tokio::test]
async fn unknown_routes_are_404_and_oversized_bodies_413() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "not found\n");

    let big = vec![b'a'; myriam::startup::MAX_BODY_BYTES + 1];
    let response = app
        .client
        .post(app.url("/healthz"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_on_their_own_listener() {
    let app = spawn_app_with(|s| s.telemetry.prometheus_port = Some(0)).await;
    let metrics_addr = app.metrics_addr.expect("metrics listener bound");
    assert_ne!(metrics_addr.port(), app.addr.port());
    for _ in 0..3 {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let response = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("myriam_http_requests_total{")
                && l.contains(r#"route="/readyz""#)
                && l.contains(r#"status="200""#)
                && l.contains(r#"method="GET""#)
        })
        .unwrap_or_else(|| panic!("no readyz counter in:\n{text}"));
    let count: f64 = count_line.rsplit(' ').next().unwrap().parse().unwrap();
    // Other tests in this process share the recorder, so at least our three.
    assert!(count >= 3.0, "{count_line}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("myriam_http_requests_total{")
                && l.contains(r#"route="unmatched""#)
                && l.contains(r#"status="404""#)),
        "404s are counted under a bounded route label:\n{text}"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
    assert!(
        text.contains(r#"myriam_http_request_duration_seconds_bucket{route="/readyz",method="GET",le="0.005"}"#),
        "latency histogram with buckets:\n{text}"
    );
    assert!(text.contains("myriam_build_info{"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_tracked_tasks() {
    let app = spawn_app().await;
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let token = app.lifecycle.shutdown_token();
    app.lifecycle.tracker().spawn(async move {
        token.cancelled().await;
        // A call finishing its goodbye after the signal.
        tokio::time::sleep(Duration::from_millis(300)).await;
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    app.lifecycle.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("server stops within the drain timeout")
        .expect("server task did not panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        finished.load(Ordering::SeqCst),
        "run_until_stopped returned before the tracked task finished"
    );
    let after = reqwest::Client::new()
        .get(format!("http://{}/healthz", app.addr))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "still accepting after shutdown: {after:?}");
}

#[tokio::test]
async fn drain_gives_up_after_the_timeout() {
    let app = spawn_app_with(|s| s.drain_timeout = Duration::from_millis(200)).await;
    app.lifecycle.tracker().spawn(async {
        // A task that ignores the token.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    app.lifecycle.shutdown();
    tokio::time::timeout(Duration::from_secs(3), app.server)
        .await
        .expect("drain timeout bounds shutdown")
        .unwrap()
        .unwrap();
}

fn id(args: &[&str]) -> u32 {
    let out = std::process::Command::new("id")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A database file the gateway cannot write (root's, mode 0444; the gateway runs as `nobody`,
/// since root ignores file permissions): `/readyz` is 503 and says `read_only`, `/healthz` stays
/// 200 (the process is alive; it must not be restarted in a loop, it must be taken out of
/// rotation).
#[tokio::test]
async fn readyz_fails_with_a_read_only_database_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("myriam.db");
    // A real database (migrated, WAL), closed before it is made read-only.
    drop(myriam::store::sqlite::SqliteStore::open(&db).unwrap());
    for _ in 0..100 {
        if !data.join("myriam.db-wal").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let ids = (id(&["-u"]) == 0).then(|| (id(&["-u", "nobody"]), id(&["-g", "nobody"])));
    if let Some((uid, gid)) = ids {
        // `nobody` may enter the directories and create SQLite's `-shm` next to the file, which
        // stays root's and read-only.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    }
    let db_path = db.display().to_string();
    let gateway = helpers::process::GatewayProcess::start_as(
        dir.path(),
        &[("STORE", "sqlite"), ("DATABASE_PATH", &db_path)],
        ids,
    )
    .await;
    let health = gateway
        .client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "alive");
    let ready = gateway
        .client
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(
        body["store"],
        serde_json::json!({"kind": "sqlite", "ok": false, "error": "read_only"}),
        "{body}"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o444,
        "the file was not made writable behind the test's back"
    );
}

/// Unset, `DRAIN_TIMEOUT_SECS` outlasts the longest call the assistant allows (its
/// `maxDurationSeconds`) with time to say goodbye: a rolling deploy does not cut a bridged call
/// at 30 s.
#[test]
fn the_default_drain_outlasts_the_longest_call() {
    use myriam::config::{DEFAULT_DRAIN_TIMEOUT_SECS, MAX_CALL_SECS};
    let settings = Settings::from_source(&myriam::secrets::EnvSource::from_pairs([(
        "ENVIRONMENT",
        "test",
    )]))
    .unwrap();
    let assistant: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/vapi-assistant.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let longest = assistant["maxDurationSeconds"].as_u64().unwrap();
    assert_eq!(
        longest, MAX_CALL_SECS,
        "docs/vapi-assistant.json and the code agree"
    );
    assert_eq!(settings.drain_timeout.as_secs(), DEFAULT_DRAIN_TIMEOUT_SECS);
    assert!(
        settings.drain_timeout >= Duration::from_secs(longest + 15),
        "{:?}",
        settings.drain_timeout
    );
    let catalogue = myriam::secrets::CATALOGUE
        .iter()
        .find(|v| v.name == "DRAIN_TIMEOUT_SECS")
        .unwrap();
    assert_eq!(
        catalogue.default,
        Some(DEFAULT_DRAIN_TIMEOUT_SECS.to_string().as_str())
    );
}

/// The drain has one deadline from the signal: an HTTP request still in flight and a live call
/// share `DRAIN_TIMEOUT_SECS` (they used to get it one after the other, twice the time the
/// operations guide told platforms to wait).
#[tokio::test]
async fn requests_and_calls_share_one_drain_deadline() {
    use tokio::io::AsyncWriteExt as _;
    let drain = Duration::from_secs(2);
    let app = spawn_app_with(|s| s.drain_timeout = drain).await;
    let hard_stop = app.lifecycle.hard_stop_token();
    app.lifecycle.tracker().spawn(async move {
        // A live call: it ends when told to at the deadline.
        hard_stop.cancelled().await;
    });
    // A request whose body never finishes arriving (in flight until the 10 s request timeout).
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /twilio/voice HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nCallSid=CA",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    app.lifecycle.shutdown();
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("the drain is bounded")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(took >= drain, "the live call was given the drain: {took:?}");
    assert!(
        took < drain + Duration::from_millis(900),
        "one deadline for requests and calls, not one after the other: {took:?}"
    );
    drop(slow);
}
