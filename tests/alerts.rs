//! SMS alerts to staff, against a fake of Twilio's REST API on a real socket: an urgent lead gets
//! exactly one SMS per recipient through replays, 429 and 500 answers and a SIGKILL mid-send;
//! refusals become dead letters with Twilio's code; delivery status callbacks are stored, forward
//! only.

mod helpers;

use std::time::Duration;

use helpers::fake_twilio::{ACCOUNT, FakeTwilio, Reply};
use helpers::process::GatewayProcess;
use helpers::sms::{
    PUBLIC, SENDER, alerts_of_call, gather, incoming, play_until_last, settled, with_twilio,
};
use helpers::spawn_app_with;
use myriam::config::{AlertOn, AlertSettings, Settings, SmsSender};
use myriam::domain::BusinessHours;
use myriam::store::AlertStatus;

const STAFF: [&str; 2] = ["+15145550101", "+14385550102"];

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

fn with_alerts(
    twilio: &FakeTwilio,
    on: AlertOn,
    recipients: &[&str],
) -> impl FnOnce(&mut Settings) + use<> {
    let base = with_twilio(twilio, "mon-sun 00:00-24:00");
    let recipients: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
    move |s: &mut Settings| {
        base(s);
        s.office.alerts = Some(AlertSettings {
            recipients,
            sender: SmsSender::Number(SENDER.to_owned()),
            on,
            lease: Duration::from_secs(2),
        });
    }
}

/// The answers of a whole call; the last one (urgency) qualifies the lead.
fn answers(urgent: bool) -> [&'static str; 6] {
    [
        "Marie Tremblay",
        "oui",
        "123 rue Principale Laval",
        "abattage",
        if urgent {
            "un gros érable est tombé sur le toit près des fils électriques"
        } else {
            "un gros érable penche vers la maison"
        },
        if urgent { "oui c'est urgent" } else { "non" },
    ]
}

#[tokio::test]
async fn an_urgent_lead_alerts_every_recipient_once_even_when_replayed() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF)).await;
    let call = sid(1);
    let doc = play_until_last(&app, &call, &answers(true)).await;
    // The qualifying request, then three replays of it at once.
    let first = gather(&&app, &doc, &call, answers(true)[5]).await;
    let handle = &app;
    let replays = futures_util::future::join_all(
        (0..3).map(|_| gather(&handle, &doc, &call, answers(true)[5])),
    )
    .await;
    for replay in replays {
        assert_eq!(replay, first);
    }
    let messages = twilio.wait_for_messages(2, Duration::from_secs(10)).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    // A further round finds nothing to send.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(twilio.messages().len(), 2, "{:?}", twilio.messages());
    assert_eq!(twilio.unauthorized(), 0);
    let mut to: Vec<&str> = messages.iter().map(|m| m.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["+14385550102", "+15145550101"]);
    let (lead_id, _) = alerts_of_call(&app, &call).await;
    for m in &messages {
        assert_eq!(m.from.as_deref(), Some(SENDER));
        assert_eq!(
            m.status_callback.as_deref(),
            Some(&*format!("{PUBLIC}/twilio/sms-status"))
        );
        assert!(m.validity_period.is_some());
        for part in [
            "URGENT",
            "Nom: Marie Tremblay",
            "Rappel: +15145550123",
            "Adresse: 123 rue Principale Laval",
            "Urgent: oui",
            "érable est tombé",
            &format!("{PUBLIC}/console/leads/{lead_id}"),
            "Ref. ",
        ] {
            assert!(m.body.contains(part), "{part:?} missing from {}", m.body);
        }
    }
    assert_eq!(alerts.len(), 2);
    for alert in &alerts {
        assert_eq!(alert.status, AlertStatus::Sent);
        assert_eq!(alert.attempts, 1);
        let sid = alert.message_sid.as_deref().unwrap();
        assert!(messages.iter().any(|m| m.sid == sid));
    }
    // The metrics count them.
}

