//! The one place Twilio requests are authenticated, by two extractors over one policy
//! ([`TwilioAuth`]): [`TwilioForm`] (webhooks) reads the raw body, checks the content type,
//! rebuilds the public URL Twilio signed, verifies `X-Twilio-Signature` per environment
//! (DESIGN §5), and only then decodes the form; [`TwilioHandshake`] verifies the Media Stream's
//! opening request over its `wss://` URL. A refusal is counted and logged here, once, and becomes
//! a [`TwilioRejection`] response.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

use super::signature::{self, SignatureError};
use crate::config::{PublicBaseUrl, Settings};
use crate::environment::Environment;

/// How this instance authenticates Twilio, decided once at startup.
#[derive(Debug, Clone)]
pub enum WebhookAuth {
    /// Production, and development without `BP_TWILIO_TEST_MODE`.
    Enforce(Option<SecretString>),
    /// `ENVIRONMENT=test`, or development with `BP_TWILIO_TEST_MODE=1`.
    Bypass(&'static str),
}

impl WebhookAuth {
    pub fn from_settings(settings: &Settings) -> Self {
        match settings.environment {
            Environment::Test => WebhookAuth::Bypass("ENVIRONMENT=test"),
            Environment::Development if settings.twilio.test_mode => {
                WebhookAuth::Bypass("BP_TWILIO_TEST_MODE=1")
            }
            Environment::Development | Environment::Production => {
                WebhookAuth::Enforce(settings.twilio.auth_token.clone())
            }
        }
    }
}

/// The Twilio signature policy and the public URL requests are signed over: the state both
/// extractors take (through `FromRef`, as an `Arc`: nothing is copied per request).
#[derive(Debug, Clone)]
pub struct TwilioAuth {
    pub policy: WebhookAuth,
    pub public_base_url: Option<PublicBaseUrl>,
}

impl TwilioAuth {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            policy: WebhookAuth::from_settings(settings),
            public_base_url: settings.public_base_url.clone(),
        }
    }

    /// Verifies `X-Twilio-Signature` over `url` and `params`; counts and logs a refusal.
    fn verify(
        &self,
        headers: &HeaderMap,
        url: impl FnOnce() -> String,
        params: &[(String, String)],
        what: &'static str,
    ) -> Result<(), TwilioRejection> {
        match &self.policy {
            WebhookAuth::Bypass(_) => Ok(()),
            WebhookAuth::Enforce(None) => {
                reject("no_token");
                tracing::error!(
                    request = what,
                    "TWILIO_AUTH_TOKEN is not set: Twilio requests cannot be verified"
                );
                Err(TwilioRejection::NoToken)
            }
            WebhookAuth::Enforce(Some(token)) => {
                let url = url();
                let header = headers
                    .get("x-twilio-signature")
                    .and_then(|v| v.to_str().ok());
                signature::verify_form(token.expose_secret(), &url, params, header).map_err(
                    |error| {
                        reject(error.reason());
                        // The URL checked helps operators fix PUBLIC_BASE_URL; the token never
                        // shows.
                        tracing::warn!(checked_url = %url, reason = error.reason(), request = what, "Twilio signature refused");
                        match error {
                            SignatureError::Missing => TwilioRejection::MissingSignature,
                            _ => TwilioRejection::InvalidSignature,
                        }
                    },
                )?;
                Ok(())
            }
        }
    }

    /// The `wss://` URL Twilio signed for a Media Stream handshake.
    fn stream_url(&self, headers: &HeaderMap, target: &str) -> String {
        if let Some(base) = &self.public_base_url {
            return base.websocket(target);
        }
        let http = public_url(None, headers, target);
        http.strip_prefix("https://")
            .map(|rest| format!("wss://{rest}"))
            .or_else(|| {
                http.strip_prefix("http://")
                    .map(|rest| format!("ws://{rest}"))
            })
            .unwrap_or(http)
    }
}

/// Why a Twilio request was refused. Bodies are short plain text; nothing from the request echoes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioRejection {
    #[error("missing X-Twilio-Signature")]
    MissingSignature,
    #[error("invalid X-Twilio-Signature")]
    InvalidSignature,
    #[error("expected application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("request body too large")]
    TooLarge,
    #[error("unreadable request body")]
    BadBody,
    #[error("TWILIO_AUTH_TOKEN is not set; signatures cannot be checked")]
    NoToken,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("AccountSid is not this account's")]
    WrongAccount,
}

