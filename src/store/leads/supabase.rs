//! Leads and calls on Supabase: the conditional lead save (an insert, or a PATCH filtered on `id`
//! and `version`), the write operations the outbox replays ([`SupabaseStore::apply`]), a call's
//! creation in one RPC (`bp.start_call`), and [`Store`] for [`SupabaseStore`].

use crate::domain::{CallSid, LeadId, LeadStatus};
use crate::qualification::Lead;
use crate::store::rows::{
    CallRecord, CallUpdate, LeadRow, MAX_PAGE, Saved, StatusApplied, StatusAtOnce, Store,
    StoreError, WriteOp,
};
use crate::store::supabase::SupabaseStore;

impl SupabaseStore {
    /// Applies one write (the outbox replays through this); [`Saved::Stale`] when a lead save
    /// finds the lead at another version than the one it was based on.
    pub async fn apply(&self, op: &WriteOp) -> Result<Saved, StoreError> {
        self.apply_inner(op).await.map(|(saved, _)| saved)
    }

    /// A lead save: an insert when based on version 0 (a duplicate is stale), else a PATCH
    /// filtered on the id and the version it was based on (no row back: stale).
    async fn save_row(&self, row: &LeadRow) -> Result<Saved, StoreError> {
        let mut body = serde_json::to_value(row).map_err(|e| StoreError::Local(e.to_string()))?;
        body["version"] = serde_json::json!(row.version + 1);
        if row.version == 0 {
            return match self
                .send(
                    self.client
                        .from("leads")
                        .insert(Self::body(&body)?)
                        .select("version"),
                )
                .await
            {
                Ok(_) => Ok(Saved::Applied),
                Err(StoreError::Rejected {
                    status: 409, code, ..
                }) if code == "23505" => Ok(Saved::Stale),
                Err(e) => Err(e),
            };
        }
        // Only the new version comes back (`select=version`): whether a row matched is all the
        // save needs, and the whole lead (its conversation) would cost PostgreSQL and PostgREST
        // its JSON on every answer.
        let rows: Vec<serde_json::Value> = self
            .rows(
                self.client
                    .from("leads")
                    .update(Self::body(&body)?)
                    .eq("id", row.id.to_string())
                    .eq("version", row.version.to_string())
                    .select("version"),
            )
            .await?;
        Ok(if rows.is_empty() {
            Saved::Stale
        } else {
            Saved::Applied
        })
    }

    /// Whether Supabase already holds what `row` saves (a write whose answer was lost: it was
    /// applied, then queued and replayed): the lead is past the version `row` was based on and
    /// has the same content.
    pub async fn holds(&self, row: &LeadRow) -> Result<bool, StoreError> {
        let Some(stored) = self.get_lead(row.id).await? else {
            return Ok(false);
        };
        let Ok(mut wanted) = Lead::try_from(row.clone()) else {
            return Ok(false);
        };
        wanted.version = stored.version;
        wanted.created_at = stored.created_at;
        wanted.updated_at = stored.updated_at;
        Ok(stored.version > row.version && stored == wanted)
    }

    /// Returns whether the write applied and the HTTP status of the accepted write (201
    /// inserted, 200 merged).
    async fn apply_inner(&self, op: &WriteOp) -> Result<(Saved, u16), StoreError> {
        let builder = match op {
            WriteOp::SaveLead(row) => return Ok((self.save_row(row).await?, 200)),
            WriteOp::UpsertCall(update) => self
                .client
                .from("calls")
                .upsert(Self::body(update)?)
                .on_conflict("call_sid"),
            WriteOp::RecordEvent { key } => self
                .client
                .from("processed_events")
                .upsert(Self::body(&serde_json::json!({ "key": key }))?)
                .on_conflict("key"),
            WriteOp::SaveLeadWithAlerts { lead, alerts } => {
                // The lead first (the alerts reference it), then the alerts, which
                // `bp.enqueue_alerts` inserts once (existing ones are kept). A failure in between
                // fails the whole write, which is replayed: the replay finds the lead saved
                // (`holds`) and creates the alerts.
                if self.save_row(lead).await? == Saved::Stale {
                    return Ok((Saved::Stale, 200));
                }
                self.enqueue_alerts(alerts).await?;
                return Ok((Saved::Applied, 200));
            }
            WriteOp::AbandonLead { id } => self
                .client
                .from("leads")
                .eq("id", id.to_string())
                .in_("status", ["nouveau", "en_cours"])
                .update(Self::body(&serde_json::json!({ "status": "abandonne" }))?),
            WriteOp::StartCall { lead, call } => {
                self.start_call_rows(lead, call).await?;
                return Ok((Saved::Applied, 200));
            }
            WriteOp::AbandonCallLead { call_sid } => {
                let lead = self
                    .get_call(call_sid)
                    .await?
                    .and_then(|call| call.fields.lead_id);
                let Some(id) = lead else {
                    // The instance that started the call has not replayed its start yet: a
                    // conflict, retried (and kept as a dead letter after
                    // `outbox::MAX_CONFLICT_ATTEMPTS`).
                    return Err(StoreError::Rejected {
                        status: 409,
                        code: "myriam_call_without_lead".to_owned(),
                        message: "the call has no lead yet".to_owned(),
                    });
                };
                self.client
                    .from("leads")
                    .eq("id", id.to_string())
                    .in_("status", ["nouveau", "en_cours"])
                    .update(Self::body(&serde_json::json!({ "status": "abandonne" }))?)
            }
        };
        self.send(builder)
            .await
            .map(|(status, _)| (Saved::Applied, status))
    }

