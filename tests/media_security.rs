//! Each Media Stream is bound to its call: the `start` frame must carry the signed, expiring,
//! single-use token `/twilio/voice` rendered for that call, name that call, come from our account,
//! and find the call waiting for a bridge. A replayed handshake with a forged `start` is refused
//! with 1008 before anything happens: no Vapi call is created and no row changes.

mod helpers;

use std::time::Duration;

use futures_util::StreamExt as _;
use helpers::fake_vapi::{Behaviour, FakeVapi};
use helpers::{
    MediaSocket, TestApp, open_media_stream, spawn_app_with, twiml_parameter as parameter,
};
use myriam::config::{CallMode, PublicBaseUrl};
use myriam::domain::{CallSid, LeadId};
use myriam::store::{CallRecord, Store as _};
use myriam::twilio::stream_token::StreamTokens;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

type Socket = MediaSocket;

async fn app(vapi: &FakeVapi) -> TestApp {
    let base = vapi.base.clone();
    spawn_app_with(move |s| {
        s.call_mode = CallMode::Bridge;
        s.vapi.private_key = Some(SecretString::from(
            "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned(),
        ));
        s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
        s.vapi.base_url = base.parse().unwrap();
        s.public_base_url = Some(PublicBaseUrl::new("https://gw.bp.test"));
        s.twilio.auth_token = Some(SecretString::from(AUTH_TOKEN.to_owned()));
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.telemetry.prometheus_port = Some(0);
    })
    .await
}

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

/// A call as Twilio starts it; returns what `<Stream>` carries: (lead id, token).
async fn voice(app: &TestApp, sid: &str) -> (String, String) {
    let (status, twiml) = app
        .post_form(
            "/twilio/voice",
            &[
                ("CallSid", sid),
                ("AccountSid", ACCOUNT),
                ("From", "+15145550199"),
                ("CallStatus", "ringing"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{twiml}");
    (parameter(&twiml, "lead_id"), parameter(&twiml, "token"))
}

fn start_frame(call_sid: &str, account: &str, parameters: &Value) -> Message {
    Message::Text(
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
            "start": {"streamSid": "MZ1", "callSid": call_sid, "accountSid": account,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": parameters}})
        .to_string()
        .into(),
    )
}

/// Opens `/twilio/media` (the handshake is the same for every call) and sends `start`.
async fn stream(app: &TestApp, start: Message) -> Socket {
    open_media_stream(app.addr, start).await
}

/// The close code the gateway ends `socket` with (`None` for a close without one).
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("the gateway closes the stream in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the stream failed instead of closing: {e}"),
            None => return None,
        }
    }
}

async fn row(app: &TestApp, sid: &str) -> CallRecord {
    app.store
        .get_call(&CallSid::try_from(sid).unwrap())
        .await
        .unwrap()
        .expect("the call row exists")
}

/// Opens a stream with `start`, expects it refused with 1008, and checks nothing changed.
async fn refused(app: &TestApp, vapi: &FakeVapi, start: Message, untouched: &[&str]) {
    let creates = vapi.creates();
    let mut before = Vec::new();
    for sid in untouched {
        before.push(row(app, sid).await);
    }
    let mut socket = stream(app, start).await;
    assert_eq!(
        close_code(&mut socket).await,
        Some(1008),
        "refused as a policy violation"
    );
    // Give a wrongly admitted stream the time to do harm before looking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(vapi.creates(), creates, "no Vapi call was created");
    for (sid, before) in untouched.iter().zip(before) {
        assert_eq!(
            row(app, sid).await,
            before,
            "the row of {sid} did not change"
        );
    }
}

fn params(call_sid: &str, lead_id: &str, token: &str) -> Value {
    json!({"call_sid": call_sid, "lead_id": lead_id, "token": token})
}

#[tokio::test]
async fn forged_starts_are_refused_without_a_vapi_call_or_a_row_change() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let app = app(&vapi).await;
    let (a, b) = (sid(0xa1), sid(0xb1));
    let (lead_a, token_a) = voice(&app, &a).await;
    let (lead_b, token_b) = voice(&app, &b).await;
    let both = [a.as_str(), b.as_str()];

    // A genuine token past its expiry (the key comes from the auth token, as the gateway's does).
    let tokens = StreamTokens::new(Some(&SecretString::from(AUTH_TOKEN.to_owned())));
    let sid_a = CallSid::try_from(a.as_str()).unwrap();
    let expired = tokens.issue(
        &sid_a,
        LeadId::try_from(lead_a.as_str()).unwrap(),
        1_000_000_000,
    );
    let tampered = token_a.replace(&lead_a, &lead_b);
    let other_account = "ACffffffffffffffffffffffffffffffff";
    let forged: [(&str, &str, Value); 8] = [
        // No token, a made-up token, a token edited to name B's lead.
        (&a, ACCOUNT, json!({"call_sid": a, "lead_id": lead_a})),
        (&a, ACCOUNT, params(&a, &lead_a, "v1.forged")),
        (&a, ACCOUNT, params(&a, &lead_b, &tampered)),
        // A's genuine token on call B's stream, and with B's lead in the parameters.
        (&b, ACCOUNT, params(&b, &lead_b, &token_a)),
        (&a, ACCOUNT, params(&a, &lead_b, &token_a)),
        // Another Twilio account.
        (&a, other_account, params(&a, &lead_a, &token_a)),
        // Expired.
        (&a, ACCOUNT, params(&a, &lead_a, &expired)),
        // A's token with B's CallSid in the parameters.
        (&a, ACCOUNT, params(&b, &lead_a, &token_a)),
    ];
    for (call, account, parameters) in &forged {
        refused(&app, &vapi, start_frame(call, account, parameters), &both).await;
    }

    // The genuine stream of B still works after all that, once.
    let mut genuine = stream(
        &app,
        start_frame(&b, ACCOUNT, &params(&b, &lead_b, &token_b)),
    )
    .await;
    wait_for(|| vapi.creates() == 1).await;
    // The bridge records the Vapi call once its socket is open.
    let mut recorded = None;
    for _ in 0..100 {
        recorded = row(&app, &b).await.fields.vapi_call_id;
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorded.as_deref(), Some("vapi-call-1"));
    // Replaying B's handshake and start while the call is live: refused, B's row untouched.
    refused(
        &app,
        &vapi,
        start_frame(&b, ACCOUNT, &params(&b, &lead_b, &token_b)),
        &both,
    )
    .await;
    genuine.close(None).await.unwrap();
    // And after it ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    refused(
        &app,
        &vapi,
        start_frame(&b, ACCOUNT, &params(&b, &lead_b, &token_b)),
        &both,
    )
    .await;
    assert_eq!(vapi.creates(), 1);

    assert_refusals_counted(&app.scrape_metrics().await);
}

