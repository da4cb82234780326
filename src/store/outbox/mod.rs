//! Supabase behind a durable local outbox.
//!
//! A write goes straight to Supabase when nothing is queued. If Supabase fails transiently or
//! misses the deadline, the write is committed to the SQLite `outbox` table *before* the caller is
//! answered; from then on every write queues behind it, so the order Supabase sees is the order the
//! gateway acknowledged. A worker replays the queue in order with exponential back-off (0.5 s to
//! 8 s, with jitter) until each write is accepted. A write Supabase rejects as permanently invalid
//! (4xx other than 408/409/429) goes to `dead_letters`, is logged as an error and counted: never
//! retried forever, never dropped silently. Reads see this instance's pending writes.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

use super::rows::WriteOp;
use super::sqlite::SqliteStore;
use super::supabase::SupabaseStore;
use super::{Store, StoreError};
use crate::locks::KeyedLocks;
use crate::qualification::Lead;

mod queue;
mod store;
mod worker;

/// A write Supabase keeps answering 409 (a conflict, or a call whose lead never arrived) is
/// dead-lettered after this many attempts instead of blocking the queue for ever. Unreachability
/// and 5xx are retried without limit.
pub const MAX_CONFLICT_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone, Copy)]
pub struct OutboxConfig {
    /// How long a direct write may take before it is queued instead.
    pub write_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            write_deadline: Duration::from_secs(2),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// A write Supabase refused for good.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub seq: i64,
    pub op: WriteOp,
    pub attempts: u32,
    pub error: String,
}

#[derive(Debug)]
struct Inner {
    remote: SupabaseStore,
    local: SqliteStore,
    config: OutboxConfig,
    wake: Notify,
    /// One write per entity at a time: a write never overtakes an earlier one of the same lead,
    /// call or event, while writes of different entities go to Supabase concurrently.
    entity_locks: KeyedLocks,
    /// The worker and `flush` never replay at the same time.
    replay: Mutex<()>,
}

/// Supabase with a durable outbox in front. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboxStore {
    inner: Arc<Inner>,
}

struct Pending {
    seq: i64,
    op: WriteOp,
    attempts: u32,
}

fn decode(op: &str) -> Result<WriteOp, StoreError> {
    serde_json::from_str(op).map_err(|_| StoreError::Corrupt("outbox entry".to_owned()))
}

/// `base * 2^attempt`, capped, with ±25 % jitter so instances do not retry in step.
pub fn backoff(config: &OutboxConfig, attempt: u32) -> Duration {
    let exp = config
        .min_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(config.max_backoff);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // 0.75 ..= 1.25
    #[allow(clippy::cast_precision_loss)]
    let factor = 0.75 + (random % 1001) as f64 / 2000.0;
    exp.mul_f64(factor).min(config.max_backoff)
}

impl OutboxStore {
    pub fn new(remote: SupabaseStore, local: SqliteStore, config: OutboxConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                remote,
                local,
                config,
                wake: Notify::new(),
                entity_locks: KeyedLocks::default(),
                replay: Mutex::new(()),
            }),
        }
    }

    pub fn remote(&self) -> &SupabaseStore {
        &self.inner.remote
    }

    /// The local SQLite file (outbox, dead letters, mirror).
    pub(in crate::store) fn local(&self) -> &SqliteStore {
        &self.inner.local
    }

    /// Whether Supabase itself answers right now.
    pub async fn remote_health(&self) -> Result<(), StoreError> {
        self.inner.remote.health().await
    }

    /// The durable write path: Supabase directly when nothing is queued, else (or on a transient
    /// failure) the outbox. Returns once the write is durable somewhere: for a direct event write,
    /// whether the key was new; `None` when queued or dead-lettered.
    ///
    /// Every write is also mirrored into the local tables, so this instance can still read what it
    /// wrote while Supabase is unreachable.
    pub(super) async fn write(&self, op: WriteOp) -> Result<Option<bool>, StoreError> {
        let _entity = self.inner.entity_locks.lock(&op.entity()).await;
        self.mirror(&op).await;
        // Anything queued means Supabase was failing: queue behind it (keeps the order, and
        // spares every caller the deadline while Supabase is down).
        if self.depth().await? == 0 {
            let direct =
                tokio::time::timeout(self.inner.config.write_deadline, self.direct(&op)).await;
            match direct {
                Ok(Ok(inserted)) => return Ok(Some(inserted)),
                Ok(Err(error)) if !error.is_transient() => {
                    self.dead_letter_direct(&op, &error).await?;
                    return Ok(None);
                }
                Ok(Err(error)) => {
                    tracing::warn!(op = op.kind(), %error, "Supabase write failed; queued in the outbox");
                }
                Err(_) => {
                    tracing::warn!(
                        op = op.kind(),
                        "Supabase write missed its deadline; queued in the outbox"
                    );
                }
            }
        }
        self.enqueue(&op).await?;
        Ok(None)
    }

    /// Best effort: a mirror that fails (a call whose lead another instance created) only means
    /// a fallback read finds less.
    pub(super) async fn mirror(&self, op: &WriteOp) {
        let local = &self.inner.local;
        let result = match op {
            WriteOp::UpsertLead(row) => match Lead::try_from(row.clone()) {
                Ok(lead) => local.upsert_lead(&lead).await,
                Err(e) => Err(e),
            },
            WriteOp::UpsertCall(update) => local.upsert_call(update).await,
            WriteOp::RecordEvent { key } => local.record_event(key).await.map(drop),
        };
        if let Err(error) = result {
            tracing::debug!(op = op.kind(), %error, "local mirror not updated");
        }
    }

    /// A direct write; for events, whether the key was new.
    pub(super) async fn direct(&self, op: &WriteOp) -> Result<bool, StoreError> {
        match op {
            WriteOp::RecordEvent { key } => self.inner.remote.record_event(key).await,
            other => self.inner.remote.apply(other).await.map(|()| true),
        }
    }
}
