//! Erasure that erases (Québec Law 25), on the embedded store: the caller's data deleted at
//! Twilio and Vapi (through fakes of their REST APIs that record every DELETE and fail on
//! command), exactly once each, retried after a 500, a 404 counted as done; the result page and
//! the audit entry saying what was erased and what was not; a late write that does not bring the
//! caller back; a call going on after the erasure that becomes a new caller's.

mod helpers;

use std::time::Duration;

use helpers::console::{add_operator, get, login, plant_lead, post_form};
use helpers::fake_twilio::{ACCOUNT, FakeTwilio, TOKEN};
use helpers::fake_vapi::{Behaviour, FakeVapi};
use helpers::{TestApp, spawn_app_with};
use myriam::config::Settings;
use myriam::domain::{CallSid, LeadId, PhoneNumber};
use myriam::erasure::RemoteEraser;
use myriam::qualification::Lead;
use myriam::store::console::{ConsoleStore, Role};
use myriam::store::sqlite::SqliteStore;
use myriam::store::{
    AlertEvent, AlertOutcome, Alerts, CallUpdate, NewAlert, RemoteErasures, Saved, Store,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const PHONE: &str = "+15145550101";
const RECORDING: &str = "RE0123456789abcdef0123456789abcd01";
const VAPI_CALL: &str = "vapi-call-erase-1";
const SECRET: &str = "vapi-server-secret-for-erasure";

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

fn with_fakes(
    twilio: &FakeTwilio,
    vapi: &FakeVapi,
    db: &std::path::Path,
) -> impl FnOnce(&mut Settings) {
    let twilio_base = twilio.base_url();
    let vapi_base = vapi.base.clone();
    let db = db.to_owned();
    move |s: &mut Settings| {
        s.store.database_path = db;
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&twilio_base).unwrap();
        s.vapi.private_key = Some(SecretString::from("vapi-private-key-test".to_owned()));
        s.vapi.base_url = url::Url::parse(&vapi_base).unwrap();
        s.vapi.server_secret = Some(SecretString::from(SECRET.to_owned()));
    }
}

