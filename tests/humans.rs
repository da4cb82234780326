//! Reaching a human, over real HTTP: a request for a person at any IVR step (speech or the key 0)
//! goes to the office line inside business hours and to voicemail outside; the transfer's outcome
//! and the voicemail are stored on the call; replays change nothing; the disclosure and the
//! closed-office greeting; the Vapi assistant's transfer tool redirects the live call through a
//! fake of Twilio's REST API.

mod helpers;

use std::time::Duration;

use helpers::fake_twilio::{ACCOUNT, FakeTwilio, TOKEN};
use helpers::{TestApp, spawn_app_with};
use myriam::config::{PublicBaseUrl, Settings};
use myriam::domain::{BusinessHours, CallSid, LeadStatus};
use myriam::qualification::Lead;
use myriam::store::{CallRecord, Store as _};
use myriam::twilio::twiml;
use secrecy::SecretString;

const CALLER: &str = "+15145550123";
const OFFICE: &str = "+14505550100";
const PUBLIC: &str = "https://gw.bp-emondage.test";

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

fn always_open() -> BusinessHours {
    BusinessHours::parse("mon-sun 00:00-24:00", "America/Toronto").unwrap()
}

fn never_open() -> BusinessHours {
    BusinessHours::parse("closed", "America/Toronto").unwrap()
}

/// Office open or closed, with or without a transfer line.
fn office(open: bool, line: bool) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.office.hours = if open { always_open() } else { never_open() };
        s.office.transfer_number = line.then(|| OFFICE.to_owned());
    }
}

/// The path and query of a URL the gateway wrote (absolute under `PUBLIC_BASE_URL` or relative).
fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLIC).unwrap_or(url).to_owned()
}

