//! The media bridge over real sockets: a Twilio-like WebSocket client, a Vapi-like REST endpoint and
//! WebSocket server on port 0, and the gateway between them.

mod helpers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use helpers::{
    MediaSocket, TestApp, open_media_stream, spawn_app_with, twiml_parameter as parameter,
};
use myriam::config::{CallMode, PublicBaseUrl, Settings};
use myriam::domain::CallSid;
use myriam::store::Store;
use myriam::twilio::twiml;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rest {
    Ok,
    Concurrency,
    Slow,
}

/// What the fake Vapi received on its socket, and a way to send it frames.
#[derive(Clone)]
struct FakeVapi {
    rest: Rest,
    ws_base: Arc<Mutex<String>>,
    received: mpsc::UnboundedSender<Message>,
    to_gateway: Arc<Mutex<Option<mpsc::UnboundedReceiver<Message>>>>,
}

async fn create_call(State(fake): State<FakeVapi>) -> (StatusCode, axum::Json<Value>) {
    match fake.rest {
        Rest::Ok => {
            let url = format!("{}/ws/call-1", fake.ws_base.lock().unwrap());
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": "vapi-call-1", "status": "queued",
                    "transport": {"provider": "vapi.websocket", "websocketCallUrl": url}})),
            )
        }
        Rest::Concurrency => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"message": "call.start.error-subscription-concurrency-limit-reached"}),
            ),
        ),
        Rest::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::CREATED, axum::Json(json!({})))
        }
    }
}

async fn vapi_socket(
    State(fake): State<FakeVapi>,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    upgrade.on_upgrade(move |socket| async move {
        let (mut out, mut inbound) = socket.split();
        let mut script = fake.to_gateway.lock().unwrap().take().expect("one call");
        loop {
            tokio::select! {
                m = inbound.next() => match m {
                    Some(Ok(AxMessage::Binary(b))) => { let _ = fake.received.send(Message::Binary(b.to_vec().into())); }
                    Some(Ok(AxMessage::Text(t))) => { let _ = fake.received.send(Message::Text(t.to_string().into())); }
                    Some(Ok(AxMessage::Close(_)) | Err(_)) | None => { let _ = fake.received.send(Message::Close(None)); break; }
                    Some(Ok(_)) => {}
                },
                m = script.recv() => match m {
                    Some(Message::Binary(b)) => { let _ = out.send(AxMessage::Binary(b.to_vec().into())).await; }
                    Some(Message::Text(t)) => { let _ = out.send(AxMessage::Text(t.to_string().into())).await; }
                    Some(Message::Close(_)) | None => { let _ = out.send(AxMessage::Close(None)).await; break; }
                    Some(_) => {}
                },
            }
        }
    })
}

struct Vapi {
    base: String,
    received: mpsc::UnboundedReceiver<Message>,
    send: mpsc::UnboundedSender<Message>,
}

async fn fake_vapi(rest: Rest) -> Vapi {
    let (received_tx, received) = mpsc::unbounded_channel();
    let (send, to_gateway) = mpsc::unbounded_channel();
    let fake = FakeVapi {
        rest,
        ws_base: Arc::default(),
        received: received_tx,
        to_gateway: Arc::new(Mutex::new(Some(to_gateway))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *fake.ws_base.lock().unwrap() = format!("ws://{addr}");
    let app = axum::Router::new()
        .route("/call", post(create_call))
        .route("/ws/call-1", get(vapi_socket))
        .with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Vapi {
        base: format!("http://{addr}"),
        received,
        send,
    }
}

async fn bridge_app(vapi: &Vapi, customise: impl FnOnce(&mut Settings)) -> TestApp {
    let base = vapi.base.clone();
    spawn_app_with(move |s| {
        s.call_mode = CallMode::Bridge;
        s.vapi.private_key = Some(SecretString::from(
            "7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned(),
        ));
        s.vapi.assistant_id = Some("0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned());
        s.vapi.base_url = base.parse().unwrap();
        // The test client connects to the bound address; Twilio would use this public one.
        s.public_base_url = Some(PublicBaseUrl::new("https://gw.bp.test"));
        customise(s);
    })
    .await
}

/// `POST /twilio/voice` (test environment: unsigned); returns the TwiML.
async fn incoming(app: &TestApp, sid: &str) -> String {
    app.client
        .post(app.url("/twilio/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "CallSid={sid}&AccountSid=AC0&From=%2B15145550199&CallStatus=ringing"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

type TwilioSocket = MediaSocket;

/// Plays Twilio's side of a stream: connects, sends `connected` and `start` with the parameters.
async fn twilio_stream(app: &TestApp, twiml: &str) -> TwilioSocket {
    let start = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": parameter(twiml, "call_sid"), "accountSid": "AC0",
                  "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": {"lead_id": parameter(twiml, "lead_id"), "call_sid": parameter(twiml, "call_sid"),
                                       "token": parameter(twiml, "token")}}});
    open_media_stream(app.addr, Message::Text(start.to_string().into())).await
}

fn media(bytes: &[u8]) -> Message {
    Message::Text(
        json!({"event": "media", "streamSid": "MZ1", "media": {"track": "inbound", "chunk": "1", "timestamp": "0",
            "payload": base64::engine::general_purpose::STANDARD.encode(bytes)}})
        .to_string()
        .into(),
    )
}

async fn next_json(socket: &mut TwilioSocket) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(_))) | None => return Value::Null,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

async fn expect_closed(socket: &mut TwilioSocket) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    }
}

