//! Where leads and calls live.
//!
//! - [`Store`]: what the gateway needs from storage.
//! - [`SqliteStore`](sqlite::SqliteStore): the embedded default (`DATABASE_PATH`, WAL), run on a
//!   dedicated thread so blocking calls never touch the async runtime's workers.
//! - [`SupabaseStore`](supabase::SupabaseStore): PostgREST through the `postgrest` crate, schema `bp`.
//! - [`OutboxStore`](outbox::OutboxStore): Supabase behind a durable local outbox: a write that
//!   fails or misses its deadline is committed to SQLite before the caller is answered, and replayed
//!   in order until Supabase accepts it.
//! - [`AnyStore`]: the one chosen by `STORE=auto|sqlite|supabase`.

/// Delegates to the configured store and times the operation
/// (`myriam_store_operation_duration_seconds{operation,result}`).
macro_rules! delegate {
    ($self:ident, $op:literal, $s:ident => $e:expr) => {{
        let started = std::time::Instant::now();
        let result = match $self {
            AnyStore::Sqlite($s) => $e.await,
            AnyStore::Supabase($s) => $e.await,
        };
        crate::metrics::store_operation($op, started, result.is_ok());
        result
    }};
}

pub mod alerts;
pub mod console;
pub mod erasures;
pub mod outbox;
mod rows;
pub mod sqlite;
pub mod stats;
pub mod supabase;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{Settings, StoreKind};
use crate::domain::{CallSid, ConversationMode, LeadId, LeadStatus};
use crate::qualification::Lead;
pub use alerts::{AlertOutcome, AlertRecord, AlertStatus, Alerts};
pub use erasures::{
    RemoteErasure, RemoteErasures, RemoteOutcome, RemoteService, RemoteStatus, RemoteTarget,
};
pub use rows::{AlertEvent, NewAlert};
pub use rows::{LeadRow, Saved, StatusApplied, StatusAtOnce, WriteOp};

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

/// The store chosen at startup.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Supabase(outbox::OutboxStore),
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("STORE=supabase needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")]
    SupabaseNotConfigured,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AnyStore {
    /// `STORE=auto`: Supabase when its URL and key are set, else SQLite at `DATABASE_PATH`.
    pub fn open(settings: &Settings) -> Result<Self, OpenError> {
        let store = &settings.store;
        let supabase = match (&store.supabase_url, &store.supabase_service_role_key) {
            (Some(url), Some(key)) => Some((url, key)),
            _ => None,
        };
        match (store.kind, supabase) {
            (StoreKind::Sqlite, _) | (StoreKind::Auto, None) => Ok(AnyStore::Sqlite(
                sqlite::SqliteStore::open(&store.database_path)?,
            )),
            (StoreKind::Supabase, None) => Err(OpenError::SupabaseNotConfigured),
            (StoreKind::Supabase | StoreKind::Auto, Some((url, key))) => {
                let remote = supabase::SupabaseStore::new(
                    url.as_str(),
                    key,
                    &store.supabase_schema,
                    supabase::DEFAULT_TIMEOUT,
                );
                let local = sqlite::SqliteStore::open(&store.database_path)?;
                Ok(AnyStore::Supabase(outbox::OutboxStore::new(
                    remote,
                    local,
                    outbox::OutboxConfig::default(),
                )))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Supabase(_) => "supabase",
        }
    }
}

impl Store for AnyStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        delegate!(self, "save_lead", s => s.save_lead(lead))
    }
    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        delegate!(self, "abandon_lead", s => s.abandon_lead(id))
    }
    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        delegate!(self, "start_call", s => s.start_call(lead, call))
    }
    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        delegate!(self, "get_lead", s => s.get_lead(id))
    }
    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        delegate!(self, "find_lead_by_call", s => s.find_lead_by_call(call_sid))
    }
    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        delegate!(self, "upsert_call", s => s.upsert_call(update))
    }
    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        delegate!(self, "get_call", s => s.get_call(call_sid))
    }
    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        delegate!(self, "find_call_by_vapi_id", s => s.find_call_by_vapi_id(vapi_call_id))
    }
    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "record_event", s => s.record_event(key))
    }
    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "event_processed", s => s.event_processed(key))
    }
    async fn claim_once(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "claim_once", s => s.claim_once(key))
    }
    async fn report_status_at_once(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> Result<Option<StatusApplied>, StoreError> {
        delegate!(self, "report_status_at_once", s => s.report_status_at_once(report))
    }
    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        delegate!(self, "list_leads", s => s.list_leads(limit, offset))
    }
    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        delegate!(self, "calls_of_lead", s => s.calls_of_lead(lead_id))
    }
    async fn health(&self) -> Result<(), StoreError> {
        delegate!(self, "health", s => s.health())
    }
}