async fn incoming(app: &TestApp, call: &str) -> String {
    let (status, body) = app
        .post_form(
            "/twilio/voice",
            &[
                ("CallSid", call),
                ("AccountSid", ACCOUNT),
                ("From", CALLER),
                ("To", "+14505550000"),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Answers the `<Gather>` of `twiml` with speech (or digits).
async fn answer(app: &TestApp, twiml_doc: &str, call: &str, speech: &str) -> String {
    let action =
        twiml::gather_action(twiml_doc).unwrap_or_else(|| panic!("no gather in {twiml_doc}"));
    let field = if speech.chars().all(|c| c.is_ascii_digit()) && !speech.is_empty() {
        "Digits"
    } else {
        "SpeechResult"
    };
    let (status, body) = app
        .post_form(&path_of(&action), &[("CallSid", call), (field, speech)])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn lead_of(app: &TestApp, call: &str) -> Lead {
    app.store
        .find_lead_by_call(&CallSid::try_from(call).unwrap())
        .await
        .unwrap()
        .expect("the call has a lead")
}

async fn call_row(app: &TestApp, call: &str) -> CallRecord {
    app.store
        .get_call(&CallSid::try_from(call).unwrap())
        .await
        .unwrap()
        .expect("the call is stored")
}

/// The answers that bring a call to each step, in order.
const STEPS: &[&str] = &[
    "Marie Tremblay",
    "oui",
    "123 rue Principale Laval",
    "abattage",
    "un gros érable penche vers la maison",
];

/// Plays a call to step `step` (0 = the name question).
async fn call_at_step(app: &TestApp, call: &str, step: usize) -> String {
    let mut doc = incoming(app, call).await;
    for said in &STEPS[..step] {
        doc = answer(app, &doc, call, said).await;
    }
    doc
}

fn dial_number(doc: &str) -> Option<String> {
    let start = doc.find("<Number>")? + "<Number>".len();
    let end = doc.find("</Number>")?;
    Some(doc[start..end].to_owned())
}

#[tokio::test]
async fn a_request_for_a_person_at_any_step_is_transferred_inside_hours() {
    let app = spawn_app_with(office(true, true)).await;
    let requests = [
        "je veux parler à quelqu'un",
        "euh non je veux parler à un humain",
        "0",
        "une vraie personne s'il vous plaît",
        "I want to talk to a real person",
        "0",
    ];
    for (step, request) in requests.iter().enumerate() {
        let call = sid(100 + u32::try_from(step).unwrap());
        let doc = call_at_step(&app, &call, step).await;
        let before = lead_of(&app, &call).await;
        let transfer = answer(&app, &doc, &call, request).await;
        // A short hand-off sentence, then <Dial> to the office line with the caller as caller ID.
        assert!(
            transfer.contains("<Dial action=\"/twilio/dial-done\" method=\"POST\" timeout=\"20\" callerId=\"+15145550123\">"),
            "step {step}: {transfer}"
        );
        assert_eq!(
            dial_number(&transfer).as_deref(),
            Some(OFFICE),
            "step {step}"
        );
        let said = twiml::spoken_lines(&transfer).join(" ");
        assert!(
            said.contains("je vous transfère") || said.contains("transferring you"),
            "step {step}: {said}"
        );
        let lead = lead_of(&app, &call).await;
        assert_eq!(lead.status, LeadStatus::Transfere, "step {step}");
        // What was collected stays; the request is never a field value.
        assert_eq!(lead.nom_complet, before.nom_complet, "step {step}");
        assert_eq!(lead.telephone, before.telephone, "step {step}");
        assert_eq!(
            lead.adresse_complete, before.adresse_complete,
            "step {step}"
        );
        assert_eq!(lead.type_service, before.type_service, "step {step}");
        assert_eq!(lead.description, before.description, "step {step}");
        assert_eq!(lead.current_field(), before.current_field(), "step {step}");
        // Replaying the request answers the same and changes nothing.
        let replay = answer(&app, &doc, &call, request).await;
        assert_eq!(replay, transfer, "step {step}");
        assert_eq!(lead_of(&app, &call).await.conversation, lead.conversation);
    }
}

#[tokio::test]
async fn outside_hours_a_request_for_a_person_goes_to_voicemail() {
    let app = spawn_app_with(office(false, true)).await;
    let call = sid(200);
    let doc = call_at_step(&app, &call, 1).await;
    let voicemail = answer(&app, &doc, &call, "je veux parler à un représentant").await;
    assert!(!voicemail.contains("<Dial"), "{voicemail}");
    assert!(
        voicemail.contains(
            "<Record maxLength=\"120\" playBeep=\"true\" action=\"/twilio/voicemail\" method=\"POST\" \
             timeout=\"5\" finishOnKey=\"#\" recordingStatusCallback=\"/twilio/recording-status\""
        ),
        "{voicemail}"
    );
    let said = twiml::spoken_lines(&voicemail);
    assert!(said[0].contains("fermés"), "{said:?}");
    assert!(said[0].contains("vous rappellera au"), "{said:?}");
    // After the recording (or an empty one): a goodbye and the end of the call.
    assert!(
        said[1].contains("Merci, votre demande est notée"),
        "{said:?}"
    );
    assert!(voicemail.ends_with("<Hangup/></Response>"), "{voicemail}");
    let lead = lead_of(&app, &call).await;
    assert_eq!(lead.status, LeadStatus::Rappel);
    // A callback request keeps the caller's number.
    assert_eq!(lead.telephone.as_ref().unwrap().as_e164(), CALLER);
    assert_eq!(
        lead.nom_complet.as_ref().unwrap().as_str(),
        "Marie Tremblay"
    );
}

#[tokio::test]
async fn without_a_transfer_line_callers_reach_voicemail_even_in_hours() {
    let app = spawn_app_with(office(true, false)).await;
    let call = sid(210);
    let doc = incoming(&app, &call).await;
    let voicemail = answer(&app, &doc, &call, "0").await;
    assert!(voicemail.contains("<Record"), "{voicemail}");
    assert!(
        twiml::spoken_lines(&voicemail)[0].contains("Personne n'est disponible"),
        "{voicemail}"
    );
    assert_eq!(lead_of(&app, &call).await.status, LeadStatus::Rappel);
}

#[tokio::test]
async fn the_dial_outcome_is_recorded_and_anything_but_an_answer_goes_to_voicemail() {
    let app = spawn_app_with(office(true, true)).await;
    for (n, status, bridged, expected) in [
        (300, "completed", Some("true"), "answered"),
        (301, "busy", None, "busy"),
        (302, "no-answer", Some("false"), "no-answer"),
        (303, "failed", None, "failed"),
        (304, "completed", Some("false"), "failed"),
    ] {
        let call = sid(n);
        let doc = call_at_step(&app, &call, 2).await;
        answer(&app, &doc, &call, "0").await;
        let mut form = vec![
            ("CallSid", call.as_str()),
            ("DialCallStatus", status),
            ("DialCallSid", "CAffffffffffffffffffffffffffffffff"),
            ("DialCallDuration", "42"),
        ];
        if let Some(b) = bridged {
            form.push(("DialBridged", b));
        }
        let (code, after) = app.post_form("/twilio/dial-done", &form).await;
        assert_eq!(code, 200, "{after}");
        let row = call_row(&app, &call).await;
        assert_eq!(
            row.fields.dial_status.as_deref(),
            Some(expected),
            "{status}"
        );
        assert_eq!(row.fields.dial_duration, Some(42));
        let lead = lead_of(&app, &call).await;
        if expected == "answered" {
            assert_eq!(
                after,
                twiml::TwiML::new().verb(twiml::Verb::Hangup).to_xml()
            );
            assert_eq!(lead.status, LeadStatus::Transfere);
        } else {
            assert!(after.contains("<Record"), "{status}: {after}");
            assert!(
                twiml::spoken_lines(&after)[0].contains("personne de l'équipe n'a pu répondre"),
                "{after}"
            );
            assert_eq!(lead.status, LeadStatus::Rappel, "{status}");
        }
        // The same request again: the same answer, the same rows.
        let (_, again) = app.post_form("/twilio/dial-done", &form).await;
        assert_eq!(again, after);
        assert_eq!(lead_of(&app, &call).await.conversation, lead.conversation);
    }
}

#[tokio::test]
async fn voicemail_recordings_are_stored_and_an_empty_one_still_leaves_a_callback() {
    let app = spawn_app_with(office(false, false)).await;
    // With a recording: the action, then the status callback.
    let call = sid(400);
    let doc = call_at_step(&app, &call, 3).await;
    answer(&app, &doc, &call, "passez-moi quelqu'un du bureau").await;
    let url = "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Recordings/RE0123456789abcdef0123456789abcdef";
    let recording = [
        ("CallSid", call.as_str()),
        ("RecordingUrl", url),
        ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
        ("RecordingDuration", "17"),
        ("Digits", "hangup"),
    ];
    let (code, bye) = app.post_form("/twilio/voicemail", &recording).await;
    assert_eq!(code, 200);
    assert!(bye.contains("Merci, votre demande est notée"), "{bye}");
    assert!(bye.ends_with("<Hangup/></Response>"), "{bye}");
    let mut callback = recording.to_vec();
    callback.push(("RecordingStatus", "completed"));
    let (code, _) = app.post_form("/twilio/recording-status", &callback).await;
    assert_eq!(code, 204);
    let row = call_row(&app, &call).await;
    assert_eq!(row.fields.recording_url.as_deref(), Some(url));
    assert_eq!(row.fields.recording_duration, Some(17));
    assert_eq!(row.fields.recording_status.as_deref(), Some("completed"));
    assert_eq!(
        row.fields.recording_sid.as_deref(),
        Some("RE0123456789abcdef0123456789abcdef")
    );
    // Replays change nothing.
    app.post_form("/twilio/voicemail", &recording).await;
    app.post_form("/twilio/recording-status", &callback).await;
    assert_eq!(call_row(&app, &call).await.fields, row.fields);

    // Empty: Twilio skips the action and reports `absent`; the lead is still a callback request.
    let call = sid(401);
    let doc = incoming(&app, &call).await;
    answer(&app, &doc, &call, "un agent svp").await;
    let (code, _) = app
        .post_form(
            "/twilio/recording-status",
            &[
                ("CallSid", call.as_str()),
                ("RecordingStatus", "absent"),
                ("RecordingSid", "RE1123456789abcdef0123456789abcdef"),
            ],
        )
        .await;
    assert_eq!(code, 204);
    assert_eq!(
        call_row(&app, &call)
            .await
            .fields
            .recording_status
            .as_deref(),
        Some("absent")
    );
    let lead = lead_of(&app, &call).await;
    assert_eq!(lead.status, LeadStatus::Rappel);
    assert_eq!(lead.telephone.unwrap().as_e164(), CALLER);
}

#[tokio::test]
async fn the_greeting_discloses_the_assistant_and_says_when_the_office_is_closed() {
    let open = spawn_app_with(office(true, true)).await;
    let doc = incoming(&open, &sid(500)).await;
    let first = &twiml::spoken_lines(&doc)[0];
    assert!(
        first.starts_with("Bonjour, vous parlez à Myriam, l'assistante virtuelle de BP Émondage; l'appel peut être enregistré pour traiter votre demande."),
        "{first}"
    );
    assert!(!first.contains("fermés"), "{first}");

    let closed = spawn_app_with(office(false, true)).await;
    let doc = incoming(&closed, &sid(501)).await;
    let first = &twiml::spoken_lines(&doc)[0];
    assert!(first.contains("assistante virtuelle"), "{first}");
    assert!(
        first.contains("Nos bureaux sont fermés en ce moment, mais je peux prendre votre demande."),
        "{first}"
    );
    // The qualification still runs.
    assert!(first.ends_with("quel est votre nom complet?"), "{first}");
    let next = answer(&closed, &doc, &sid(501), "Marie Tremblay").await;
    assert!(twiml::gather_action(&next).is_some(), "{next}");

    // Switching to English repeats the disclosure in English.
    let english = answer(&closed, &next, &sid(501), "English please").await;
    assert!(
        twiml::spoken_lines(&english)[0]
            .contains("BP Émondage's virtual assistant; this call may be recorded"),
        "{english}"
    );

    let off = spawn_app_with(|s: &mut Settings| {
        s.office.hours = always_open();
        s.office.disclosure = false;
    })
    .await;
    let doc = incoming(&off, &sid(502)).await;
    assert!(
        twiml::spoken_lines(&doc)[0].starts_with("Bonjour, vous êtes bien chez BP Émondage."),
        "{doc}"
    );
}

#[tokio::test]
async fn a_confirmed_caller_id_is_stored_as_given_not_as_the_words() {
    let app = spawn_app_with(office(true, true)).await;
    let call = sid(600);
    let doc = call_at_step(&app, &call, 1).await;
    answer(&app, &doc, &call, "oui c'est ça").await;
    let lead = lead_of(&app, &call).await;
    assert_eq!(lead.telephone_raw.as_deref(), Some(CALLER));
}

#[tokio::test]
async fn an_urgent_description_about_wires_ends_with_the_safety_line() {
    let app = spawn_app_with(office(true, true)).await;
    let call = sid(610);
    let mut doc = call_at_step(&app, &call, 4).await;
    doc = answer(
        &app,
        &doc,
        &call,
        "un arbre est tombé sur les fils électriques",
    )
    .await;
    let end = answer(&app, &doc, &call, "oui").await;
    let said = twiml::spoken_lines(&end).join(" ");
    assert!(
        said.contains(
            "Restez loin de l'arbre et des fils, et faites le 911 si quelqu'un est en danger."
        ),
        "{said}"
    );
    // Not urgent: no safety line.
    let call = sid(611);
    let mut doc = call_at_step(&app, &call, 4).await;
    doc = answer(
        &app,
        &doc,
        &call,
        "un arbre est tombé sur les fils électriques",
    )
    .await;
    let end = answer(&app, &doc, &call, "non").await;
    assert!(
        !twiml::spoken_lines(&end).join(" ").contains("911"),
        "{end}"
    );
}

#[tokio::test]
async fn every_new_route_checks_the_signature_in_production() {
    let app = spawn_app_with(|s: &mut Settings| {
        s.environment = myriam::environment::Environment::Production;
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
    })
    .await;
    for path in [
        "/twilio/dial-done",
        "/twilio/voicemail",
        "/twilio/recording-status",
        "/twilio/handoff",
        "/twilio/sms-status",
    ] {
        let (status, body) = app.post_form(path, &[("CallSid", &sid(700))]).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_assistants_transfer_tool_redirects_the_live_call() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(|s: &mut Settings| {
        office(true, true)(s);
        s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&twilio.base_url()).unwrap();
    })
    .await;
    let call = sid(800);
    incoming(&app, &call).await;
    let lead = lead_of(&app, &call).await;
    // Vapi's tool call, as the assistant sends it for a bridged call.
    let tool_call = serde_json::json!({"message": {
        "type": "tool-calls",
        "call": {"id": "vapi-call-800", "phoneCallProviderId": call,
                  "assistantOverrides": {"variableValues": {"lead_id": lead.id.to_string()}}},
        "toolCallList": [{"id": "tc-human", "type": "function",
                          "function": {"name": "transfer_to_human", "arguments": {}}}]
    }});
    let post = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/vapi/webhook"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let answer = post(tool_call.clone()).await;
    let result = answer["results"][0]["result"].as_str().unwrap().to_owned();
    let parsed: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(parsed["status"], "transfer", "{answer}");
    assert!(
        parsed["message"].as_str().unwrap().contains("transféré"),
        "{answer}"
    );
    // The fake Twilio received the live-call update towards the hand-off TwiML.
    let redirects = twilio.redirects();
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    assert_eq!(redirects[0].call_sid, call);
    assert_eq!(redirects[0].url, format!("{PUBLIC}/twilio/handoff"));
    assert_eq!(redirects[0].method.as_deref(), Some("POST"));
    assert_eq!(lead_of(&app, &call).await.status, LeadStatus::Transfere);
    assert_eq!(
        call_row(&app, &call).await.fields.mode_reason.as_deref(),
        Some("handed_off")
    );
    // A replayed tool call: the same result, no second redirect.
    let again = post(tool_call).await;
    assert_eq!(
        again["results"][0]["result"].as_str(),
        Some(result.as_str())
    );
    assert_eq!(twilio.redirects().len(), 1);
    // Twilio fetches the hand-off TwiML: the transfer.
    let (code, doc) = app
        .post_form("/twilio/handoff", &[("CallSid", &call)])
        .await;
    assert_eq!(code, 200);
    assert_eq!(dial_number(&doc).as_deref(), Some(OFFICE), "{doc}");
    // Vapi's side ends (the stream stopped): not the end of the call, not a failure.
    let report = serde_json::json!({"message": {
        "type": "end-of-call-report", "endedReason": "customer-ended-call",
        "call": {"id": "vapi-call-800", "phoneCallProviderId": call}
    }});
    post(report).await;
    let row = call_row(&app, &call).await;
    assert_ne!(row.fields.status.as_deref(), Some("completed"), "{row:?}");
    assert_eq!(lead_of(&app, &call).await.status, LeadStatus::Transfere);
    // The caller's status callback ends it.
    let (code, _) = app
        .post_form(
            "/twilio/status",
            &[
                ("CallSid", &call),
                ("CallStatus", "completed"),
                ("CallDuration", "95"),
            ],
        )
        .await;
    assert_eq!(code, 204);
    assert_eq!(
        call_row(&app, &call).await.fields.status.as_deref(),
        Some("completed")
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_qualified_caller_who_then_asks_for_a_person_is_put_through_and_stays_qualified() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(|s: &mut Settings| {
        office(true, true)(s);
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&twilio.base_url()).unwrap();
        s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
    })
    .await;
    let call = sid(900);
    let doc = call_at_step(&app, &call, 5).await;
    answer(&app, &doc, &call, "non").await;
    assert_eq!(lead_of(&app, &call).await.status, LeadStatus::Qualifie);
    let reply: serde_json::Value = app
        .client
        .post(app.url("/vapi/webhook"))
        .json(&serde_json::json!({"message": {
            "type": "tool-calls", "call": {"id": "vapi-900", "phoneCallProviderId": call},
            "toolCallList": [{"id": "tc-900", "type": "function",
                              "function": {"name": "transfer_to_human", "arguments": {}}}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result: serde_json::Value =
        serde_json::from_str(reply["results"][0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["status"], "transfer", "{reply}");
    assert_eq!(twilio.redirects().len(), 1);
    let (_, doc) = app
        .post_form("/twilio/handoff", &[("CallSid", &call)])
        .await;
    assert_eq!(dial_number(&doc).as_deref(), Some(OFFICE), "{doc}");
    let (_, after) = app
        .post_form(
            "/twilio/dial-done",
            &[("CallSid", &call), ("DialCallStatus", "busy")],
        )
        .await;
    assert!(after.contains("<Record"), "{after}");
    let lead = lead_of(&app, &call).await;
    assert_eq!(
        lead.status,
        LeadStatus::Qualifie,
        "all six answers stay the lead's news"
    );
    assert_eq!(
        call_row(&app, &call).await.fields.dial_status.as_deref(),
        Some("busy")
    );
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // the lead page, then playing its voicemail, read top to bottom
async fn staff_see_the_transfer_the_voicemail_and_the_alerts_and_play_the_recording() {
    use helpers::console::{add_operator, get, login};
    let twilio = FakeTwilio::start().await;
    let base = twilio.base_url();
    let app = spawn_app_with(move |s: &mut Settings| {
        office(false, false)(s);
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&base).unwrap();
        s.office.alerts = Some(myriam::config::AlertSettings {
            recipients: vec!["+15145550101".to_owned()],
            sender: myriam::config::SmsSender::Number("+14505550000".to_owned()),
            on: myriam::config::AlertOn::Urgent,
            lease: Duration::from_secs(30),
        });
    })
    .await;
    let call = sid(950);
    let mut doc = incoming(&app, &call).await;
    for said in [
        "Marie Tremblay",
        "oui",
        "123 rue Principale Laval",
        "urgence tempête",
    ] {
        doc = answer(&app, &doc, &call, said).await;
    }
    answer(&app, &doc, &call, "0").await;
    let recording_url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE0123456789abcdef0123456789abcdef",
        twilio.base_url()
    );
    let recording = [
        ("CallSid", call.as_str()),
        ("RecordingUrl", recording_url.as_str()),
        ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
        ("RecordingDuration", "17"),
        ("RecordingStatus", "completed"),
    ];
    app.post_form("/twilio/recording-status", &recording).await;
    twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    add_operator(
        &app,
        "staff@bp-emondage.test",
        myriam::store::console::Role::Staff,
    )
    .await;
    let session = login(&app, "staff@bp-emondage.test").await;
    let lead = lead_of(&app, &call).await;
    let page = get(
        &app,
        &format!("/console/leads/{}", lead.id),
        Some(&session.cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    for part in [
        "À rappeler (message vocal)",
        &format!(r#"<audio controls preload="none" src="/console/calls/{call}/recording""#),
        "17 s",
        "Alertes SMS",
        "message vocal hors heures",
        "+15145550101",
        "envoyée",
    ] {
        assert!(page.contains(part), "{part:?} missing from the lead page");
    }
    // The recording plays through the gateway, with the account's credentials.
    let played = get(
        &app,
        &format!("/console/calls/{call}/recording"),
        Some(&session.cookie),
    )
    .await;
    assert_eq!(played.status(), 200);
    assert_eq!(played.headers()["content-type"], "audio/mpeg");
    assert_eq!(played.headers()["cache-control"], "no-store");
    assert_eq!(
        played.bytes().await.unwrap().as_ref(),
        helpers::fake_twilio::RECORDING_MP3
    );
    assert_eq!(twilio.unauthorized(), 0);
    // Listening is audited: one entry for the call and the operator, counting the plays.
    let again = get(
        &app,
        &format!("/console/calls/{call}/recording"),
        Some(&session.cookie),
    )
    .await;
    assert_eq!(again.status(), 200);
    let audit = myriam::store::console::ConsoleStore::audit_log(&app.store, 20)
        .await
        .unwrap();
    let played: Vec<_> = audit
        .iter()
        .filter(|e| e.action == myriam::store::console::AuditAction::RecordingPlayed)
        .collect();
    assert_eq!(played.len(), 1, "{audit:?}");
    assert_eq!(played[0].count, 2);
    assert_eq!(
        played[0].target.as_deref(),
        Some(format!("call:{call} by:{}", played[0].actor).as_str())
    );
    assert!(played[0].client.is_some());
    // Without a session: the login page, and nothing fetched.
    let fetched = twilio.recording_fetches();
    let anonymous = get(&app, &format!("/console/calls/{call}/recording"), None).await;
    assert_eq!(anonymous.status(), 303);
    // A stored URL that is not this account's recording is never requested.
    let mut forged = myriam::store::CallUpdate::new(CallSid::try_from(call.as_str()).unwrap());
    forged.recording_url = Some("http://169.254.169.254/latest/meta-data".to_owned());
    app.store.upsert_call(&forged).await.unwrap();
    let refused = get(
        &app,
        &format!("/console/calls/{call}/recording"),
        Some(&session.cookie),
    )
    .await;
    assert_eq!(refused.status(), 502);
    assert_eq!(twilio.recording_fetches(), fetched);
}

/// An app with Twilio's credentials pointing at `twilio`, a call `call` whose voicemail is stored
/// (Twilio's recording status callback), and a staff session.
async fn app_with_voicemail(twilio: &FakeTwilio, call: &str) -> (TestApp, String, String) {
    use helpers::console::{add_operator, login};
    let base = twilio.base_url();
    let app = spawn_app_with(move |s: &mut Settings| {
        office(false, false)(s);
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&base).unwrap();
    })
    .await;
    incoming(&app, call).await;
    let recording_url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE0123456789abcdef0123456789abcdef",
        twilio.base_url()
    );
    let (code, _) = app
        .post_form(
            "/twilio/recording-status",
            &[
                ("CallSid", call),
                ("RecordingUrl", recording_url.as_str()),
                ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
                ("RecordingDuration", "17"),
                ("RecordingStatus", "completed"),
            ],
        )
        .await;
    assert_eq!(code, 204);
    add_operator(
        &app,
        "staff@bp-emondage.test",
        myriam::store::console::Role::Staff,
    )
    .await;
    let cookie = login(&app, "staff@bp-emondage.test").await.cookie;
    (app, cookie, recording_url)
}

async fn get_recording(
    app: &TestApp,
    cookie: &str,
    call: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/console/calls/{call}/recording")))
        .header("cookie", cookie);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

fn plays(app_audit: &[myriam::store::console::AuditEntry]) -> i64 {
    app_audit
        .iter()
        .filter(|e| e.action == myriam::store::console::AuditAction::RecordingPlayed)
        .map(|e| e.count)
        .sum()
}

/// iOS Safari's `<audio>` asks for ranges: the proxy forwards `Range` to Twilio and relays its
/// 206 with `Content-Range` and `Accept-Ranges` (and its 416); listening is audited once, not per
/// range. (On the previous code: 200 and the whole file, no `Accept-Ranges`.)
#[tokio::test]
async fn the_recording_proxy_relays_ranges() {
    let twilio = FakeTwilio::start().await;
    let call = sid(960);
    let (app, cookie, _) = app_with_voicemail(&twilio, &call).await;
    let audio: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
    twilio.set_recording(audio.clone());

    // The player's probe, then a range in the middle.
    let probe = get_recording(&app, &cookie, &call, Some("bytes=0-1")).await;
    assert_eq!(probe.status(), 206);
    assert_eq!(probe.headers()["content-range"], "bytes 0-1/200000");
    assert_eq!(probe.bytes().await.unwrap().as_ref(), &audio[..2]);
    let part = get_recording(&app, &cookie, &call, Some("bytes=100000-100999")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-type"], "audio/mpeg");
    assert_eq!(part.headers()["accept-ranges"], "bytes");
    assert_eq!(
        part.headers()["content-range"],
        "bytes 100000-100999/200000"
    );
    assert_eq!(part.headers()["content-length"], "1000");
    assert_eq!(part.headers()["cache-control"], "no-store");
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &audio[100_000..101_000]
    );
    // The end of the file (`bytes=-n`), and a range outside it.
    let tail = get_recording(&app, &cookie, &call, Some("bytes=-10")).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.headers()["content-range"],
        "bytes 199990-199999/200000"
    );
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &audio[199_990..]);
    let outside = get_recording(&app, &cookie, &call, Some("bytes=300000-")).await;
    assert_eq!(outside.status(), 416);
    assert_eq!(outside.headers()["content-range"], "bytes */200000");
    // Without a range: the whole recording, and ranges are announced.
    let whole = get_recording(&app, &cookie, &call, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-length"], "200000");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &audio[..]);
    // A range the proxy does not understand is not forwarded: the whole recording.
    let several = get_recording(&app, &cookie, &call, Some("bytes=0-1,5-9")).await;
    assert_eq!(several.status(), 200);
    assert_eq!(several.bytes().await.unwrap().len(), audio.len());
    assert_eq!(
        twilio.recording_ranges(),
        vec![
            Some("bytes=0-1".to_owned()),
            Some("bytes=100000-100999".to_owned()),
            Some("bytes=-10".to_owned()),
            Some("bytes=300000-".to_owned()),
            None,
            None,
        ]
    );
    assert_eq!(twilio.unauthorized(), 0);
    // Audited: the probe and the two whole plays start listening; the seeks do not.
    let log = myriam::store::console::ConsoleStore::audit_log(&app.store, 20)
        .await
        .unwrap();
    assert_eq!(plays(&log), 3, "{log:?}");
}

/// A large recording streams through: the listener gets its first bytes while Twilio is still
/// sending (the fake holds the rest until then), and all of it, byte for byte. One announced
/// past the cap is refused before a byte is relayed. (On the previous code the proxy read the
/// whole body first: the first bytes never came while Twilio held the rest.)
#[tokio::test]
async fn the_recording_proxy_streams_a_large_recording() {
    let twilio = FakeTwilio::start().await;
    let call = sid(961);
    let (app, cookie, _) = app_with_voicemail(&twilio, &call).await;
    let audio: Vec<u8> = (0..3_000_000_u32).map(|i| (i % 253) as u8).collect();
    twilio.set_recording(audio.clone());
    let hold = twilio.hold_recordings();

    let mut response = tokio::time::timeout(
        Duration::from_secs(5),
        get_recording(&app, &cookie, &call, None),
    )
    .await
    .expect("the proxy answers before Twilio finished sending");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "3000000");
    let mut received = Vec::new();
    while received.len() < helpers::fake_twilio::FIRST_CHUNK {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("the first bytes arrive while Twilio still holds the rest")
            .unwrap()
            .expect("more bytes");
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), helpers::fake_twilio::FIRST_CHUNK);
    assert_eq!(twilio.recordings_finished(), 0, "Twilio is still sending");
    hold.add_permits(1);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), audio.len());
    assert!(received == audio, "the bytes relayed are Twilio's");
    assert_eq!(twilio.recordings_finished(), 1);

    // Past the cap (8 MiB): refused, nothing relayed.
    twilio.set_recording(vec![0; 9 * 1024 * 1024]);
    let refused = get_recording(&app, &cookie, &call, None).await;
    assert_eq!(refused.status(), 502);
    assert!(refused.text().await.unwrap().contains("n'a pas pu"));
}

/// A bridged call with both: Vapi's recording (end-of-call report) and a voicemail (Twilio's
/// recording callback, after the hand-off), in either order and replayed: each keeps its column.
/// The lead page plays the voicemail through the proxy and links Vapi's recording. (On the
/// previous code the last one written replaced the other, and Vapi's URL was offered as a
/// voicemail the proxy refused with 502.)
#[tokio::test]
async fn a_bridged_call_keeps_its_voicemail_and_its_vapi_recording() {
    let twilio = FakeTwilio::start().await;
    let call = sid(962);
    let (app, cookie, voicemail_url) = app_with_voicemail(&twilio, &call).await;
    let vapi_url = "https://storage.vapi.ai/0199-call-962-mono.wav";
    let report = serde_json::json!({"message": {
        "type": "end-of-call-report", "endedReason": "assistant-forwarded-call",
        "call": {"id": "vapi-call-962", "phoneCallProviderId": call},
        "artifact": {"recording": {"mono": {"combinedUrl": vapi_url}}},
        "analysis": {}
    }});
    for _ in 0..2 {
        let code = app
            .client
            .post(app.url("/vapi/webhook"))
            .json(&report)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(code, 200);
        // Twilio's callback again after Vapi's report.
        app.post_form(
            "/twilio/recording-status",
            &[
                ("CallSid", call.as_str()),
                ("RecordingUrl", voicemail_url.as_str()),
                ("RecordingSid", "RE0123456789abcdef0123456789abcdef"),
                ("RecordingDuration", "17"),
                ("RecordingStatus", "completed"),
            ],
        )
        .await;
    }
    let row = call_row(&app, &call).await;
    assert_eq!(
        row.fields.recording_url.as_deref(),
        Some(voicemail_url.as_str())
    );
    assert_eq!(row.fields.vapi_recording_url.as_deref(), Some(vapi_url));

    let lead = lead_of(&app, &call).await;
    let page = helpers::console::get(&app, &format!("/console/leads/{}", lead.id), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            r#"<audio controls preload="none" src="/console/calls/{call}/recording""#
        )),
        "{page}"
    );
    assert!(page.contains(&format!(r#"<a href="{vapi_url}""#)), "{page}");
    assert_eq!(
        page.matches("<audio").count(),
        1,
        "Vapi's recording is not a player"
    );
    let played = get_recording(&app, &cookie, &call, None).await;
    assert_eq!(played.status(), 200);
    assert_eq!(
        played.bytes().await.unwrap().as_ref(),
        helpers::fake_twilio::RECORDING_MP3
    );
}