/// Each refusal reason the forged starts above hit is counted.
fn assert_refusals_counted(metrics: &str) {
    for reason in [
        "missing_token",
        "token_malformed",
        "token_bad_signature",
        "call_mismatch",
        "wrong_account",
        "token_expired",
        "not_waiting",
    ] {
        let line = format!("myriam_media_stream_refusals_total{{reason=\"{reason}\"}}");
        let count = metrics
            .lines()
            .find(|l| l.starts_with(&line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{line} in\n{metrics}"));
        assert!(count >= 1.0, "{line} counted");
    }
}

#[tokio::test]
async fn a_token_is_single_use_even_when_two_streams_race() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let app = app(&vapi).await;
    let a = sid(0xc1);
    let (lead, token) = voice(&app, &a).await;
    let start = || start_frame(&a, ACCOUNT, &params(&a, &lead, &token));
    let (mut one, mut two) = tokio::join!(stream(&app, start()), stream(&app, start()));
    // Exactly one of them is refused; the other is bridged.
    let (first, second) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(1), close_code(&mut one)),
        tokio::time::timeout(Duration::from_secs(1), close_code(&mut two)),
    );
    let refusals = [first, second]
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(1008))))
        .count();
    assert_eq!(refusals, 1, "one stream refused, one live");
    assert_eq!(vapi.creates(), 1, "one Vapi call");
}

#[tokio::test]
async fn a_call_that_ended_takes_no_stream() {
    let vapi = FakeVapi::start(Behaviour::Echo).await;
    let app = app(&vapi).await;
    let a = sid(0xd1);
    let (lead, token) = voice(&app, &a).await;
    let (status, _) = app
        .post_form(
            "/twilio/status",
            &[
                ("CallSid", a.as_str()),
                ("AccountSid", ACCOUNT),
                ("CallStatus", "completed"),
                ("CallDuration", "3"),
            ],
        )
        .await;
    assert_eq!(status, 204);
    refused(
        &app,
        &vapi,
        start_frame(&a, ACCOUNT, &params(&a, &lead, &token)),
        &[&a],
    )
    .await;
}

async fn wait_for(mut ready: impl FnMut() -> bool) {
    for _ in 0..100 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}
