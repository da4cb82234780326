//! The operators' console (`/console`, server-rendered HTML, French) and its JSON API (`/api/v1`,
//! `OpenAPI` at `/api/openapi.json`), served by the gateway itself.
//!
//! - [`auth`]: who is asking (session cookie, or Bearer API token for the API), CSRF, roles.
//! - [`pages`]: login, the leads list, a lead, its follow-up, erasure, the audit log.
//! - [`api`]: the same operations as JSON, problem+json errors, `ETag` / `If-Match`.
//! - [`live`]: server-sent events pushing new and changed leads to the list.
//! - [`export`]: CSV of the current filter (UTF-8 with BOM, French headers, `;`).
//! - [`html`]: escaping, Montréal time, the layout.
//!
//! Every response under `/console` and `/api` carries the security headers of [`security_headers`].

pub mod api;
pub mod auth;
pub mod bridged;
pub mod callback;
pub mod dashboard;
pub mod erasure;
pub mod error;
pub mod export;
pub mod html;
pub mod live;
pub mod pages;
pub mod profile;
pub mod tel;

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use time::Date;
use time::macros::format_description;
use tokio_util::sync::CancellationToken;

use crate::domain::{LeadId, LeadStatus, PhoneNumber};
use crate::state::AppState;
use crate::store::AnyStore;
use crate::store::console::{Cursor, FollowUp, LeadFilter, SearchTerm};
pub use error::{ApiError, ConsoleError, PageError};

/// What the console's handlers and extractors need.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub store: AnyStore,
    /// Served over https (production, or an https `PUBLIC_BASE_URL`): cookies get `Secure` and
    /// the `__Host-` prefix, answers `Strict-Transport-Security`.
    pub production: bool,
    /// Ends live-update streams when the gateway drains.
    pub shutdown: CancellationToken,
    /// Twilio's REST API, to play voicemails (the media needs the account's credentials).
    pub twilio: Option<std::sync::Arc<crate::twilio::rest::TwilioRest>>,
    /// What one API token may ask.
    pub api_rate: crate::config::ApiRate,
    /// The setting console callbacks lack on this instance (`None`: they can be placed).
    pub callback_unavailable: Option<&'static str>,
    /// `BUSINESS_NUMBER`: the caller ID a callback shows the lead.
    pub business_number: Option<PhoneNumber>,
    /// Carries out an erasure's deletions at Twilio and Vapi.
    pub eraser: crate::erasure::RemoteEraser,
}

impl FromRef<AppState> for ConsoleState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            production: state.settings.secure_transport(),
            shutdown: state.lifecycle.shutdown_token(),
            twilio: state.twilio_rest.clone(),
            api_rate: state.settings.api_rate,
            callback_unavailable: crate::callback::unavailable(
                &state.settings,
                state.twilio_rest.is_some(),
            ),
            business_number: state
                .settings
                .office
                .business_number
                .as_deref()
                .and_then(|n| PhoneNumber::try_from(n).ok()),
            eraser: state.eraser.clone(),
        }
    }
}

/// How long an erasure request waits for its remote deletions before it answers; what is not
/// done by then is retried in the background and shown as pending.
pub const REMOTE_ERASURE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What an erasure did: the rows removed, and where each remote deletion stands.
#[derive(Debug, Clone)]
pub struct ErasureReport {
    pub erasure: crate::store::console::Erasure,
    pub lead_ids: Vec<String>,
    pub remote: Vec<crate::store::RemoteErasure>,
}

impl ErasureReport {
    /// `(done, waiting, failed for good)` among the remote deletions.
    pub fn remote_counts(&self) -> (usize, usize, usize) {
        use crate::store::RemoteStatus;
        let count =
            |f: &dyn Fn(RemoteStatus) -> bool| self.remote.iter().filter(|r| f(r.status)).count();
        (
            count(&|s| s == RemoteStatus::Done),
            count(&|s| matches!(s, RemoteStatus::Pending | RemoteStatus::Claimed)),
            count(&|s| s == RemoteStatus::Dead),
        )
    }
}