async fn vapi_next(vapi: &mut Vapi) -> Message {
    tokio::time::timeout(Duration::from_secs(5), vapi.received.recv())
        .await
        .expect("Vapi got a frame in time")
        .expect("open")
}

#[tokio::test]
async fn bridge_mode_answers_with_connect_stream_and_parameters() {
    let vapi = fake_vapi(Rest::Ok).await;
    let app = bridge_app(&vapi, |_| {}).await;
    let sid = format!("CA{:032x}", 1);
    let twiml = incoming(&app, &sid).await;
    assert!(twiml.contains(
        "<Connect action=\"https://gw.bp.test/twilio/stream-ended\"><Stream url=\"wss://gw.bp.test/twilio/media\">"
    ), "{twiml}");
    assert_eq!(parameter(&twiml, "call_sid"), sid);
    let lead = app
        .store
        .find_lead_by_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parameter(&twiml, "lead_id"), lead.id.to_string());
    assert_eq!(
        incoming(&app, &sid).await,
        twiml,
        "a retry gets the same TwiML"
    );

    // CALL_MODE=ivr, or no Vapi, answers with the IVR.
    let ivr = bridge_app(&vapi, |s| {
        s.public_base_url = Some(PublicBaseUrl::new("https://gw.bp.test"));
        s.call_mode = CallMode::Ivr;
    })
    .await;
    assert!(
        incoming(&ivr, &format!("CA{:032x}", 2))
            .await
            .contains("<Gather")
    );
}

