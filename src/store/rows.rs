//! What every file of the store shares, importing none of them: [`StoreError`], the [`Store`]
//! trait (leads and calls), calls ([`CallUpdate`], [`CallRecord`]) and leads as rows (`bp.leads` /
//! the SQLite `leads` table), the write operations the outbox keeps, the alerts created with a lead
//! and the erasure keys.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{CallSid, ConversationMode, Language, LeadId, LeadStatus, PhoneNumber};
use crate::qualification::{Address, Description, Field, Lead, PersonName, ServiceType, Turn};

/// Why a store operation failed. Messages never carry caller data (PostgREST's `details`, which
/// quote values, are dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store unreachable: {0}")]
    Unavailable(String),
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store rejected the request: HTTP {status}, code {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("local database: {0}")]
    Local(String),
    /// The local database file, or its file system, refuses writes (read-only): nothing can be
    /// made durable until an operator fixes it.
    #[error("local database is read-only: {0}")]
    ReadOnly(String),
    /// A queued write based on a version another writer has since replaced: never applied.
    #[error("stale: {0}")]
    Stale(String),
    /// A change lost the race to other writers too many times in a row.
    #[error("contended: {0}")]
    Contended(String),
    /// A write about a lead, call or number a Law 25 erasure removed, made before the erasure
    /// (a late or replayed write): refused, never applied, never retried.
    #[error("erased: {0}")]
    Erased(String),
}

impl StoreError {
    /// Worth retrying later: transport failures, timeouts, 5xx, and 408 / 409 / 429.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::Contended(_) => true,
            StoreError::Rejected { status, .. } => {
                *status >= 500 || matches!(status, 408 | 409 | 429)
            }
            StoreError::Corrupt(_)
            | StoreError::Local(_)
            | StoreError::ReadOnly(_)
            | StoreError::Stale(_)
            | StoreError::Erased(_) => false,
        }
    }

    /// The write was refused because what it writes was erased (SQLite's `leads_not_erased`
    /// trigger, PostgreSQL's SQLSTATE `MYR01`).
    pub fn is_erased(&self) -> bool {
        match self {
            StoreError::Erased(_) => true,
            StoreError::Rejected { code, .. } => code == ERASED_SQLSTATE,
            _ => false,
        }
    }

    /// A short label for metrics (bounded cardinality).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Rejected { .. } => "rejected",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Local(_) => "local",
            StoreError::ReadOnly(_) => "read_only",
            StoreError::Contended(_) => "contended",
            StoreError::Stale(_) => "stale",
            StoreError::Erased(_) => "erased",
        }
    }
}

/// The SQLSTATE PostgreSQL raises for a write about something erased (`bp.refuse_erased`).
pub const ERASED_SQLSTATE: &str = "MYR01";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            StoreError::ReadOnly(e.to_string())
        } else if matches!(&e, rusqlite::Error::SqliteFailure(_, Some(message))
            if message.starts_with("myriam_erased:"))
        {
            StoreError::Erased("this lead was erased".to_owned())
        } else {
            StoreError::Local(e.to_string())
        }
    }
}

/// One turn of Vapi's transcript of a bridged call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapiTurn {
    /// `assistant` (Vapi's `bot`) or `caller` (Vapi's `user`).
    pub speaker: String,
    pub text: String,
    /// Milliseconds from the start of the call (`secondsFromStart`), when Vapi gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

