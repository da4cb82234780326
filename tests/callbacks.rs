//! Calling a lead back from the console (issue 27 §2, "Rappeler") over real HTTP, a real SQLite
//! file and the fake Twilio REST server: the profile page and the operator's phone, the button
//! (or why it is missing), the created call's form, the TwiML at every step (answer, another key,
//! no key, 1 → `<Dial>`), every `DialCallStatus`, a replayed status callback, the per-operator
//! limit, the pacing of created calls, Twilio's 429 and 500, and the signature on the callback
//! routes.
#![allow(clippy::too_many_lines)] // each test tells one callback step by step

mod helpers;

use std::time::Duration;

use helpers::console::{add_operator, client, form, get, login, plant_lead, post_form};
use helpers::fake_twilio::{self, FakeTwilio, Reply};
use helpers::{TestApp, spawn_app_with};
use myriam::config::{PublicBaseUrl, Settings};
use myriam::domain::{CallSid, LeadId, PhoneNumber};
use myriam::environment::Environment;
use myriam::qualification::Lead;
use myriam::store::console::{AuditAction, ConsoleStore, Email, Role};
use myriam::store::stats::{Callbacks, StatsQuery, StatsStore};
use myriam::store::{CallRecord, Store};
use secrecy::SecretString;

const PUBLIC: &str = "https://gw.bp-emondage.test";
const BUSINESS: &str = "+14505550199";
const STAFF: &str = "staff@bp.example";
const STAFF_PHONE: &str = "+15145550142";
const LEAD_PHONE: &str = "+15145550177";

