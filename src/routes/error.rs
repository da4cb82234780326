//! Handler failures: a store that fails while a request is answered becomes an opaque 500 whose
//! cause rides in the response's extensions to [`log_failures`], the middleware at the boundary
//! that logs it once. Turning an error into a response has no side effect.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;
use crate::twilio::TwilioRejection;

/// A failure the caller cannot fix: what was being answered and why it failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub answering: &'static str,
    pub error: Arc<StoreError>,
}

impl Failure {
    pub fn store(answering: &'static str, error: StoreError) -> Self {
        Self {
            answering,
            error: Arc::new(error),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Logs the [`Failure`] a handler's response carries, once, at the boundary.
pub async fn log_failures(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(failure) = response.extensions().get::<Failure>() {
        tracing::error!(error = %failure.error, kind = failure.error.kind(), "store failure while answering {}", failure.answering);
    }
    response
}

/// A Twilio handler's failure: a rejection (4xx, plain text) or a store failure (opaque 500).
#[derive(Debug)]
pub enum TwilioError {
    Rejected(TwilioRejection),
    Failed(Failure),
}

impl From<TwilioRejection> for TwilioError {
    fn from(r: TwilioRejection) -> Self {
        TwilioError::Rejected(r)
    }
}

impl From<StoreError> for TwilioError {
    fn from(e: StoreError) -> Self {
        TwilioError::Failed(Failure::store("Twilio", e))
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        match self {
            TwilioError::Rejected(r) => r.into_response(),
            TwilioError::Failed(f) => f.into_response(),
        }
    }
}
