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

use super::rows::{Saved, WriteOp};
use super::rows::{Store, StoreError};
use super::sqlite::SqliteStore;
use super::supabase::SupabaseStore;
use crate::domain::CallSid;
use crate::locks::KeyedLocks;
use crate::qualification::Lead;

mod queue;
mod refusals;
mod store;
mod worker;

pub use refusals::Refusals;

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
    /// Whether Supabase refuses this instance for good (401, 403, 404).
    refusals: Refusals,
    /// Supabase has no `bp.report_call_status` (migration `20261209000000_call_status` not
    /// applied): status reports go step by step.
    no_status_function: std::sync::atomic::AtomicBool,
    /// The tombstones written since the oldest write replayed lately, read once for a burst of
    /// replays ([`TOMBSTONES_TTL`]) instead of once per write.
    tombstones: std::sync::Mutex<Option<Tombstones>>,
}

/// How long the worker reuses what it read of `bp.erased`: an erasure younger than this may be
/// seen one replay late (a lead Supabase knows is still refused by its trigger).
pub const TOMBSTONES_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Tombstones {
    since: time::OffsetDateTime,
    read_at: std::time::Instant,
    keys: std::collections::HashMap<String, time::OffsetDateTime>,
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
    /// When it was queued: an erasure after that drops it.
    enqueued_at: time::OffsetDateTime,
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
                refusals: Refusals::default(),
                no_status_function: std::sync::atomic::AtomicBool::new(false),
                tombstones: std::sync::Mutex::new(None),
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

    /// Whether Supabase itself answers right now (a refusal for good is remembered as one).
    pub async fn remote_health(&self) -> Result<(), StoreError> {
        let health = self.inner.remote.health().await;
        self.inner.refusals.observe_read(health.as_ref().err());
        health
    }

    /// `abandonne` unless final, for the lead of the call `sid` whichever instance started it:
    /// applied now when Supabase knows the call's lead, else queued until it does.
    pub async fn abandon_call_lead(&self, sid: &CallSid) -> Result<(), StoreError> {
        self.write(WriteOp::AbandonCallLead {
            call_sid: sid.clone(),
        })
        .await
        .map(drop)
    }

    /// Supabase refuses this instance for good: its last write or health read got 401, 403 or
    /// 404 (a rotated key, a revoked grant, a dropped table). Writes stay queued meanwhile.
    pub fn refusing(&self) -> bool {
        self.inner.refusals.refusing()
    }

    /// The durable write path: Supabase directly when nothing is queued, else (or on a transient
    /// failure) the outbox. Returns once the write is durable somewhere, or stale (a lead save
    /// Supabase holds a newer version of: nothing is written, the caller re-reads).
    ///
    /// Every write made is also mirrored into the local tables, so this instance can still read
    /// what it wrote while Supabase is unreachable.
    pub(in crate::store) async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        let _entity = self.inner.entity_locks.lock(&op.entity()).await;
        // Anything queued means Supabase was failing: queue behind it (keeps the order, and
        // spares every caller the deadline while Supabase is down).
        if self.depth().await? == 0 {
            let direct =
                tokio::time::timeout(self.inner.config.write_deadline, self.direct(&op)).await;
            match direct {
                Ok(Ok((Saved::Stale, _))) => return Ok(Written::Stale),
                Ok(Ok((Saved::Applied, new_event))) => {
                    self.inner.refusals.clear();
                    self.mirror(&op).await;
                    return Ok(Written::Direct { new_event });
                }
                Ok(Err(error)) if self.inner.refusals.is_refusal(&error) => {
                    // A rotated key, a revoked grant, a dropped table: every write would be
                    // refused. Keep them queued (the instance reports unready) rather than
                    // dead-lettering each one.
                    tracing::error!(op = op.kind(), %error, "Supabase refuses this instance; write queued");
                }
                Ok(Err(error)) if error.is_erased() => {
                    // A late write about a caller an erasure removed (a call in progress from a
                    // lead read before the erasure): dropped, counted, never queued.
                    crate::metrics::erased_write_dropped();
                    tracing::info!(op = op.kind(), "a write about an erased caller was dropped");
                    return Err(StoreError::Erased(error.to_string()));
                }
                Ok(Err(error)) if !error.is_transient() => {
                    self.dead_letter_direct(&op, &error).await?;
                    self.mirror(&op).await;
                    return Ok(Written::Queued);
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
        self.mirror(&op).await;
        self.enqueue(&op).await?;
        Ok(Written::Queued)
    }

    /// Best effort: a mirror that fails (a call whose lead another instance created) only means
    /// a fallback read finds less. The mirror never goes back to an older lead version.
    pub(super) async fn mirror(&self, op: &WriteOp) {
        let local = &self.inner.local;
        let result = match op {
            WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. } => {
                // The lead only: alerts are sent from Supabase's rows, never from the mirror.
                let row = row.clone();
                local
                    .call(move |c| super::leads::sqlite::mirror_lead_sql(c, &row, row.version + 1))
                    .await
            }
            WriteOp::UpsertCall(update) => local.upsert_call(update).await,
            WriteOp::RecordEvent { key } => local.record_event(key).await.map(drop),
            WriteOp::AbandonLead { id } => local.abandon_lead(*id).await.map(drop),
            WriteOp::AbandonCallLead { call_sid } => local.abandon_call_lead(call_sid).await,
            WriteOp::StartCall { lead, call } => match Lead::try_from(lead.clone()) {
                Ok(lead) => local.start_call(&lead, call).await.map(drop),
                Err(e) => Err(e),
            },
        };
        if let Err(error) = result {
            tracing::debug!(op = op.kind(), %error, "local mirror not updated");
        }
    }

    /// A direct write: whether it applied, and for events whether the key was new.
    pub(super) async fn direct(&self, op: &WriteOp) -> Result<(Saved, bool), StoreError> {
        match op {
            WriteOp::RecordEvent { key } => self
                .inner
                .remote
                .record_event(key)
                .await
                .map(|new| (Saved::Applied, new)),
            other => self.inner.remote.apply(other).await.map(|s| (s, true)),
        }
    }
}

/// How a write through the outbox ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Written {
    /// Supabase took it; for an event, whether the key was new.
    Direct { new_event: bool },
    /// Durable in the outbox (or, refused for good, in the dead letters).
    Queued,
    /// A lead save based on a version Supabase no longer holds: nothing written.
    Stale,
}
