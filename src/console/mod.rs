//! The operators' console (`/console`, server-rendered HTML, French) and its JSON API (`/api/v1`,
//! `OpenAPI` at `/api/openapi.json`), served by the gateway itself.
//!
//! - [`auth`]: who is asking (session cookie, or Bearer API token for the API), CSRF, roles.
//! - [`pages`]: login, the leads list, a lead, its follow-up, erasure, the audit log.
//! - [`api`]: the same operations as JSON, problem+json errors, `ETag` / `If-Match`.
//! - [`live`]: server-sent events pushing new and changed leads to the list.
//! - [`export`]: CSV of the current filter (UTF-8 with BOM, French headers, `;`).
//! - [`html`]: escaping, Montréal time, the layout.
//! - [`state`]: [`ConsoleState`], what the handlers need.
//! - [`query`]: the list's filter, a lead id, an erasure's phone number.
//! - [`etag`](mod@etag): follow-up versions as `ETag`s.
//! - [`erasure`]: an erasure ([`erase_and_audit`]) and its pages.
//! - [`error`]: [`ConsoleError`], as a page or as problem+json.
//!
//! Every response under `/console` and `/api` carries the security headers of [`security_headers`]
//! ([`security`]). This file only declares, re-exports and routes: the files never import it back
//! (`tests/boundaries.rs`).

pub mod api;
pub mod auth;
pub mod bridged;
pub mod callback;
pub mod dashboard;
pub mod erasure;
pub mod error;
pub mod etag;
pub mod export;
pub mod html;
pub mod live;
pub mod pages;
pub mod profile;
pub mod query;
pub mod security;
pub mod state;
pub mod tel;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::routing::{get, post, put};

use crate::state::AppState;
pub use erasure::{ErasureReport, REMOTE_ERASURE_WAIT, erase_and_audit};
pub use error::{ApiError, ConsoleError, PageError};
pub use etag::{etag, parse_etag};
pub use query::{ListQuery, erasure_target, lead_id};
pub use security::{CSP, HSTS, refuse_cross_site, same_origin, security_headers};
pub use state::ConsoleState;

/// The console's and the API's routes, with their security headers (`https`: served over TLS,
/// [`crate::config::Settings::secure_transport`]).
pub fn router(https: bool) -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/tableau", get(dashboard::page))
        .route("/console/tableau.csv", get(dashboard::csv))
        .route("/console/leads", get(pages::leads))
        .route("/console/leads/export.csv", get(pages::export))
        .route("/console/leads/{id}", get(pages::lead))
        .route("/console/leads/{id}/suivi", post(pages::change_follow_up))
        .route("/console/leads/{id}/rappeler", post(callback::place))
        .route("/console/profil", get(profile::show).post(profile::save))
        .route("/console/calls/{sid}/recording", get(pages::recording))
        .route("/console/erase", get(pages::erase_form).post(pages::erase))
        .route("/console/erasures/{id}", get(erasure::status))
        .route("/console/audit", get(pages::audit))
        .route("/console/events", get(live::events))
        .route("/console/static/console.js", get(pages::script))
        .route("/console/static/console.css", get(pages::stylesheet))
        .route("/console/static/favicon.svg", get(pages::favicon))
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/api/v1/leads", get(api::list_leads))
        .route("/api/v1/leads/export.csv", get(api::export))
        .route("/api/v1/leads/{id}", get(api::get_lead))
        .route("/api/v1/leads/{id}/suivi", put(api::change_follow_up))
        .route("/api/v1/erasures", post(api::erase))
        .route("/api/v1/stats", get(dashboard::stats_api))
        .layer(middleware::from_fn(refuse_cross_site))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            security_headers(https, request, next)
        }))
}
