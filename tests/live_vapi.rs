//! Live tests against the real Vapi account.
//!
//! They run when `BP_SKIP_VAPI_TESTS` is not `1` and `VAPI_PRIVATE_KEY` and `VAPI_ASSISTANT_ID`
//! are set (`VAPI_BASE_URL` defaults to `https://api.vapi.ai`); otherwise each is skipped with a
//! printed reason (`tests/helpers/live.rs`). `preflight --skip-vapi` sets `BP_SKIP_VAPI_TESTS=1`.
//! They talk to Vapi directly (reqwest, tokio-tungstenite), as the gateway does, and never print a
//! key or the `websocketCallUrl` (a bearer secret).

mod helpers;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use helpers::live;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const FLAG: &str = "BP_SKIP_VAPI_TESTS";
const REQUIRED: &[&str] = &["VAPI_PRIVATE_KEY", "VAPI_ASSISTANT_ID"];
/// The tool the gateway serves at `/vapi/webhook` (`docs/vapi-assistant.json`).
const TOOL: &str = "enregistrer_reponse";

fn base_url() -> String {
    live::var("VAPI_BASE_URL")
        .unwrap_or_else(|| "https://api.vapi.ai".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(key: &str, path: &str) -> Value {
    let response = client()
        .get(format!("{}{path}", base_url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "GET {path} answered {status}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_websocket_call_is_created_streamed_to_and_closed() {
    let Some(values) = live::credentials(
        "live_vapi::a_websocket_call_is_created_streamed_to_and_closed",
        FLAG,
        REQUIRED,
    ) else {
        return;
    };
    let [key, assistant] = <[String; 2]>::try_from(values).unwrap();
    let body = json!({
        "assistantId": assistant,
        "transport": {
            "provider": "vapi.websocket",
            "audioFormat": {"format": "mulaw", "container": "raw", "sampleRate": 8000}
        },
        "assistantOverrides": {"variableValues": {"lead_id": "live-test"}}
    });
    let response = client()
        .post(format!("{}/call", base_url()))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .expect("POST /call");
    let status = response.status();
    let call: Value = response.json().await.unwrap();
    assert!(
        status.is_success(),
        "POST /call answered {status}: {}",
        call["message"]
    );
    let id = call["id"].as_str().expect("call id").to_owned();
    assert_eq!(call["transport"]["provider"], "vapi.websocket");
    let ws_url = call["transport"]["websocketCallUrl"]
        .as_str()
        .expect("transport.websocketCallUrl")
        .to_owned();
    assert!(ws_url.starts_with("wss://"), "the call URL is wss://");

    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("the websocketCallUrl accepts a connection");
    // One second of µ-law silence, 20 ms frames, then hang up as the gateway does.
    for _ in 0..50 {
        socket
            .send(Message::Binary(vec![0xffu8; 160].into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    socket
        .send(Message::Text(r#"{"type":"end-call"}"#.into()))
        .await
        .unwrap();
    let _ = socket.close(None).await;
    // Drain until Vapi closes its side (or 10 s).
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;

    // Vapi records the call as ended (its status settles within a few seconds).
    let mut last = Value::Null;
    for _ in 0..30 {
        last = get(&key, &format!("/call/{id}")).await;
        if last["status"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        last["status"], "ended",
        "call {id} did not end: {}",
        last["endedReason"]
    );
}

/// The function tools of an assistant: inline `model.tools`, and `model.toolIds` fetched from
/// `GET /tool/{id}`.
async fn tools_of(key: &str, assistant: &Value) -> Vec<Value> {
    let mut tools: Vec<Value> = assistant["model"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for id in assistant["model"]["toolIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        tools.push(get(key, &format!("/tool/{id}")).await);
    }
    tools
}

#[tokio::test]
async fn the_configured_assistant_has_the_tools_the_gateway_serves() {
    let Some(values) = live::credentials(
        "live_vapi::the_configured_assistant_has_the_tools_the_gateway_serves",
        FLAG,
        REQUIRED,
    ) else {
        return;
    };
    let [key, assistant_id] = <[String; 2]>::try_from(values).unwrap();
    let assistant = get(&key, &format!("/assistant/{assistant_id}")).await;
    let tools = tools_of(&key, &assistant).await;
    let tool = tools
        .iter()
        .find(|t| t["function"]["name"] == TOOL)
        .unwrap_or_else(|| {
            let names: Vec<&Value> = tools.iter().map(|t| &t["function"]["name"]).collect();
            panic!("the assistant has no {TOOL} tool (it has {names:?})")
        });
    assert_eq!(tool["type"], "function");
    assert_eq!(
        tool["function"]["parameters"]["required"],
        json!(["reponse"]),
        "{TOOL} takes the caller's answer as `reponse`"
    );
    // The tool's server, else the assistant's, is the gateway's Vapi webhook.
    let server_url = tool["server"]["url"]
        .as_str()
        .or_else(|| assistant["server"]["url"].as_str())
        .expect("a server URL for the tool");
    assert!(
        server_url.ends_with("/vapi/webhook"),
        "{TOOL} calls {server_url}, not the gateway's /vapi/webhook"
    );
    if let Some(public) = live::var("PUBLIC_BASE_URL") {
        assert_eq!(
            server_url,
            format!("{}/vapi/webhook", public.trim_end_matches('/')),
            "the tool calls this deployment (PUBLIC_BASE_URL)"
        );
    }
    let messages: Vec<&str> = assistant["serverMessages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for wanted in ["tool-calls", "status-update", "end-of-call-report"] {
        assert!(
            messages.contains(&wanted),
            "serverMessages lacks {wanted}: {messages:?}"
        );
    }
}

#[test]
fn skips_name_the_flag_or_the_missing_variables() {
    let reason = live::skip_reason(FLAG, &["MYRIAM_TEST_SURELY_UNSET_VARIABLE"]).unwrap();
    if live::var(FLAG).as_deref() == Some("1") {
        assert_eq!(reason, "BP_SKIP_VAPI_TESTS=1");
    } else {
        assert_eq!(reason, "not set: MYRIAM_TEST_SURELY_UNSET_VARIABLE");
    }
}