/// A partial update of a call, keyed by `call_sid`: `None` leaves a column as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallUpdate {
    pub call_sid: CallSid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<LeadId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ConversationMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// The voicemail's recording (Twilio media URL; needs the account's credentials to fetch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    /// Vapi's recording of a bridged call (`artifact.recording`): a URL at Vapi, never a voicemail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_recording_url: Option<String>,
    /// Vapi's summary of the call (`analysis.summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_summary: Option<String>,
    /// Vapi's structured data of the call (`analysis.structuredData`), as Vapi sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_structured_data: Option<serde_json::Value>,
    /// The call's transcript as turns (`artifact.messages`, bot and user only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_turns: Option<Vec<VapiTurn>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_reason: Option<String>,
    /// The transfer's outcome: `answered`, `busy`, `no-answer`, `failed`, `canceled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_status: Option<String>,
    /// Seconds the caller spent with the office line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_duration: Option<u32>,
    /// The voicemail's recording SID (`RE…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sid: Option<String>,
    /// The voicemail's length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_duration: Option<u32>,
    /// The voicemail recording's status: `in-progress`, `completed`, `absent` (empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_status: Option<String>,
    /// A callback's operator (their e-mail): who asked Twilio to call them and the lead
    /// (`direction = outbound-callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl CallUpdate {
    /// An update that sets nothing yet.
    pub fn new(call_sid: CallSid) -> Self {
        Self {
            call_sid,
            lead_id: None,
            vapi_call_id: None,
            from_number: None,
            to_number: None,
            direction: None,
            mode: None,
            mode_reason: None,
            status: None,
            duration: None,
            recording_url: None,
            vapi_recording_url: None,
            vapi_summary: None,
            vapi_structured_data: None,
            vapi_turns: None,
            transcript: None,
            ended_reason: None,
            dial_status: None,
            dial_duration: None,
            recording_sid: None,
            recording_duration: None,
            recording_status: None,
            operator: None,
        }
    }

    /// Applies `other` over `self`: set columns of `other` win.
    pub fn merge(&mut self, other: &CallUpdate) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f.clone_from(&other.$f); } )* };
        }
        take!(
            lead_id,
            vapi_call_id,
            from_number,
            to_number,
            direction,
            mode,
            mode_reason,
            status,
            duration,
            recording_url,
            vapi_recording_url,
            vapi_summary,
            vapi_structured_data,
            vapi_turns,
            transcript,
            ended_reason,
            dial_status,
            dial_duration,
            recording_sid,
            recording_duration,
            recording_status,
            operator
        );
    }
}

/// A call as stored (`bp.calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: Option<uuid::Uuid>,
    #[serde(flatten)]
    pub fields: CallUpdate,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// Most leads one page returns.
pub const MAX_PAGE: usize = 500;

/// What the gateway needs from storage. Several instances share it, so no write overwrites what
/// it did not read: a lead save is conditional on the version it was read at, an abandonment on
/// the lead being open, a call's creation is insert-or-get by CallSid, and call updates set
/// columns (the status only forward, the lead only once). Replays and Twilio retries are safe.
pub trait Store: Send + Sync {
    /// Saves the lead if the stored row is still at `lead.version` (0: inserts it if absent), and
    /// makes its version one more; [`Saved::Stale`] when someone saved it meanwhile.
    fn save_lead(&self, lead: &Lead) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// `abandonne` unless the lead is already final, as one conditional statement; the lead's
    /// status afterwards (`None`: no such lead).
    fn abandon_lead(
        &self,
        id: LeadId,
    ) -> impl Future<Output = Result<Option<LeadStatus>, StoreError>> + Send;

    /// A call's lead, insert-or-get by `call.call_sid`: creates the call row if missing and, if
    /// it has no lead yet, stores `lead` and points the call at it; otherwise returns the call's
    /// lead and stores nothing of `lead` (a `/twilio/voice` retry on another instance).
    fn start_call(
        &self,
        lead: &Lead,
        call: &CallUpdate,
    ) -> impl Future<Output = Result<Lead, StoreError>> + Send;

    fn get_lead(&self, id: LeadId)
    -> impl Future<Output = Result<Option<Lead>, StoreError>> + Send;

    /// The lead attached to a call.
    fn find_lead_by_call(
        &self,
        call_sid: &CallSid,
    ) -> impl Future<Output = Result<Option<Lead>, StoreError>> + Send;

