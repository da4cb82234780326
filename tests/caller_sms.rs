//! The caller's confirmation SMS (`CALLER_SMS=1`, issue 27 §3), against the fake Twilio REST
//! server, through the staff alerts' durable machinery: after the qualification Myriam asks
//! « Voulez-vous recevoir un texto de confirmation? »; only a yes gets one SMS, to the number the
//! caller confirmed, in their words (service, address, urgency, when to expect the call back, the
//! reference, how to correct it), exactly once through replays, 429/500, a timeout looked up
//! before a resend and a SIGKILL mid-send; a no or a silence gets none; an opted-out caller
//! (Twilio 21610, `STOP`) is recorded and never retried; nothing at all (and no question) when
//! `CALLER_SMS` is off.

mod helpers;

use std::time::Duration;

use helpers::fake_twilio::{ACCOUNT, FakeTwilio, Reply};
use helpers::process::GatewayProcess;
use helpers::sms::{
    AsyncPost, CALLER, PUBLIC, SENDER, alerts_of_call, gather, incoming, play_until_last, settled,
    with_twilio,
};
use helpers::{TestApp, spawn_app_with};
use myriam::config::{CallerSmsSettings, Settings, SmsSender};
use myriam::domain::CallSid;
use myriam::store::{AlertEvent, AlertStatus, Store as _};
use myriam::twilio::twiml;
use secrecy::SecretString;

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

fn with_caller_sms(
    twilio: &FakeTwilio,
    enabled: bool,
    hours: &str,
) -> impl FnOnce(&mut Settings) + use<> {
    let base = with_twilio(twilio, hours);
    move |s: &mut Settings| {
        base(s);
        s.office.caller_sms = enabled.then(|| CallerSmsSettings {
            sender: SmsSender::Number(SENDER.to_owned()),
            lease: Duration::from_secs(2),
        });
    }
}

/// The answers of a whole call; the last one (urgency) qualifies the lead.
const ANSWERS: [&str; 6] = [
    "Marie Tremblay",
    "oui",
    "123 rue Principale Laval",
    "abattage",
    "un gros érable penche vers la maison",
    "oui c'est urgent",
];

/// The qualifying answer (which asks the text question), then `consent` (`None`: a silence).
async fn qualify(post: impl AsyncPost, call: &str, consent: Option<&str>) -> String {
    let doc = play_until_last(&post, call, &ANSWERS).await;
    let asked = gather(&post, &doc, call, ANSWERS[5]).await;
    assert!(
        twiml::spoken_lines(&asked)
            .join(" ")
            .ends_with("Voulez-vous recevoir un texto de confirmation?"),
        "{asked}"
    );
    if let Some(said) = consent {
        gather(&post, &asked, call, said).await
    } else {
        let action = twiml::gather_action(&asked).unwrap();
        let path = action.strip_prefix(PUBLIC).unwrap_or(&action).to_owned();
        post.post(&path, &[("CallSid", call)]).await.1
    }
}