impl IntoResponse for TwilioRejection {
    fn into_response(self) -> Response {
        let status = match self {
            TwilioRejection::MissingSignature => StatusCode::UNAUTHORIZED,
            TwilioRejection::InvalidSignature | TwilioRejection::WrongAccount => {
                StatusCode::FORBIDDEN
            }
            TwilioRejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TwilioRejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TwilioRejection::BadBody | TwilioRejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            TwilioRejection::NoToken => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// A verified Twilio form webhook: its decoded fields and the query of the URL it was posted to.
#[derive(Debug, Clone)]
pub struct TwilioForm {
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

impl TwilioForm {
    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        find(&self.params, name)
    }

    pub fn query_value(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn first_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The URL Twilio signed: `PUBLIC_BASE_URL` + the raw request target; without it (development),
/// `X-Forwarded-Proto` / `X-Forwarded-Host` / `Host` + the raw request target.
pub fn public_url(
    base: Option<&PublicBaseUrl>,
    headers: &HeaderMap,
    path_and_query: &str,
) -> String {
    if let Some(base) = base {
        return base.join(path_and_query);
    }
    let scheme = first_value(headers, "x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
    let host = first_value(headers, "x-forwarded-host")
        .or_else(|| first_value(headers, "host"))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{scheme}://{host}{path_and_query}")
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn decode(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn reject(reason: &'static str) {
    metrics::counter!(crate::metrics::names::TWILIO_SIGNATURE_REJECTIONS, "reason" => reason)
        .increment(1);
}

/// The request target exactly as received (before any nesting rewrote it).
fn raw_target(parts: &Parts) -> String {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0)
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned()
}

impl<S> FromRequest<S> for TwilioForm
where
    Arc<TwilioAuth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = TwilioRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<TwilioAuth>::from_ref(state);
        let (parts, body) = request.into_parts();
        if !is_form(&parts.headers) {
            reject("unsupported_media_type");
            return Err(TwilioRejection::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    TwilioRejection::TooLarge
                } else {
                    TwilioRejection::BadBody
                }
            })?;
        let target = raw_target(&parts);
        let params = decode(&bytes);
        let base = auth.public_base_url.as_ref();
        auth.verify(
            &parts.headers,
            || public_url(base, &parts.headers, &target),
            &params,
            "webhook",
        )?;
        let query = parts
            .uri
            .query()
            .map(|q| decode(q.as_bytes()))
            .unwrap_or_default();
        Ok(TwilioForm { params, query })
    }
}

/// A verified Media Stream handshake: `X-Twilio-Signature` over the `wss://` URL (no parameters),
/// checked before the upgrade is answered.
#[derive(Debug, Clone, Copy)]
pub struct TwilioHandshake;

impl<S> FromRequestParts<S> for TwilioHandshake
where
    Arc<TwilioAuth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = TwilioRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<TwilioAuth>::from_ref(state);
        let target = raw_target(parts);
        auth.verify(
            &parts.headers,
            || auth.stream_url(&parts.headers, &target),
            &[],
            "media stream handshake",
        )?;
        Ok(TwilioHandshake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn public_url_prefers_the_configured_base_and_keeps_the_raw_target() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("10.0.0.7:8080"));
        let base = PublicBaseUrl::new("https://Gw.Example.com/myriam/");
        assert_eq!(
            public_url(Some(&base), &headers, "/twilio/voice?a=O'Hara+x"),
            "https://Gw.Example.com/myriam/twilio/voice?a=O'Hara+x"
        );
        assert_eq!(
            public_url(None, &headers, "/twilio/voice"),
            "http://10.0.0.7:8080/twilio/voice"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("abc.ngrok.app, proxy"),
        );
        assert_eq!(
            public_url(None, &headers, "/twilio/voice"),
            "https://abc.ngrok.app/twilio/voice"
        );
        assert_eq!(
            base.websocket("/twilio/media"),
            "wss://Gw.Example.com/myriam/twilio/media"
        );
    }

    #[test]
    fn content_type_must_be_a_form() {
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_form(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        );
        assert!(is_form(&headers));
    }
}
