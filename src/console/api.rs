//! The JSON API `/api/v1`: the console's operations for programs. Authenticated by
//! `Authorization: Bearer <API token>` or the session cookie plus `X-CSRF-Token` on writes; errors
//! are `application/problem+json`; a follow-up change names the version it read in `If-Match`
//! (412 when someone changed the lead since, 428 without it). The `OpenAPI` 3.1 document is generated
//! from these handlers' annotations ([`ApiDoc`]) and served at `/api/openapi.json`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::auth::ApiUser;
use super::erasure::erase_and_audit;
use super::error::{ApiError, ConsoleError, Problem};
use super::etag::{etag, parse_etag};
use super::export;
use super::query::{ListQuery, erasure_target, lead_id};
use super::state::ConsoleState;
use crate::operators;
use crate::qualification::{Lead, Speaker};
use crate::store::console::{
    AuditAction, ConsoleStore, FollowUp, FollowUpChange, FollowUpState, LeadFilter, MAX_LIST, Note,
    SearchTerm,
};
use crate::store::{CallRecord, Store};

/// A query string axum could not read, as a 400 problem.
///
/// The API is strict where the pages' forms are lenient: an empty parameter is refused.
fn query(q: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, ConsoleError> {
    let Query(q) = q.map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
    if q.has_empty() {
        return Err(ConsoleError::BadRequest(
            "a parameter is empty: leave it out instead".to_owned(),
        ));
    }
    if q.q
        .as_deref()
        .is_some_and(|v| v.chars().count() > SearchTerm::MAX_CHARS)
    {
        return Err(ConsoleError::BadRequest(
            "q is at most 100 characters".to_owned(),
        ));
    }
    if q.limit.is_some_and(|n| n > MAX_LIST) {
        return Err(ConsoleError::BadRequest("limit is 1 to 200".to_owned()));
    }
    Ok(q)
}

/// A JSON body axum could not read, as a 400 problem.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ConsoleError> {
    b.map(|Json(b)| b)
        .map_err(|e| ConsoleError::BadRequest(e.body_text()))
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// A lead as the list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadSummary {
    pub id: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub nom_complet: Option<String>,
    /// E.164.
    pub telephone: Option<String>,
    pub adresse_complete: Option<String>,
    pub type_service: Option<String>,
    pub description: Option<String>,
    /// `null` until the caller answered.
    pub urgence: Option<bool>,
    /// The machine's status: `nouveau`, `en_cours`, `qualifie`, `abandonne`.
    pub status: String,
    pub language: String,
    /// The staff's follow-up: nouveau, contacte, planifie, termine, perdu.
    pub suivi: String,
    pub suivi_note: Option<String>,
    /// The follow-up's version: the `ETag` is `"v<version>"`.
    pub version: i64,
}