#[tokio::test]
async fn only_urgent_leads_alert_unless_alert_on_is_all() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF[..1])).await;
    let call = sid(2);
    let doc = play_until_last(&app, &call, &answers(false)).await;
    gather(&&app, &doc, &call, answers(false)[5]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(twilio.messages().is_empty(), "{:?}", twilio.messages());
    assert!(alerts_of_call(&app, &call).await.1.is_empty());

    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::All, &STAFF[..1])).await;
    let call = sid(3);
    let doc = play_until_last(&app, &call, &answers(false)).await;
    gather(&&app, &doc, &call, answers(false)[5]).await;
    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        messages[0]
            .body
            .starts_with("BP Emondage: nouvelle demande"),
        "{}",
        messages[0].body
    );
    assert!(
        messages[0].body.contains("Urgent: non"),
        "{}",
        messages[0].body
    );
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
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF[..1])).await;
    let call = sid(4);
    let doc = play_until_last(&app, &call, &answers(true)).await;
    gather(&&app, &doc, &call, answers(true)[5]).await;
    let alerts = settled(&app, &call, Duration::from_secs(30)).await;
    assert_eq!(alerts[0].status, AlertStatus::Sent, "{alerts:?}");
    assert_eq!(alerts[0].attempts, 3, "{alerts:?}");
    assert_eq!(twilio.attempts(), 3);
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_send_that_times_out_is_looked_up_not_sent_again() {
    let twilio = FakeTwilio::start().await;
    // Twilio creates the message but answers after the client's 10 s deadline.
    twilio.script([Reply::CreatedLate {
        delay: Duration::from_secs(12),
    }]);
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF[..1])).await;
    let call = sid(10);
    let doc = play_until_last(&app, &call, &answers(true)).await;
    gather(&&app, &doc, &call, answers(true)[5]).await;
    let alerts = settled(&app, &call, Duration::from_secs(40)).await;
    assert_eq!(alerts[0].status, AlertStatus::Sent, "{alerts:?}");
    assert_eq!(alerts[0].attempts, 2, "{alerts:?}");
    assert_eq!(
        alerts[0].message_sid.as_deref(),
        Some(twilio.messages()[0].sid.as_str())
    );
    assert_eq!(twilio.attempts(), 1, "sent again after the timeout");
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_refused_number_is_kept_as_a_dead_letter_with_twilios_code() {
    let twilio = FakeTwilio::start().await;
    twilio.script([
        Reply::Refused { code: 21211 },
        Reply::Refused { code: 21610 },
    ]);
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF)).await;
    let call = sid(5);
    let doc = play_until_last(&app, &call, &answers(true)).await;
    gather(&&app, &doc, &call, answers(true)[5]).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    let mut codes: Vec<Option<i64>> = alerts.iter().map(|a| a.error_code).collect();
    codes.sort_unstable();
    assert_eq!(codes, [Some(21211), Some(21610)]);
    for alert in &alerts {
        assert_eq!(alert.status, AlertStatus::Dead);
        assert_eq!(alert.message_sid, None);
        assert!(
            alert.last_error.as_deref().unwrap().contains("HTTP 400"),
            "{alert:?}"
        );
    }
    // Never retried.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(twilio.attempts(), 2);
}