    /// `bp.start_call`: the call's lead, insert-or-get by CallSid, in one transaction.
    async fn start_call_rows(&self, lead: &LeadRow, call: &CallUpdate) -> Result<Lead, StoreError> {
        let mut lead = lead.clone();
        lead.version = 1;
        let rows: Vec<LeadRow> = self
            .rpc_rows(
                "start_call",
                &serde_json::json!({ "p_lead": lead, "p_call": call }),
            )
            .await?;
        leads(rows)?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("start_call returned no lead".to_owned()))
    }

    /// `bp.report_call_status`: a call's status report in one transaction (the idempotency key,
    /// the call's upsert, its end, the abandonment of its lead).
    pub async fn report_call_status(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> Result<StatusApplied, StoreError> {
        let answer = self
            .rpc_value(
                "report_call_status",
                &serde_json::json!({
                    "p_call": report.update,
                    "p_key": report.idempotency_key,
                    "p_ends": report.ends_call,
                    "p_from_bridged_side": report.from_bridged_side,
                }),
            )
            .await?;
        serde_json::from_value(answer).map_err(|_| {
            StoreError::Corrupt("unexpected answer of rpc/report_call_status".to_owned())
        })
    }
}

fn leads(rows: Vec<LeadRow>) -> Result<Vec<Lead>, StoreError> {
    rows.into_iter().map(Lead::try_from).collect()
}

impl Store for SupabaseStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        self.save_row(&LeadRow::from(lead)).await
    }

    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        self.apply(&WriteOp::AbandonLead { id }).await?;
        Ok(self.get_lead(id).await?.map(|lead| lead.status))
    }

    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        self.start_call_rows(&LeadRow::from(lead), call).await
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        let rows: Vec<LeadRow> = self
            .rows(
                self.client
                    .from("leads")
                    .select("*")
                    .eq("id", id.to_string()),
            )
            .await?;
        Ok(leads(rows)?.pop())
    }

    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        // One round trip: the lead embedding its call, filtered on the call.
        let rows: Vec<LeadRow> = self
            .rows(
                self.client
                    .from("leads")
                    .select("*,calls!inner(call_sid)")
                    .eq("calls.call_sid", call_sid.as_str()),
            )
            .await?;
        Ok(leads(rows)?.pop())
    }

    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        self.apply(&WriteOp::UpsertCall(update.clone()))
            .await
            .map(drop)
    }

    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        let mut rows: Vec<CallRecord> = self
            .rows(
                self.client
                    .from("calls")
                    .select("*")
                    .eq("call_sid", call_sid.as_str()),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut rows: Vec<CallRecord> = self
            .rows(
                self.client
                    .from("calls")
                    .select("*")
                    .eq("vapi_call_id", vapi_call_id)
                    .order("created_at.desc")
                    .limit(1),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        // PostgREST answers 201 when the upsert inserted and 200 when the key was already there.
        let status = self
            .apply_inner(&WriteOp::RecordEvent {
                key: key.to_owned(),
            })
            .await?
            .1;
        Ok(status == 201)
    }

    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .rows(
                self.client
                    .from("processed_events")
                    .select("key")
                    .eq("key", key),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn report_status_at_once(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> Result<Option<StatusApplied>, StoreError> {
        self.report_call_status(report).await.map(Some)
    }

    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        let limit = limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<LeadRow> = self
            .rows(
                self.client
                    .from("leads")
                    .select("*")
                    .order("created_at.desc,id.desc")
                    .range(offset, offset + limit - 1),
            )
            .await?;
        leads(rows)
    }

    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        self.rows(
            self.client
                .from("calls")
                .select("*")
                .eq("lead_id", lead_id.to_string())
                .order("created_at.asc,id.asc"),
        )
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.send(self.client.from("leads").select("id").limit(1))
            .await
            .map(drop)
    }
}