#[derive(Debug, serde::Serialize)]
pub struct StoreHealth {
    pub kind: &'static str,
    /// Writes can be made durable (SQLite, or the outbox in front of Supabase).
    pub ok: bool,
    /// Why not, as an error kind (`unavailable`, `timeout`, `rejected`, `read_only` …); never
    /// caller data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// With Supabase: whether it answers, and how many writes wait in the outbox. An unreachable
    /// Supabase does not make the instance unready (writes queue durably); one that refuses this
    /// instance for good does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supabase: Option<RemoteHealth>,
}

#[derive(Debug, serde::Serialize)]
pub struct RemoteHealth {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub outbox_depth: Option<usize>,
    /// Age in seconds of the oldest write waiting for Supabase.
    pub outbox_oldest_age_secs: Option<u64>,
    /// `READYZ_MAX_OUTBOX_AGE_SECS`: past it the instance reports unready.
    pub outbox_max_age_secs: u64,
    /// The outbox has been stuck longer than the bound.
    pub outbox_stale: bool,
    /// Supabase refuses this instance for good (401, 403, 404: a rotated key, a revoked grant, a
    /// dropped table): the instance is unready until a write goes through again.
    pub refusing: bool,
}

impl StoreHealth {
    /// Writes can be made durable, the outbox is not stuck and Supabase does not refuse us.
    pub fn ready(&self) -> bool {
        self.ok
            && !self
                .supabase
                .as_ref()
                .is_some_and(|s| s.outbox_stale || s.refusing)
    }
}

impl AnyStore {
    /// `abandonne` unless final, for the lead of the call `sid`, found by the store rather than
    /// by this instance: with Supabase, the lead another instance started (queued until Supabase
    /// knows it). For a call's end that this instance could not match to a lead.
    pub async fn abandon_call_lead(&self, sid: &CallSid) -> Result<(), StoreError> {
        delegate!(self, "abandon_call_lead", s => s.abandon_call_lead(sid))
    }

    /// What `/readyz` reports of the store: whether writes can be made durable, and with Supabase
    /// whether it answers and how old the outbox's oldest write is (`max_outbox_age` is
    /// `READYZ_MAX_OUTBOX_AGE_SECS`: past it the instance is unready).
    pub async fn readiness(&self, max_outbox_age: std::time::Duration) -> StoreHealth {
        // A real durable write (the SQLite probe row): a full disk or a read-only file fails it.
        let health = self.health().await;
        if let Err(error) = &health {
            tracing::warn!(%error, "store not ready");
        }
        let supabase = match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Supabase(outbox) => {
                let remote = outbox.remote_health().await;
                let oldest = outbox.oldest_age().await.ok().flatten();
                let too_old = oldest.is_some_and(|age| age > max_outbox_age);
                if too_old {
                    tracing::warn!(
                        max_age_secs = max_outbox_age.as_secs(),
                        "outbox older than READYZ_MAX_OUTBOX_AGE_SECS; reporting unready"
                    );
                }
                Some(RemoteHealth {
                    ok: remote.is_ok(),
                    error: remote.err().map(|e| e.kind()),
                    outbox_depth: outbox.depth().await.ok(),
                    outbox_oldest_age_secs: oldest.map(|a| a.as_secs()),
                    outbox_max_age_secs: max_outbox_age.as_secs(),
                    outbox_stale: too_old,
                    refusing: outbox.refusing(),
                })
            }
        };
        StoreHealth {
            kind: self.kind(),
            ok: health.is_ok(),
            error: health.err().map(|e| e.kind()),
            supabase,
        }
    }
}