#[tokio::test]
async fn a_qualified_caller_gets_one_confirmation_even_when_replayed() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_caller_sms(&twilio, true, "mon-sun 00:00-24:00")).await;
    let call = sid(1);
    let doc = play_until_last(&app, &call, &ANSWERS).await;
    let asked = gather(&app, &doc, &call, ANSWERS[5]).await;
    let said = twiml::spoken_lines(&asked).join(" ");
    let confirmation = said
        .strip_suffix(" Voulez-vous recevoir un texto de confirmation?")
        .unwrap_or_else(|| panic!("the text question last: {said}"));
    assert!(!confirmation.is_empty(), "after the confirmation: {said}");
    // Replays of the qualifying answer ask the same question again; nothing is sent before yes.
    let replays =
        futures_util::future::join_all((0..3).map(|_| gather(&app, &doc, &call, ANSWERS[5]))).await;
    for replay in replays {
        assert_eq!(replay, asked);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        twilio.messages().is_empty(),
        "nothing before the caller's yes"
    );
    let first = gather(&app, &asked, &call, "oui s'il vous plaît").await;
    assert_eq!(
        twiml::spoken_lines(&first),
        ["Parfait, vous recevrez un texto de confirmation. Merci et bonne journée!"]
    );
    assert!(first.contains("<Hangup/>"), "{first}");
    let replays =
        futures_util::future::join_all((0..3).map(|_| gather(&app, &asked, &call, "oui"))).await;
    for replay in replays {
        assert_eq!(replay, first);
    }
    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.messages().len(), 1, "{:?}", twilio.messages());

    let m = &messages[0];
    assert_eq!(m.to, CALLER, "the number the caller confirmed");
    assert_eq!(m.from.as_deref(), Some(SENDER));
    assert_eq!(
        m.status_callback.as_deref(),
        Some(&*format!("{PUBLIC}/twilio/sms-status"))
    );
    assert_eq!(alerts.len(), 1, "no staff alert: ALERT_SMS_TO is unset");
    let alert = &alerts[0];
    assert_eq!(alert.event, AlertEvent::Confirmation);
    assert_eq!(alert.recipient, CALLER);
    assert_eq!((alert.status, alert.attempts), (AlertStatus::Sent, 1));
    assert_eq!(alert.message_sid.as_deref(), Some(m.sid.as_str()));
    let reference = &alert.id.simple().to_string()[..12];
    assert_eq!(
        m.body,
        format!(
            "BP Emondage: nous avons bien recu votre demande.\n\
             Service: l'abattage d'un arbre\n\
             Adresse: 123 rue Principale Laval\n\
             Urgent: oui\n\
             Nous vous rappelons aujourd'hui, pendant nos heures d'ouverture.\n\
             Une erreur? Rappelez-nous et donnez cette reference.\n\
             Ref. {reference}"
        )
    );
    assert!(!m.body.contains("/console/"), "no staff link to the caller");
}

#[tokio::test]
async fn outside_business_hours_the_caller_is_told_the_call_back_comes_at_opening() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_caller_sms(&twilio, true, "closed")).await;
    let call = sid(2);
    qualify(&app, &call, Some("oui")).await;
    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        messages[0]
            .body
            .contains("Nos bureaux sont fermes: nous vous rappelons des leur ouverture."),
        "{}",
        messages[0].body
    );
}

#[tokio::test]
async fn a_caller_who_says_no_or_nothing_gets_no_text() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_caller_sms(&twilio, true, "mon-sun 00:00-24:00")).await;
    let no = qualify(&app, &sid(7), Some("non merci")).await;
    assert_eq!(
        twiml::spoken_lines(&no),
        ["D'accord, pas de texto. Merci et bonne journée!"]
    );
    let silence = qualify(&app, &sid(8), None).await;
    assert_eq!(twiml::spoken_lines(&silence), twiml::spoken_lines(&no));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(twilio.messages().is_empty(), "{:?}", twilio.messages());
    assert!(alerts_of_call(&app, &sid(7)).await.1.is_empty());
    assert!(alerts_of_call(&app, &sid(8)).await.1.is_empty());
    // The lead stays qualified and the caller's answer is on it.
    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(sid(7).as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, myriam::domain::LeadStatus::Qualifie);
    assert!(lead.conversation.iter().any(|t| t.text == "non merci"));
}

