//! Vapi's REST API, as far as the bridge needs it: creating a call on the `vapi.websocket`
//! transport with µ-law 8 kHz audio, so Twilio's Media Stream bytes pass through untouched.
//!
//! `POST {VAPI_BASE_URL}/call`, `Authorization: Bearer VAPI_PRIVATE_KEY`, a 2 s deadline. The
//! returned `transport.websocketCallUrl` is a bearer secret: kept in a `SecretString`, never logged.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// How long creating a call may take before the caller gets the IVR instead.
pub const CREATE_CALL_DEADLINE: Duration = Duration::from_secs(2);

/// Metric: Vapi call creation latency.
pub const CREATE_LATENCY: &str = "myriam_vapi_create_call_duration_seconds";
/// Metric: Vapi call creation failures by reason.
pub const CREATE_FAILURES: &str = "myriam_vapi_create_call_failures_total";

#[derive(Debug, Clone)]
pub struct VapiClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    assistant_id: String,
    deadline: Duration,
}

/// What the assistant should know about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    pub lead_id: String,
    pub call_sid: String,
    pub caller_number: Option<String>,
    pub language: String,
}

/// A created Vapi call.
#[derive(Debug, Clone)]
pub struct CreatedCall {
    pub id: String,
    /// Where to send and receive audio. A bearer secret.
    pub websocket_url: SecretString,
}

/// Why no Vapi call could be created. Each is a reason to fall back to the IVR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateCallError {
    #[error("Vapi did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Vapi is unreachable: {0}")]
    Unavailable(String),
    #[error("Vapi's concurrency limit is reached")]
    ConcurrencyLimit,
    #[error("Vapi refused the call: HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("Vapi's answer has no transport.websocketCallUrl")]
    BadResponse,
}

impl CreateCallError {
    /// Bounded label for metrics and the call row's `mode_reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            CreateCallError::Timeout(_) => "vapi_timeout",
            CreateCallError::Unavailable(_) => "vapi_unavailable",
            CreateCallError::ConcurrencyLimit => "vapi_concurrency_limit",
            CreateCallError::Rejected { .. } => "vapi_rejected",
            CreateCallError::BadResponse => "vapi_bad_response",
        }
    }
}

/// Vapi's error bodies (`{"message": "…" | ["…"], "error": "…", "statusCode": n}`) as one line.
fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = match v.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error body")
            .to_owned(),
    };
    message
        .replace(['\n', '\r'], " ")
        .chars()
        .take(300)
        .collect()
}

impl VapiClient {
    pub fn new(base: &str, key: SecretString, assistant_id: String, deadline: Duration) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            assistant_id,
            deadline,
        }
    }

    /// The private key, for the WebSocket's `Authorization: Bearer` header.
    pub fn key(&self) -> &SecretString {
        &self.key
    }

    /// The request body of `POST /call`.
    pub fn create_call_body(&self, context: &CallContext) -> Value {
        let variables = json!({
            "lead_id": context.lead_id,
            "call_sid": context.call_sid,
            "caller_number": context.caller_number.clone().unwrap_or_default(),
            "language": context.language,
        });
        json!({
            "assistantId": self.assistant_id,
            "transport": {
                "provider": "vapi.websocket",
                "audioFormat": { "format": "mulaw", "container": "raw", "sampleRate": 8000 }
            },
            "assistantOverrides": {
                "variableValues": variables,
                // CreateCallDTO has no top-level metadata (reference §3.1): it rides on the overrides.
                "metadata": { "lead_id": context.lead_id, "call_sid": context.call_sid }
            }
        })
    }

    pub async fn create_call(&self, context: &CallContext) -> Result<CreatedCall, CreateCallError> {
        let started = Instant::now();
        let result = self.create_call_inner(context).await;
        metrics::histogram!(CREATE_LATENCY).record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            metrics::counter!(CREATE_FAILURES, "reason" => error.reason()).increment(1);
        }
        result
    }

    async fn create_call_inner(
        &self,
        context: &CallContext,
    ) -> Result<CreatedCall, CreateCallError> {
        let started = Instant::now();
        let request = self
            .http
            .post(format!("{}/call", self.base))
            .bearer_auth(self.key.expose_secret())
            .json(&self.create_call_body(context))
            .send();
        let response = match tokio::time::timeout(self.deadline, request).await {
            Err(_) => return Err(CreateCallError::Timeout(self.deadline)),
            Ok(Err(e)) => return Err(CreateCallError::Unavailable(e.without_url().to_string())),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let left = self.deadline.saturating_sub(started.elapsed());
        let body = match tokio::time::timeout(left, response.text()).await {
            Err(_) => return Err(CreateCallError::Timeout(self.deadline)),
            Ok(Err(e)) => return Err(CreateCallError::Unavailable(e.without_url().to_string())),
            Ok(Ok(b)) => b,
        };
        if !(200..300).contains(&status) {
            let message = error_message(&body);
            if status == 429 || message.contains("concurrency") {
                return Err(CreateCallError::ConcurrencyLimit);
            }
            return Err(CreateCallError::Rejected { status, message });
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| CreateCallError::BadResponse)?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or(CreateCallError::BadResponse)?;
        let url = v
            .get("transport")
            .and_then(|t| t.get("websocketCallUrl"))
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("wss://") || u.starts_with("ws://"))
            .ok_or(CreateCallError::BadResponse)?;
        Ok(CreatedCall {
            id: id.to_owned(),
            websocket_url: SecretString::from(url.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_one_line() {
        assert_eq!(
            error_message(
                r#"{"message":["assistantId must be a UUID","transport invalid"],"error":"Bad Request","statusCode":400}"#
            ),
            "assistantId must be a UUID; transport invalid"
        );
        assert_eq!(
            error_message(r#"{"message":"line one\nline two"}"#),
            "line one line two"
        );
        assert_eq!(error_message("<html>"), "no error body");
    }
}