#[tokio::test]
async fn delivery_statuses_are_recorded_forward_only() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(with_alerts(&twilio, AlertOn::Urgent, &STAFF[..1])).await;
    let call = sid(6);
    let doc = play_until_last(&app, &call, &answers(true)).await;
    gather(&&app, &doc, &call, answers(true)[5]).await;
    let alerts = settled(&app, &call, Duration::from_secs(10)).await;
    let message = alerts[0].message_sid.clone().unwrap();
    assert_eq!(alerts[0].delivery_status.as_deref(), Some("queued"));
    for (status, code) in [
        ("sent", None),
        ("delivered", None),
        ("sent", None),
        ("sending", None),
    ] {
        let mut form = vec![
            ("MessageSid", message.as_str()),
            ("MessageStatus", status),
            ("AccountSid", ACCOUNT),
            ("To", STAFF[0]),
        ];
        if let Some(code) = code {
            form.push(("ErrorCode", code));
        }
        let (code, body) = app.post_form("/twilio/sms-status", &form).await;
        assert_eq!(code, 204, "{body}");
    }
    let (_, alerts) = alerts_of_call(&app, &call).await;
    assert_eq!(alerts[0].delivery_status.as_deref(), Some("delivered"));
    // An unknown message is acknowledged and changes nothing; a malformed one is refused.
    let (code, _) = app
        .post_form(
            "/twilio/sms-status",
            &[
                ("MessageSid", &format!("SM{:032x}", 999)),
                ("MessageStatus", "failed"),
            ],
        )
        .await;
    assert_eq!(code, 204);
    let (code, body) = app
        .post_form(
            "/twilio/sms-status",
            &[("MessageSid", "nope"), ("MessageStatus", "sent")],
        )
        .await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn an_urgent_caller_in_after_hours_voicemail_alerts_staff() {
    let twilio = FakeTwilio::start().await;
    let app = spawn_app_with(|s: &mut Settings| {
        with_alerts(&twilio, AlertOn::Urgent, &STAFF[..1])(s);
        s.office.hours = BusinessHours::parse("closed", "America/Toronto").unwrap();
    })
    .await;
    let call = sid(7);
    let (_, mut doc) = incoming(&app, &call).await;
    for said in [
        "Marie Tremblay",
        "oui",
        "123 rue Principale Laval",
        "urgence tempête",
    ] {
        doc = gather(&&app, &doc, &call, said).await;
    }
    let voicemail = gather(&&app, &doc, &call, "je veux parler à quelqu'un").await;
    assert!(voicemail.contains("<Record"), "{voicemail}");
    let messages = twilio.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        messages[0].body.contains("message vocal hors heures"),
        "{}",
        messages[0].body
    );
    assert!(
        messages[0].body.contains("Rappel: +15145550123"),
        "{}",
        messages[0].body
    );
    // A caller who is not urgent leaves a voicemail without an alert.
    let call = sid(8);
    let (_, doc) = incoming(&app, &call).await;
    gather(&&app, &doc, &call, "0").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(twilio.messages().len(), 1);
}

/// The gateway as its own process (so it can be killed with SIGKILL), on the SQLite file in `dir`.
async fn start_gateway(dir: &std::path::Path, twilio: &FakeTwilio) -> GatewayProcess {
    helpers::sms::start_gateway(dir, twilio, &[("ALERT_SMS_TO", STAFF[0])]).await
}

#[tokio::test]
async fn a_gateway_killed_mid_send_does_not_send_twice_after_a_restart() {
    let twilio = FakeTwilio::start().await;
    // Twilio takes the message but the gateway dies before it hears back.
    twilio.script([Reply::CreatedLate {
        delay: Duration::from_secs(30),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let call = sid(9);
    let gateway = start_gateway(dir.path(), &twilio).await;
    let doc = play_until_last(&gateway, &call, &answers(true)).await;
    gather(&&gateway, &doc, &call, answers(true)[5]).await;
    // The send is in flight: kill -9.
    twilio.wait_for_an_attempt(Duration::from_secs(10)).await;
    gateway.kill_hard();
    assert_eq!(twilio.messages().len(), 1);

    // Restarted on the same file: the claim's lease runs out, the alert is claimed again, found at
    // Twilio by its reference, and recorded as sent without a second SMS.
    let gateway = start_gateway(dir.path(), &twilio).await;
    let alert = helpers::first_alert_sent(
        &dir.path().join("myriam.db"),
        &call,
        Duration::from_secs(20),
    )
    .await;
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
