//! [`AnyStore`]: the store `STORE=auto|sqlite|supabase` chooses, timing every operation, and what
//! `/readyz` reports of it.

use crate::config::{Settings, StoreKind};
use crate::domain::CallSid;

use super::outbox;
use super::rows::{Store as _, StoreError};
use super::sqlite;
use super::supabase;

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
