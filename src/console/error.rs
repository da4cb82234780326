//! What can go wrong in the console and the API, rendered two ways: an HTML page ([`PageError`],
//! a redirect to the login page when not signed in) or `application/problem+json` ([`ApiError`]).
//! A store failure is an opaque 500 whose cause the `log_failures` middleware logs once.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{Chrome, Esc, layout};
use crate::routes::error::Failure;
use crate::store::StoreError;
use crate::store::console::FollowUpState;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("this action is reserved to administrators")]
    Forbidden,
    #[error("missing or invalid CSRF token")]
    Csrf,
    #[error("no such lead")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("the lead was changed by someone else (version {})", .0.version)]
    Stale(FollowUpState),
    #[error("If-Match with the lead's ETag is required")]
    PreconditionRequired,
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    #[error("too many failed logins")]
    Throttled(Duration),
    #[error("too many requests with this API token")]
    RateLimited(Duration),
    #[error("too many live-update streams open; retry later")]
    Busy(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Unauthenticated | ConsoleError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ConsoleError::Forbidden | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Stale(_) => StatusCode::PRECONDITION_FAILED,
            ConsoleError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ConsoleError::Throttled(_) | ConsoleError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ConsoleError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the operator reads (French), never a store detail.
    fn french(&self) -> String {
        match self {
            ConsoleError::Unauthenticated => "Veuillez vous connecter.".to_owned(),
            ConsoleError::Forbidden => "Cette action est réservée aux administrateurs.".to_owned(),
            ConsoleError::Csrf => {
                "Le formulaire a expiré. Rechargez la page et recommencez.".to_owned()
            }
            ConsoleError::NotFound => "Ce lead n'existe pas (ou plus).".to_owned(),
            ConsoleError::BadRequest(why) => format!("Requête invalide : {why}"),
            ConsoleError::Stale(_) => "Quelqu'un d'autre a modifié ce lead pendant que vous \
                 l'éditiez. Votre modification n'a pas été enregistrée : voici l'état actuel, \
                 recommencez si elle est toujours utile."
                .to_owned(),
            ConsoleError::PreconditionRequired => "If-Match requis.".to_owned(),
            ConsoleError::InvalidCredentials => "Courriel ou mot de passe invalide.".to_owned(),
            ConsoleError::Throttled(wait) => format!(
                "Trop de tentatives. Réessayez dans {} minute(s).",
                wait.as_secs().div_ceil(60)
            ),
            ConsoleError::RateLimited(wait) => format!(
                "Trop de requêtes. Réessayez dans {} seconde(s).",
                wait.as_secs().max(1)
            ),
            ConsoleError::Busy(_) => {
                "Trop de listes ouvertes en direct. Fermez un onglet ou réessayez plus tard."
                    .to_owned()
            }
            ConsoleError::Store(_) => "Erreur interne. Réessayez dans un instant.".to_owned(),
        }
    }

    fn retry_after(&self, response: &mut Response) {
        if let ConsoleError::Throttled(wait)
        | ConsoleError::RateLimited(wait)
        | ConsoleError::Busy(wait) = self
        {
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
    }

    fn log_store_failure(self, response: &mut Response) {
        if let ConsoleError::Store(error) = self {
            response
                .extensions_mut()
                .insert(Failure::store("the console", error));
        }
    }
}

/// A console page's failure.
#[derive(Debug)]
pub struct PageError(pub ConsoleError);

impl From<ConsoleError> for PageError {
    fn from(e: ConsoleError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self(ConsoleError::Store(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = self.0;
        if matches!(error, ConsoleError::Unauthenticated) {
            return Redirect::to("/console/login").into_response();
        }
        let body = format!(
            r#"<h1>Erreur</h1><p class="error" role="alert">{}</p><p><a href="/console/leads">Retour aux leads</a></p>"#,
            Esc(&error.french())
        );
        let page = layout(
            &Chrome {
                title: "Erreur",
                ..Chrome::default()
            },
            &body,
        );
        let mut response = (error.status(), axum::response::Html(page)).into_response();
        error.retry_after(&mut response);
        error.log_store_failure(&mut response);
        response
    }
}

/// An API failure, as RFC 9457 problem details.
#[derive(Debug)]
pub struct ApiError(pub ConsoleError);

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(ConsoleError::Store(e))
    }
}

/// The `application/problem+json` body.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `about:blank` or a stable URI for the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a stale edit: the lead's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = error.status();
        let problem = Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: (!matches!(error, ConsoleError::Store(_))).then(|| error.to_string()),
            current_version: match &error {
                ConsoleError::Stale(state) => Some(state.version),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if matches!(error, ConsoleError::Unauthenticated) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ConsoleError::Stale(state) = &error {
            if let Ok(etag) = HeaderValue::from_str(&super::etag::etag(state.version)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
        }
        error.retry_after(&mut response);
        error.log_store_failure(&mut response);
        response
    }
}
