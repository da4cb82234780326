//! Supabase through PostgREST (`postgrest` crate), schema `bp` (`SUPABASE_SCHEMA`).
//!
//! `{SUPABASE_URL}/rest/v1`, the key sent as `apikey` and `Authorization: Bearer`, a deadline on
//! every request. The crate returns `Ok` for HTTP errors, so every status is checked here and a
//! non-2xx answer becomes [`StoreError::Rejected`] carrying PostgREST's `code`. Lead saves are
//! conditional (an insert, or a PATCH filtered on `id` and `version`); calls and events are
//! upserts on natural keys (`call_sid`, `key`) whose call status and lead the database keeps
//! monotonic (`bp.calls_forward`); a call's creation is one RPC (`bp.start_call`). Every PATCH is
//! filtered, so Supabase's safeupdate rule (no unfiltered update) cannot bite.

use std::sync::Arc;
use std::time::Duration;

use postgrest::Postgrest;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::rows::{CallRecord, CallUpdate, MAX_PAGE, Store, StoreError};
use super::rows::{LeadRow, Saved, WriteOp};
use crate::domain::{CallSid, LeadId, LeadStatus};
use crate::qualification::Lead;

/// Per-request deadline unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct SupabaseStore {
    pub(super) client: Arc<Postgrest>,
    timeout: Duration,
    base: Arc<str>,
}

impl std::fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The base URL is not secret; the key is never shown.
        f.debug_struct("SupabaseStore")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Header values the HTTP stack accepts (the crate panics on others).
