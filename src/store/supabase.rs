//! Supabase through PostgREST (`postgrest` crate), schema `bp` (`SUPABASE_SCHEMA`).
//!
//! `{SUPABASE_URL}/rest/v1`, the key sent as `apikey` and `Authorization: Bearer`, a deadline on
//! every request. The crate returns `Ok` for HTTP errors, so every status is checked here and a
//! non-2xx answer becomes [`StoreError::Rejected`] carrying PostgREST's `code`. This file is the
//! plumbing the capability stores share (requests, RPCs, filtered updates and selects, alerts'
//! enqueueing, erasure tombstones); leads and calls — conditional saves, upserts on natural keys,
//! `bp.start_call`, `bp.report_call_status` — are `leads/supabase.rs`. Every PATCH is filtered, so
//! Supabase's safeupdate rule (no unfiltered update) cannot bite.

use std::sync::Arc;
use std::time::Duration;

use postgrest::Postgrest;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::rows::StoreError;

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

    /// Creates alerts once (`bp.enqueue_alerts`).
    pub(in crate::store) async fn enqueue_alerts(
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
