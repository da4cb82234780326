//! The replay worker: pending writes to Supabase in order, with back-off, dead letters for permanent
//! refusals, the gauges, and the shutdown flush.

use std::time::{Duration, Instant};

use rusqlite::params;

use crate::store::sqlite::CachedStatements as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{MAX_CONFLICT_ATTEMPTS, OutboxStore, Pending, backoff};
use crate::domain::{LeadId, LeadStatus};
use crate::metrics::names;
use crate::qualification::{Field, Lead, Speaker, Turn};
use crate::store::rows::Store as _;
use crate::store::rows::StoreError;
use crate::store::rows::{LeadRow, Saved, WriteOp, erased_keys};

impl OutboxStore {
    /// Starts the replay worker on `tracker`; it stops when `token` is cancelled.
    pub fn spawn_worker(&self, tracker: &TaskTracker, token: CancellationToken) {
        let this = self.clone();
        tracker.spawn(async move { this.run_worker(token).await });
    }

    /// Replays one entry. Returns whether the queue moved.
    pub(super) async fn replay_one(&self, entry: &Pending) -> Result<(), StoreError> {
        let result = tokio::time::timeout(self.inner.config.write_deadline, async {
            self.refuse_if_erased(entry).await?;
            self.replay_op(&entry.op).await
        })
        .await
        .unwrap_or(Err(StoreError::Timeout(self.inner.config.write_deadline)));
        let seq = entry.seq;
        match result {
            Err(error) if error.is_erased() => self.drop_erased(entry, &error).await,
            Ok(()) => {
                self.inner.refusals.clear();
                self.inner
                    .local
                    .call(move |c| {
                        c.execute_cached("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        Ok(())
                    })
                    .await?;
                metrics::counter!(names::OUTBOX_REPLAYS).increment(1);
                Ok(())
            }
            Err(error)
                if self.inner.refusals.is_refusal(&error)
                    || (error.is_transient()
                        && !(matches!(error, StoreError::Rejected { status: 409, .. })
                            && entry.attempts + 1 >= MAX_CONFLICT_ATTEMPTS)) =>
            {
                let reason = error.to_string();
                self.inner
                    .local
                    .call(move |c| {
                        c.execute_cached(
                            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1",
                            params![seq, reason],
                        )?;
                        Ok(())
                    })
                    .await?;
                Err(error)
            }
            // Refused for good because its lead was erased (a call's write queued after the
            // erasure of its lead): nothing for staff to handle.
            Err(error) if self.names_an_erased_lead(&entry.op).await => {
                self.drop_erased(entry, &error).await
            }
            Err(error) => {
                let reason = error.to_string();
                self.inner
                    .local
                    .call(move |c| {
                        let tx = c.savepoint()?;
                        tx.execute_cached(
                            "INSERT INTO dead_letters (outbox_seq, entity, op, enqueued_at, attempts, error) \
                             SELECT seq, entity, op, enqueued_at, attempts + 1, ?2 FROM outbox WHERE seq = ?1",
                            params![seq, reason],
                        )?;
                        tx.execute_cached("DELETE FROM outbox WHERE seq = ?1", [seq])?;
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

    /// Queued before an erasure of what it writes: [`StoreError::Erased`], whatever Supabase would
    /// say (a lead Supabase never saw is not refused by its triggers). What it names is the erased
    /// caller's too: the writes queued after it about that lead or call (its end, its status) are
    /// dropped with it.
    async fn refuse_if_erased(&self, entry: &Pending) -> Result<(), StoreError> {
        if !self.erased_after_queued(entry).await? {
            return Ok(());
        }
        let named: Vec<String> = erased_keys(&entry.op)
            .into_iter()
            .filter(|k| k.starts_with("lead:") || k.starts_with("call:"))
            .collect();
        self.inner.remote.record_erased(&named).await?;
        *self
            .inner
            .tombstones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Err(StoreError::Erased(
            "queued before an erasure of what it writes".to_owned(),
        ))
    }

    /// Removes a queued write about an erased caller: counted, logged, never a dead letter.
    async fn drop_erased(&self, entry: &Pending, error: &StoreError) -> Result<(), StoreError> {
        let seq = entry.seq;
        self.inner
            .local
            .call(move |c| {
                c.execute_cached("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                Ok(())
            })
            .await?;
        crate::metrics::erased_write_dropped();
        tracing::info!(op = entry.op.kind(), seq, %error, "a queued write about an erased caller was dropped");
        Ok(())
    }

    /// Whether a key of the queued write was erased after it was queued, from the tombstones read
    /// for the last [`super::TOMBSTONES_TTL`] (writes replay oldest first, so one read serves a
    /// burst).
    async fn erased_after_queued(&self, entry: &Pending) -> Result<bool, StoreError> {
        let keys = erased_keys(&entry.op);
        if keys.is_empty() {
            return Ok(false);
        }
        let cached = self
            .inner
            .tombstones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .filter(|t| {
                t.since <= entry.enqueued_at && t.read_at.elapsed() < super::TOMBSTONES_TTL
            });
        let tombstones = if let Some(t) = cached {
            t.keys
        } else {
            let keys: std::collections::HashMap<_, _> = self
                .inner
                .remote
                .erased_after(entry.enqueued_at)
                .await?
                .into_iter()
                .collect();
            *self
                .inner
                .tombstones
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(super::Tombstones {
                since: entry.enqueued_at,
                read_at: std::time::Instant::now(),
                keys: keys.clone(),
            });
            keys
        };
        Ok(keys
            .iter()
            .any(|k| tombstones.get(k).is_some_and(|at| *at >= entry.enqueued_at)))
    }

    /// Whether the write's lead was erased, whenever (a lead id is never reused). Unknown (an
    /// error) counts as no.
    async fn names_an_erased_lead(&self, op: &WriteOp) -> bool {
        let leads: Vec<String> = erased_keys(op)
            .into_iter()
            .filter(|k| k.starts_with("lead:"))
            .collect();
        self.inner
            .remote
            .erased_since(&leads, time::OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap_or(false)
    }

    /// Applies a queued write as the operation it is: a lead save only over the version it was
    /// based on. Stale, it is either already in Supabase (its first attempt was applied but the
    /// answer lost: done, and the alerts it carries are created) or superseded by a newer version
    /// another writer saved: [`StoreError::Stale`], kept as a dead letter, never applied over it.
    async fn replay_op(&self, op: &WriteOp) -> Result<(), StoreError> {
        let remote = &self.inner.remote;
        if let WriteOp::AbandonLead { id } = op {
            // The end of a call whose lead this instance started during an outage while the call
            // already had one: the call's lead is abandoned (unless final) instead.
            if remote.get_lead(*id).await?.is_none() {
                if let Some(into) = self.merge_target(*id).await? {
                    return remote
                        .apply(&WriteOp::AbandonLead { id: into.id })
                        .await
                        .map(drop);
                }
            }
        }
        if remote.apply(op).await? == Saved::Applied {
            return Ok(());
        }
        let (WriteOp::SaveLead(row) | WriteOp::SaveLeadWithAlerts { lead: row, .. }) = op else {
            return Ok(());
        };
        if remote.holds(row).await? {
            if let WriteOp::SaveLeadWithAlerts { alerts, .. } = op {
                remote.enqueue_alerts(alerts).await?;
            }
            return Ok(());
        }
        let stored = remote.get_lead(row.id).await?;
        if stored.is_none() {
            if let Some(into) = self.merge_target(row.id).await? {
                return self.merge_into(op, row, &into).await;
            }
        }
        if stored
            .as_ref()
            .is_some_and(|stored| superseded(stored, row))
        {
            tracing::info!(
                op = op.kind(),
                "queued lead save already applied elsewhere from the call's history; done"
            );
            if let WriteOp::SaveLeadWithAlerts { alerts, .. } = op {
                remote.enqueue_alerts(alerts).await?;
            }
            return Ok(());
        }
        let Some(rebased) = stored.as_ref().and_then(|stored| rebase(stored, row)) else {
            return Err(StoreError::Stale(format!(
                "Supabase holds a newer version of this lead than version {} this write was based on",
                row.version
            )));
        };
        let again = match op {
            WriteOp::SaveLeadWithAlerts { alerts, .. } => WriteOp::SaveLeadWithAlerts {
                lead: rebased,
                alerts: alerts.clone(),
            },
            _ => WriteOp::SaveLead(rebased),
        };
        if remote.apply(&again).await? == Saved::Applied {
            tracing::info!(
                op = op.kind(),
                "queued lead save re-based on a lead only its call's end changed meanwhile"
            );
            return Ok(());
        }
        // Changed again in between: a conflict, replayed later.
        Err(StoreError::Rejected {
            status: 409,
            code: "myriam_rebase_raced".to_owned(),
            message: "the lead changed while a queued save was re-based".to_owned(),
        })
    }

    /// The lead a lead Supabase never received must be merged into: this instance started it
    /// locally for a call during an outage (a `/twilio/voice` retry), and when its start was
    /// replayed the call already had a lead (insert-or-get kept that one). `None`: no such call.
    async fn merge_target(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        let remote = &self.inner.remote;
        for call in self.inner.local.calls_of_lead(id).await? {
            let Some(record) = remote.get_call(&call.fields.call_sid).await? else {
                continue;
            };
            match record.fields.lead_id {
                Some(lead_id) if lead_id != id => return remote.get_lead(lead_id).await,
                Some(_) => {}
                None => {
                    return Err(StoreError::Rejected {
                        status: 409,
                        code: "myriam_call_without_lead".to_owned(),
                        message: "the call has no lead yet".to_owned(),
                    });
                }
            }
        }
        Ok(None)
    }

    /// Merges a queued save of a second lead of a call into the call's lead (see [`merge`]) and
    /// saves it on the version read; lost to another writer, a conflict replayed later. Never a
    /// dead letter: the caller's answers are kept.
    async fn merge_into(&self, op: &WriteOp, row: &LeadRow, into: &Lead) -> Result<(), StoreError> {
        let second = Lead::try_from(row.clone())?;
        let merged = LeadRow::from(&merge(into, &second));
        let again = match op {
            WriteOp::SaveLeadWithAlerts { alerts, .. } => WriteOp::SaveLeadWithAlerts {
                lead: merged,
                alerts: alerts
                    .iter()
                    .map(|alert| crate::store::rows::NewAlert {
                        lead_id: into.id,
                        ..alert.clone()
                    })
                    .collect(),
            },
            _ => WriteOp::SaveLead(merged),
        };
        if self.inner.remote.apply(&again).await? == Saved::Applied {
            tracing::warn!(
                lead_id = %into.id,
                merged_lead_id = %row.id,
                "a second lead started for the call during an outage merged into the call's lead"
            );
            return Ok(());
        }
        Err(StoreError::Rejected {
            status: 409,
            code: "myriam_merge_raced".to_owned(),
            message: "the call's lead changed while a second lead was merged into it".to_owned(),
        })
    }

    pub(super) async fn publish_gauges(&self) {
        if let Ok(depth) = self.depth().await {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(names::OUTBOX_DEPTH).set(depth as f64);
        }
        if let Ok(age) = self.oldest_age().await {
            metrics::gauge!(names::OUTBOX_OLDEST_AGE).set(age.map_or(0.0, |a| a.as_secs_f64()));
        }
    }

    pub(super) async fn run_worker(self, token: CancellationToken) {
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

/// When the caller's answer to `field` was accepted on `lead` (its last accepted answer).
fn answered_at(lead: &Lead, field: Field) -> Option<time::OffsetDateTime> {
    lead.conversation
        .iter()
        .rev()
        .find(|t| {
            t.speaker == Speaker::Caller && t.field == Some(field) && t.accepted == Some(true)
        })
        .and_then(|t| t.at)
}

/// One lead from the call's lead `into` and a second lead `other` started for the same call on
/// another instance during an outage: the fields `into` lacks come from `other`; a field both
/// hold takes the later answer (by when each was accepted); the conversations are merged in time
/// order (the opening line once, a Vapi tool call's turns once); the status moves forward only;
/// the version is `into`'s.
pub(crate) fn merge(into: &Lead, other: &Lead) -> Lead {
    let mut out = into.clone();
    for field in Field::ALL {
        let take = other.has(field)
            && (!into.has(field) || answered_at(other, field) > answered_at(into, field));
        if !take {
            continue;
        }
        match field {
            Field::NomComplet => out.nom_complet.clone_from(&other.nom_complet),
            Field::Telephone => {
                out.telephone.clone_from(&other.telephone);
                out.telephone_raw.clone_from(&other.telephone_raw);
            }
            Field::AdresseComplete => out.adresse_complete.clone_from(&other.adresse_complete),
            Field::TypeService => out.type_service.clone_from(&other.type_service),
            Field::Description => out.description.clone_from(&other.description),
            Field::Urgence => out.urgence = other.urgence,
        }
    }
    let same = |a: &Turn, b: &Turn| {
        (a.speaker, a.field, &a.text, &a.tool_call_id)
            == (b.speaker, b.field, &b.text, &b.tool_call_id)
    };
    let skip_opening = usize::from(matches!(
        (into.conversation.first(), other.conversation.first()),
        (Some(a), Some(b)) if same(a, b)
    ));
    for turn in other.conversation.iter().skip(skip_opening) {
        // A Vapi tool call both leads answered (delivered to both instances) is kept once: its
        // id is its identity, whenever each instance accepted it.
        let answered_here = turn.tool_call_id.is_some()
            && out
                .conversation
                .iter()
                .any(|t| t.speaker == turn.speaker && t.tool_call_id == turn.tool_call_id);
        if !answered_here && !out.conversation.contains(turn) {
            out.conversation.push(turn.clone());
        }
    }
    out.conversation.sort_by_key(|t| t.at);
    if into.status.can_become(other.status) {
        out.status = other.status;
    }
    for (field, n) in &other.attempts {
        let mine = out.attempts.entry(*field).or_insert(0);
        *mine = (*mine).max(*n);
    }
    if out.offered_phone.is_none() {
        out.offered_phone.clone_from(&other.offered_phone);
    }
    out
}

/// Whether everything a queued lead save adds is already on the lead Supabase holds: the save
/// answered a Vapi tool call (its last turn carries the tool call's id) and, past the turns both
/// share, each of its turns answers a tool call whose id the stored lead holds. Either its own
/// write landed late and the lead moved on, or another instance applied those answers from the
/// call's history while this save was late.
pub(crate) fn superseded(stored: &Lead, row: &LeadRow) -> bool {
    let same = |a: &crate::qualification::Turn, b: &crate::qualification::Turn| {
        (a.speaker, a.field, &a.text, &a.tool_call_id)
            == (b.speaker, b.field, &b.text, &b.tool_call_id)
    };
    let stored_holds = |turn: &crate::qualification::Turn| {
        turn.tool_call_id.as_deref().is_some_and(|id| {
            stored
                .conversation
                .iter()
                .any(|t| t.tool_call_id.as_deref() == Some(id))
        })
    };
    let shared = row
        .conversation
        .iter()
        .zip(&stored.conversation)
        .take_while(|(a, b)| same(a, b))
        .count();
    row.conversation.last().is_some_and(stored_holds)
        && row.conversation[shared..].iter().all(stored_holds)
}

/// A queued lead save re-based on the lead Supabase holds now, when all that changed there since
/// the version it was based on is the call's end, processed by another instance: the lead is
/// `abandonne` and nobody recorded a turn (Supabase's conversation is a beginning of the queued
/// one; every answer, hand-off and Myriam's own abandonment adds turns, the call's end does not).
/// The queued save wins but for the status, which keeps the order
/// ([`LeadStatus::can_become`]): an answer that qualifies the lead qualifies it, an unfinished one
/// leaves it abandoned, as one instance taking both in that order would have. `None`: a real
/// conflict, kept as a dead letter.
pub(crate) fn rebase(stored: &Lead, row: &LeadRow) -> Option<LeadRow> {
    if stored.status != LeadStatus::Abandonne || !row.conversation.starts_with(&stored.conversation)
    {
        return None;
    }
    let queued = LeadStatus::try_from(row.status.as_str()).ok()?;
    let status = if LeadStatus::Abandonne.can_become(queued) {
        queued
    } else {
        LeadStatus::Abandonne
    };
    Some(LeadRow {
        status: status.as_str().to_owned(),
        version: stored.version,
        ..row.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LeadId;
    use crate::qualification::Turn;

    #[test]
    fn only_a_save_stale_by_the_calls_end_is_re_based() {
        let mut stored = Lead::new(LeadId::new());
        stored
            .conversation
            .push(Turn::myriam(None, "Bonjour".to_owned()));
        stored.status = LeadStatus::Abandonne;
        stored.version = 3;
        let mut queued = stored.clone();
        queued.status = LeadStatus::Qualifie;
        queued.version = 2;
        queued
            .conversation
            .push(Turn::caller(None, "non".to_owned(), true));
        let rebased = rebase(&stored, &LeadRow::from(&queued)).unwrap();
        assert_eq!((rebased.status.as_str(), rebased.version), ("qualifie", 3));
        queued.status = LeadStatus::EnCours;
        let rebased = rebase(&stored, &LeadRow::from(&queued)).unwrap();
        assert_eq!(rebased.status, "abandonne", "unfinished: still abandoned");
        assert_eq!(rebased.conversation.len(), 2, "the answer kept");
        // Someone else recorded a turn: a real conflict.
        let mut other = stored.clone();
        other
            .conversation
            .push(Turn::caller(None, "autre".to_owned(), true));
        assert!(rebase(&other, &LeadRow::from(&queued)).is_none());
        // Changed by something other than the call's end.
        stored.status = LeadStatus::Qualifie;
        assert!(rebase(&stored, &LeadRow::from(&queued)).is_none());
    }

    /// Seen in `tests/several_instances.rs` (Vapi, under load): the call's first tool call,
    /// delivered twice, was answered on both leads of the call, and the merge kept both answers.
    #[test]
    fn a_tool_call_both_leads_answered_is_merged_once() {
        let opening = Turn::myriam(None, "Bonjour".to_owned());
        let answered = |lead: &mut Lead, id: &str, text: &str| {
            let mut caller = Turn::caller(None, text.to_owned(), true);
            caller.tool_call_id = Some(id.to_owned());
            let mut myriam = Turn::myriam(None, "Merci.".to_owned());
            myriam.tool_call_id = Some(id.to_owned());
            lead.conversation.extend([caller, myriam]);
        };
        let mut into = Lead::new(LeadId::new());
        into.conversation.push(opening.clone());
        answered(&mut into, "tc-0", "Jean Tremblay");
        answered(&mut into, "tc-1", "oui");
        let mut other = Lead::new(LeadId::new());
        other.conversation.push(opening);
        std::thread::sleep(std::time::Duration::from_millis(2));
        // Accepted later on the other instance: another `at`.
        answered(&mut other, "tc-0", "Jean Tremblay");
        let merged = merge(&into, &other);
        let ids: Vec<Option<&str>> = merged
            .conversation
            .iter()
            .map(|t| t.tool_call_id.as_deref())
            .collect();
        assert_eq!(
            ids,
            [None, Some("tc-0"), Some("tc-0"), Some("tc-1"), Some("tc-1")]
        );
    }

    #[test]
    fn a_save_whose_tool_call_answers_are_all_stored_is_superseded() {
        let mut base = Lead::new(LeadId::new());
        base.conversation
            .push(Turn::myriam(None, "Bonjour".to_owned()));
        let answered = |lead: &Lead, id: &str, text: &str| {
            let mut lead = lead.clone();
            let mut caller = Turn::caller(None, text.to_owned(), true);
            caller.tool_call_id = Some(id.to_owned());
            let mut myriam = Turn::myriam(None, "Merci.".to_owned());
            myriam.tool_call_id = Some(id.to_owned());
            lead.conversation.extend([caller, myriam]);
            lead
        };
        let queued = answered(&base, "tc-0", "Jean");
        // Applied elsewhere from the history, then the next answer.
        let stored = answered(&answered(&base, "tc-0", "Jean"), "tc-1", "oui");
        assert!(superseded(&stored, &LeadRow::from(&queued)));
        // The stored lead lacks one of its answers: not superseded.
        let other = answered(&base, "tc-9", "Paul");
        assert!(!superseded(&other, &LeadRow::from(&queued)));
        // A save that adds a turn no tool call carries (the IVR): never superseded.
        let mut ivr = base.clone();
        ivr.conversation
            .push(Turn::caller(None, "Jean".to_owned(), true));
        assert!(!superseded(&stored, &LeadRow::from(&ivr)));
        assert!(
            !superseded(&stored, &LeadRow::from(&base)),
            "no tool call: not this case"
        );
        // Its own write landed late, then the lead moved on.
        let own = answered(&queued, "tc-1", "oui");
        assert!(superseded(&own, &LeadRow::from(&queued)));
    }
}