impl LeadSummary {
    fn new(lead: &Lead, follow_up: &FollowUpState) -> Self {
        Self {
            id: lead.id.to_string(),
            created_at: rfc3339(lead.created_at),
            updated_at: rfc3339(lead.updated_at),
            nom_complet: lead.nom_complet.as_ref().map(|v| v.as_str().to_owned()),
            telephone: lead.telephone.as_ref().map(|v| v.as_e164().to_owned()),
            adresse_complete: lead
                .adresse_complete
                .as_ref()
                .map(|v| v.as_str().to_owned()),
            type_service: lead.type_service.map(|s| s.slug().to_owned()),
            description: lead.description.as_ref().map(|v| v.as_str().to_owned()),
            urgence: lead.urgence,
            status: lead.status.as_str().to_owned(),
            language: lead.language.as_str().to_owned(),
            suivi: follow_up.suivi.as_str().to_owned(),
            suivi_note: follow_up.note.clone(),
            version: follow_up.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadList {
    pub leads: Vec<LeadSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    /// `caller` or `myriam`.
    pub speaker: String,
    pub field: Option<String>,
    pub text: String,
    pub accepted: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub call_sid: String,
    pub created_at: Option<String>,
    /// `bridge` or `ivr`.
    pub mode: Option<String>,
    pub mode_reason: Option<String>,
    pub status: Option<String>,
    pub duration: Option<u32>,
    pub ended_reason: Option<String>,
    /// A voicemail exists (its Twilio URL needs the account's credentials: never exposed; the
    /// console plays it through `/console/calls/{call_sid}/recording`).
    pub has_recording: bool,
    /// Vapi's recording of a bridged call (a URL at Vapi), not a voicemail.
    pub vapi_recording_url: Option<String>,
    pub transcript: Option<String>,
    /// Vapi's summary of a bridged call (end-of-call report).
    pub vapi_summary: Option<String>,
    /// Vapi's structured data of a bridged call, as Vapi sent it (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub vapi_structured_data: Option<serde_json::Value>,
    /// Vapi's transcript of a bridged call as turns (empty when Vapi sent none).
    pub vapi_turns: Vec<VapiTurnView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VapiTurnView {
    /// `assistant` or `caller`.
    pub speaker: String,
    pub text: String,
    /// Milliseconds from the start of the call.
    pub at_ms: Option<u64>,
}

impl From<&CallRecord> for CallView {
    fn from(c: &CallRecord) -> Self {
        let f = &c.fields;
        Self {
            call_sid: f.call_sid.as_str().to_owned(),
            created_at: rfc3339(c.created_at),
            mode: f.mode.map(|m| m.as_str().to_owned()),
            mode_reason: f.mode_reason.clone(),
            status: f.status.clone(),
            duration: f.duration,
            ended_reason: f.ended_reason.clone(),
            has_recording: f.recording_url.is_some(),
            vapi_recording_url: f.vapi_recording_url.clone(),
            transcript: f.transcript.clone(),
            vapi_summary: f.vapi_summary.clone(),
            vapi_structured_data: f.vapi_structured_data.clone(),
            vapi_turns: f
                .vapi_turns
                .iter()
                .flatten()
                .map(|t| VapiTurnView {
                    speaker: t.speaker.clone(),
                    text: t.text.clone(),
                    at_ms: t.at_ms,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadDetail {
    pub lead: LeadSummary,
    pub conversation: Vec<TurnView>,
    pub calls: Vec<CallView>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FollowUpRequest {
    /// nouveau, contacte, planifie, termine or perdu.
    #[schema(pattern = "^(nouveau|contacte|planifie|termine|perdu)$")]
    pub suivi: String,
    /// At most 2000 characters; absent or empty clears the note.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ErasureRequest {
    /// The caller's phone number, E.164 (other North American layouts are accepted too).
    #[schema(pattern = "^\\+1[2-9][0-9]{2}[2-9][0-9]{6}$")]
    pub phone: String,
    /// Must be `EFFACER`.
    #[schema(pattern = "^EFFACER$")]
    pub confirm: String,
}

impl std::fmt::Debug for ErasureRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureRequest")
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureResult {
    /// The erasure's id: `GET /console/erasures/{id}` shows its remote deletions.
    pub erasure_id: String,
    pub lead_ids: Vec<String>,
    pub calls: usize,
    pub events: usize,
    pub outbox: usize,
    pub dead_letters: usize,
    /// SMS alerts about the caller whose rows were deleted.
    pub alerts: usize,
    /// SMS alerts delivered to staff phones: their text stays there (not erasable by the gateway).
    pub sms_on_staff_phones: usize,
    /// The deletions at Twilio and Vapi and where each stands.
    pub remote: Vec<RemoteDeletion>,
}

/// One deletion at Twilio or Vapi.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemoteDeletion {
    /// `twilio_recording`, `twilio_call`, `twilio_message` or `vapi_call`.
    pub service: String,
    /// The SID or Vapi call id.
    pub remote_id: String,
    /// `done` (deleted or already gone), `pending` (retried automatically), `dead` (refused for
    /// good: to delete by hand).
    pub status: String,
    pub error: Option<String>,
}

/// List leads, newest first, with filters and a cursor.
#[utoipa::path(get, path = "/api/v1/leads", params(ListQuery), tag = "leads",
    responses(
        (status = 200, description = "A page of leads", body = LeadList),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests with this token (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn list_leads(
    State(console): State<ConsoleState>,
    _user: ApiUser,
    raw: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<LeadList>, ApiError> {
    let filter = LeadFilter::try_from(&query(raw)?)?;
    let page = console.store.search_leads(&filter).await?;
    Ok(Json(LeadList {
        leads: page
            .leads
            .iter()
            .map(|l| LeadSummary::new(&l.lead, &l.follow_up))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// One lead: its fields, follow-up, conversation and calls. The `ETag` is its follow-up version.
#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads",
    params(("id" = String, Path, description = "The lead's id (UUID)")),
    responses(
        (status = 200, description = "The lead", body = LeadDetail,
            headers(("ETag" = String, description = "The follow-up version, for If-Match"))),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests with this token (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such lead", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn get_lead(
    State(console): State<ConsoleState>,
    _user: ApiUser,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = lead_id(&raw)?;
    let lead = console
        .store
        .get_lead(id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let follow_up = console.store.follow_up(id).await?.unwrap_or_default();
    let calls = console.store.calls_of_lead(id).await?;
    let detail = LeadDetail {
        lead: LeadSummary::new(&lead, &follow_up),
        conversation: lead
            .conversation
            .iter()
            .map(|t| TurnView {
                speaker: match t.speaker {
                    Speaker::Caller => "caller",
                    Speaker::Myriam => "myriam",
                }
                .to_owned(),
                field: t.field.map(|f| f.as_str().to_owned()),
                text: t.text.clone(),
                accepted: t.accepted,
            })
            .collect(),
        calls: calls.iter().map(CallView::from).collect(),
    };
    Ok(with_etag(Json(detail).into_response(), follow_up.version))
}

/// Change a lead's follow-up. `If-Match` must carry the `ETag` read; a lead changed since is
/// refused with 412 and its current version.
#[utoipa::path(put, path = "/api/v1/leads/{id}/suivi", tag = "leads",
    params(
        ("id" = String, Path, description = "The lead's id (UUID)"),
        ("If-Match" = String, Header, description = "The lead's ETag, e.g. \"v0\"", pattern = "^\"v[0-9]{1,15}\"$"),
        ("X-CSRF-Token" = Option<String>, Header, description = "Required with the session cookie"),
    ),
    request_body = FollowUpRequest,
    responses(
        (status = 200, description = "Changed", body = LeadSummary,
            headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Invalid follow-up or note", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests with this token (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "CSRF token missing with the cookie", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such lead", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed by someone else since", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn change_follow_up(
    State(console): State<ConsoleState>,
    user: ApiUser,
    Path(raw): Path<String>,
    headers: HeaderMap,
    request: Result<Json<FollowUpRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = lead_id(&raw)?;
    let request = body(request)?;
    let expected = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_etag)
        .ok_or(ConsoleError::PreconditionRequired)?;
    let suivi = FollowUp::try_from(request.suivi.as_str())
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    let note = request
        .note
        .as_deref()
        .map(Note::try_from)
        .transpose()
        .map_err(|e| ConsoleError::BadRequest(e.to_string()))?
        .filter(|n| !n.as_str().is_empty());
    let lead = console
        .store
        .get_lead(id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    match console
        .store
        .change_follow_up(id, expected, suivi, note.as_ref(), &user.principal.actor)
        .await?
    {
        FollowUpChange::Applied(state) => {
            operators::audit_by(
                &console.store,
                &user.principal,
                AuditAction::FollowUpChanged,
                Some(id.to_string()),
                Some(format!(
                    "suivi={} version={}",
                    suivi.as_str(),
                    state.version
                )),
            )
            .await;
            let body = Json(LeadSummary::new(&lead, &state)).into_response();
            Ok(with_etag(body, state.version))
        }
        FollowUpChange::Stale(state) => Err(ConsoleError::Stale(state).into()),
        FollowUpChange::NotFound => Err(ConsoleError::NotFound.into()),
    }
}

/// The current filter as CSV (UTF-8 with BOM, `;`, French headers).
#[utoipa::path(get, path = "/api/v1/leads/export.csv", params(ListQuery), tag = "leads",
    responses(
        (status = 200, description = "CSV", body = String, content_type = "text/csv"),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests with this token (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn export(
    State(console): State<ConsoleState>,
    user: ApiUser,
    raw: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query(raw)?;
    let filter = LeadFilter::try_from(&query)?;
    let leads = export::all_leads(&console.store, &filter).await?;
    operators::audit_by(
        &console.store,
        &user.principal,
        AuditAction::Export,
        None,
        Some(format!("rows={} {}", leads.len(), query.audit_summary())),
    )
    .await;
    Ok(export::download(&leads))
}

/// Erase a caller (Québec Law 25): every lead, call, processed event, queued write and dead
/// letter of the number. Administrators only.
#[utoipa::path(post, path = "/api/v1/erasures", tag = "privacy",
    params(("X-CSRF-Token" = Option<String>, Header, description = "Required with the session cookie")),
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Erased", body = ErasureResult),
        (status = 400, description = "Invalid number or confirmation", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests with this token (see Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator, or CSRF token missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn erase(
    State(console): State<ConsoleState>,
    user: ApiUser,
    request: Result<Json<ErasureRequest>, JsonRejection>,
) -> Result<Json<ErasureResult>, ApiError> {
    user.require_admin()?;
    let request = body(request)?;
    let phone = erasure_target(&request.phone, &request.confirm)?;
    let report = erase_and_audit(&console, &user.principal, &phone).await?;
    let e = &report.erasure;
    Ok(Json(ErasureResult {
        erasure_id: e.id.to_string(),
        calls: e.calls,
        events: e.events,
        outbox: e.outbox,
        dead_letters: e.dead_letters,
        alerts: e.alerts,
        sms_on_staff_phones: e.sms_sent,
        remote: report
            .remote
            .iter()
            .map(|r| RemoteDeletion {
                service: r.service.as_str().to_owned(),
                remote_id: r.remote_id.clone(),
                status: match r.status {
                    crate::store::RemoteStatus::Done => "done",
                    crate::store::RemoteStatus::Pending | crate::store::RemoteStatus::Claimed => {
                        "pending"
                    }
                    crate::store::RemoteStatus::Dead => "dead",
                }
                .to_owned(),
                error: r.last_error.clone(),
            })
            .collect(),
        lead_ids: report.lead_ids,
    }))
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from `myriam operator token create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "myriam_session",
                "The console's session (`__Host-myriam_session` in production); writes also \
                 need the `x-csrf-token` header",
            ))),
        );
    }
}

/// The `OpenAPI` document, generated from the handlers above.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Myriam console API", version = "1",
        description = "Leads of BP Émondage's call gateway: list, detail, follow-up, export, erasure."),
    paths(list_leads, get_lead, change_follow_up, export, erase, super::dashboard::stats_api),
    components(schemas(LeadSummary, LeadList, LeadDetail, TurnView, CallView, VapiTurnView, FollowUpRequest,
        ErasureRequest, ErasureResult, RemoteDeletion, Problem)),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(_) => ApiError(ConsoleError::BadRequest("unavailable".to_owned())).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc: serde_json::Value =
            serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/leads",
            "/api/v1/leads/{id}",
            "/api/v1/leads/{id}/suivi",
            "/api/v1/leads/export.csv",
            "/api/v1/erasures",
            "/api/v1/stats",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