#[tokio::test]
async fn caller_sms_off_sends_nothing() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_caller_sms(&twilio, false, "mon-sun 00:00-24:00")).await;
    let call = sid(3);
    let doc = play_until_last(&app, &call, &ANSWERS).await;
    let last = gather(&app, &doc, &call, ANSWERS[5]).await;
    assert!(
        !last.contains("texto"),
        "no question when CALLER_SMS is off: {last}"
    );
    assert!(last.contains("<Hangup/>"), "{last}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(twilio.messages().is_empty(), "{:?}", twilio.messages());
    assert_eq!(twilio.attempts(), 0);
    assert!(alerts_of_call(&app, &call).await.1.is_empty());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_the_sms_goes_out_once() {
    let twilio = FakeTwilio::start().await;
    twilio.script([
        Reply::ServerError,
        Reply::TooMany {
            retry_after_secs: 1,
        },
        Reply::Created,
    ]);
    let app = spawn_app_with(with_caller_sms(&twilio, true, "mon-sun 00:00-24:00")).await;
    let call = sid(4);
    qualify(&app, &call, Some("oui")).await;
    let alerts = settled(&app, &call, Duration::from_secs(30)).await;
    assert_eq!(alerts[0].status, AlertStatus::Sent, "{alerts:?}");
    assert_eq!(alerts[0].attempts, 3, "{alerts:?}");
    assert_eq!(twilio.attempts(), 3);
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_send_that_times_out_is_looked_up_not_sent_again() {
    let twilio = FakeTwilio::start().await;
    twilio.script([Reply::CreatedLate {
        delay: Duration::from_secs(12),
    }]);
    let app = spawn_app_with(with_caller_sms(&twilio, true, "mon-sun 00:00-24:00")).await;
    let call = sid(5);
    qualify(&app, &call, Some("oui")).await;
    let alerts = settled(&app, &call, Duration::from_secs(40)).await;
    assert_eq!(alerts[0].status, AlertStatus::Sent, "{alerts:?}");
    assert_eq!(alerts[0].attempts, 2, "{alerts:?}");
    assert_eq!(
        alerts[0].message_sid.as_deref(),
        Some(twilio.messages()[0].sid.as_str())
    );
    assert_eq!(twilio.attempts(), 1, "sent again after the timeout");
}

#[tokio::test]
async fn an_opted_out_caller_is_recorded_and_never_retried() {
    let twilio = FakeTwilio::start().await;
    // The caller once replied STOP to this sender: Twilio refuses with 21610.
    twilio.script([Reply::Refused { code: 21610 }]);
    let app = spawn_app_with(with_caller_sms(&twilio, true, "mon-sun 00:00-24:00")).await;
    let call = sid(6);
    qualify(&app, &call, Some("oui")).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    assert_eq!(alerts[0].status, AlertStatus::Dead);
    assert_eq!(alerts[0].error_code, Some(21610));
    assert_eq!(alerts[0].message_sid, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(twilio.attempts(), 1, "never retried");
    assert!(twilio.messages().is_empty());
}

/// The gateway as its own process (so it can be killed with SIGKILL), on the SQLite file in `dir`.
async fn start_gateway(dir: &std::path::Path, twilio: &FakeTwilio) -> GatewayProcess {
    helpers::sms::start_gateway(dir, twilio, &[("CALLER_SMS", "1")]).await
}

#[tokio::test]
async fn a_gateway_killed_mid_send_does_not_text_the_caller_twice() {
    let twilio = FakeTwilio::start().await;
    twilio.script([Reply::CreatedLate {
        delay: Duration::from_secs(30),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let call = sid(9);
    let gateway = start_gateway(dir.path(), &twilio).await;
    qualify(&gateway, &call, Some("oui")).await;
    twilio.wait_for_an_attempt(Duration::from_secs(10)).await;
    gateway.kill_hard();
    assert_eq!(twilio.messages().len(), 1);

    let gateway = start_gateway(dir.path(), &twilio).await;
    let alert = helpers::first_alert_sent(
        &dir.path().join("myriam.db"),
        &call,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(alert.event, AlertEvent::Confirmation);
    assert_eq!(alert.attempts, 2);
    assert_eq!(
        alert.message_sid.as_deref(),
        Some(twilio.messages()[0].sid.as_str())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.attempts(), 1, "sent again");
    assert_eq!(twilio.messages().len(), 1);
    drop(gateway);
}

// --- Calls bridged to Vapi: the assistant's tool asks the same last question. ---

const VAPI_SECRET: &str = "vapi-shared-secret-for-tests";

/// `with_caller_sms` and the media bridge to a Vapi stand-in (its REST API and WebSocket).
fn bridged(
    twilio: &FakeTwilio,
    vapi: &helpers::fake_vapi::FakeVapi,
    enabled: bool,
) -> impl FnOnce(&mut Settings) {
    let base = with_caller_sms(twilio, enabled, "mon-sun 00:00-24:00");
    let vapi_base = vapi.base.clone();
    move |s: &mut Settings| {
        base(s);
        s.call_mode = myriam::config::CallMode::Bridge;
        s.vapi.private_key = Some(SecretString::from(
            "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned(),
        ));
        s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
        s.vapi.base_url = vapi_base.parse().unwrap();
        s.vapi.server_secret = Some(SecretString::from(VAPI_SECRET.to_owned()));
    }
}

/// A call bridged for real: `/twilio/voice` answers `<Connect><Stream>`, Twilio's Media Stream
/// opens, the gateway creates the Vapi call and connects its socket. Returns the Twilio-side
/// socket (kept open: the call goes on) and the Vapi call's id.
async fn bridge_call(
    app: &TestApp,
    vapi: &helpers::fake_vapi::FakeVapi,
    call: &str,
) -> (helpers::MediaSocket, String) {
    let (status, twiml) = incoming(app, call).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("<Connect ") && twiml.contains("<Stream url="),
        "{twiml}"
    );
    let start = serde_json::json!({"event": "start", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": call, "accountSid": ACCOUNT,
            "customParameters": {"call_sid": call,
                "lead_id": helpers::twiml_parameter(&twiml, "lead_id"),
                "token": helpers::twiml_parameter(&twiml, "token")}}});
    let before = vapi.creates();
    let socket = helpers::open_media_stream(
        app.addr,
        tokio_tungstenite::tungstenite::Message::Text(start.to_string().into()),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while vapi.creates() == before {
        assert!(tokio::time::Instant::now() < deadline, "no Vapi call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (socket, format!("vapi-call-{}", vapi.creates()))
}

/// One `enregistrer_reponse` call from the assistant (`POST /vapi/webhook`, Vapi's shape); the
/// parsed result.
async fn tool(
    app: &TestApp,
    vapi_call: &str,
    call: &str,
    id: &str,
    said: &str,
) -> serde_json::Value {
    let body = serde_json::json!({"message": {"type": "tool-calls",
        "call": {"id": vapi_call, "phoneCallProviderId": call, "customer": {"number": CALLER}},
        "toolCallList": [{"id": id, "type": "function",
            "function": {"name": "enregistrer_reponse", "arguments": {"reponse": said}}}]}});
    let response = app
        .client
        .post(app.url("/vapi/webhook"))
        .header("content-type", "application/json")
        .header("x-vapi-secret", VAPI_SECRET)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["results"][0]["toolCallId"], id, "{answer}");
    let result = answer["results"][0]["result"]
        .as_str()
        .unwrap_or_else(|| panic!("a result: {answer}"));
    assert!(!result.contains('\n'), "one line: {result}");
    serde_json::from_str(result).unwrap()
}

/// The six answers of a bridged call, through the tool; the last result.
async fn qualify_bridged(app: &TestApp, vapi_call: &str, call: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for (i, said) in ANSWERS.iter().enumerate() {
        last = tool(app, vapi_call, call, &format!("tc-{i}"), said).await;
    }
    last
}

#[tokio::test]
async fn a_bridged_caller_is_asked_last_and_a_yes_gets_one_confirmation() {
    let twilio = FakeTwilio::start().await;
    let vapi = helpers::fake_vapi::FakeVapi::start(helpers::fake_vapi::Behaviour::Echo).await;
    let app = spawn_app_with(bridged(&twilio, &vapi, true)).await;
    let call = sid(21);
    let (_socket, vapi_call) = bridge_call(&app, &vapi, &call).await;

    let asked = qualify_bridged(&app, &vapi_call, &call).await;
    let message = asked["message"].as_str().unwrap();
    assert!(
        message.ends_with(" Voulez-vous recevoir un texto de confirmation?"),
        "the text question last: {asked}"
    );
    assert_eq!(asked["status"], "complete", "{asked}");
    assert_eq!(
        asked["is_complete"], false,
        "not over before the answer: {asked}"
    );
    assert_eq!(
        asked["missing"],
        serde_json::json!(["texto_confirmation"]),
        "{asked}"
    );
    // A replayed tool call gets the same result; nothing is sent before the yes.
    assert_eq!(
        tool(&app, &vapi_call, &call, "tc-5", ANSWERS[5]).await,
        asked
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(twilio.messages().is_empty(), "nothing before the yes");

    let yes = tool(&app, &vapi_call, &call, "tc-6", "oui s'il vous plaît").await;
    assert_eq!(
        yes["message"],
        "Parfait, vous recevrez un texto de confirmation. Merci et bonne journée!"
    );
    assert_eq!(yes["is_complete"], true, "{yes}");
    assert_eq!(yes["missing"], serde_json::json!([]), "{yes}");
    assert_eq!(yes["lead_data"]["status"], "qualifie", "{yes}");
    // Replays of the yes, and a later answer the assistant passes by mistake, change nothing.
    assert_eq!(
        tool(&app, &vapi_call, &call, "tc-6", "oui s'il vous plaît").await,
        yes
    );
    tool(&app, &vapi_call, &call, "tc-7", "oui").await;

    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.messages().len(), 1, "{:?}", twilio.messages());
    assert_eq!(messages[0].to, CALLER, "the number the caller confirmed");
    assert!(
        messages[0].body.starts_with("BP Emondage: nous avons bien recu votre demande.\nService: l'abattage d'un arbre\nAdresse: 123 rue Principale Laval\nUrgent: oui\n"),
        "{}",
        messages[0].body
    );
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].event, AlertEvent::Confirmation);
    assert_eq!(
        (alerts[0].status, alerts[0].attempts),
        (AlertStatus::Sent, 1)
    );
}

#[tokio::test]
async fn a_bridged_english_caller_is_asked_and_texted_in_english() {
    let twilio = FakeTwilio::start().await;
    let vapi = helpers::fake_vapi::FakeVapi::start(helpers::fake_vapi::Behaviour::Echo).await;
    let app = spawn_app_with(bridged(&twilio, &vapi, true)).await;
    let call = sid(24);
    let (_socket, vapi_call) = bridge_call(&app, &vapi, &call).await;
    let answers = [
        "English please",
        "my name is John Smith",
        "yes",
        "123 Main Street Montreal H2X 1Y4",
        "stump removal",
        "an old stump in the backyard",
        "no it can wait",
    ];
    let mut asked = serde_json::Value::Null;
    for (i, said) in answers.iter().enumerate() {
        asked = tool(&app, &vapi_call, &call, &format!("tc-{i}"), said).await;
    }
    let message = asked["message"].as_str().unwrap();
    assert!(
        message.ends_with(" Would you like a confirmation by text message?"),
        "{asked}"
    );
    assert_eq!(asked["is_complete"], false, "{asked}");
    let yes = tool(&app, &vapi_call, &call, "tc-9", "yes please").await;
    assert_eq!(
        yes["message"],
        "Great, you will get a confirmation by text. Thank you, goodbye!"
    );
    assert_eq!(yes["is_complete"], true, "{yes}");
    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        messages[0]
            .body
            .starts_with("BP Emondage: we received your request.\nService: stump grinding\n"),
        "{}",
        messages[0].body
    );
    settled(&app, &call, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_bridged_caller_who_says_no_gets_no_text_and_off_never_asks() {
    let twilio = FakeTwilio::start().await;
    let vapi = helpers::fake_vapi::FakeVapi::start(helpers::fake_vapi::Behaviour::Echo).await;
    let app = spawn_app_with(bridged(&twilio, &vapi, true)).await;
    let call = sid(22);
    let (_socket, vapi_call) = bridge_call(&app, &vapi, &call).await;
    let asked = qualify_bridged(&app, &vapi_call, &call).await;
    assert_eq!(asked["is_complete"], false, "{asked}");
    let no = tool(&app, &vapi_call, &call, "tc-6", "non merci").await;
    assert_eq!(
        no["message"],
        "D'accord, pas de texto. Merci et bonne journée!"
    );
    assert_eq!(no["is_complete"], true, "{no}");

    // CALLER_SMS off: the qualifying answer completes the call, no question.
    let off_twilio = FakeTwilio::start().await;
    let off_vapi = helpers::fake_vapi::FakeVapi::start(helpers::fake_vapi::Behaviour::Echo).await;
    let off = spawn_app_with(bridged(&off_twilio, &off_vapi, false)).await;
    let off_call = sid(23);
    let (_off_socket, off_vapi_call) = bridge_call(&off, &off_vapi, &off_call).await;
    let done = qualify_bridged(&off, &off_vapi_call, &off_call).await;
    assert_eq!(done["is_complete"], true, "{done}");
    assert!(
        !done["message"].as_str().unwrap().contains("texto"),
        "no question when CALLER_SMS is off: {done}"
    );
    assert_eq!(done["missing"], serde_json::json!([]), "{done}");

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(twilio.messages().is_empty(), "{:?}", twilio.messages());
    assert!(alerts_of_call(&app, &call).await.1.is_empty());
    assert_eq!(off_twilio.attempts(), 0);
    assert!(alerts_of_call(&off, &off_call).await.1.is_empty());
    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(call.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, myriam::domain::LeadStatus::Qualifie);
    assert!(!lead.wants_text());
    assert!(lead.conversation.iter().any(|t| t.text == "non merci"));
}
