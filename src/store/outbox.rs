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
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rows::{LeadRow, WriteOp};
use super::sqlite::{SqliteStore, parse_time};
use super::supabase::SupabaseStore;
use super::{CallRecord, CallUpdate, Store, StoreError};
use crate::domain::{CallSid, LeadId};
use crate::locks::KeyedLocks;
use crate::metrics::names;
use crate::qualification::Lead;

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

    /// Whether Supabase itself answers right now.
    pub async fn remote_health(&self) -> Result<(), StoreError> {
        self.inner.remote.health().await
    }

    /// Starts the replay worker on `tracker`; it stops when `token` is cancelled.
    pub fn spawn_worker(&self, tracker: &TaskTracker, token: CancellationToken) {
        let this = self.clone();
        tracker.spawn(async move { this.run_worker(token).await });
    }

    /// Writes still waiting for Supabase.
    pub async fn depth(&self) -> Result<usize, StoreError> {
        self.inner
            .local
            .call(|c| {
                let n: i64 = c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
                Ok(usize::try_from(n).unwrap_or(0))
            })
            .await
    }

    /// How long the oldest pending write has waited.
    pub async fn oldest_age(&self) -> Result<Option<Duration>, StoreError> {
        let oldest: Option<String> = self
            .inner
            .local
            .call(|c| Ok(c.query_row("SELECT MIN(enqueued_at) FROM outbox", [], |r| r.get(0))?))
            .await?;
        Ok(match oldest {
            None => None,
            Some(t) => {
                let age = OffsetDateTime::now_utc() - parse_time(&t)?;
                Some(age.try_into().unwrap_or(Duration::ZERO))
            }
        })
    }

    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<(i64, String, i64, String)> = self
            .inner
            .local
            .call(|c| {
                let mut stmt =
                    c.prepare("SELECT seq, op, attempts, error FROM dead_letters ORDER BY seq")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(seq, op, attempts, error)| {
                Ok(DeadLetter {
                    seq,
                    op: decode(&op)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    error,
                })
            })
            .collect()
    }

    /// What is waiting, oldest first: `(seq, operation, attempts, last error)`. For operators and
    /// tests; no caller data.
    pub async fn pending_summary(
        &self,
    ) -> Result<Vec<(i64, &'static str, u32, Option<String>)>, StoreError> {
        let rows: Vec<(i64, String, i64, Option<String>)> = self
            .inner
            .local
            .call(|c| {
                let mut stmt =
                    c.prepare("SELECT seq, op, attempts, last_error FROM outbox ORDER BY seq")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(seq, op, attempts, error)| {
                Ok((
                    seq,
                    decode(&op)?.kind(),
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                    error,
                ))
            })
            .collect()
    }

    /// Moves dead letters back to the end of the outbox (after fixing what Supabase refused).
    /// A lead snapshot is skipped when Supabase already holds that lead: a later write replaced
    /// it, and replaying the old snapshot would undo that. Returns how many were requeued.
    pub async fn requeue_dead_letters(&self) -> Result<usize, StoreError> {
        let mut requeued = 0;
        for letter in self.dead_letters().await? {
            let stale = match &letter.op {
                WriteOp::UpsertLead(row) => self.inner.remote.get_lead(row.id).await?.is_some(),
                WriteOp::UpsertCall(_) | WriteOp::RecordEvent { .. } => false,
            };
            let seq = letter.seq;
            let keep = !stale;
            self.inner
                .local
                .call(move |c| {
                    let tx = c.transaction()?;
                    if keep {
                        tx.execute(
                            "INSERT INTO outbox (entity, op, enqueued_at) \
                             SELECT entity, op, enqueued_at FROM dead_letters WHERE seq = ?1",
                            [seq],
                        )?;
                    }
                    tx.execute("DELETE FROM dead_letters WHERE seq = ?1", [seq])?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
            if stale {
                tracing::info!(
                    seq,
                    "dead-lettered lead snapshot dropped: Supabase has a newer one"
                );
            } else {
                requeued += 1;
            }
        }
        self.inner.wake.notify_one();
        Ok(requeued)
    }

    async fn enqueue(&self, op: &WriteOp) -> Result<(), StoreError> {
        let entity = op.entity();
        let text = serde_json::to_string(op).map_err(|e| StoreError::Local(e.to_string()))?;
        self.inner
            .local
            .call(move |c| {
                c.execute(
                    "INSERT INTO outbox (entity, op) VALUES (?1, ?2)",
                    params![entity, text],
                )?;
                Ok(())
            })
            .await?;
        metrics::counter!(names::OUTBOX_ENQUEUED).increment(1);
        self.inner.wake.notify_one();
        Ok(())
    }

    async fn dead_letter_direct(&self, op: &WriteOp, error: &StoreError) -> Result<(), StoreError> {
        let entity = op.entity();
        let text = serde_json::to_string(op).map_err(|e| StoreError::Local(e.to_string()))?;
        let reason = error.to_string();
        self.inner
            .local
            .call(move |c| {
                c.execute(
                    "INSERT INTO dead_letters (entity, op, enqueued_at, attempts, error) \
                     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1, ?3)",
                    params![entity, text, reason],
                )?;
                Ok(())
            })
            .await?;
        metrics::counter!(names::OUTBOX_DEAD_LETTERS).increment(1);
        tracing::error!(op = op.kind(), %error, "Supabase refused a write for good; kept in dead_letters");
        Ok(())
    }

    /// The durable write path: Supabase directly when nothing is queued, else (or on a transient
    /// failure) the outbox. Returns once the write is durable somewhere: for a direct event write,
    /// whether the key was new; `None` when queued or dead-lettered.
    ///
    /// Every write is also mirrored into the local tables, so this instance can still read what it
    /// wrote while Supabase is unreachable.
    async fn write(&self, op: WriteOp) -> Result<Option<bool>, StoreError> {
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
    async fn mirror(&self, op: &WriteOp) {
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
    async fn direct(&self, op: &WriteOp) -> Result<bool, StoreError> {
        match op {
            WriteOp::RecordEvent { key } => self.inner.remote.record_event(key).await,
            other => self.inner.remote.apply(other).await.map(|()| true),
        }
    }

    async fn first_pending(&self) -> Result<Option<Pending>, StoreError> {
        let row: Option<(i64, String, i64)> = self
            .inner
            .local
            .call(|c| {
                Ok(c.query_row(
                    "SELECT seq, op, attempts FROM outbox ORDER BY seq LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
            })
            .await?;
        row.map(|(seq, op, attempts)| {
            Ok(Pending {
                seq,
                op: decode(&op)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    /// The pending writes about `entity`, oldest first.
    async fn pending_for(&self, entity: String) -> Result<Vec<WriteOp>, StoreError> {
        let ops: Vec<String> = self
            .inner
            .local
            .call(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT op FROM outbox WHERE entity = ?1 ORDER BY seq")?;
                let rows = stmt
                    .query_map([entity], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .await?;
        ops.iter().map(|o| decode(o)).collect()
    }

    async fn pending_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        let ops = self.pending_for(format!("lead:{id}")).await?;
        ops.into_iter()
            .rev()
            .find_map(|op| match op {
                WriteOp::UpsertLead(row) => Some(row),
                _ => None,
            })
            .map(Lead::try_from)
            .transpose()
    }

    async fn pending_calls(&self, sid: &CallSid) -> Result<Vec<CallUpdate>, StoreError> {
        Ok(self
            .pending_for(format!("call:{sid}"))
            .await?
            .into_iter()
            .filter_map(|op| match op {
                WriteOp::UpsertCall(u) => Some(u),
                _ => None,
            })
            .collect())
    }

    /// Replays one entry. Returns whether the queue moved.
    async fn replay_one(&self, entry: &Pending) -> Result<(), StoreError> {
        let result = tokio::time::timeout(
            self.inner.config.write_deadline,
            self.inner.remote.apply(&entry.op),
        )
        .await
        .unwrap_or(Err(StoreError::Timeout(self.inner.config.write_deadline)));
        let seq = entry.seq;
        match result {
            Ok(()) => {
                self.inner
                    .local
                    .call(move |c| {
                        c.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        Ok(())
                    })
                    .await?;
                metrics::counter!(names::OUTBOX_REPLAYS).increment(1);
                Ok(())
            }
            Err(error)
                if error.is_transient()
                    && !(matches!(error, StoreError::Rejected { status: 409, .. })
                        && entry.attempts + 1 >= MAX_CONFLICT_ATTEMPTS) =>
            {
                let reason = error.to_string();
                self.inner
                    .local
                    .call(move |c| {
                        c.execute(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1",
                            params![seq, reason],
                        )?;
                        Ok(())
                    })
                    .await?;
                Err(error)
            }
            Err(error) => {
                let reason = error.to_string();
                self.inner
                    .local
                    .call(move |c| {
                        let tx = c.transaction()?;
                        tx.execute(
                            "INSERT INTO dead_letters (outbox_seq, entity, op, enqueued_at, attempts, error) \
                             SELECT seq, entity, op, enqueued_at, attempts + 1, ?2 FROM outbox WHERE seq = ?1",
                            params![seq, reason],
                        )?;
                        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        tx.commit()?;
                        Ok(())
                    })
                    .await?;
                metrics::counter!(names::OUTBOX_DEAD_LETTERS).increment(1);
                tracing::error!(
                    op = entry.op.kind(),
                    seq,
                    %error,
                    "Supabase refused a queued write for good; moved to dead_letters"
                );
                Ok(())
            }
        }
    }

    async fn publish_gauges(&self) {
        if let Ok(depth) = self.depth().await {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(names::OUTBOX_DEPTH).set(depth as f64);
        }
        if let Ok(age) = self.oldest_age().await {
            metrics::gauge!(names::OUTBOX_OLDEST_AGE).set(age.map_or(0.0, |a| a.as_secs_f64()));
        }
    }

    async fn run_worker(self, token: CancellationToken) {
        let mut failures: u32 = 0;
        while !token.is_cancelled() {
            self.publish_gauges().await;
            let replay = self.inner.replay.lock().await;
            let next = match self.first_pending().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(%error, "cannot read the outbox");
                    None
                }
            };
            let Some(entry) = next else {
                drop(replay);
                failures = 0;
                tokio::select! {
                    () = token.cancelled() => return,
                    () = self.inner.wake.notified() => continue,
                    // A periodic look, in case a wake-up was missed.
                    () = tokio::time::sleep(self.inner.config.max_backoff) => continue,
                }
            };
            let replayed = self.replay_one(&entry).await;
            drop(replay);
            match replayed {
                Ok(()) => failures = 0,
                Err(error) => {
                    let delay = backoff(&self.inner.config, failures.max(entry.attempts.min(16)));
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "outbox replay failed"
                    );
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Replays until the queue is empty or `deadline` passes (shutdown). Returns what is left.
    pub async fn flush(&self, deadline: Duration) -> Result<usize, StoreError> {
        let started = Instant::now();
        let _replay = self.inner.replay.lock().await;
        while let Some(entry) = self.first_pending().await? {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            if tokio::time::timeout(left, self.replay_one(&entry))
                .await
                .map_or(true, |r| r.is_err())
            {
                break;
            }
        }
        self.publish_gauges().await;
        self.depth().await
    }
}

impl Store for OutboxStore {
    async fn upsert_lead(&self, lead: &Lead) -> Result<(), StoreError> {
        self.write(WriteOp::UpsertLead(LeadRow::from(lead)))
            .await
            .map(drop)
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        if let Some(lead) = self.pending_lead(id).await? {
            return Ok(Some(lead));
        }
        match self.inner.remote.get_lead(id).await {
            Err(error) if error.is_transient() => {
                Self::fallback(error, self.inner.local.get_lead(id).await)
            }
            other => other,
        }
    }

    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        let pending_lead_id = self
            .pending_calls(call_sid)
            .await?
            .iter()
            .rev()
            .find_map(|u| u.lead_id);
        if let Some(id) = pending_lead_id {
            return self.get_lead(id).await;
        }
        let remote = match self.inner.remote.find_lead_by_call(call_sid).await {
            Err(error) if error.is_transient() => {
                return Self::fallback(error, self.inner.local.find_lead_by_call(call_sid).await);
            }
            other => other?,
        };
        match remote {
            Some(lead) => Ok(Some(self.pending_lead(lead.id).await?.unwrap_or(lead))),
            None => Ok(None),
        }
    }

    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        self.write(WriteOp::UpsertCall(update.clone()))
            .await
            .map(drop)
    }

    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        let pending = self.pending_calls(call_sid).await?;
        let remote = match self.inner.remote.get_call(call_sid).await {
            Ok(record) => record,
            Err(error) if error.is_transient() => {
                Self::fallback(error, self.inner.local.get_call(call_sid).await)?
            }
            Err(error) => return Err(error),
        };
        if pending.is_empty() {
            return Ok(remote);
        }
        let mut record = remote.unwrap_or_else(|| CallRecord {
            id: None,
            fields: CallUpdate::new(call_sid.clone()),
            created_at: None,
            updated_at: None,
        });
        for update in &pending {
            record.fields.merge(update);
        }
        Ok(Some(record))
    }

    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        // A pending update naming this Vapi call wins: its call may not be in Supabase yet.
        let wanted = vapi_call_id.to_owned();
        let pending_sid = self
            .inner
            .local
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT op FROM outbox WHERE entity LIKE 'call:%' ORDER BY seq DESC",
                )?;
                let ops = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ops)
            })
            .await?
            .iter()
            .find_map(|op| match decode(op) {
                Ok(WriteOp::UpsertCall(u))
                    if u.vapi_call_id.as_deref() == Some(wanted.as_str()) =>
                {
                    Some(u.call_sid)
                }
                _ => None,
            });
        if let Some(sid) = pending_sid {
            return self.get_call(&sid).await;
        }
        match self.inner.remote.find_call_by_vapi_id(vapi_call_id).await {
            Err(error) if error.is_transient() => Self::fallback(
                error,
                self.inner.local.find_call_by_vapi_id(vapi_call_id).await,
            ),
            other => other,
        }
    }

    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        if self.event_pending(key).await? {
            return Ok(false);
        }
        // Queued or dead-lettered: as far as this instance knows, it is new.
        Ok(self
            .write(WriteOp::RecordEvent {
                key: key.to_owned(),
            })
            .await?
            .unwrap_or(true))
    }

    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        if self.event_pending(key).await? {
            return Ok(true);
        }
        match self.inner.remote.event_processed(key).await {
            Err(error) if error.is_transient() => {
                Self::fallback(error, self.inner.local.event_processed(key).await)
            }
            other => other,
        }
    }

    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        let mut leads = self.inner.remote.list_leads(limit, offset).await?;
        for lead in &mut leads {
            if let Some(pending) = self.pending_lead(lead.id).await? {
                let (created, updated) = (lead.created_at, lead.updated_at);
                *lead = pending;
                lead.created_at = created;
                lead.updated_at = updated;
            }
        }
        Ok(leads)
    }

    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = self.inner.remote.calls_of_lead(lead_id).await?;
        for call in &mut calls {
            for update in self.pending_calls(&call.fields.call_sid).await? {
                call.fields.merge(&update);
            }
        }
        Ok(calls)
    }

    /// The outbox is where writes become durable, so the instance is healthy while it works,
    /// even with Supabase unreachable (writes queue); see [`OutboxStore::remote_health`].
    async fn health(&self) -> Result<(), StoreError> {
        self.inner.local.health().await
    }
}

impl OutboxStore {
    /// A read Supabase could not answer, answered from the local mirror: what this instance wrote
    /// is there; what only other instances wrote is not, which beats failing the caller.
    fn fallback<T>(remote: StoreError, local: Result<T, StoreError>) -> Result<T, StoreError> {
        match local {
            Ok(value) => {
                tracing::warn!(error = %remote, "Supabase unreachable; answered from the local mirror");
                Ok(value)
            }
            Err(_) => Err(remote),
        }
    }

    async fn event_pending(&self, key: &str) -> Result<bool, StoreError> {
        Ok(!self.pending_for(format!("event:{key}")).await?.is_empty())
    }
}