/// Erases every record of `phone`, tries the deletions it owes at Twilio and Vapi for up to
/// [`REMOTE_ERASURE_WAIT`] (the rest is retried by the background eraser), and writes the audit
/// entry (the lead ids, the erasure's id and the counts, never caller data or remote ids): what
/// the erase page and the API both do.
pub async fn erase_and_audit(
    console: &ConsoleState,
    principal: &crate::operators::Principal,
    phone: &PhoneNumber,
) -> Result<ErasureReport, crate::store::StoreError> {
    use crate::store::RemoteErasures as _;
    use crate::store::console::ConsoleStore as _;
    let erasure = console.store.erase_caller(phone).await?;
    let ids: Vec<String> = erasure.lead_ids.iter().map(ToString::to_string).collect();
    let mut remote = Vec::new();
    if !erasure.remote.is_empty() {
        match tokio::time::timeout(REMOTE_ERASURE_WAIT, console.eraser.round(Some(erasure.id)))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, erasure_id = %erasure.id, "remote deletions left to the background eraser");
            }
            Err(_) => {
                tracing::warn!(erasure_id = %erasure.id, "remote deletions still running; left to the background eraser");
            }
        }
        console.eraser.wake();
        remote = console
            .store
            .remote_erasures_of(erasure.id)
            .await
            .unwrap_or_default();
    }
    let report = ErasureReport {
        erasure,
        lead_ids: ids,
        remote,
    };
    let (done, waiting, failed) = report.remote_counts();
    let e = &report.erasure;
    crate::operators::audit_by(
        &console.store,
        principal,
        crate::store::console::AuditAction::Erase,
        (!report.lead_ids.is_empty()).then(|| report.lead_ids.join(",")),
        Some(format!(
            "erasure={} leads={} calls={} events={} outbox={} dead_letters={} alerts={} \
             remote_deleted={done} remote_pending={waiting} remote_failed={failed} \
             sms_on_staff_phones={} (not erasable from here)",
            e.id,
            report.lead_ids.len(),
            e.calls,
            e.events,
            e.outbox,
            e.dead_letters,
            e.alerts,
            e.sms_sent,
        )),
    )
    .await;
    Ok(report)
}