#[tokio::test]
async fn audio_flows_both_ways_with_barge_in_and_stop_ends_the_vapi_call() {
    let mut vapi = fake_vapi(Rest::Ok).await;
    let app = bridge_app(&vapi, |s| s.telemetry.prometheus_port = Some(0)).await;
    let sid = format!("CA{:032x}", 3);
    let twiml = incoming(&app, &sid).await;
    let mut twilio = twilio_stream(&app, &twiml).await;

    // Caller → Vapi: the same bytes, in order.
    let frames: Vec<Vec<u8>> = (0u8..20).map(|i| vec![i; 160]).collect();
    for f in &frames {
        twilio.send(media(f)).await.unwrap();
    }
    for f in &frames {
        assert_eq!(
            vapi_next(&mut vapi).await,
            Message::Binary(f.clone().into())
        );
    }
    let record = app
        .store
        .get_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.fields.vapi_call_id.as_deref(), Some("vapi-call-1"));

    // Vapi → caller: a 480-byte burst becomes three 20 ms media frames, then barge-in clears.
    let burst: Vec<u8> = (0..480u32).map(|i| (i % 200) as u8).collect();
    vapi.send
        .send(Message::Binary(burst.clone().into()))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = next_json(&mut twilio).await;
        assert_eq!(m["event"], "media");
        assert_eq!(m["streamSid"], "MZ1");
        got.extend(
            base64::engine::general_purpose::STANDARD
                .decode(m["media"]["payload"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert_eq!(got, burst);
    vapi.send
        .send(Message::Text(
            r#"{"type":"speech-update","role":"user","status":"started"}"#.into(),
        ))
        .unwrap();
    assert_eq!(
        next_json(&mut twilio).await,
        json!({"event": "clear", "streamSid": "MZ1"})
    );

    // The caller hangs up: Vapi is told to end the call.
    twilio
        .send(Message::Text(
            r#"{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        vapi_next(&mut vapi).await,
        Message::Text(r#"{"type":"end-call"}"#.into())
    );

    // The metrics only a bridged call feeds are exported (docs/OPERATIONS.md names them).
    let metrics = app.scrape_metrics().await;
    for name in myriam::metrics::BRIDGE_ONLY {
        assert!(
            metrics.contains(&format!("# TYPE {name} histogram")),
            "{name} missing after a bridged call:\n{metrics}"
        );
    }
    assert!(metrics.contains(r#"myriam_bridge_relay_seconds_count{direction="up"}"#));
}

#[tokio::test]
async fn vapi_hanging_up_closes_the_twilio_stream() {
    let vapi = fake_vapi(Rest::Ok).await;
    let app = bridge_app(&vapi, |_| {}).await;
    let sid = format!("CA{:032x}", 4);
    let twiml = incoming(&app, &sid).await;
    let mut twilio = twilio_stream(&app, &twiml).await;
    twilio.send(media(&[0xff; 160])).await.unwrap();
    vapi.send
        .send(Message::Text(
            r#"{"type":"status-update","status":"ended","endedReason":"assistant-ended-call"}"#
                .into(),
        ))
        .unwrap();
    expect_closed(&mut twilio).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let record = app
        .store
        .get_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.fields.ended_reason.as_deref(),
        Some("assistant-ended-call")
    );
}

async fn falls_back(rest: Rest, reason: &str) {
    let vapi = fake_vapi(rest).await;
    let app = bridge_app(&vapi, |_| {}).await;
    let sid = format!("CA{:032x}", 5);
    let twiml = incoming(&app, &sid).await;
    let started = std::time::Instant::now();
    let mut twilio = twilio_stream(&app, &twiml).await;
    expect_closed(&mut twilio).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "at most ~2 s of silence"
    );
    // Twilio then requests the <Connect action>: the IVR continues at the lead's step.
    let continued = app
        .client
        .post(app.url("/twilio/stream-ended"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("CallSid={sid}&AccountSid=AC0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(twiml::gather_action(&continued).is_some(), "{continued}");
    assert!(
        twiml::spoken_lines(&continued)[0].starts_with("Bonjour"),
        "{continued}"
    );
    let record = app
        .store
        .get_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.fields.mode,
        Some(myriam::domain::ConversationMode::Ivr)
    );
    assert_eq!(
        record.fields.mode_reason.as_deref(),
        Some(reason),
        "why the bridge gave up"
    );
}

#[tokio::test]
async fn vapi_at_its_concurrency_limit_falls_back_to_the_ivr() {
    falls_back(Rest::Concurrency, "vapi_concurrency_limit").await;
}

#[tokio::test]
async fn a_slow_vapi_falls_back_within_the_deadline() {
    falls_back(Rest::Slow, "vapi_timeout").await;
}

#[tokio::test]
async fn the_handshake_is_signed_in_production() {
    let vapi = fake_vapi(Rest::Ok).await;
    let app = bridge_app(&vapi, |s| {
        s.environment = myriam::environment::Environment::Production;
        s.twilio.auth_token = Some(SecretString::from(
            "0123456789abcdef0123456789abcdef".to_owned(),
        ));
        s.public_base_url = Some(PublicBaseUrl::new("https://gw.bp.test"));
    })
    .await;
    let url = format!("ws://{}/twilio/media", app.addr);
    let unsigned = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(unsigned.to_string().contains("401"), "{unsigned}");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("x-twilio-signature", "bogus".parse().unwrap());
    let wrong = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(wrong.to_string().contains("403"), "{wrong}");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    let signature = myriam::twilio::signature::sign(
        "0123456789abcdef0123456789abcdef",
        "wss://gw.bp.test/twilio/media",
    );
    request
        .headers_mut()
        .insert("x-twilio-signature", signature.parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(request).await.is_ok(),
        "signed over the wss:// URL"
    );
}

#[tokio::test]
async fn while_draining_new_calls_get_the_ivr() {
    use tower::ServiceExt as _;
    let vapi = fake_vapi(Rest::Ok).await;
    let mut settings = Settings::for_tests();
    settings.call_mode = CallMode::Bridge;
    settings.vapi.private_key = Some(SecretString::from("k".to_owned()));
    settings.vapi.assistant_id = Some("a".to_owned());
    settings.vapi.base_url = vapi.base.parse().unwrap();
    settings.public_base_url = Some(PublicBaseUrl::new("https://gw.bp.test"));
    let store = myriam::store::AnyStore::open(&settings).unwrap();
    let lifecycle = myriam::startup::Lifecycle::default();
    let router = myriam::startup::router(myriam::startup::AppState::new(
        settings,
        store,
        lifecycle.clone(),
    ));
    let voice = |n: u32| {
        axum::http::Request::post("/twilio/voice")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!(
                "CallSid=CA{n:032x}&AccountSid=AC0&CallStatus=ringing"
            )))
            .unwrap()
    };
    let body = |r: axum::response::Response| async move {
        String::from_utf8(
            axum::body::to_bytes(r.into_body(), 1 << 16)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    };
    assert!(
        body(router.clone().oneshot(voice(8)).await.unwrap())
            .await
            .contains("<Connect")
    );
    lifecycle.shutdown();
    assert!(
        body(router.oneshot(voice(9)).await.unwrap())
            .await
            .contains("<Gather"),
        "draining: IVR"
    );
}

#[tokio::test]
async fn draining_keeps_live_calls_until_they_end() {
    let mut vapi = fake_vapi(Rest::Ok).await;
    let app = bridge_app(&vapi, |_| {}).await;
    let sid = format!("CA{:032x}", 6);
    let twiml = incoming(&app, &sid).await;
    let mut twilio = twilio_stream(&app, &twiml).await;
    twilio.send(media(&[1; 160])).await.unwrap();
    assert_eq!(
        vapi_next(&mut vapi).await,
        Message::Binary(vec![1; 160].into())
    );

    app.lifecycle.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The live call still flows during the drain.
    twilio.send(media(&[2; 160])).await.unwrap();
    assert_eq!(
        vapi_next(&mut vapi).await,
        Message::Binary(vec![2; 160].into())
    );
    assert!(
        !app.server.is_finished(),
        "shutdown waits for the live call"
    );
    twilio
        .send(Message::Text(
            r#"{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#.into(),
        ))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("stops once the call ended")
        .unwrap()
        .unwrap();
}

/// A self-signed certificate for `localhost`, made by the `openssl` command line.
fn localhost_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        // An end-entity certificate: webpki refuses a CA certificate used as a server's.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line is installed");
    assert!(status.success(), "openssl made the certificate");
    (cert, key)
}

#[tokio::test]
async fn the_vapi_socket_is_tokio_tungstenite_over_rustls_and_checks_the_certificate() {
    use myriam::bridge::WsFrame;
    use myriam::bridge::session::{open_vapi_socket, tls_config};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = localhost_certificate(dir.path());
    let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
    let key = PrivateKeyDer::from_pem_file(&key_path).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bearer = Arc::new(Mutex::new(None::<String>));
    let seen = bearer.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The callback's error type is tungstenite's (large) ErrorResponse.
                #[allow(clippy::result_large_err)]
                let record =
                    |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     response| {
                        *seen.lock().unwrap() = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        Ok(response)
                    };
                let mut ws = tokio_tungstenite::accept_hdr_async(tls, record)
                    .await
                    .unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_binary() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let vapi = myriam::vapi::client::VapiClient::new(
        &format!("https://localhost:{port}"),
        SecretString::from("7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned()),
        "assistant".to_owned(),
        Duration::from_secs(2),
    );
    let url = SecretString::from(format!("wss://localhost:{port}/call"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusting = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let request = vapi.socket_request(&url, true).unwrap();
    let mut socket = open_vapi_socket(request, trusting)
        .await
        .expect("TLS and WebSocket handshakes");
    let audio: Vec<u8> = (0..1000u32).map(|i| i.to_le_bytes()[0]).collect();
    socket
        .send(WsFrame::Binary(audio.clone().into()))
        .await
        .unwrap();
    assert_eq!(socket.next().await, Some(WsFrame::Binary(audio.into())));
    assert_eq!(
        bearer.lock().unwrap().as_deref(),
        Some("Bearer 7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42"),
        "the key went to the configured Vapi host"
    );

    // The production configuration (webpki roots) refuses the self-signed certificate, and the
    // error does not quote the URL.
    let request = vapi.socket_request(&url, true).unwrap();
    let error = open_vapi_socket(request, tls_config()).await.unwrap_err();
    assert!(!error.to_string().contains("/call"), "{error}");
}

#[tokio::test]
async fn the_assistant_hands_the_caller_to_people_and_the_stream_ends_cleanly() {
    use helpers::fake_twilio::{ACCOUNT, FakeTwilio, TOKEN};
    let mut vapi = fake_vapi(Rest::Ok).await;
    let rest = FakeTwilio::start().await;
    let rest_base = rest.base_url();
    let app = bridge_app(&vapi, move |s| {
        s.telemetry.prometheus_port = Some(0);
        s.twilio.account_sid = Some(ACCOUNT.to_owned());
        s.twilio.auth_token = Some(SecretString::from(TOKEN.to_owned()));
        s.twilio.api_base_url = rest_base.parse().unwrap();
        s.office.hours =
            myriam::domain::BusinessHours::parse("mon-sun 00:00-24:00", "America/Toronto").unwrap();
        s.office.transfer_number = Some("+14505550100".to_owned());
    })
    .await;
    let sid = format!("CA{:032x}", 40);
    let (_, twiml) = app
        .post_form(
            "/twilio/voice",
            &[
                ("CallSid", &sid),
                ("AccountSid", ACCOUNT),
                ("From", "+15145550199"),
            ],
        )
        .await;
    let start = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": sid, "accountSid": ACCOUNT,
                  "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": {"lead_id": parameter(&twiml, "lead_id"), "call_sid": sid,
                                       "token": parameter(&twiml, "token")}}});
    let mut twilio = open_media_stream(app.addr, Message::Text(start.to_string().into())).await;
    twilio.send(media(&[0x7f; 160])).await.unwrap();
    assert_eq!(
        vapi_next(&mut vapi).await,
        Message::Binary(vec![0x7f; 160].into())
    );

    // The caller asks for a person; the assistant calls its transfer tool.
    let answer: Value = app
        .client
        .post(app.url("/vapi/webhook"))
        .json(
            &json!({"message": {"type": "tool-calls", "call": {"id": "vapi-call-1"},
            "toolCallList": [{"id": "tc-person", "type": "function",
                              "function": {"name": "transfer_to_human", "arguments": "{}"}}]}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result: Value =
        serde_json::from_str(answer["results"][0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["status"], "transfer", "{answer}");
    let redirects = rest.redirects();
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    assert_eq!(redirects[0].call_sid, sid);
    assert_eq!(redirects[0].url, "https://gw.bp.test/twilio/handoff");

    // Twilio leaves the stream for the new TwiML: `stop`, then the close.
    twilio
        .send(Message::Text(
            json!({"event": "stop", "streamSid": "MZ1", "stop": {"callSid": sid}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        vapi_next(&mut vapi).await,
        Message::Text(r#"{"type":"end-call"}"#.into())
    );
    expect_closed(&mut twilio).await;
    let (code, doc) = app.post_form("/twilio/handoff", &[("CallSid", &sid)]).await;
    assert_eq!(code, 200);
    assert!(doc.contains("<Number>+14505550100</Number>"), "{doc}");

    // Not a bridge failure, not the end of the call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let record = app
        .store
        .get_call(&CallSid::try_from(sid.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.fields.mode,
        Some(myriam::domain::ConversationMode::Bridge)
    );
    assert_eq!(record.fields.mode_reason.as_deref(), Some("handed_off"));
    assert_ne!(record.fields.status.as_deref(), Some("completed"));
    // (The bridge-failure counters are process-wide and other tests here fall back on purpose;
    // the call row above is this call's own record: still `bridge`, `handed_off`, not `vapi_lost`.)
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics.contains(r#"myriam_hand_offs_total{via="assistant",to="transfer"} 1"#),
        "{metrics}"
    );
}
