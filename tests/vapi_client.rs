//! The Vapi REST client against a local fake of `POST /call` (Vapi's API cannot run here), faithful
//! to the documented answers: 201 with `transport.websocketCallUrl`, NestJS-style 400 bodies, the
//! concurrency limit, a 503 outage, a slow server, a malformed answer, and nobody listening.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use myriam::vapi::client::{CallContext, CreateCallError, VapiClient};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Behaviour {
    Created,
    BadRequest,
    Concurrency,
    Slow,
    NoTransport,
    Outage,
}

/// Each request the fake received: its `Authorization` header and JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    seen: Seen,
}

async fn create_call(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.seen.lock().unwrap().push((auth, body));
    match fake.behaviour {
        Behaviour::Created => (
            StatusCode::CREATED,
            Json(
                json!({"id": "vapi-call-9", "type": "vapi.websocketCall", "status": "queued",
                "transport": {"provider": "vapi.websocket",
                              "websocketCallUrl": "wss://api.vapi.test/vapi-call-9/transport"}}),
            ),
        ),
        Behaviour::BadRequest => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"message": ["assistantId must be a UUID"], "error": "Bad Request", "statusCode": 400}),
            ),
        ),
        Behaviour::Concurrency => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"message": "call.start.error-subscription-concurrency-limit-reached", "statusCode": 400}),
            ),
        ),
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::CREATED, Json(json!({})))
        }
        Behaviour::NoTransport => (StatusCode::CREATED, Json(json!({"id": "x"}))),
        Behaviour::Outage => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"message": "Service Unavailable", "statusCode": 503})),
        ),
    }
}

async fn fake(behaviour: Behaviour) -> (String, Fake) {
    let state = Fake {
        behaviour,
        seen: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/call", post(create_call))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn client(base: &str) -> VapiClient {
    VapiClient::new(
        base,
        SecretString::from("7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42".to_owned()),
        "0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b".to_owned(),
        Duration::from_millis(500),
    )
}

fn context() -> CallContext {
    CallContext {
        lead_id: "5f0c1e8a-0000-4000-8000-000000000001".into(),
        call_sid: "CA0123456789abcdef0123456789abcdef".into(),
        caller_number: Some("+15145550199".into()),
        language: "fr".into(),
    }
}

#[tokio::test]
async fn creates_a_websocket_call_with_mulaw_8khz() {
    let (base, fake) = fake(Behaviour::Created).await;
    let created = client(&base).create_call(&context()).await.unwrap();
    assert_eq!(created.id, "vapi-call-9");
    assert_eq!(
        created.websocket_url.expose_secret(),
        "wss://api.vapi.test/vapi-call-9/transport"
    );
    let seen = fake.seen.lock().unwrap();
    let (auth, body) = &seen[0];
    assert_eq!(
        auth.as_deref(),
        Some("Bearer 7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42")
    );
    assert_eq!(
        body,
        &json!({
            "assistantId": "0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b",
            "transport": {"provider": "vapi.websocket",
                          "audioFormat": {"format": "mulaw", "container": "raw", "sampleRate": 8000}},
            "assistantOverrides": {
                "variableValues": {"lead_id": "5f0c1e8a-0000-4000-8000-000000000001",
                                   "call_sid": "CA0123456789abcdef0123456789abcdef",
                                   "caller_number": "+15145550199", "language": "fr"},
                "metadata": {"lead_id": "5f0c1e8a-0000-4000-8000-000000000001",
                             "call_sid": "CA0123456789abcdef0123456789abcdef"}
            }
        })
    );
    // The WebSocket URL is a bearer secret: Debug never shows it.
    assert!(!format!("{created:?}").contains("vapi-call-9/transport"));
}

#[tokio::test]
async fn every_failure_is_typed_for_the_ivr_fallback() {
    let (base, _) = fake(Behaviour::BadRequest).await;
    assert_eq!(
        client(&base).create_call(&context()).await.unwrap_err(),
        CreateCallError::Rejected {
            status: 400,
            message: "assistantId must be a UUID".into()
        }
    );
    let (base, _) = fake(Behaviour::Concurrency).await;
    let err = client(&base).create_call(&context()).await.unwrap_err();
    assert_eq!(err, CreateCallError::ConcurrencyLimit);
    assert_eq!(err.reason(), "vapi_concurrency_limit");
    let (base, _) = fake(Behaviour::Slow).await;
    let started = std::time::Instant::now();
    assert_eq!(
        client(&base).create_call(&context()).await.unwrap_err(),
        CreateCallError::Timeout(Duration::from_millis(500))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline holds"
    );
    // A 5xx is Vapi's outage, not our configuration (logged differently, counted apart).
    let (base, _) = fake(Behaviour::Outage).await;
    let err = client(&base).create_call(&context()).await.unwrap_err();
    assert_eq!(
        err,
        CreateCallError::Outage {
            status: 503,
            message: "Service Unavailable".into()
        }
    );
    assert_eq!(err.reason(), "vapi_outage");
    let (base, _) = fake(Behaviour::NoTransport).await;
    assert_eq!(
        client(&base).create_call(&context()).await.unwrap_err(),
        CreateCallError::BadResponse
    );
    let err = client("http://127.0.0.1:9")
        .create_call(&context())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "vapi_unavailable");
}
