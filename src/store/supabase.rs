//! Supabase through PostgREST (`postgrest` crate), schema `bp` (`SUPABASE_SCHEMA`).
//!
//! `{SUPABASE_URL}/rest/v1`, the key sent as `apikey` and `Authorization: Bearer`, a deadline on
//! every request. The crate returns `Ok` for HTTP errors, so every status is checked here and a
//! non-2xx answer becomes [`StoreError::Rejected`] carrying PostgREST's `code`. Writes are upserts
//! on natural keys (`id`, `call_sid`, `key`); no PATCH or DELETE is ever sent, so Supabase's
//! safeupdate rule (no unfiltered update) cannot bite.

use std::sync::Arc;
use std::time::Duration;

use postgrest::Postgrest;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::rows::{LeadRow, WriteOp};
use super::{CallRecord, CallUpdate, MAX_PAGE, Store, StoreError};
use crate::domain::{CallSid, LeadId};
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

    /// Applies one write (the outbox replays through this).
    pub async fn apply(&self, op: &WriteOp) -> Result<(), StoreError> {
        self.apply_inner(op).await.map(drop)
    }

    /// Returns the HTTP status of the accepted write (201 inserted, 200 merged).
    async fn apply_inner(&self, op: &WriteOp) -> Result<u16, StoreError> {
        let builder = match op {
            WriteOp::UpsertLead(row) => self
                .client
                .from("leads")
                .upsert(Self::body(row)?)
                .on_conflict("id"),
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
        };
        self.send(builder).await.map(|(status, _)| status)
    }
}

fn leads(rows: Vec<LeadRow>) -> Result<Vec<Lead>, StoreError> {
    rows.into_iter().map(Lead::try_from).collect()
}

impl Store for SupabaseStore {
    async fn upsert_lead(&self, lead: &Lead) -> Result<(), StoreError> {
        self.apply(&WriteOp::UpsertLead(LeadRow::from(lead))).await
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
        self.apply(&WriteOp::UpsertCall(update.clone())).await
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
            .await?;
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
