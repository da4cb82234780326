//! `POST /vapi/webhook`, Vapi's Server URL: authenticated on the raw body, parsed into one
//! [`ServerMessage`], answered by [`crate::vapi::server`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::metrics::names;
use crate::startup::AppState;
use crate::vapi::auth::{self, VapiAuthError};
use crate::vapi::messages::CallEnd;
use crate::vapi::{ServerMessage, server};

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(error) = auth::verify(&state.vapi_auth, &headers, &body, now()) {
        metrics::counter!(names::VAPI_AUTH_REJECTIONS, "reason" => error.reason()).increment(1);
        tracing::warn!(reason = error.reason(), "Vapi request refused");
        let status = match error {
            VapiAuthError::Missing => StatusCode::UNAUTHORIZED,
            VapiAuthError::Invalid | VapiAuthError::Stale => StatusCode::FORBIDDEN,
            VapiAuthError::NoSecret => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return plain(status, &error.to_string());
    }
    // Bodies embed assistant and call objects that may hold credentials: never logged.
    let message = match ServerMessage::parse(&body) {
        Ok(message) => message,
        Err(error) => return plain(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let kind = match message.kind() {
        k @ ("tool-calls" | "assistant-request" | "status-update" | "end-of-call-report") => k,
        _ => "other",
    };
    metrics::counter!(names::VAPI_WEBHOOKS, "type" => kind.to_owned()).increment(1);
    let store = &state.store;
    let answer: Result<Value, _> = match &message {
        ServerMessage::ToolCalls { call, calls } => {
            server::tool_calls(store, &state.locks, call, calls).await
        }
        ServerMessage::AssistantRequest { call } => {
            server::assistant_request(store, &state.settings, call).await
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
            server::call_update(store, &state.locks, call, Some(status), &end).await
        }
        ServerMessage::EndOfCallReport { call, end } => {
            server::call_update(store, &state.locks, call, None, end).await
        }
        ServerMessage::Other { kind } => {
            tracing::debug!(message_type = %kind, "Vapi message acknowledged");
            Ok(Value::Object(serde_json::Map::new()))
        }
    };
    match answer {
        Ok(value) => Json(value).into_response(),
        Err(error) => {
            tracing::error!(%error, message_type = kind, "store failure while answering Vapi");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