/// The `ETag` of a lead's follow-up version.
pub fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// The version an `If-Match` names (`"v3"`, `W/"v3"` or `v3`).
pub fn parse_etag(value: &str) -> Option<i64> {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// The list's query string, as typed (empty fields mean "any").
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The machine's status: `nouveau`, `en_cours`, `qualifie`, `abandonne`, `transfere`,
    /// `rappel`.
    #[param(pattern = "^(nouveau|en_cours|qualifie|abandonne|transfere|rappel)$")]
    pub status: Option<String>,
    /// The staff's follow-up: nouveau, contacte, planifie, termine, perdu.
    #[param(pattern = "^(nouveau|contacte|planifie|termine|perdu)$")]
    pub suivi: Option<String>,
    /// `true` for urgent leads only, `false` for the others.
    #[param(pattern = "^(true|false)$")]
    pub urgent: Option<String>,
    /// Created on or after this day (YYYY-MM-DD, Montréal time).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Created on or before this day (YYYY-MM-DD, Montréal time).
    #[param(format = Date)]
    pub to: Option<String>,
    /// Search in name, phone and address (letters, digits, spaces and `-'.+@` count).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// The `next_cursor` of the previous page (opaque; anything else is refused with 400).
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

fn present(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn day(value: &str) -> Result<Date, ConsoleError> {
    Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map_err(|_| ConsoleError::BadRequest("a date is YYYY-MM-DD".to_owned()))
}

impl TryFrom<&ListQuery> for LeadFilter {
    type Error = ConsoleError;
    fn try_from(q: &ListQuery) -> Result<Self, Self::Error> {
        let bad = |what: &str| ConsoleError::BadRequest(what.to_owned());
        Ok(LeadFilter {
            status: present(q.status.as_ref())
                .map(|s| LeadStatus::try_from(s).map_err(|_| bad("unknown status")))
                .transpose()?,
            suivi: present(q.suivi.as_ref())
                .map(|s| FollowUp::try_from(s).map_err(|_| bad("unknown suivi")))
                .transpose()?,
            urgent: match present(q.urgent.as_ref()) {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(bad("urgent is true or false")),
            },
            created_from: present(q.from.as_ref())
                .map(day)
                .transpose()?
                .map(html::montreal_midnight),
            created_before: present(q.to.as_ref())
                .map(day)
                .transpose()?
                .map(|d| html::montreal_midnight(d.next_day().unwrap_or(d))),
            updated_after: None,
            search: present(q.q.as_ref()).and_then(|s| SearchTerm::try_from(s).ok()),
            cursor: present(q.cursor.as_ref())
                .map(|c| Cursor::try_from(c).map_err(|_| bad("invalid cursor")))
                .transpose()?,
            limit: match q.limit {
                Some(0) => return Err(bad("limit is 1 to 200")),
                Some(n) => n,
                None => 0,
            },
        })
    }
}

impl ListQuery {
    /// A parameter sent empty (`?to=`): the pages' forms send them for "any", the API refuses them.
    pub fn has_empty(&self) -> bool {
        [
            &self.status,
            &self.suivi,
            &self.urgent,
            &self.from,
            &self.to,
            &self.q,
            &self.cursor,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| v.trim().is_empty()))
    }

    /// The query string of this filter without the cursor (for links and the export).
    pub fn without_cursor(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &self.status),
            ("suivi", &self.suivi),
            ("urgent", &self.urgent),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ] {
            if let Some(v) = present(value.as_ref()) {
                s.append_pair(name, v);
            }
        }
        s.finish()
    }

    /// What the audit log may say of a filter: which parts were used, never their values (a
    /// search is caller data).
    pub fn audit_summary(&self) -> String {
        let used: Vec<&str> = [
            ("status", &self.status),
            ("suivi", &self.suivi),
            ("urgent", &self.urgent),
            ("from", &self.from),
            ("to", &self.to),
            ("search", &self.q),
        ]
        .into_iter()
        .filter(|(_, v)| present(v.as_ref()).is_some())
        .map(|(name, _)| name)
        .collect();
        if used.is_empty() {
            "filter=none".to_owned()
        } else {
            format!("filter={}", used.join(","))
        }
    }
}

/// A lead id from the path.
pub fn lead_id(raw: &str) -> Result<LeadId, ConsoleError> {
    LeadId::try_from(raw).map_err(|_| ConsoleError::NotFound)
}

/// The phone number of an erasure request, and its typed confirmation (`EFFACER`).
pub fn erasure_target(phone: &str, confirm: &str) -> Result<PhoneNumber, ConsoleError> {
    if confirm.trim() != "EFFACER" {
        return Err(ConsoleError::BadRequest(
            "type EFFACER to confirm the erasure".to_owned(),
        ));
    }
    PhoneNumber::try_from(phone)
        .map_err(|_| ConsoleError::BadRequest("not a North American phone number".to_owned()))
}

/// `Content-Security-Policy` of every console and API response: scripts and styles from the
/// gateway's own files only (no inline script), no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// `Strict-Transport-Security` when the console is served over https: a year, subdomains
/// included (the gateway's host name serves nothing else).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers; every response but the static files is `no-store` (they all carry
/// personal data or session state). `https`: the console is served over TLS (HSTS).
pub async fn security_headers(https: bool, request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/console/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if is_static {
            "public, max-age=300"
        } else {
            "no-store"
        }),
    );
    response
}

/// Whether a state-changing request comes from the console's own pages, as far as the browser
/// says. `Sec-Fetch-Site`, when sent (every current browser), decides: `same-origin`, or `none`
/// (typed by the user). Without it, `Origin`, when sent, must name the host the request was sent
/// to — except `null`, which browsers send for a form posted from a `Referrer-Policy: no-referrer`
/// page (the console's): such an old browser still passes. A request with neither header (a
/// script) passes: API tokens and the session's CSRF token still guard it.
pub fn same_origin(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}").trim().to_ascii_lowercase())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = text(header::ORIGIN) else {
        return true;
    };
    if origin == "null" {
        return true;
    }
    let Some(host) = text(header::HOST) else {
        return false;
    };
    let Ok(origin) = url::Url::parse(&origin) else {
        return false;
    };
    let authority = match (origin.host_str(), origin.port()) {
        (Some(h), Some(port)) => format!("{h}:{port}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return false,
    };
    authority == host
}

