//! [`Store`] over the outbox: writes go through it, reads overlay this instance's pending writes on
//! Supabase's answers and fall back to the local mirror while Supabase is unreachable.

use super::Written;
use super::{OutboxStore, decode};
use crate::domain::LeadStatus;
use crate::domain::{CallSid, LeadId};
use crate::qualification::Lead;
use crate::store::rows::{
    CallRecord, CallUpdate, LeadRow, Saved, StatusApplied, StatusAtOnce, Store, StoreError,
    WriteOp, overlay,
};

impl Store for OutboxStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        Ok(
            match self.write(WriteOp::SaveLead(LeadRow::from(lead))).await? {
                Written::Stale => Saved::Stale,
                Written::Direct { .. } | Written::Queued => Saved::Applied,
            },
        )
    }

    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        self.write(WriteOp::AbandonLead { id }).await?;
        Ok(self.get_lead(id).await?.map(|lead| lead.status))
    }

    /// Insert-or-get through Supabase when it answers. While it does not, the local mirror
    /// decides (a call this instance already started keeps its lead) and the start is queued; its
    /// replay is insert-or-get too, so a call another instance started meanwhile keeps that lead
    /// and no second lead reaches Supabase (see ARCHITECTURE.md, "Brownout").
    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        let _call = self
            .inner
            .entity_locks
            .lock(&format!("call:{}", call.call_sid))
            .await;
        if let Some(id) = self.pending_start(&call.call_sid).await? {
            if let Some(lead) = self.get_lead(id).await? {
                return Ok(lead);
            }
        }
        let op = WriteOp::StartCall {
            lead: LeadRow::from(lead),
            call: Box::new(call.clone()),
        };
        if self.depth().await? == 0 {
            let direct = tokio::time::timeout(
                self.inner.config.write_deadline,
                self.inner.remote.start_call(lead, call),
            )
            .await
            .unwrap_or(Err(StoreError::Timeout(self.inner.config.write_deadline)));
            match direct {
                Ok(started) => {
                    self.inner.refusals.clear();
                    self.mirror(&WriteOp::StartCall {
                        lead: LeadRow::from(&started),
                        call: Box::new(call.clone()),
                    })
                    .await;
                    return Ok(started);
                }
                Err(error) if !error.is_transient() || self.inner.refusals.is_refusal(&error) => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(%error, "Supabase unreachable for a new call; started locally and queued");
                }
            }
        }
        let started = self.inner.local.start_call(lead, call).await?;
        if started.id == lead.id {
            self.enqueue(&op).await?;
        }
        Ok(started)
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        let pending = self.pending_for(format!("lead:{id}")).await?;
        let base = match pending.first() {
            // A whole lead is pending: Supabase's copy is older.
            Some(WriteOp::SaveLead(_) | WriteOp::SaveLeadWithAlerts { .. }) => None,
            _ => match self.inner.remote.get_lead(id).await {
                Err(error) if error.is_transient() => {
                    Self::fallback(error, self.inner.local.get_lead(id).await)?
                }
                other => other?,
            },
        };
        pending.iter().try_fold(base, overlay)
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
            Some(lead) => {
                let pending = self.pending_for(format!("lead:{}", lead.id)).await?;
                Ok(pending.iter().try_fold(Some(lead), overlay)?)
            }
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
        Ok(
            match self
                .write(WriteOp::RecordEvent {
                    key: key.to_owned(),
                })
                .await?
            {
                Written::Direct { new_event } => new_event,
                Written::Queued | Written::Stale => true,
            },
        )
    }

    /// Supabase's answer only: a key queued here (`event_pending`) was seen; otherwise Supabase
    /// records it or says it holds it. Unreachable: an error, nothing queued (another instance
    /// could be queueing the same key at the same moment).
    async fn claim_once(&self, key: &str) -> Result<bool, StoreError> {
        if self.event_pending(key).await? {
            return Ok(false);
        }
        let new = self.inner.remote.record_event(key).await?;
        // The local mirror learns it too, so a replay here is refused while Supabase is away.
        if let Err(error) = self.inner.local.record_event(key).await {
            tracing::warn!(%error, "could not mirror a claimed event locally");
        }
        Ok(new)
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

    /// One round trip to Supabase when nothing is queued here (a queued write of the call or its
    /// lead must reach Supabase first) and it answers within the write deadline; otherwise (or if
    /// Supabase lacks the function) `None`, and the report goes step by step through the outbox.
    /// A report whose answer was lost may have been applied: the steps are idempotent (the key,
    /// the upsert, the conditional abandonment), so applying it again changes nothing.
    async fn report_status_at_once(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> Result<Option<StatusApplied>, StoreError> {
        use std::sync::atomic::Ordering;
        if self.inner.no_status_function.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let sid = &report.update.call_sid;
        let _call = self.inner.entity_locks.lock(&format!("call:{sid}")).await;
        if self.depth().await? != 0 {
            return Ok(None);
        }
        let applied = tokio::time::timeout(
            self.inner.config.write_deadline,
            self.inner.remote.report_call_status(report),
        )
        .await
        .unwrap_or(Err(StoreError::Timeout(self.inner.config.write_deadline)));
        let applied = match applied {
            Ok(applied) => applied,
            Err(StoreError::Rejected {
                status: 404, code, ..
            }) if code == "PGRST202" || code == "42883" => {
                tracing::warn!(
                    "Supabase has no bp.report_call_status (migration 20261209000000_call_status): status reports go step by step"
                );
                self.inner.no_status_function.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            Err(error) => {
                tracing::debug!(%error, "status report at once failed; applied step by step");
                return Ok(None);
            }
        };
        self.inner.refusals.clear();
        if !applied.duplicate {
            // What the function wrote, into the local mirror (fallback reads).
            self.mirror(&WriteOp::UpsertCall(report.update.clone()))
                .await;
            if applied.ends {
                self.mirror(&WriteOp::RecordEvent {
                    key: format!("call-ended:{sid}"),
                })
                .await;
                if let Some(id) = applied.lead_id {
                    self.mirror(&WriteOp::AbandonLead { id }).await;
                }
            }
            if let Some(key) = report.idempotency_key {
                self.mirror(&WriteOp::RecordEvent {
                    key: key.to_owned(),
                })
                .await;
            }
        }
        Ok(Some(applied))
    }

    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        let mut leads = self.inner.remote.list_leads(limit, offset).await?;
        for lead in &mut leads {
            let pending = self.pending_for(format!("lead:{}", lead.id)).await?;
            if pending.is_empty() {
                continue;
            }
            let (created, updated) = (lead.created_at, lead.updated_at);
            if let Some(mut newer) = pending.iter().try_fold(Some(lead.clone()), overlay)? {
                newer.created_at = created;
                newer.updated_at = updated;
                *lead = newer;
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

    /// The outbox is where writes become durable, so the instance is healthy while it takes a
    /// durable write, even with Supabase unreachable (writes queue); see
    /// [`OutboxStore::remote_health`] and [`OutboxStore::refusing`].
    async fn health(&self) -> Result<(), StoreError> {
        self.inner.local.health().await
    }
}

impl OutboxStore {
    /// A read Supabase could not answer, answered from the local mirror: what this instance wrote
    /// is there; what only other instances wrote is not, which beats failing the caller.
    pub(super) fn fallback<T>(
        remote: StoreError,
        local: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match local {
            Ok(value) => {
                tracing::warn!(error = %remote, "Supabase unreachable; answered from the local mirror");
                Ok(value)
            }
            Err(_) => Err(remote),
        }
    }

    pub(super) async fn event_pending(&self, key: &str) -> Result<bool, StoreError> {
        Ok(!self.pending_for(format!("event:{key}")).await?.is_empty())
    }
}
