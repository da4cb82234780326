//! `POST /vapi/webhook`, Vapi's Server URL: [`VapiRequest`] authenticates the raw body and parses
//! it into one [`ServerMessage`]; [`crate::vapi::server`] answers it.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::Failure;
use crate::metrics::names;
use crate::state::AppState;
use crate::vapi::messages::CallEnd;
use crate::vapi::{ServerMessage, VapiRequest, server};

pub async fn webhook(
    State(state): State<AppState>,
    VapiRequest(message): VapiRequest,
) -> Result<Response, Failure> {
    let kind = match message.kind() {
        k @ ("tool-calls" | "assistant-request" | "status-update" | "end-of-call-report") => k,
        _ => "other",
    };
    metrics::counter!(names::VAPI_WEBHOOKS, "type" => kind.to_owned()).increment(1);
    let calls = &state.calls;
    let answer: Value = match &message {
        ServerMessage::ToolCalls {
            call,
            calls: tool_calls,
            earlier,
        } => {
            let context = server::ToolContext {
                settings: &state.settings,
                twilio: state.twilio_rest.as_deref(),
            };
            server::tool_calls(calls, context, call, tool_calls, earlier).await
        }
        ServerMessage::AssistantRequest { call } => {
            server::assistant_request(calls, &state.settings, call).await
        }
        ServerMessage::StatusUpdate {
            call,
            status,
            ended_reason,
        } => {
            let end = CallEnd {
                ended_reason: ended_reason.clone(),
                ..CallEnd::default()
            };
            server::call_update(calls, call, Some(status), &end).await
        }
        ServerMessage::EndOfCallReport { call, end } => {
            server::call_update(calls, call, None, end).await
        }
        ServerMessage::Other { kind } => {
            tracing::debug!(message_type = %kind, "Vapi message acknowledged");
            Ok(Value::Object(serde_json::Map::new()))
        }
    }
    .map_err(|error| Failure::store("Vapi", error))?;
    Ok(Json(answer).into_response())
}