/// A lead of `PHONE` with a bridged call (a Vapi call id and a voicemail recording) and an SMS
/// alert Twilio accepted. Returns the lead and the alert's Message SID.
async fn caller_with_everything(app: &TestApp) -> (Lead, String) {
    let lead = plant_lead(
        &app.store,
        "Gédéon Papineau",
        PHONE,
        "2761 rue des Érables, Sherbrooke",
        true,
    )
    .await;
    let mut call = CallUpdate::new(CallSid::try_from(sid(1).as_str()).unwrap());
    call.lead_id = Some(lead.id);
    call.from_number = Some(PHONE.to_owned());
    call.vapi_call_id = Some(VAPI_CALL.to_owned());
    call.recording_sid = Some(RECORDING.to_owned());
    call.recording_url = Some(format!(
        "https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{RECORDING}"
    ));
    call.status = Some("completed".to_owned());
    app.store.upsert_call(&call).await.unwrap();
    let saved = app.store.get_lead(lead.id).await.unwrap().unwrap();
    assert_eq!(
        app.store
            .save_lead_with_alerts(
                &saved,
                &[NewAlert::new(
                    lead.id,
                    AlertEvent::Qualified,
                    "+14385550102"
                )]
            )
            .await
            .unwrap(),
        Saved::Applied
    );
    let claimed = app
        .store
        .claim_due_alerts(Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let message = "SM0123456789abcdef0123456789abcd01".to_owned();
    app.store
        .finish_alert(
            claimed[0].id,
            &AlertOutcome::Sent {
                message_sid: message.clone(),
                status: "queued".to_owned(),
            },
        )
        .await
        .unwrap();
    (lead, message)
}

/// The table row of `html` holding `needle`.
fn row_of<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {html}"));
    let start = html[..at].rfind("<tr>").unwrap_or(0);
    let end = html[at..].find("</tr>").map_or(html.len(), |e| at + e);
    &html[start..end]
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one erasure read top to bottom: page, audit, restart, retry
async fn an_erasure_deletes_at_twilio_and_vapi_once_each_retrying_failures() {
    let twilio = FakeTwilio::start().await;
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("erasure.db");
    let app = spawn_app_with(with_fakes(&twilio, &vapi, &db)).await;
    add_operator(&app, "admin@bp.test", Role::Admin).await;
    let session = login(&app, "admin@bp.test").await;
    let (lead, message) = caller_with_everything(&app).await;
    // The recording fails once (500); the call's log is already gone at Twilio (404).
    twilio.fail_deletes(RECORDING, [500]);
    twilio.fail_deletes(&sid(1), [404]);

    let page = post_form(
        &app,
        "/console/erase",
        &session.cookie,
        &[
            ("csrf", &session.csrf),
            ("phone", "514 555 0101"),
            ("confirm", "EFFACER"),
        ],
    )
    .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Appelant effacé"), "{html}");
    assert!(html.contains("1 lead(s), 1 appel(s)"), "{html}");
    assert!(html.contains("1 alerte(s) SMS"), "{html}");
    assert!(
        html.contains("Chez Twilio et Vapi : 3 supprimé(s), 1 en attente, 0 en échec"),
        "{html}"
    );
    assert!(row_of(&html, RECORDING).contains("En attente"), "{html}");
    assert!(row_of(&html, RECORDING).contains("Message vocal"));
    assert!(
        row_of(&html, &sid(1)).contains("Supprimé"),
        "404: already gone"
    );
    assert!(row_of(&html, VAPI_CALL).contains("Supprimé"));
    assert!(row_of(&html, &message).contains("Supprimé"));
    // What cannot be erased from here, and how to purge Twilio's logs by hand.
    assert!(
        html.contains("<strong>1 SMS d'alerte</strong> ont été remis aux téléphones du personnel"),
        "{html}"
    );
    assert!(html.contains("DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"));
    assert!(html.contains(
        "https://www.twilio.com/docs/messaging/api/message-resource#delete-a-message-resource"
    ));

    let recorded = |resource: &str, sid: &str| -> Vec<u16> {
        twilio
            .deletions()
            .iter()
            .filter(|d| d.resource == resource && d.sid == sid)
            .map(|d| d.status)
            .collect()
    };
    assert_eq!(recorded("Recordings", RECORDING), vec![500]);
    assert_eq!(recorded("Calls", &sid(1)), vec![404]);
    assert_eq!(recorded("Messages", &message), vec![204]);
    let vapi_deletes = vapi.deletions();
    assert_eq!(vapi_deletes.len(), 1);
    assert_eq!(
        (vapi_deletes[0].id.as_str(), vapi_deletes[0].status),
        (VAPI_CALL, 200)
    );
    assert!(vapi_deletes[0].bearer, "Vapi's key as a bearer token");

    // The audit entry says what was erased and what is pending, never the number or a SID.
    let audit = app.store.audit_log(10).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action.as_str() == "erase")
        .expect("an erase entry");
    let detail = entry.detail.clone().unwrap();
    assert!(
        detail.contains("leads=1 calls=1")
            && detail.contains("alerts=1")
            && detail.contains("remote_deleted=3 remote_pending=1 remote_failed=0")
            && detail.contains("sms_on_staff_phones=1"),
        "{detail}"
    );
    assert_eq!(entry.target.as_deref(), Some(lead.id.to_string().as_str()));
    for secret in [
        "5145550101",
        "555-0101",
        RECORDING,
        VAPI_CALL,
        message.as_str(),
    ] {
        assert!(!detail.contains(secret), "{secret} in {detail}");
    }

    // The rows are the state: another process on the same file (a restart) finds the pending
    // deletion once it is due, and it is done exactly once.
    let erasure_id = html
        .split("/console/erasures/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let restarted = SqliteStore::open(&db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "UPDATE remote_erasures SET next_attempt_at = '2000-01-01T00:00:00.000Z' WHERE status = 'pending'",
        [],
    )
    .unwrap();
    let eraser = RemoteEraser::new(
        myriam::store::AnyStore::Sqlite(restarted.clone()),
        Some(myriam::twilio::rest::TwilioRest::new(
            url::Url::parse(&twilio.base_url()).unwrap(),
            ACCOUNT.to_owned(),
            SecretString::from(TOKEN.to_owned()),
            Duration::from_secs(5),
        )),
        None,
    );
    eraser.round(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while recorded("Recordings", RECORDING).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing left: more rounds send nothing more.
    eraser.round(None).await.unwrap();
    assert_eq!(recorded("Recordings", RECORDING), vec![500, 204]);
    assert_eq!(recorded("Calls", &sid(1)), vec![404]);
    assert_eq!(recorded("Messages", &message), vec![204]);
    assert_eq!(vapi.deletions().len(), 1);
    assert_eq!(restarted.remote_erasure_backlog().await.unwrap(), (0, 0));

    let status = get(
        &app,
        &format!("/console/erasures/{erasure_id}"),
        Some(&session.cookie),
    )
    .await;
    assert_eq!(status.status(), 200);
    let status = status.text().await.unwrap();
    assert!(
        status.contains("Tout est supprimé chez Twilio et Vapi."),
        "{status}"
    );
    assert!(row_of(&status, RECORDING).contains("Supprimé"));
}

#[tokio::test]
async fn a_refusal_for_good_is_shown_as_to_do_by_hand() {
    let twilio = FakeTwilio::start().await;
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(with_fakes(&twilio, &vapi, &dir.path().join("e.db"))).await;
    let (_, _) = caller_with_everything(&app).await;
    vapi.fail_deletes(VAPI_CALL, [400]);
    twilio.fail_deletes(&sid(1), [429]);
    let erasure = app
        .store
        .erase_caller(&PhoneNumber::try_from(PHONE).unwrap())
        .await
        .unwrap();
    let eraser = RemoteEraser::from_settings(
        &{
            let mut s = Settings::for_tests();
            with_fakes(&twilio, &vapi, &dir.path().join("e.db"))(&mut s);
            s
        },
        app.store.clone(),
    );
    eraser.round(Some(erasure.id)).await.unwrap();
    let rows = app.store.remote_erasures_of(erasure.id).await.unwrap();
    let of = |id: &str| rows.iter().find(|r| r.remote_id == id).unwrap().clone();
    assert_eq!(of(VAPI_CALL).status, myriam::store::RemoteStatus::Dead);
    assert!(of(VAPI_CALL).last_error.unwrap().contains("HTTP 400"));
    // 429: retried later, not lost.
    assert_eq!(of(&sid(1)).status, myriam::store::RemoteStatus::Pending);
    assert_eq!(app.store.remote_erasure_backlog().await.unwrap(), (1, 1));
}

#[tokio::test]
async fn a_late_write_does_not_bring_an_erased_lead_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("late.db")).unwrap();
    let lead = plant_lead(
        &store,
        "Gédéon Papineau",
        PHONE,
        "2761 rue des Érables",
        false,
    )
    .await;
    store
        .erase_caller(&PhoneNumber::try_from(PHONE).unwrap())
        .await
        .unwrap();
    // The same write again (version 0: an insert), as a late or replayed one would be.
    let late = store.save_lead(&lead).await;
    assert!(
        matches!(late, Err(ref e) if e.is_erased()),
        "a late write of the erased lead: {late:?}"
    );
    assert!(store.get_lead(lead.id).await.unwrap().is_none());
    // A new call from the same number is a new caller.
    let again = plant_lead(
        &store,
        "Gédéon Papineau",
        PHONE,
        "2761 rue des Érables",
        false,
    )
    .await;
    assert_ne!(again.id, lead.id);
    assert!(store.get_lead(again.id).await.unwrap().is_some());
}

