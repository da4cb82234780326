//! Vapi's REST API, as far as the bridge needs it: creating a call on the `vapi.websocket`
//! transport with µ-law 8 kHz audio, so Twilio's Media Stream bytes pass through untouched.
//!
//! `POST {VAPI_BASE_URL}/call`, `Authorization: Bearer VAPI_PRIVATE_KEY`, a 2 s deadline. The
//! returned `transport.websocketCallUrl` is a bearer secret: kept in a `SecretString`, never logged.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// Idle connections to Vapi's REST API kept for the next calls, and for how long.
const IDLE_CONNECTIONS: usize = 8;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long creating a call may take before the caller gets the IVR instead.
pub const CREATE_CALL_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct VapiClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    assistant_id: String,
    deadline: Duration,
}

/// Why the socket URL Vapi returned is not used. Never quotes the URL (it carries a call token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocketUrlError {
    #[error("Vapi's websocketCallUrl is not a URL")]
    Malformed,
    #[error("Vapi's websocketCallUrl is not wss:// (required in production)")]
    NotTls,
    #[error(
        "Vapi's websocketCallUrl points at a host that is not Vapi's; the key is not sent there"
    )]
    UntrustedHost,
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
    /// A 4xx other than 429: our request or configuration is wrong (assistant id, key, body).
    #[error("Vapi refused the call: HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// A 5xx: Vapi itself is failing.
    #[error("Vapi failed to create the call: HTTP {status}: {message}")]
    Outage { status: u16, message: String },
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
            CreateCallError::Outage { .. } => "vapi_outage",
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
            // A burst of calls opens one connection per concurrent `POST /call`; only a few are
            // worth keeping (each idle one holds its buffers, and TLS state towards Vapi).
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(IDLE_CONNECTIONS)
                .pool_idle_timeout(IDLE_TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            assistant_id,
            deadline,
        }
    }

    /// The opening request of the call's socket: `wss://` only when `require_tls` (production),
    /// and only to Vapi's own hosts (the host of `VAPI_BASE_URL`, or `vapi.ai` and its
    /// subdomains), since it carries the private key as a bearer token.
    pub fn socket_request(
        &self,
        websocket_url: &SecretString,
        require_tls: bool,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, SocketUrlError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

        let url = url::Url::parse(websocket_url.expose_secret())
            .map_err(|_| SocketUrlError::Malformed)?;
        match url.scheme() {
            "wss" => {}
            "ws" if !require_tls => {}
            _ => return Err(SocketUrlError::NotTls),
        }
        let host = url
            .host_str()
            .ok_or(SocketUrlError::Malformed)?
            .to_ascii_lowercase();
        let base_host = url::Url::parse(&self.base)
            .ok()
            .and_then(|b| b.host_str().map(str::to_ascii_lowercase));
        let vapi_owned = host == "vapi.ai" || host.ends_with(".vapi.ai");
        if !vapi_owned && base_host.as_deref() != Some(host.as_str()) {
            return Err(SocketUrlError::UntrustedHost);
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|_| SocketUrlError::Malformed)?;
        let mut bearer =
            axum::http::HeaderValue::try_from(format!("Bearer {}", self.key.expose_secret()))
                .map_err(|_| SocketUrlError::Malformed)?;
        bearer.set_sensitive(true);
        request
            .headers_mut()
            .insert(axum::http::header::AUTHORIZATION, bearer);
        Ok(request)
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
        metrics::histogram!(crate::metrics::names::VAPI_CREATE_CALL_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            metrics::counter!(crate::metrics::names::VAPI_CREATE_CALL_FAILURES, "reason" => error.reason()).increment(1);
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
            if status >= 500 {
                return Err(CreateCallError::Outage { status, message });
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

/// Why `DELETE /call/{id}` did not delete. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteCallError {
    /// 404: no such call (already deleted).
    #[error("Vapi has no such call")]
    NotFound,
    /// 429, 5xx, a timeout or a connection failure: try again later.
    #[error("Vapi did not delete the call ({reason}); retry")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx (a refused key, a malformed id): the same request would fail again.
    #[error("Vapi refused to delete the call: HTTP {status}: {message}")]
    Refused { status: u16, message: String },
}

/// Vapi's REST API for what an erasure needs: `DELETE {VAPI_BASE_URL}/call/{id}` (the call, its
/// recording and transcript), `Authorization: Bearer VAPI_PRIVATE_KEY`.
#[derive(Clone)]
pub struct VapiRest {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl std::fmt::Debug for VapiRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapiRest")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl VapiRest {
    pub fn new(base: &str, key: SecretString, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(2)
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// `DELETE /call/{id}`. `id` must be an id (letters, digits, `-`, `_`), never a path.
    pub async fn delete_call(&self, id: &str) -> Result<(), DeleteCallError> {
        if id.is_empty()
            || id.len() > 100
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DeleteCallError::Refused {
                status: 400,
                message: "not a call id".to_owned(),
            });
        }
        let response = self
            .http
            .delete(format!("{}/call/{id}", self.base))
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(|e| DeleteCallError::Retryable {
                reason: e.without_url().to_string(),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        let body = response.text().await.unwrap_or_default();
        match status {
            200..=299 => Ok(()),
            404 => Err(DeleteCallError::NotFound),
            408 | 429 | 500..=599 => Err(DeleteCallError::Retryable {
                reason: format!("HTTP {status}: {}", error_message(&body)),
                retry_after,
            }),
            _ => Err(DeleteCallError::Refused {
                status,
                message: error_message(&body),
            }),
        }
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

    fn client(base: &str) -> VapiClient {
        VapiClient::new(
            base,
            SecretString::from("11111111-2222-4333-8444-555555555555".to_owned()),
            "assistant".to_owned(),
            Duration::from_secs(2),
        )
    }

    fn url(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn the_socket_is_wss_to_vapi_in_production_and_carries_the_bearer_only_there() {
        let vapi = client("https://api.vapi.ai");
        let request = vapi
            .socket_request(
                &url("wss://phone-ws.aws-us-west-2.vapi.ai/abc/transport"),
                true,
            )
            .unwrap();
        assert_eq!(
            request.headers()["authorization"],
            "Bearer 11111111-2222-4333-8444-555555555555"
        );
        assert!(request.headers()["authorization"].is_sensitive());
        assert_eq!(
            vapi.socket_request(&url("ws://api.vapi.ai/abc/transport"), true)
                .unwrap_err(),
            SocketUrlError::NotTls
        );
        for elsewhere in [
            "wss://evil.example/abc",
            "wss://vapi.ai.evil.example/abc",
            "wss://notvapi.ai/abc",
        ] {
            assert_eq!(
                vapi.socket_request(&url(elsewhere), true).unwrap_err(),
                SocketUrlError::UntrustedHost,
                "{elsewhere}"
            );
        }
        assert_eq!(
            vapi.socket_request(&url("not a url"), false).unwrap_err(),
            SocketUrlError::Malformed
        );
    }

    #[test]
    fn outside_production_plain_ws_to_the_configured_host_is_allowed() {
        let vapi = client("http://127.0.0.1:4010");
        assert!(
            vapi.socket_request(&url("ws://127.0.0.1:4010/x"), false)
                .is_ok()
        );
        assert_eq!(
            vapi.socket_request(&url("ws://127.0.0.1:4010/x"), true)
                .unwrap_err(),
            SocketUrlError::NotTls
        );
        assert_eq!(
            vapi.socket_request(&url("ws://127.0.0.2:4010/x"), false)
                .unwrap_err(),
            SocketUrlError::UntrustedHost
        );
    }

    #[test]
    fn server_errors_are_outages_and_client_errors_are_refusals() {
        let outage = CreateCallError::Outage {
            status: 503,
            message: String::new(),
        };
        let refusal = CreateCallError::Rejected {
            status: 400,
            message: String::new(),
        };
        assert_eq!(outage.reason(), "vapi_outage");
        assert_eq!(refusal.reason(), "vapi_rejected");
    }
}
