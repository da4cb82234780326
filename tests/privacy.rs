//! Callers' personal data never leaves the process: a whole call with planted personal data goes
//! through the IVR and the Vapi webhook, the store fails twice on the way (two Sentry events), and
//! every JSON log line and every Sentry envelope is searched for the planted values.
//!
//! This binary installs the global tracing subscriber and Sentry client, so it holds one test.

mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use helpers::spawn_app_with;
use myriam::config::{LogFormat, Settings};
use myriam::store::Store as _;
use myriam::twilio::twiml::gather_action;
use secrecy::SecretString;
use serde_json::json;

const CALL_SID: &str = "CA5ec0ffee5ec0ffee5ec0ffee5ec0ffee";
const NAME: &str = "Gédéon Papineau-Tremblay";
const PHONE_SPOKEN: &str = "438-555-0199";
const FROM: &str = "+14385550199";
const ADDRESS: &str = "2761 rue des Érables, Sherbrooke J1H 5N4";
const DESCRIPTION: &str = "Le gros érable près du cabanon de Gédéon penche vers la maison";

/// Every form in which a planted value could leak.
const PLANTED: &[&str] = &[
    "Gédéon",
    "Papineau",
    "4385550199",
    "438-555-0199",
    "438 555 0199",
    "555-0199",
    "5550199",
    "2761 rue",
    "Érables",
    "J1H 5N4",
    "J1H5N4",
    "cabanon",
];

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const CALL: &[(&str, &str)] = &[
    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ("CallSid", CALL_SID),
    ("From", FROM),
    ("To", "+18195550100"),
    ("Caller", FROM),
    ("CallerName", NAME),
    ("FromZip", "J1H 5N4"),
];

async fn answer(app: &helpers::TestApp, twiml: &str, speech: &str) -> (u16, String) {
    let action = gather_action(twiml).expect("a <Gather> to answer");
    let mut fields = CALL.to_vec();
    fields.push(("SpeechResult", speech));
    fields.push(("Confidence", "0.91"));
    app.post_form(&action, &fields).await
}