fn header_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The error body PostgREST sends: `{code, message, details, hint}`. `details` quotes values and is
/// dropped.
#[derive(serde::Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl SupabaseStore {
    /// `url` is the project URL (`https://<ref>.supabase.co`); `/rest/v1` is appended.
    ///
    /// # Panics
    /// Never: the key is checked before it reaches the HTTP client, which would panic on it.
    pub fn new(url: &str, key: &SecretString, schema: &str, timeout: Duration) -> Self {
        let base: Arc<str> = format!("{}/rest/v1", url.trim_end_matches('/')).into();
        let key = key.expose_secret().trim();
        let mut client = Postgrest::new(base.as_ref()).schema(schema);
        if header_safe(key) {
            client = client
                .insert_header("apikey", key)
                .insert_header("Authorization", format!("Bearer {key}"));
        }
        // An unusable key sends no credentials: Supabase answers 401, reported as a rejection.
        Self {
            client: Arc::new(client),
            timeout,
            base,
        }
    }

    /// Sends a request, enforcing the deadline and mapping every non-2xx answer to an error.
    /// Returns the status and the body.
    pub(super) async fn send(
        &self,
        builder: postgrest::Builder,
    ) -> Result<(u16, String), StoreError> {
        let request = builder.build().timeout(self.timeout).send();
        let response = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => return Err(StoreError::Timeout(self.timeout)),
            Ok(Err(e)) if e.is_timeout() => return Err(StoreError::Timeout(self.timeout)),
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(e.without_url().to_string()));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let body = match tokio::time::timeout(self.timeout, response.text()).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err(StoreError::Unavailable(e.without_url().to_string())),
            Err(_) => return Err(StoreError::Timeout(self.timeout)),
        };
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let parsed: Option<ErrorBody> = serde_json::from_str(&body).ok();
        Err(StoreError::Rejected {
            status,
            code: parsed
                .as_ref()
                .and_then(|b| b.code.clone())
                .unwrap_or_else(|| "unknown".to_owned()),
            message: parsed
                .and_then(|b| b.message)
                .unwrap_or_else(|| "no error body".to_owned()),
        })
    }

    pub(super) async fn rows<T: DeserializeOwned>(
        &self,
        builder: postgrest::Builder,
    ) -> Result<Vec<T>, StoreError> {
        let (_, body) = self.send(builder).await?;
        serde_json::from_str(&body)
            // serde's message quotes the offending value, which may be caller data: keep the place.
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "unexpected PostgREST answer ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })
    }

    pub(super) fn body<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| StoreError::Local(e.to_string()))
    }

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
                .send(self.client.from("leads").insert(Self::body(&body)?))
                .await
            {
                Ok(_) => Ok(Saved::Applied),
                Err(StoreError::Rejected {
                    status: 409, code, ..
                }) if code == "23505" => Ok(Saved::Stale),
                Err(e) => Err(e),
            };
        }
        let rows: Vec<serde_json::Value> = self
            .patch_rows(
                "leads",
                &body,
                &[
                    ("id", row.id.to_string()),
                    ("version", row.version.to_string()),
                ],
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

    /// Creates alerts once (`bp.enqueue_alerts`).
    pub(super) async fn enqueue_alerts(
        &self,
        alerts: &[super::rows::NewAlert],
    ) -> Result<(), StoreError> {
        if !alerts.is_empty() {
            self.send(self.client.rpc(
                "enqueue_alerts",
                Self::body(&serde_json::json!({ "alerts": alerts }))?,
            ))
            .await?;
        }
        Ok(())
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

    /// The rows a SQL function returns (`POST /rpc/{name}`).
    pub(super) async fn rpc_rows<T: DeserializeOwned>(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(self.client.rpc(name, Self::body(params)?)).await
    }

    /// The scalar a SQL function returns.
    pub(super) async fn rpc_value(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let (_, body) = self
            .send(self.client.rpc(name, Self::body(params)?))
            .await?;
        serde_json::from_str(&body)
            .map_err(|_| StoreError::Corrupt(format!("unexpected answer of rpc/{name}")))
    }

    /// A PATCH filtered on every `(column, value)` of `filters` (all `eq`); the changed rows.
    pub(super) async fn patch_rows<T: DeserializeOwned>(
        &self,
        table: &str,
        body: &serde_json::Value,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, StoreError> {
        let mut builder = self.client.from(table).update(Self::body(body)?);
        for (column, value) in filters {
            builder = builder.eq(*column, value);
        }
        self.rows(builder).await
    }

    /// Rows whose columns equal `filters`, in `order`.
    pub(super) async fn select_rows<T: DeserializeOwned>(
        &self,
        table: &str,
        filters: &[(&str, String)],
        order: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut builder = self.client.from(table).select("*").order(order);
        for (column, value) in filters {
            builder = builder.eq(*column, value);
        }
        self.rows(builder).await
    }

    /// Rows whose `column` is one of `values`, in `order`.
    pub(super) async fn select_in<T: DeserializeOwned>(
        &self,
        table: &str,
        column: &str,
        values: &[&str],
        order: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(
            self.client
                .from(table)
                .select("*")
                .in_(column, values.iter().copied())
                .order(order),
        )
        .await
    }
}

impl SupabaseStore {
    /// Adds tombstones (`bp.erased`): the lead and call of a queued write dropped as the erased
    /// caller's, which Supabase never knew, so that the writes queued after it about them go too.
    pub async fn record_erased(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| serde_json::json!({ "key": k }))
            .collect();
        self.send(
            self.client
                .from("erased")
                .upsert(Self::body(&rows)?)
                .on_conflict("key"),
        )
        .await
        .map(drop)
    }

    /// The tombstones written at or after `since`, with when (`bp.erased`).
    pub async fn erased_after(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<(String, time::OffsetDateTime)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Tombstone {
            key: String,
            #[serde(with = "time::serde::rfc3339")]
            erased_at: time::OffsetDateTime,
        }
        let since = since
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::Local(e.to_string()))?;
        let rows: Vec<Tombstone> = self
            .rows(
                self.client
                    .from("erased")
                    .select("key,erased_at")
                    .gte("erased_at", since),
            )
            .await?;
        Ok(rows.into_iter().map(|t| (t.key, t.erased_at)).collect())
    }

    /// Whether one of `keys` (tombstones, [`super::rows::erased_keys`]) was erased at or after
    /// `since` (`bp.erased`).
    pub async fn erased_since(
        &self,
        keys: &[String],
        since: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if keys.is_empty() {
            return Ok(false);
        }
        let since = since
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::Local(e.to_string()))?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                self.client
                    .from("erased")
                    .select("key")
                    .in_("key", keys)
                    .gte("erased_at", since)
                    .limit(1),
            )
            .await?;
        Ok(!rows.is_empty())
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
