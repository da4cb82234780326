//! The outbox queue and dead letters in the local SQLite file: what is pending, in order, per entity.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{DeadLetter, OutboxStore, Pending, decode};
use crate::domain::{CallSid, LeadId};
use crate::metrics::names;
use crate::store::rows::WriteOp;
use crate::store::rows::{CallUpdate, Store as _, StoreError};
use crate::store::sqlite::{CachedStatements as _, parse_time};

impl OutboxStore {
    /// Writes still waiting for Supabase.
    pub async fn depth(&self) -> Result<usize, StoreError> {
        self.inner
            .local
            .call(|c| {
                let n: i64 = c.query_row_cached("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
                Ok(usize::try_from(n).unwrap_or(0))
            })
            .await
    }

    /// How long the oldest pending write has waited.
    pub async fn oldest_age(&self) -> Result<Option<Duration>, StoreError> {
        let oldest: Option<String> = self
            .inner
            .local
            .call(|c| {
                Ok(c.query_row_cached("SELECT MIN(enqueued_at) FROM outbox", [], |r| r.get(0))?)
            })
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
    /// A lead save is skipped when Supabase holds a newer version of that lead than it was based
    /// on: it would only be stale again. Returns how many were requeued.
    pub async fn requeue_dead_letters(&self) -> Result<usize, StoreError> {
        let mut requeued = 0;
        for letter in self.dead_letters().await? {
            let stale = match &letter.op {
                WriteOp::SaveLead(row) => self
                    .inner
                    .remote
                    .get_lead(row.id)
                    .await?
                    .is_some_and(|stored| stored.version > row.version),
                // The write that qualified a lead and created its alerts: the alerts must not be
                // lost (its replay creates them when Supabase holds the lead).
                WriteOp::SaveLeadWithAlerts { .. }
                | WriteOp::UpsertCall(_)
                | WriteOp::RecordEvent { .. }
                | WriteOp::AbandonLead { .. }
                | WriteOp::StartCall { .. }
                | WriteOp::AbandonCallLead { .. } => false,
            };
            let seq = letter.seq;
            let keep = !stale;
            self.inner
                .local
                .call(move |c| {
                    let tx = c.savepoint()?;
                    if keep {
                        tx.execute_cached(
                            "INSERT INTO outbox (entity, op, enqueued_at) \
                             SELECT entity, op, enqueued_at FROM dead_letters WHERE seq = ?1",
                            [seq],
                        )?;
                    }
                    tx.execute_cached("DELETE FROM dead_letters WHERE seq = ?1", [seq])?;
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

    pub(super) async fn enqueue(&self, op: &WriteOp) -> Result<(), StoreError> {
        let entity = op.entity();
        let text = serde_json::to_string(op).map_err(|e| StoreError::Local(e.to_string()))?;
        self.inner
            .local
            .call(move |c| {
                c.execute_cached(
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

    pub(super) async fn dead_letter_direct(
        &self,
        op: &WriteOp,
        error: &StoreError,
    ) -> Result<(), StoreError> {
        let entity = op.entity();
        let text = serde_json::to_string(op).map_err(|e| StoreError::Local(e.to_string()))?;
        let reason = error.to_string();
        self.inner
            .local
            .call(move |c| {
                c.execute_cached(
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

    pub(super) async fn first_pending(&self) -> Result<Option<Pending>, StoreError> {
        let row: Option<(i64, String, i64, String)> = self
            .inner
            .local
            .call(|c| {
                Ok(c.query_row_cached(
                    "SELECT seq, op, attempts, enqueued_at FROM outbox ORDER BY seq LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?)
            })
            .await?;
        row.map(|(seq, op, attempts, enqueued_at)| {
            Ok(Pending {
                seq,
                op: decode(&op)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                enqueued_at: parse_time(&enqueued_at)?,
            })
        })
        .transpose()
    }

    /// The pending writes about `entity`, oldest first.
    pub(super) async fn pending_for(&self, entity: String) -> Result<Vec<WriteOp>, StoreError> {
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

    /// The lead a pending start of this call created (queued while Supabase was unreachable).
    pub(super) async fn pending_start(&self, sid: &CallSid) -> Result<Option<LeadId>, StoreError> {
        Ok(self
            .pending_starts()
            .await?
            .into_iter()
            .find_map(|(lead, call)| (call.call_sid == *sid).then_some(lead)))
    }

    /// Every pending start of a call: its lead and call columns.
    async fn pending_starts(&self) -> Result<Vec<(LeadId, CallUpdate)>, StoreError> {
        let ops: Vec<String> = self
            .inner
            .local
            .call(|c| {
                let mut stmt = c.prepare_cached(
                    "SELECT op FROM outbox WHERE entity LIKE 'lead:%' \
                     AND op LIKE '{\"op\":\"start_call\"%' ORDER BY seq",
                )?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut starts = Vec::new();
        for op in ops {
            if let WriteOp::StartCall { lead, mut call } = decode(&op)? {
                call.lead_id = Some(lead.id);
                starts.push((lead.id, *call));
            }
        }
        Ok(starts)
    }

    pub(super) async fn pending_calls(&self, sid: &CallSid) -> Result<Vec<CallUpdate>, StoreError> {
        let mut updates: Vec<CallUpdate> = self
            .pending_starts()
            .await?
            .into_iter()
            .filter_map(|(_, call)| (call.call_sid == *sid).then_some(call))
            .collect();
        updates.extend(
            self.pending_for(format!("call:{sid}"))
                .await?
                .into_iter()
                .filter_map(|op| match op {
                    WriteOp::UpsertCall(u) => Some(u),
                    _ => None,
                }),
        );
        Ok(updates)
    }
}
