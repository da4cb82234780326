//! A Vapi stand-in on port 0, faithful to the parts of its protocol the bridge uses: `POST /call`
//! answers 201 with `transport.websocketCallUrl`, and that socket is an assistant that echoes the
//! caller's audio back (so a test can count every frame both ways). It counts the calls created and
//! records how each socket was closed. `Hostile` sockets misbehave instead, to test the Vapi leg's
//! limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

/// What the assistant's socket does once the gateway connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Echo every binary frame back.
    Echo,
    /// Send one binary message of this many bytes.
    Oversized(usize),
    /// Send one ping more than the gateway allows in a second, then read.
    PingFlood,
}

/// One `DELETE /call/{id}` the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VapiDeletion {
    pub id: String,
    /// What the fake answered.
    pub status: u16,
    /// The request carried `Authorization: Bearer …`.
    pub bearer: bool,
}

#[derive(Default)]
struct Deletes {
    received: Vec<VapiDeletion>,
    deleted: std::collections::HashSet<String>,
    script: std::collections::HashMap<String, std::collections::VecDeque<u16>>,
}

#[derive(Clone)]
struct Shared {
    deletes: Arc<Mutex<Deletes>>,
    behaviour: Behaviour,
    ws_base: Arc<Mutex<String>>,
    creates: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<Option<u16>>>>,
}

/// A running fake Vapi.
pub struct FakeVapi {
    pub base: String,
    deletes: Arc<Mutex<Deletes>>,
    creates: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<Option<u16>>>>,
}

impl FakeVapi {
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Shared {
            deletes: Arc::default(),
            behaviour,
            ws_base: Arc::default(),
            creates: Arc::default(),
            closes: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.ws_base.lock().unwrap() = format!("ws://{addr}");
        let fake = Self {
            deletes: shared.deletes.clone(),
            base: format!("http://{addr}"),
            creates: shared.creates.clone(),
            closes: shared.closes.clone(),
        };
        let app = axum::Router::new()
            .route("/call", post(create_call))
            .route("/call/{id}", axum::routing::delete(delete_call))
            .route("/ws/{id}", get(socket))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Every `DELETE /call/{id}` received, in order.
    pub fn deletions(&self) -> Vec<VapiDeletion> {
        self.deletes.lock().unwrap().received.clone()
    }

    /// The next DELETEs of `id` answer these statuses, in order (then 200, then 404).
    pub fn fail_deletes(&self, id: &str, statuses: impl IntoIterator<Item = u16>) {
        self.deletes
            .lock()
            .unwrap()
            .script
            .entry(id.to_owned())
            .or_default()
            .extend(statuses);
    }

    /// Calls created through `POST /call`.
    pub fn creates(&self) -> usize {
        self.creates.load(Ordering::SeqCst)
    }

    /// The close code of each socket the gateway closed (`None`: closed without a code or dropped).
    pub fn closes(&self) -> Vec<Option<u16>> {
        self.closes.lock().unwrap().clone()
    }
}

/// `DELETE /call/{id}`: 200 with the call the first time (Vapi answers the deleted call), 404
/// once deleted, or the scripted statuses first; 401 without a bearer key.
async fn delete_call(
    State(shared): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > "Bearer ".len());
    let mut deletes = shared.deletes.lock().unwrap();
    let scripted = deletes
        .script
        .get_mut(&id)
        .and_then(std::collections::VecDeque::pop_front);
    let status = match scripted {
        Some(status) => status,
        None if !bearer => 401,
        None if deletes.deleted.contains(&id) => 404,
        None => {
            deletes.deleted.insert(id.clone());
            200
        }
    };
    deletes.received.push(VapiDeletion {
        id: id.clone(),
        status,
        bearer,
    });
    let body = match status {
        200 => json!({"id": id, "status": "ended"}),
        404 => json!({"message": "Couldn't Find Call", "error": "Not Found", "statusCode": 404}),
        s => json!({"message": "failure", "statusCode": s}),
    };
    (StatusCode::from_u16(status).unwrap(), axum::Json(body))
}

async fn create_call(State(shared): State<Shared>) -> (StatusCode, axum::Json<Value>) {
    let n = shared.creates.fetch_add(1, Ordering::SeqCst) + 1;
    let url = format!("{}/ws/call-{n}", shared.ws_base.lock().unwrap());
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": format!("vapi-call-{n}"), "status": "queued",
            "transport": {"provider": "vapi.websocket", "websocketCallUrl": url}})),
    )
}

async fn socket(
    State(shared): State<Shared>,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    upgrade.on_upgrade(move |mut ws| async move {
        match shared.behaviour {
            Behaviour::Echo => {}
            Behaviour::Oversized(len) => {
                let _ = ws.send(Message::Binary(vec![0x7f; len].into())).await;
            }
            Behaviour::PingFlood => {
                for _ in 0..=myriam::bridge::leg::PING_BUDGET {
                    if ws.send(Message::Ping(vec![1; 100].into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Binary(audio)) => {
                    if shared.behaviour == Behaviour::Echo
                        && ws.send(Message::Binary(audio)).await.is_err()
                    {
                        break;
                    }
                }
                Ok(Message::Close(frame)) => {
                    shared.closes.lock().unwrap().push(frame.map(|f| f.code));
                    return;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        shared.closes.lock().unwrap().push(None);
    })
}