/// Refuses (403) a cross-site state-changing request to the console or the API, the login
/// included (see [`same_origin`]).
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    if same_origin(request.method(), request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "cross-site request refused");
    if request.uri().path().starts_with("/api/") {
        ApiError::from(ConsoleError::Csrf).into_response()
    } else {
        PageError::from(ConsoleError::Csrf).into_response()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_writes_are_refused() {
        use axum::http::{HeaderMap, Method};
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = ("host", "gw.bp.test");
        assert!(same_origin(&Method::POST, &headers(&[host])));
        assert!(same_origin(
            &Method::POST,
            &headers(&[
                host,
                ("origin", "https://gw.bp.test"),
                ("sec-fetch-site", "same-origin")
            ])
        ));
        assert!(same_origin(
            &Method::POST,
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "https://evil.example")])
        ));
        // A form posted from a no-referrer page: `Origin: null`, and Sec-Fetch-Site decides.
        assert!(same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "null"), ("sec-fetch-site", "same-origin")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "null"), ("sec-fetch-site", "cross-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[
                host,
                ("origin", "https://gw.bp.test"),
                ("sec-fetch-site", "cross-site")
            ])
        ));
        assert!(!same_origin(
            &Method::PUT,
            &headers(&[host, ("sec-fetch-site", "cross-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[host, ("sec-fetch-site", "same-site")])
        ));
        assert!(!same_origin(
            &Method::POST,
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:9090")
            ])
        ));
        assert!(same_origin(
            &Method::GET,
            &headers(&[host, ("sec-fetch-site", "cross-site")])
        ));
    }

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse_etag(&etag(7)), Some(7));
        assert_eq!(parse_etag("W/\"v3\""), Some(3));
        assert_eq!(parse_etag("\"x3\""), None);
    }

    #[test]
    fn list_queries_parse_into_filters() {
        let q = ListQuery {
            status: Some("qualifie".into()),
            suivi: Some(String::new()),
            urgent: Some("true".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            q: Some(" Côté ".into()),
            cursor: None,
            limit: Some(10),
        };
        let f = LeadFilter::try_from(&q).unwrap();
        assert_eq!(f.status, Some(LeadStatus::Qualifie));
        assert_eq!(f.suivi, None);
        assert_eq!(f.urgent, Some(true));
        assert_eq!(
            f.created_before.unwrap() - f.created_from.unwrap(),
            time::Duration::days(1)
        );
        assert_eq!(f.search.unwrap().as_str(), "Côté");
        assert_eq!(
            q.without_cursor(),
            "status=qualifie&urgent=true&from=2026-12-01&to=2026-12-01&q=C%C3%B4t%C3%A9"
        );
        assert_eq!(q.audit_summary(), "filter=status,urgent,from,to,search");
        assert_eq!(ListQuery::default().audit_summary(), "filter=none");
        assert!(!ListQuery::default().has_empty());
        assert!(
            ListQuery {
                to: Some(" ".into()),
                ..ListQuery::default()
            }
            .has_empty()
        );
        for bad in [
            ListQuery {
                status: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                suivi: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                urgent: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                from: Some("1/12/2026".into()),
                ..ListQuery::default()
            },
            ListQuery {
                cursor: Some("x".into()),
                ..ListQuery::default()
            },
            ListQuery {
                limit: Some(0),
                ..ListQuery::default()
            },
        ] {
            assert!(LeadFilter::try_from(&bad).is_err(), "{bad:?}");
        }
        assert!(erasure_target("514 555 0101", "effacer").is_err());
        assert!(erasure_target("12", "EFFACER").is_err());
        assert_eq!(
            erasure_target("514 555 0101", "EFFACER").unwrap().as_e164(),
            "+15145550101"
        );
        assert!(lead_id("nope").is_err());
    }
}