fn configure(fake: &FakeTwilio, business: bool) -> impl FnOnce(&mut Settings) {
    let base = fake.base_url();
    move |s: &mut Settings| {
        s.twilio.account_sid = Some(fake_twilio::ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(fake_twilio::TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&base).unwrap();
        s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
        if business {
            s.office.business_number = Some(BUSINESS.to_owned());
        }
    }
}

async fn set_phone(app: &TestApp, email: &str, phone: &str) {
    assert!(
        app.store
            .set_operator_phone(
                &Email::try_from(email).unwrap(),
                Some(&PhoneNumber::try_from(phone).unwrap())
            )
            .await
            .unwrap()
    );
}

/// A gateway with callbacks configured, an operator with a phone, a qualified lead.
async fn setup() -> (TestApp, FakeTwilio, Lead) {
    let fake = FakeTwilio::start().await;
    let app = spawn_app_with(configure(&fake, true)).await;
    add_operator(&app, STAFF, Role::Staff).await;
    set_phone(&app, STAFF, STAFF_PHONE).await;
    let lead = plant_lead(
        &app.store,
        "Jean Tremblay",
        LEAD_PHONE,
        "12 rue Principale, Laval H7N 1A1",
        true,
    )
    .await;
    (app, fake, lead)
}

/// What Myriam says in a TwiML document (unescaped).
fn spoken(twiml: &str) -> String {
    myriam::twilio::twiml::spoken_lines(twiml).join(" ")
}

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// Twilio's request to a callback route (unsigned: test settings do not check signatures).
async fn step(app: &TestApp, path: &str, lead: LeadId, fields: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![("AccountSid", fake_twilio::ACCOUNT)];
    all.extend_from_slice(fields);
    app.post_form(&format!("{path}?lead={lead}"), &all).await
}

async fn call(app: &TestApp, sid: &str) -> CallRecord {
    app.store
        .get_call(&CallSid::try_from(sid).unwrap())
        .await
        .unwrap()
        .expect("the callback's call row")
}

async fn click(app: &TestApp, cookie: &str, csrf: &str, lead: LeadId) -> reqwest::Response {
    post_form(
        app,
        &format!("/console/leads/{lead}/rappeler"),
        cookie,
        &[("csrf", csrf)],
    )
    .await
}

#[tokio::test]
async fn the_profile_page_sets_the_operators_phone_with_csrf_and_audit() {
    let fake = FakeTwilio::start().await;
    let app = spawn_app_with(configure(&fake, true)).await;
    add_operator(&app, STAFF, Role::Staff).await;
    let session = login(&app, STAFF).await;

    let page = get(&app, "/console/profil", Some(&session.cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<input id="phone" name="phone" type="tel""#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/console/profil""#),
        "the nav links the profile"
    );

    // A bad number: 400, the page says so, nothing stored.
    let bad = post_form(
        &app,
        "/console/profil",
        &session.cookie,
        &[("csrf", &session.csrf), ("phone", "555-01")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("pas un numéro nord-américain valide")
    );
    // Without the CSRF token: 403.
    let forged = post_form(
        &app,
        "/console/profil",
        &session.cookie,
        &[("phone", "5145550142")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    // From another site: 403 before the handler.
    let cross = client()
        .post(app.url("/console/profil"))
        .header("cookie", &session.cookie)
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", session.csrf.as_str()),
            ("phone", "5145550142"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let email = Email::try_from(STAFF).unwrap();
    assert_eq!(
        app.store
            .operator_by_email(&email)
            .await
            .unwrap()
            .unwrap()
            .phone,
        None
    );

    let saved = post_form(
        &app,
        "/console/profil",
        &session.cookie,
        &[("csrf", &session.csrf), ("phone", "(514) 555-0142")],
    )
    .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(saved.headers()["location"], "/console/profil?ok=1");
    assert_eq!(
        app.store
            .operator_by_email(&email)
            .await
            .unwrap()
            .unwrap()
            .phone
            .as_deref(),
        Some(STAFF_PHONE)
    );
    let html = get(&app, "/console/profil?ok=1", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"value="514 555-0142""#), "{html}");
    assert!(html.contains("Numéro enregistré."));
    let audit = app.store.audit_log(50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == AuditAction::PhoneChanged
            && e.actor == STAFF
            && e.detail.as_deref() == Some("set")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn the_lead_page_says_why_rappeler_is_missing() {
    // No BUSINESS_NUMBER: the page names the setting.
    let fake = FakeTwilio::start().await;
    let app = spawn_app_with(configure(&fake, false)).await;
    add_operator(&app, STAFF, Role::Staff).await;
    set_phone(&app, STAFF, STAFF_PHONE).await;
    let lead = plant_lead(
        &app.store,
        "Jean Tremblay",
        LEAD_PHONE,
        "12 rue Principale, Laval H7N 1A1",
        false,
    )
    .await;
    let session = login(&app, STAFF).await;
    let html = get(
        &app,
        &format!("/console/leads/{}", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("il manque BUSINESS_NUMBER"), "{html}");
    assert!(!html.contains("/rappeler"), "no button");
    let refused = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(refused.status(), 503);
    assert!(fake.created_calls().is_empty());

    // Configured, but the operator has no phone: the page sends them to their profile.
    let (app, fake, lead) = setup().await;
    add_operator(&app, "nophone@bp.example", Role::Staff).await;
    let session = login(&app, "nophone@bp.example").await;
    let html = get(
        &app,
        &format!("/console/leads/{}", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        html.contains("ajoutez d'abord votre numéro de téléphone"),
        "{html}"
    );
    assert!(!html.contains("/rappeler\""), "no button");
    let refused = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(refused.status(), 409);
    assert!(fake.created_calls().is_empty());
}

#[tokio::test]
async fn rappeler_makes_twilio_call_the_operator_first_with_the_signed_routes() {
    let (app, fake, lead) = setup().await;
    let session = login(&app, STAFF).await;
    let page = get(
        &app,
        &format!("/console/leads/{}", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains(&format!(r#"action="/console/leads/{}/rappeler""#, lead.id)),
        "{page}"
    );
    assert!(page.contains("Twilio appelle d'abord votre téléphone (514 555-0142)"));
    assert!(page.contains("le 514 555-0177, qui verra le numéro de l'entreprise (450 555-0199)"));

    // Without the CSRF token: refused, nothing created.
    let forged = post_form(
        &app,
        &format!("/console/leads/{}/rappeler", lead.id),
        &session.cookie,
        &[("csrf", "nope")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(fake.call_attempts(), 0);

    let response = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/console/leads/{}?rappel=1", lead.id)
    );
    let created = fake.created_calls();
    assert_eq!(created.len(), 1);
    let c = &created[0];
    assert_eq!(c.field("To"), Some(STAFF_PHONE), "the operator first");
    assert_eq!(c.field("From"), Some(BUSINESS));
    assert_eq!(
        c.field("Url"),
        Some(format!("{PUBLIC}/twilio/callback/answer?lead={}", lead.id).as_str())
    );
    assert_eq!(c.field("Method"), Some("POST"));
    assert_eq!(
        c.field("StatusCallback"),
        Some(format!("{PUBLIC}/twilio/callback/status?lead={}", lead.id).as_str())
    );
    assert_eq!(c.field("StatusCallbackMethod"), Some("POST"));
    assert_eq!(
        c.all("StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(c.field("Timeout"), Some("25"));

    // The call row: an outbound callback of the lead, by this operator.
    let row = call(&app, &c.sid).await;
    assert_eq!(row.fields.lead_id, Some(lead.id));
    assert_eq!(row.fields.direction.as_deref(), Some("outbound-callback"));
    assert_eq!(row.fields.operator.as_deref(), Some(STAFF));
    assert_eq!(row.fields.from_number.as_deref(), Some(BUSINESS));
    assert_eq!(row.fields.to_number.as_deref(), Some(LEAD_PHONE));
    assert_eq!(row.fields.status.as_deref(), Some("queued"));

    // The page says the phone will ring, and the history shows the callback.
    let page = get(
        &app,
        &format!("/console/leads/{}?rappel=1", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("Appel lancé : votre téléphone va sonner"),
        "{page}"
    );
    assert!(page.contains(&format!("rappel par {STAFF}")), "{page}");

    // Audited, with the call and never a number.
    let audit = app.store.audit_log(50).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == AuditAction::Callback)
        .expect("a callback entry");
    assert_eq!(entry.actor, STAFF);
    assert_eq!(entry.target.as_deref(), Some(lead.id.to_string().as_str()));
    assert_eq!(
        entry.detail.as_deref(),
        Some(format!("placed call={}", c.sid).as_str())
    );

    // Again at once: 429 with Retry-After, nothing created (one per 10 s per operator).
    let again = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(again.status(), 429);
    assert_eq!(again.headers()["retry-after"], "10");
    assert!(again.text().await.unwrap().contains("Attendez 10 secondes"));
    assert_eq!(fake.created_calls().len(), 1);
}

#[tokio::test]
async fn the_twiml_at_each_step_asks_for_1_before_dialling_the_lead() {
    let (app, _fake, lead) = setup().await;
    let id = lead.id;

    // The operator answers: whom they are about to reach, in French, and press 1.
    let (status, answer) = step(
        &app,
        "/twilio/callback/answer",
        id,
        &[("CallSid", &sid(1)), ("CallStatus", "in-progress")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let press = format!("{PUBLIC}/twilio/callback/press?lead={id}");
    assert!(
        answer.contains(&format!(
            r#"<Gather input="dtmf" numDigits="1" action="{press}" method="POST" timeout="8">"#
        )),
        "{answer}"
    );
    assert_eq!(
        myriam::twilio::twiml::spoken_lines(&answer),
        [
            "Rappel de BP Émondage. Vous allez joindre Jean Tremblay, pour l'abattage d'un arbre. \
             C'est urgent. Appuyez sur 1 pour lancer l'appel.",
            "Pour annuler, raccrochez."
        ],
        "{answer}"
    );
    assert!(answer.contains(r#"language="fr-CA""#), "{answer}");
    // No key before the timeout: the redirect reaches the press route without digits.
    assert!(
        answer.contains(&format!(
            r#"</Gather><Redirect method="POST">{press}</Redirect>"#
        )),
        "{answer}"
    );
    assert!(!answer.contains("<Dial"), "never the lead before the key");
    let row = call(&app, &sid(1)).await;
    assert_eq!(row.fields.direction.as_deref(), Some("outbound-callback"));
    assert_eq!(row.fields.lead_id, Some(id));

    // Another key: a polite goodbye, hung up, recorded.
    let (_, declined) = step(
        &app,
        "/twilio/callback/press",
        id,
        &[("CallSid", &sid(1)), ("Digits", "2")],
    )
    .await;
    assert_eq!(
        spoken(&declined),
        "D'accord, l'appel n'est pas fait. Au revoir."
    );
    assert!(
        declined.contains("<Hangup/>") && !declined.contains("<Dial"),
        "{declined}"
    );
    assert_eq!(
        call(&app, &sid(1)).await.fields.ended_reason.as_deref(),
        Some("operator-declined")
    );

    // No key (the redirect after the timeout): goodbye, recorded.
    step(&app, "/twilio/callback/answer", id, &[("CallSid", &sid(2))]).await;
    let (_, timeout) = step(&app, "/twilio/callback/press", id, &[("CallSid", &sid(2))]).await;
    assert_eq!(
        spoken(&timeout),
        "Aucune touche reçue : l'appel n'est pas fait. Au revoir."
    );
    assert!(
        timeout.contains("<Hangup/>") && !timeout.contains("<Dial"),
        "{timeout}"
    );
    assert_eq!(
        call(&app, &sid(2)).await.fields.ended_reason.as_deref(),
        Some("operator-timeout")
    );

    // 1: the lead is dialled with the business number as caller ID.
    step(&app, "/twilio/callback/answer", id, &[("CallSid", &sid(3))]).await;
    let (_, dial) = step(
        &app,
        "/twilio/callback/press",
        id,
        &[("CallSid", &sid(3)), ("Digits", "1")],
    )
    .await;
    assert!(
        dial.contains(&format!(
            r#"<Dial action="{PUBLIC}/twilio/callback/dial?lead={id}" method="POST" timeout="25" callerId="{BUSINESS}"><Number>{LEAD_PHONE}</Number></Dial>"#
        )),
        "{dial}"
    );

    // A step for a call that is not a callback (an inbound call's SID): hung up, never dialled.
    let (_, stranger) = step(
        &app,
        "/twilio/callback/press",
        id,
        &[("CallSid", &sid(99)), ("Digits", "1")],
    )
    .await;
    assert!(
        stranger.contains("<Hangup/>") && !stranger.contains("<Dial"),
        "{stranger}"
    );
    // A step without its lead: 400.
    let (status, _) = app
        .post_form(
            "/twilio/callback/press",
            &[("CallSid", sid(3).as_str()), ("Digits", "1")],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn every_dial_outcome_is_recorded_and_counted_as_a_callback() {
    let (app, _fake, lead) = setup().await;
    let id = lead.id;
    // Twilio's `DialCallStatus`, what is recorded (as for a transfer), what the operator hears.
    let outcomes = [
        ("completed", "answered", "L'appel est terminé"),
        ("busy", "busy", "La ligne du client est occupée"),
        ("no-answer", "no-answer", "Le client n'a pas répondu"),
        ("failed", "failed", "L'appel n'a pas pu être établi"),
        ("canceled", "canceled", "L'appel a été annulé"),
    ];
    for (i, (outcome, recorded, said)) in outcomes.iter().enumerate() {
        let call_sid = sid(10 + u32::try_from(i).unwrap());
        step(
            &app,
            "/twilio/callback/answer",
            id,
            &[("CallSid", &call_sid)],
        )
        .await;
        step(
            &app,
            "/twilio/callback/press",
            id,
            &[("CallSid", &call_sid), ("Digits", "1")],
        )
        .await;
        let (status, twiml) = step(
            &app,
            "/twilio/callback/dial",
            id,
            &[
                ("CallSid", &call_sid),
                ("DialCallStatus", outcome),
                ("DialCallDuration", "31"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{twiml}");
        assert!(spoken(&twiml).contains(*said), "{outcome}: {twiml}");
        assert!(twiml.contains("<Hangup/>"), "{twiml}");
        let row = call(&app, &call_sid).await;
        assert_eq!(row.fields.dial_status.as_deref(), Some(*recorded));
        assert_eq!(row.fields.dial_duration, Some(31));
        // A retried press after the dial never dials again.
        let (_, again) = step(
            &app,
            "/twilio/callback/press",
            id,
            &[("CallSid", &call_sid), ("Digits", "1")],
        )
        .await;
        assert!(!again.contains("<Dial"), "{again}");
        step(
            &app,
            "/twilio/callback/status",
            id,
            &[
                ("CallSid", &call_sid),
                ("CallStatus", "completed"),
                ("CallDuration", "40"),
            ],
        )
        .await;
    }
    // And one the operator never confirmed.
    step(
        &app,
        "/twilio/callback/answer",
        id,
        &[("CallSid", &sid(20))],
    )
    .await;
    step(&app, "/twilio/callback/press", id, &[("CallSid", &sid(20))]).await;

    let now = time::OffsetDateTime::now_utc();
    let hour = (
        now - Duration::from_secs(1800),
        now + Duration::from_secs(1800),
    );
    let stats = app
        .store
        .stats(&StatsQuery {
            days: vec![hour],
            weeks: vec![hour],
            open: vec![],
            now,
        })
        .await
        .unwrap();
    assert_eq!(
        stats.callbacks,
        Callbacks {
            placed: 6,
            connected: 1,
            busy: 1,
            no_answer: 1,
            failed: 2,
            not_confirmed: 1,
            ..Callbacks::default()
        }
    );
    assert_eq!(stats.days[0].calls, 0, "callbacks are not calls received");
    assert_eq!(stats.transfers.busy, 0, "nor transfers");

    // The dashboard shows them.
    add_operator(&app, "admin@bp.example", Role::Admin).await;
    let session = login(&app, "admin@bp.example").await;
    let html = get(&app, "/console/tableau?period=day", Some(&session.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Rappels depuis la console"), "{html}");
    for row in [
        r#"<th scope="row">Rappels lancés</th><td>6</td>"#,
        r#"<th scope="row">Client joint</th><td>1</td>"#,
        r#"<th scope="row">Échec ou annulé</th><td>2</td>"#,
        r#"<th scope="row">Non confirmé (pas de 1)</th><td>1</td>"#,
    ] {
        assert!(html.contains(row), "{row} in {html}");
    }
    let csv = get(
        &app,
        "/console/tableau.csv?table=callbacks&period=day",
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(csv.contains("\"Client occupé\";\"1\"\r\n"), "{csv}");
    let json: serde_json::Value = client()
        .get(app.url("/api/v1/stats?period=day"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["callbacks"]["placed"], 6, "{json}");
    assert_eq!(json["callbacks"]["failed"], 2, "{json}");
}

#[tokio::test]
async fn a_replayed_status_callback_changes_nothing() {
    let (app, _fake, lead) = setup().await;
    let id = lead.id;
    let call_sid = sid(30);
    step(
        &app,
        "/twilio/callback/answer",
        id,
        &[("CallSid", &call_sid)],
    )
    .await;
    for status in ["initiated", "ringing", "in-progress"] {
        let (code, _) = step(
            &app,
            "/twilio/callback/status",
            id,
            &[("CallSid", &call_sid), ("CallStatus", status)],
        )
        .await;
        assert_eq!(code, 204);
    }
    step(
        &app,
        "/twilio/callback/status",
        id,
        &[
            ("CallSid", &call_sid),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
        ],
    )
    .await;
    let before = call(&app, &call_sid).await;
    assert_eq!(before.fields.status.as_deref(), Some("completed"));
    assert_eq!(before.fields.duration, Some(42));
    // Replays, late and out of order: the row keeps what it had.
    for status in ["ringing", "in-progress", "completed"] {
        let mut fields = vec![("CallSid", call_sid.as_str()), ("CallStatus", status)];
        if status == "completed" {
            fields.push(("CallDuration", "42"));
        }
        let (code, _) = step(&app, "/twilio/callback/status", id, &fields).await;
        assert_eq!(code, 204);
    }
    let after = call(&app, &call_sid).await;
    assert_eq!(after.fields, before.fields);
}

#[tokio::test]
async fn clicks_within_a_second_are_queued_and_created_at_least_a_second_apart() {
    let (app, fake, lead) = setup().await;
    add_operator(&app, "autre@bp.example", Role::Staff).await;
    set_phone(&app, "autre@bp.example", "+15145550143").await;
    let one = login(&app, STAFF).await;
    let two = login(&app, "autre@bp.example").await;
    let (a, b) = tokio::join!(
        click(&app, &one.cookie, &one.csrf, lead.id),
        click(&app, &two.cookie, &two.csrf, lead.id),
    );
    assert_eq!(
        (a.status().as_u16(), b.status().as_u16()),
        (303, 303),
        "both placed, none refused"
    );
    let created = fake.created_calls();
    assert_eq!(created.len(), 2);
    let gap = created[1].at.duration_since(created[0].at);
    assert!(gap >= Duration::from_secs(1), "created {gap:?} apart");
    let mut to: Vec<&str> = created.iter().map(|c| c.field("To").unwrap()).collect();
    to.sort_unstable();
    assert_eq!(to, [STAFF_PHONE, "+15145550143"]);
}

#[tokio::test]
async fn twilio_429_is_retried_and_500_is_not_repeated() {
    let (app, fake, lead) = setup().await;
    let session = login(&app, STAFF).await;
    // 429: Twilio did not take it; the next slot creates it.
    fake.script_calls([Reply::TooMany {
        retry_after_secs: 1,
    }]);
    let placed = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(placed.status(), 303);
    assert_eq!(fake.call_attempts(), 2);
    assert_eq!(fake.created_calls().len(), 1);

    // 500: the call may exist; never sent twice (an operator's phone ringing twice), the page
    // says to wait before retrying.
    add_operator(&app, "autre@bp.example", Role::Staff).await;
    set_phone(&app, "autre@bp.example", "+15145550143").await;
    let other = login(&app, "autre@bp.example").await;
    fake.script_calls([Reply::ServerError]);
    let unknown = click(&app, &other.cookie, &other.csrf, lead.id).await;
    assert_eq!(unknown.status(), 502);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("Twilio n'a pas confirmé l'appel")
    );
    assert_eq!(fake.call_attempts(), 3);

    // A refusal with Twilio's code (an unverified caller ID): shown, audited.
    add_operator(&app, "trois@bp.example", Role::Staff).await;
    set_phone(&app, "trois@bp.example", "+15145550144").await;
    let third = login(&app, "trois@bp.example").await;
    fake.script_calls([Reply::Refused { code: 21210 }]);
    let refused = click(&app, &third.cookie, &third.csrf, lead.id).await;
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap().contains("code 21210"));
    let audit = app.store.audit_log(50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == AuditAction::Callback
            && e.actor == "trois@bp.example"
            && e.detail.as_deref() == Some("refused code=21210")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn callback_routes_need_twilios_signature() {
    let fake = FakeTwilio::start().await;
    let configure = configure(&fake, true);
    let app = spawn_app_with(move |s| {
        configure(s);
        s.environment = Environment::Development;
    })
    .await;
    let lead = LeadId::new();
    let target = format!("/twilio/callback/answer?lead={lead}");
    let params = [
        ("AccountSid", fake_twilio::ACCOUNT),
        ("CallSid", "CA00000000000000000000000000000001"),
    ];
    let send = |signature: Option<String>| {
        let mut request = client()
            .post(app.url(&target))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&params));
        if let Some(s) = signature {
            request = request.header("x-twilio-signature", s);
        }
        request.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401, "missing signature");
    assert_eq!(
        send(Some("bm9wZQ==".to_owned())).await.unwrap().status(),
        403,
        "wrong signature"
    );
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let good = myriam::twilio::signature::sign(
        fake_twilio::TOKEN,
        &myriam::twilio::signature::signed_data(&format!("{PUBLIC}{target}"), &owned),
    );
    let response = send(Some(good)).await.unwrap();
    assert_eq!(response.status(), 200, "signed over PUBLIC_BASE_URL");
    assert_eq!(
        spoken(&response.text().await.unwrap()),
        "Ce client n'existe plus. Au revoir.",
        "a lead erased since the click: nobody is dialled"
    );
}

#[tokio::test]
async fn thirty_callbacks_an_hour_per_operator_then_429() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callbacks.db");
    let configure = configure(&fake, true);
    let path = db.clone();
    let app = spawn_app_with(move |s| {
        configure(s);
        s.store.database_path = path;
    })
    .await;
    add_operator(&app, STAFF, Role::Staff).await;
    set_phone(&app, STAFF, STAFF_PHONE).await;
    let lead = plant_lead(
        &app.store,
        "Jean Tremblay",
        LEAD_PHONE,
        "12 rue Principale, Laval H7N 1A1",
        false,
    )
    .await;
    // Thirty callbacks by this operator in the last hour (twenty minutes ago), one by another.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    for n in 0..31 {
        let operator = if n == 30 { "autre@bp.example" } else { STAFF };
        conn.execute(
            "INSERT INTO calls (id, call_sid, lead_id, direction, operator, status, created_at) \
             VALUES (?1, ?2, ?3, 'outbound-callback', ?4, 'completed', \
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-20 minutes'))",
            rusqlite::params![
                uuid::Uuid::new_v4().to_string(),
                sid(500 + n),
                lead.id.to_string(),
                operator
            ],
        )
        .unwrap();
    }
    drop(conn);
    let session = login(&app, STAFF).await;
    let refused = click(&app, &session.cookie, &session.csrf, lead.id).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "3600");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("30 rappels dans la dernière heure")
    );
    assert_eq!(fake.call_attempts(), 0);
    // Another operator's callbacks do not count against them.
    add_operator(&app, "autre@bp.example", Role::Staff).await;
    set_phone(&app, "autre@bp.example", "+15145550143").await;
    let other = login(&app, "autre@bp.example").await;
    assert_eq!(
        click(&app, &other.cookie, &other.csrf, lead.id)
            .await
            .status(),
        303
    );
}
