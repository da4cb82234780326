//! The one place Vapi Server-URL requests are authenticated: [`VapiRequest`] reads the raw body,
//! verifies it against `VAPI_SERVER_SECRET` ([`super::auth`]) before anything is parsed, and only
//! then parses it into one [`ServerMessage`]. A refusal is counted and logged here, once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{self, VapiAuth, VapiAuthError};
use super::messages::{MessageError, ServerMessage};
use crate::metrics::names;

/// An authenticated, parsed Vapi message.
#[derive(Debug)]
pub struct VapiRequest(pub ServerMessage);

/// Why a Vapi request was refused. Bodies are short plain text; nothing from the request echoes.
#[derive(Debug, thiserror::Error)]
pub enum VapiRejection {
    #[error(transparent)]
    Auth(#[from] VapiAuthError),
    #[error(transparent)]
    Malformed(#[from] MessageError),
    #[error("request body too large")]
    TooLarge,
    #[error("unreadable request body")]
    BadBody,
}

impl IntoResponse for VapiRejection {
    fn into_response(self) -> Response {
        let status = match &self {
            VapiRejection::Auth(VapiAuthError::Missing) => StatusCode::UNAUTHORIZED,
            VapiRejection::Auth(VapiAuthError::Invalid | VapiAuthError::Stale) => {
                StatusCode::FORBIDDEN
            }
            VapiRejection::Auth(VapiAuthError::NoSecret) => StatusCode::INTERNAL_SERVER_ERROR,
            VapiRejection::Malformed(_) | VapiRejection::BadBody => StatusCode::BAD_REQUEST,
            VapiRejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl<S> FromRequest<S> for VapiRequest
where
    Arc<VapiAuth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VapiRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<VapiAuth>::from_ref(state);
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    VapiRejection::TooLarge
                } else {
                    VapiRejection::BadBody
                }
            })?;
        if let Err(error) = auth::verify(&auth, &parts.headers, &bytes, now()) {
            metrics::counter!(names::VAPI_AUTH_REJECTIONS, "reason" => error.reason()).increment(1);
            tracing::warn!(reason = error.reason(), "Vapi request refused");
            return Err(error.into());
        }
        // Bodies embed assistant and call objects that may hold credentials: never logged.
        Ok(VapiRequest(ServerMessage::parse(&bytes)?))
    }
}
