//! The console leaks neither caller data nor secrets into the logs: an operator signs in (after a
//! failed try), searches, opens, edits, exports and erases a caller whose data is planted, with
//! debug logging in JSON; no log line holds a planted value, the password, the session cookie or
//! the API token, and the audit log holds no caller data.
//!
//! This binary installs the global tracing subscriber, so it holds one test.

mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use helpers::console::{PASSWORD, add_operator, client, get, login, plant_lead, post_form};
use helpers::spawn_app_with;
use myriam::config::{LogFormat, Settings};
use myriam::store::console::{ConsoleStore, Role};
use secrecy::ExposeSecret;

const NAME: &str = "Gédéon Papineau-Tremblay";
const PHONE: &str = "438-555-0199";
const ADDRESS: &str = "2761 rue des Érables, Sherbrooke J1H 5N4";
const PLANTED: &[&str] = &[
    "Gédéon",
    "Papineau",
    "4385550199",
    "555-0199",
    "5550199",
    "2761 rue",
    "Érables",
    "J1H 5N4",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_caller_data_or_secret_reaches_the_logs_or_the_audit_log() {
    let configure = |s: &mut Settings| {
        s.telemetry.log_format = LogFormat::Json;
        s.telemetry.rust_log = Some("debug".to_owned());
    };
    let mut settings = Settings::for_tests();
    configure(&mut settings);
    let logs = Capture::default();
    let _telemetry = myriam::telemetry::install(&settings, logs.clone(), None).unwrap();
    let app = spawn_app_with(configure).await;
    add_operator(&app, "admin@bp.example", Role::Admin).await;
    let lead = plant_lead(&app.store, NAME, PHONE, ADDRESS, true).await;
    let owner = myriam::store::console::Email::try_from("admin@bp.example").unwrap();
    let spec = myriam::operators::TokenSpec {
        name: "crm",
        role: Role::Admin,
        owner: &owner,
        lifetime: None,
    };
    let token = myriam::operators::create_token(&app.store, &spec)
        .await
        .unwrap();

    let failed =
        helpers::console::post_login(&app, "admin@bp.example", "Gédéon-wrong-password").await;
    assert_eq!(failed.status(), 401);
    let session = login(&app, "admin@bp.example").await;
    for path in [
        "/console/leads?q=G%C3%A9d%C3%A9on".to_owned(),
        "/console/leads?q=438-555-0199".to_owned(),
        format!("/console/leads/{}", lead.id),
        "/console/leads/export.csv?q=Papineau".to_owned(),
    ] {
        assert_eq!(
            get(&app, &path, Some(&session.cookie)).await.status(),
            200,
            "{path}"
        );
    }
    let api = client()
        .get(app.url("/api/v1/leads?q=Papineau"))
        .header("authorization", format!("Bearer {}", token.expose_secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let edit = post_form(
        &app,
        &format!("/console/leads/{}/suivi", lead.id),
        &session.cookie,
        &[
            ("csrf", &session.csrf),
            ("version", "0"),
            ("suivi", "contacte"),
            ("note", "Gédéon rappellera"),
        ],
    )
    .await;
    assert_eq!(edit.status(), 303);
    let erased = post_form(
        &app,
        "/console/erase",
        &session.cookie,
        &[
            ("csrf", &session.csrf),
            ("phone", PHONE),
            ("confirm", "EFFACER"),
        ],
    )
    .await;
    assert_eq!(erased.status(), 200);

    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.contains("/console/leads"),
        "requests are logged: {log_text}"
    );
    let audit = format!("{:?}", app.store.audit_log(100).await.unwrap());
    assert!(audit.contains("Erase") && audit.contains(&lead.id.to_string()));
    for planted in PLANTED {
        assert!(
            !log_text.contains(planted),
            "{planted:?} leaked into the logs"
        );
        assert!(
            !audit.contains(planted),
            "{planted:?} in the audit log: {audit}"
        );
    }
    let cookie_secret = session.cookie.split_once('=').unwrap().1;
    for (what, secret) in [
        ("password", PASSWORD),
        ("wrong password", "Gédéon-wrong-password"),
        ("session cookie", cookie_secret),
        ("CSRF token", session.csrf.as_str()),
        ("API token", token.expose_secret()),
    ] {
        helpers::assert_no_part_of(secret, &log_text, what);
        helpers::assert_no_part_of(secret, &audit, what);
    }
}