async fn vapi_send(app: &TestApp, message: &Value) -> Value {
    let response = app
        .client
        .post(app.url("/vapi/webhook"))
        .header("content-type", "application/json")
        .header("x-vapi-secret", SECRET)
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_call_going_on_after_the_erasure_becomes_a_new_callers() {
    let twilio = FakeTwilio::start().await;
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(with_fakes(&twilio, &vapi, &dir.path().join("live.db"))).await;
    let call_sid = sid(9);
    let call = json!({"id": "vapi-live-1", "phoneCallProviderId": call_sid,
        "customer": {"number": PHONE}});
    // The bridged call has its lead (as `/twilio/voice` makes it), then the caller gives a name.
    let old = {
        let lead = Lead::new(LeadId::new())
            .with_offered_phone(Some(PhoneNumber::try_from(PHONE).unwrap()));
        let mut update = CallUpdate::new(CallSid::try_from(call_sid.as_str()).unwrap());
        update.from_number = Some(PHONE.to_owned());
        update.vapi_call_id = Some("vapi-live-1".to_owned());
        app.store.start_call(&lead, &update).await.unwrap()
    };
    let mut call_with_lead = call.clone();
    call_with_lead["assistantOverrides"] =
        json!({"variableValues": {"lead_id": old.id.to_string()}});
    let first = vapi_send(
        &app,
        &json!({"message": {"type": "tool-calls", "call": call_with_lead.clone(), "toolCallList": [
            {"id": "tc-1", "type": "function", "function": {"name": "enregistrer_reponse",
             "arguments": {"reponse": "Gédéon Papineau"}}}]}}),
    )
    .await;
    assert!(first["results"][0]["error"].is_null(), "{first}");

    // Erased while the call goes on.
    let erasure = app
        .store
        .erase_caller(&PhoneNumber::try_from(PHONE).unwrap())
        .await
        .unwrap();
    assert_eq!(erasure.lead_ids, vec![old.id]);

    // The call goes on: the next answer makes a new lead, the erased one stays gone.
    let next = vapi_send(
        &app,
        &json!({"message": {"type": "tool-calls", "call": call_with_lead, "toolCallList": [
            {"id": "tc-2", "type": "function", "function": {"name": "enregistrer_reponse",
             "arguments": {"reponse": "Marie Tremblay"}}}]}}),
    )
    .await;
    assert!(next["results"][0]["error"].is_null(), "{next}");
    assert!(app.store.get_lead(old.id).await.unwrap().is_none());
    let fresh = app
        .store
        .find_lead_by_call(&CallSid::try_from(call_sid.as_str()).unwrap())
        .await
        .unwrap()
        .expect("a new lead for the call");
    assert_ne!(fresh.id, old.id);
    let said: Vec<&str> = fresh.conversation.iter().map(|t| t.text.as_str()).collect();
    assert!(
        said.iter().any(|t| t.contains("Marie Tremblay")),
        "{said:?}"
    );
    assert!(!said.iter().any(|t| t.contains("Gédéon")), "{said:?}");
}
