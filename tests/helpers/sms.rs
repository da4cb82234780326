//! What the SMS tests share (`tests/alerts.rs`: staff alerts; `tests/caller_sms.rs`: the
//! caller's confirmation): a gateway talking to the fake Twilio REST server, one IVR call from
//! `CALLER` played answer by answer (in-process or against the gateway as its own process), and
//! the alerts of that call's lead, waited for until settled.

use std::time::Duration;

use myriam::config::{PublicBaseUrl, Settings};
use myriam::domain::{BusinessHours, CallSid, LeadId};
use myriam::store::{AlertRecord, AlertStatus, Alerts as _, Store as _};
use myriam::twilio::twiml;
use secrecy::SecretString;

use super::TestApp;
use super::fake_twilio::{ACCOUNT, FakeTwilio, TOKEN};
use super::process::GatewayProcess;

/// The gateway's public URL (what `<Gather action>` and the status callback name).
pub const PUBLIC: &str = "https://gw.bp-emondage.test";
/// The caller, who confirms this number as the one to call back.
pub const CALLER: &str = "+15145550123";
/// `TWILIO_SMS_FROM`.
pub const SENDER: &str = "+14505550000";

/// Twilio's REST API at `twilio` (its account and token), `PUBLIC`, and `hours` as
/// `BUSINESS_HOURS` in America/Toronto; the test adds its alerts settings on top.
pub fn with_twilio(twilio: &FakeTwilio, hours: &str) -> impl FnOnce(&mut Settings) + use<> {
    let base = twilio.base_url();
    let hours = hours.to_owned();
    move |s: &mut Settings| {
        s.public_base_url = Some(PublicBaseUrl::new(PUBLIC));
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = url::Url::parse(&base).unwrap();
        s.office.hours = BusinessHours::parse(&hours, "America/Toronto").unwrap();
    }
}

/// Posts a form to a gateway (in-process or its own process).
pub trait AsyncPost {
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String);
}

impl<T: AsyncPost> AsyncPost for &T {
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        (**self).post(path, fields).await
    }
}

impl AsyncPost for TestApp {
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        self.post_form(path, fields).await
    }
}

impl AsyncPost for GatewayProcess {
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        self.post_form(path, fields).await
    }
}

/// Twilio's first webhook of a call from `CALLER` (`POST /twilio/voice`): the status and TwiML.
pub async fn incoming(post: &impl AsyncPost, call: &str) -> (u16, String) {
    post.post(
        "/twilio/voice",
        &[
            ("CallSid", call),
            ("AccountSid", ACCOUNT),
            ("From", CALLER),
            ("CallStatus", "ringing"),
        ],
    )
    .await
}

/// Answers the `<Gather>` of `doc` with `said`; the next TwiML.
pub async fn gather(post: &impl AsyncPost, doc: &str, call: &str, said: &str) -> String {
    let action = twiml::gather_action(doc).unwrap_or_else(|| panic!("no gather: {doc}"));
    let path = action.strip_prefix(PUBLIC).unwrap_or(&action).to_owned();
    let (status, body) = post
        .post(&path, &[("CallSid", call), ("SpeechResult", said)])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Plays a call from `CALLER` with `answers` but the last; returns the TwiML that asks it.
pub async fn play_until_last(post: &impl AsyncPost, call: &str, answers: &[&str]) -> String {
    let (_, mut doc) = incoming(post, call).await;
    for said in &answers[..answers.len() - 1] {
        doc = gather(post, &doc, call, said).await;
    }
    doc
}

/// The lead of `call` and its SMS alerts.
pub async fn alerts_of_call(app: &TestApp, call: &str) -> (LeadId, Vec<AlertRecord>) {
    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(call).unwrap())
        .await
        .unwrap()
        .unwrap();
    (lead.id, app.store.alerts_of_lead(lead.id).await.unwrap())
}

/// Waits until the call's lead has alerts and every one is settled (sent or dead).
pub async fn settled(app: &TestApp, call: &str, within: Duration) -> Vec<AlertRecord> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, alerts) = alerts_of_call(app, call).await;
        if !alerts.is_empty()
            && alerts
                .iter()
                .all(|a| matches!(a.status, AlertStatus::Sent | AlertStatus::Dead))
        {
            return alerts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alerts not settled: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `myriam serve` as its own process (so it can be killed with SIGKILL) on the SQLite file
/// `myriam.db` in `dir`, in IVR mode, sending SMS from `SENDER` through `twilio`, office open all
/// week, a 2 s claim lease; `extra` adds the alerts' own settings.
pub async fn start_gateway(
    dir: &std::path::Path,
    twilio: &FakeTwilio,
    extra: &[(&str, &str)],
) -> GatewayProcess {
    let db = dir.join("myriam.db");
    let api = twilio.base_url();
    let mut env = vec![
        ("STORE", "sqlite"),
        ("DATABASE_PATH", db.to_str().unwrap()),
        ("CALL_MODE", "ivr"),
        ("PUBLIC_BASE_URL", PUBLIC),
        ("TWILIO_ACCOUNT_SID", ACCOUNT),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_API_BASE_URL", &api),
        ("TWILIO_SMS_FROM", SENDER),
        ("ALERT_LEASE_SECS", "2"),
        ("BUSINESS_HOURS", "mon-sun 00:00-24:00"),
    ];
    env.extend_from_slice(extra);
    GatewayProcess::start(dir, &env).await
}