/// Holds an exclusive lock on the SQLite file so the gateway's next write fails (after its 5 s
/// busy timeout): a real store failure in the middle of a call.
fn lock_database(settings_path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(settings_path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one call end to end, read top to bottom
async fn planted_personal_data_reaches_no_log_line_and_no_sentry_event() {
    let database = tempfile::tempdir().unwrap();
    let database_path = database.path().join("privacy.db");
    let twilio = helpers::fake_twilio::FakeTwilio::start().await;
    let twilio_api = twilio.base_url();
    let configure = |s: &mut Settings| {
        // SMS alerts for every qualified lead: their bodies are personal data too.
        s.twilio.account_sid = Some(helpers::fake_twilio::ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(helpers::fake_twilio::TOKEN.to_owned()));
        s.twilio.api_base_url = twilio_api.parse().unwrap();
        s.office.alerts = Some(myriam::config::AlertSettings {
            recipients: vec!["+15145550101".to_owned()],
            sender: myriam::config::SmsSender::Number("+14505550000".to_owned()),
            on: myriam::config::AlertOn::All,
            lease: std::time::Duration::from_secs(30),
        });
        s.store.database_path.clone_from(&database_path);
        s.telemetry.log_format = LogFormat::Json;
        s.telemetry.rust_log = Some("debug".to_owned());
        s.telemetry.sentry_dsn = Some(SecretString::from(
            "https://public@sentry.invalid/42".to_owned(),
        ));
    };
    let mut settings = Settings::for_tests();
    configure(&mut settings);
    let logs = Capture::default();
    let transport = sentry::test::TestTransport::new();
    let factory: Arc<dyn sentry::TransportFactory> = Arc::new(transport.clone());
    let _telemetry = myriam::telemetry::install(&settings, logs.clone(), Some(factory)).unwrap();
    let app = spawn_app_with(configure).await;

    // The IVR: name, phone and address, all planted.
    let (status, twiml) = app.post_form("/twilio/voice", CALL).await;
    assert_eq!(status, 200, "{twiml}");
    let (status, twiml) = answer(&app, &twiml, NAME).await;
    assert_eq!(status, 200, "{twiml}");
    let (status, twiml) = answer(&app, &twiml, PHONE_SPOKEN).await;
    assert_eq!(status, 200, "{twiml}");
    let (status, twiml) = answer(&app, &twiml, ADDRESS).await;
    assert_eq!(status, 200, "{twiml}");
    let lead = app
        .store
        .find_lead_by_call(&CALL_SID.try_into().unwrap())
        .await
        .unwrap()
        .expect("the call's lead");
    assert_eq!(
        lead.data().nom_complet.as_deref(),
        Some(NAME),
        "the answers were taken"
    );
    assert!(lead.data().adresse_complete.is_some());

    // The store fails while the caller describes the job: an error during the call.
    let lock = lock_database(&database_path);
    let (status, _) = answer(&app, &twiml, DESCRIPTION).await;
    assert_eq!(status, 500);
    drop(lock);

    // The Vapi webhook, for the same lead: a tool call (failing on the store, then succeeding),
    // and an end-of-call report whose transcript repeats everything.
    let call = json!({
        "id": "vapi-call-privacy",
        "phoneCallProviderId": CALL_SID,
        "customer": {"number": FROM, "name": NAME},
        "assistantOverrides": {"variableValues": {
            "lead_id": lead.id.to_string(), "call_sid": CALL_SID, "caller_number": FROM
        }}
    });
    let tool_calls = json!({"message": {
        "type": "tool-calls",
        "call": call,
        "toolCallList": [{"id": "call_privacy_1", "type": "function", "function": {
            "name": "enregistrer_reponse",
            "arguments": {"reponse": format!("{DESCRIPTION}, au {ADDRESS}")}
        }}]
    }});
    let lock = lock_database(&database_path);
    let failed = app
        .client
        .post(app.url("/vapi/webhook"))
        .json(&tool_calls)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    drop(lock);
    let ok = app
        .client
        .post(app.url("/vapi/webhook"))
        .json(&tool_calls)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let transcript = format!(
        "AI: Votre nom? User: {NAME}. AI: Votre numéro? User: {PHONE_SPOKEN}. User: {ADDRESS}"
    );
    let report = app
        .client
        .post(app.url("/vapi/webhook"))
        .json(&json!({"message": {
            "type": "end-of-call-report",
            "call": call,
            "endedReason": "customer-ended-call",
            "transcript": transcript,
            "summary": format!("{NAME} au {ADDRESS}, rappeler au {FROM}"),
            "artifact": {"transcript": transcript},
            "durationSeconds": 95
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let (status, _) = app
        .post_form(
            "/twilio/status",
            &[CALL, &[("CallStatus", "completed"), ("CallDuration", "95")]].concat(),
        )
        .await;
    assert_eq!(status, 204);

    // A second caller with the same data is qualified: staff get an SMS alert.
    let second: &[(&str, &str)] = &[
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", "CA5ec0ffee5ec0ffee5ec0ffee5ec0ff02"),
        ("From", FROM),
    ];
    let (_, mut twiml) = app.post_form("/twilio/voice", second).await;
    for said in [
        NAME,
        "oui",
        ADDRESS,
        "abattage",
        DESCRIPTION,
        "oui c'est urgent",
    ] {
        let action = gather_action(&twiml).expect("a <Gather> to answer");
        let mut fields = second.to_vec();
        fields.push(("SpeechResult", said));
        let (status, next) = app.post_form(&action, &fields).await;
        assert_eq!(status, 200, "{next}");
        twiml = next;
    }
    let sms = twilio
        .wait_for_messages(1, std::time::Duration::from_secs(10))
        .await;
    assert!(
        sms[0].body.contains("Papineau"),
        "the alert names the caller: {}",
        sms[0].body
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // What left the process.
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let envelopes = transport.fetch_and_clear_envelopes();
    let mut sentry_text = String::new();
    for envelope in &envelopes {
        let mut bytes = Vec::new();
        envelope.to_writer(&mut bytes).unwrap();
        sentry_text.push_str(&String::from_utf8_lossy(&bytes));
        sentry_text.push('\n');
    }

    // The test can fail: the call was logged and reported, with the identifiers operators need.
    for line in log_text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    assert!(log_text.contains("incoming call"), "{log_text}");
    assert!(
        log_text.contains("•••99"),
        "the masked caller number is logged"
    );
    assert!(log_text.contains("IVR answer processed"));
    assert!(log_text.contains("Vapi tool call processed"));
    assert!(
        log_text.contains("SMS alert accepted by Twilio"),
        "{log_text}"
    );
    assert!(log_text.contains("store failure while answering Twilio"));
    assert!(
        envelopes.len() >= 2,
        "one event per store failure, got {}: {sentry_text}",
        envelopes.len()
    );
    assert!(
        sentry_text.contains("/twilio/gather"),
        "route tag: {sentry_text}"
    );
    assert!(
        sentry_text.contains("/vapi/webhook"),
        "route tag: {sentry_text}"
    );
    assert!(
        sentry_text.contains(CALL_SID),
        "CallSid as context: {sentry_text}"
    );
    assert!(
        sentry_text.contains(&lead.id.to_string()),
        "lead id as context: {sentry_text}"
    );

    // And none of the planted values, in any form.
    for planted in PLANTED {
        assert!(
            !log_text.contains(planted),
            "{planted:?} leaked into the logs:\n{}",
            log_text
                .lines()
                .filter(|l| l.contains(planted))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            !sentry_text.contains(planted),
            "{planted:?} leaked into Sentry:\n{sentry_text}"
        );
    }
}