    /// Creates the call or updates the columns `update` sets.
    fn upsert_call(
        &self,
        update: &CallUpdate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_call(
        &self,
        call_sid: &CallSid,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;

    /// The call a Vapi call id belongs to.
    fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> impl Future<Output = Result<Option<CallRecord>, StoreError>> + Send;

    /// Records that an event (webhook idempotency key) was processed. `true` the first time.
    fn record_event(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn event_processed(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records `key` only when the shared store itself confirms it is new: `Ok(true)` the first
    /// time on any instance, `Ok(false)` once seen, an error when that cannot be known now. Unlike
    /// [`Store::record_event`], a write queued for an unreachable Supabase proves nothing to the
    /// other instances, so it is never taken as "new" (a Media Stream token's single use).
    fn claim_once(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.record_event(key)
    }

    /// A call's status report in one round trip, when this store can (Supabase's
    /// `bp.report_call_status`); `None`: the caller applies it step by step (`Calls::report_status`).
    fn report_status_at_once(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> impl Future<Output = Result<Option<StatusApplied>, StoreError>> + Send {
        let _ = report;
        std::future::ready(Ok(None))
    }

    /// Newest first; `limit` is capped at [`MAX_PAGE`].
    fn list_leads(
        &self,
        limit: usize,
        offset: usize,
    ) -> impl Future<Output = Result<Vec<Lead>, StoreError>> + Send;

    /// Oldest first.
    fn calls_of_lead(
        &self,
        lead_id: LeadId,
    ) -> impl Future<Output = Result<Vec<CallRecord>, StoreError>> + Send;

    /// Reachable and usable (for `/readyz`).
    fn health(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A lead exactly as stored: text columns, `urgence` a boolean, JSON for attempts and conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadRow {
    pub id: LeadId,
    pub nom_complet: Option<String>,
    pub telephone: Option<String>,
    pub telephone_raw: Option<String>,
    pub adresse_complete: Option<String>,
    pub type_service: Option<String>,
    pub description: Option<String>,
    pub urgence: bool,
    pub status: String,
    pub language: String,
    pub offered_phone: Option<String>,
    pub attempts: BTreeMap<Field, u8>,
    pub conversation: Vec<Turn>,
    /// The row's version (`leads.version`). In a [`WriteOp`] it is the version the write is
    /// based on: the write applies only over that version and makes it one more (0: a new lead,
    /// inserted only if absent; queued writes of older gateways have none and count as 0).
    #[serde(default)]
    pub version: u32,
    /// Set by the database; never written.
    #[serde(default, skip_serializing, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

impl From<&Lead> for LeadRow {
    fn from(lead: &Lead) -> Self {
        Self {
            id: lead.id,
            nom_complet: lead.nom_complet.as_ref().map(|n| n.as_str().to_owned()),
            telephone: lead.telephone.as_ref().map(|p| p.as_e164().to_owned()),
            telephone_raw: lead.telephone_raw.clone(),
            adresse_complete: lead
                .adresse_complete
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            type_service: lead.type_service.map(|s| s.slug().to_owned()),
            description: lead.description.as_ref().map(|d| d.as_str().to_owned()),
            urgence: lead.urgence.unwrap_or(false),
            status: lead.status.as_str().to_owned(),
            language: lead.language.as_str().to_owned(),
            offered_phone: lead.offered_phone.as_ref().map(|p| p.as_e164().to_owned()),
            attempts: lead.attempts.clone(),
            conversation: lead.conversation.clone(),
            version: lead.version,
            created_at: lead.created_at,
            updated_at: lead.updated_at,
        }
    }
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(format!("leads.{column} does not parse"))
}

impl TryFrom<LeadRow> for Lead {
    type Error = StoreError;

    /// Stored values are parsed again: a row edited by hand that breaks a rule is reported, not used.
    fn try_from(row: LeadRow) -> Result<Self, Self::Error> {
        let phone = |v: Option<String>, column: &str| -> Result<Option<PhoneNumber>, StoreError> {
            v.map(|s| PhoneNumber::try_from(s.as_str()).map_err(|_| corrupt(column)))
                .transpose()
        };
        let status = LeadStatus::try_from(row.status.as_str()).map_err(|_| corrupt("status"))?;
        Ok(Lead {
            id: row.id,
            nom_complet: row
                .nom_complet
                .map(|s| PersonName::from_stored(&s).ok_or_else(|| corrupt("nom_complet")))
                .transpose()?,
            telephone: phone(row.telephone, "telephone")?,
            telephone_raw: row.telephone_raw,
            adresse_complete: row.adresse_complete.map(|s| Address::from_stored(&s)),
            type_service: row
                .type_service
                .map(|s| ServiceType::from_slug(&s).ok_or_else(|| corrupt("type_service")))
                .transpose()?,
            description: row
                .description
                .map(|s| Description::try_from(s.as_str()).map_err(|_| corrupt("description")))
                .transpose()?,
            // The sixth answer is the last: it was given exactly when the lead is qualified.
            urgence: (status == LeadStatus::Qualifie).then_some(row.urgence),
            status,
            language: Language::try_from(row.language.as_str())
                .map_err(|()| corrupt("language"))?,
            offered_phone: phone(row.offered_phone, "offered_phone")?,
            attempts: row.attempts,
            conversation: row.conversation,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A write, as the outbox keeps it until Supabase accepts it. Lead writes are operations that
/// never overwrite a newer version: a lead save is conditional on the version it was based on,
/// an abandonment on the lead still being open, a call's creation is insert-or-get by CallSid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "data", rename_all = "snake_case")]
pub enum WriteOp {
    /// The lead as changed from `version` (see [`LeadRow::version`]).
    #[serde(alias = "upsert_lead")]
    SaveLead(LeadRow),
    UpsertCall(CallUpdate),
    RecordEvent {
        key: String,
    },
    /// A lead save that also creates alerts (the write that qualifies an urgent lead): both or
    /// neither.
    #[serde(alias = "upsert_lead_with_alerts")]
    SaveLeadWithAlerts {
        lead: LeadRow,
        alerts: Vec<NewAlert>,
    },
    /// `abandonne` unless the lead is already final: one conditional statement.
    AbandonLead {
        id: LeadId,
    },
    /// A call's first lead, keyed by CallSid: the lead is created only if the call has none.
    StartCall {
        lead: LeadRow,
        call: Box<CallUpdate>,
    },
    /// `abandonne` unless final, for the lead of a call this instance could not find (the call's
    /// end reached it while Supabase was unreachable, or before the instance that started the
    /// call had replayed its start): replayed once the call has its lead.
    AbandonCallLead {
        call_sid: CallSid,
    },
}

impl WriteOp {
    /// What the write is about, for reads that must see pending writes: `lead:<id>`, `call:<sid>`,
    /// `event:<key>`. The lead of a lead-and-alerts write or of a call's start is its entity.
    pub fn entity(&self) -> String {
        match self {
            WriteOp::SaveLead(row)
            | WriteOp::SaveLeadWithAlerts { lead: row, .. }
            | WriteOp::StartCall { lead: row, .. } => format!("lead:{}", row.id),
            WriteOp::AbandonLead { id } => format!("lead:{id}"),
            WriteOp::UpsertCall(update) => format!("call:{}", update.call_sid),
            WriteOp::AbandonCallLead { call_sid } => format!("call:{call_sid}"),
            WriteOp::RecordEvent { key } => format!("event:{key}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::SaveLead(_) => "save_lead",
            WriteOp::UpsertCall(_) => "upsert_call",
            WriteOp::RecordEvent { .. } => "record_event",
            WriteOp::SaveLeadWithAlerts { .. } => "save_lead_with_alerts",
            WriteOp::AbandonLead { .. } => "abandon_lead",
            WriteOp::StartCall { .. } => "start_call",
            WriteOp::AbandonCallLead { .. } => "abandon_call_lead",
        }
    }
}

/// A call's status report to apply at once ([`Store::report_status_at_once`]): the call's
/// columns (its status included), the report's idempotency key, and whether it ends the call.
#[derive(Debug, Clone)]
pub struct StatusAtOnce<'a> {
    pub update: &'a CallUpdate,
    pub idempotency_key: Option<&'a str>,
    pub ends_call: bool,
    pub from_bridged_side: bool,
}

/// What a status report applied at once did (`bp.report_call_status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StatusApplied {
    /// The idempotency key was seen before: nothing was applied.
    #[serde(default)]
    pub duplicate: bool,
    /// The report ended the call (see `Calls::report_status` for when it does not).
    #[serde(default)]
    pub ends: bool,
    /// This report is the call's first end, on any instance.
    #[serde(default)]
    pub first_end: bool,
    /// The call's lead, when the call has one.
    #[serde(default)]
    pub lead_id: Option<LeadId>,
    /// The lead's status after the report (ended calls only).
    #[serde(default)]
    pub lead_status: Option<LeadStatus>,
    /// The call's mode before the report.
    #[serde(default)]
    pub mode: Option<crate::domain::ConversationMode>,
}

/// Whether a conditional write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Applied (or, through the outbox, durably queued).
    Applied,
    /// The stored row is no longer the version the write was based on: re-read and re-apply.
    Stale,
}

/// The lead a pending write leaves, applied over `lead` (the lead before it, if known): what
/// reads see of this instance's queued writes.
pub(super) fn overlay(lead: Option<Lead>, op: &WriteOp) -> Result<Option<Lead>, StoreError> {
    Ok(match op {
        WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. } => {
            let mut saved = Lead::try_from(row.clone())?;
            saved.version = row.version + 1;
            Some(saved)
        }
        WriteOp::StartCall { lead: row, .. } => {
            if let Some(existing) = lead {
                Some(existing)
            } else {
                let mut saved = Lead::try_from(row.clone())?;
                saved.version = 1;
                Some(saved)
            }
        }
        WriteOp::AbandonLead { .. } => lead.map(|mut lead| {
            if !lead.status.is_final() {
                lead.status = LeadStatus::Abandonne;
                lead.version += 1;
            }
            lead
        }),
        WriteOp::UpsertCall(_) | WriteOp::RecordEvent { .. } | WriteOp::AbandonCallLead { .. } => {
            lead
        }
    })
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The lead became qualified (urgent, or any with `ALERT_ON=all`).
    Qualified,
    /// An urgent caller left a voicemail after hours.
    Voicemail,
    /// The caller's own confirmation of their qualified request (`CALLER_SMS=1`), to the number
    /// they confirmed on the call.
    Confirmation,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Qualified => "qualified",
            AlertEvent::Voicemail => "voicemail",
            AlertEvent::Confirmation => "confirmation",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "qualified" => Ok(AlertEvent::Qualified),
            "voicemail" => Ok(AlertEvent::Voicemail),
            "confirmation" => Ok(AlertEvent::Confirmation),
            _ => Err(StoreError::Corrupt("alerts.event".to_owned())),
        }
    }
}

/// An alert to create with a lead write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAlert {
    pub id: uuid::Uuid,
    pub lead_id: LeadId,
    pub event: AlertEvent,
    /// E.164.
    pub recipient: String,
}

impl NewAlert {
    pub fn new(lead_id: LeadId, event: AlertEvent, recipient: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            lead_id,
            event,
            recipient: recipient.to_owned(),
        }
    }
}

/// SHA-256 of `value`, hex.
/// An instant as RFC 3339 text (PostgREST filters and bodies).
pub(in crate::store) fn rfc3339(at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Local(e.to_string()))
}

fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The tombstone of an erased number: `number:` and the SHA-256 of its E.164 form.
pub fn number_key(e164: &str) -> String {
    format!("number:{}", sha256_hex(e164))
}

/// The tombstone of an erased call: `call:` and the SHA-256 of its CallSid.
pub fn call_key(sid: &str) -> String {
    format!("call:{}", sha256_hex(sid))
}

/// The tombstone of an erased lead: its id (random, not personal data).
pub fn lead_key(id: LeadId) -> String {
    format!("lead:{id}")
}

/// A CallSid inside an event key (`twilio:CA…:status:completed`, `call-ended:CA…`).
fn sids_in(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| CallSid::try_from(*part).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Every tombstone a queued write would bring back: the lead it writes, the numbers it carries,
/// the calls it names.
pub fn erased_keys(op: &WriteOp) -> Vec<String> {
    let mut keys = Vec::new();
    let number = |value: Option<&String>, keys: &mut Vec<String>| {
        if let Some(phone) = value.and_then(|v| PhoneNumber::try_from(v.as_str()).ok()) {
            keys.push(number_key(phone.as_e164()));
        }
    };
    match op {
        WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. } => {
            keys.push(lead_key(row.id));
            number(row.telephone.as_ref(), &mut keys);
            number(row.offered_phone.as_ref(), &mut keys);
        }
        WriteOp::StartCall { lead, call } => {
            keys.push(lead_key(lead.id));
            number(lead.telephone.as_ref(), &mut keys);
            number(lead.offered_phone.as_ref(), &mut keys);
            number(call.from_number.as_ref(), &mut keys);
            keys.push(call_key(call.call_sid.as_str()));
        }
        WriteOp::UpsertCall(call) => {
            keys.push(call_key(call.call_sid.as_str()));
            number(call.from_number.as_ref(), &mut keys);
            if let Some(id) = call.lead_id {
                keys.push(lead_key(id));
            }
        }
        WriteOp::AbandonLead { id } => keys.push(lead_key(*id)),
        WriteOp::AbandonCallLead { call_sid } => keys.push(call_key(call_sid.as_str())),
        WriteOp::RecordEvent { key } => keys.extend(sids_in(key).iter().map(|s| call_key(s))),
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod erased_tests {
    use super::*;

    #[test]
    fn keys_are_hashed_and_stable() {
        let key = number_key("+15145550101");
        assert!(key.starts_with("number:"));
        assert_eq!(key.len(), "number:".len() + 64);
        assert!(!key.contains("5145550101"));
        assert_eq!(key, number_key("+15145550101"));
        assert_ne!(key, number_key("+15145550102"));
    }

    #[test]
    fn event_keys_name_their_call() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let op = WriteOp::RecordEvent {
            key: format!("twilio:{sid}:status:completed"),
        };
        assert_eq!(erased_keys(&op), vec![call_key(sid)]);
    }
}
