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

#[derive(Clone)]
struct Shared {
    behaviour: Behaviour,
    ws_base: Arc<Mutex<String>>,
    creates: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<Option<u16>>>>,
}

/// A running fake Vapi.
pub struct FakeVapi {
    pub base: String,
    creates: Arc<AtomicUsize>,
    closes: Arc<Mutex<Vec<Option<u16>>>>,
}

impl FakeVapi {
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Shared {
            behaviour,
            ws_base: Arc::default(),
            creates: Arc::default(),
            closes: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.ws_base.lock().unwrap() = format!("ws://{addr}");
        let fake = Self {
            base: format!("http://{addr}"),
            creates: shared.creates.clone(),
            closes: shared.closes.clone(),
        };
        let app = axum::Router::new()
            .route("/call", post(create_call))
            .route("/ws/{id}", get(socket))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
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
