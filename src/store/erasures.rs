//! What a Law 25 erasure leaves to do, as rows: the deletions owed at Twilio and Vapi
//! (`remote_erasures` / `bp.remote_erasures`) and what was erased (`erased` / `bp.erased`).
//!
//! **Remote deletions.** The erasure collects, before its rows go and in the same transaction, the
//! caller's voicemail Recording SIDs, the Twilio Call SIDs, the Message SIDs of the SMS alerts sent
//! about the caller and the Vapi call ids, and creates one row per remote object. A row moves
//! `pending` → `claimed` (an instance holds it until `lease_until`) → `done` (the DELETE answered
//! 2xx, or 404: already gone) or `dead` (refused for good), or back to `pending` with a later
//! `next_attempt_at` after a 5xx, a 429, a timeout or a refused connection. A claim is a
//! conditional update (`skip locked` in PostgreSQL), never a process lock, so several instances
//! share the work and a crash only delays a row until its lease runs out. A DELETE is idempotent:
//! doing one twice (a lease that ran out mid-request) answers 404 the second time, counted as done.
//!
//! **Tombstones.** `erased` holds `lead:<uuid>` for each erased lead id (not personal data: random
//! ids) and `number:<sha256>` / `call:<sha256>` for the number and the `CallSid`s, SHA-256 hex of the
//! E.164 number or the SID, never the value itself, with when they were erased. A lead whose id was
//! erased is never inserted again (a trigger in both stores). A queued write (the outbox of any
//! instance) is dropped when it names something erased after it was queued ([`erased_keys`]).
//! The hash is unkeyed: the gateway has no per-deployment secret stable enough to key it (keys
//! derived from `TWILIO_AUTH_TOKEN` change with a rotation), so someone holding the database can
//! test a guessed number against it; the table holds nothing else about the caller.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::any::AnyStore;
use super::outbox::OutboxStore;
use super::rows::{StoreError, rfc3339};
pub use super::rows::{call_key, erased_keys, lead_key, number_key};
use super::sqlite::{CachedStatements as _, SqliteStore, parse_time, retry_delay};
use super::supabase::SupabaseStore;

/// Where a remote object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteService {
    /// A voicemail recording (`RE…`): `DELETE …/Recordings/{Sid}.json`.
    TwilioRecording,
    /// The call's log (`CA…`): `DELETE …/Calls/{Sid}.json`.
    TwilioCall,
    /// An SMS alert sent to staff about the caller (`SM…`): `DELETE …/Messages/{Sid}.json`.
    TwilioMessage,
    /// The Vapi call (its recording and transcript): `DELETE /call/{id}`.
    VapiCall,
}

impl RemoteService {
    pub const ALL: [RemoteService; 4] = [
        RemoteService::TwilioRecording,
        RemoteService::TwilioCall,
        RemoteService::TwilioMessage,
        RemoteService::VapiCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RemoteService::TwilioRecording => "twilio_recording",
            RemoteService::TwilioCall => "twilio_call",
            RemoteService::TwilioMessage => "twilio_message",
            RemoteService::VapiCall => "vapi_call",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt("remote_erasures.service".to_owned()))
    }
}

/// One remote object to delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RemoteTarget {
    pub service: RemoteService,
    pub remote_id: String,
}

/// Where a remote deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteStatus {
    Pending,
    Claimed,
    Done,
    Dead,
}

/// A remote deletion as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteErasure {
    pub id: Uuid,
    pub erasure_id: Uuid,
    pub service: RemoteService,
    pub remote_id: String,
    pub status: RemoteStatus,
    /// Claims so far (1 during the first attempt).
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// How a claimed deletion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutcome {
    /// Deleted (2xx), or not found (404: deleted already).
    Done,
    /// Try again after `after` (5xx, 429, timeout, a call still in progress).
    Retry { after: Duration, error: String },
    /// Refused for good (a 4xx other than those): shown on the erasure's page.
    Dead { error: String },
}

/// Storage of remote deletions and tombstones, implemented by every store.
pub trait RemoteErasures: Send + Sync {
    /// Claims up to `limit` due deletions (pending and due, or claimed with an expired lease) —
    /// only those of `erasure` when given — until `lease` from now, counting an attempt each.
    fn claim_remote_erasures(
        &self,
        lease: Duration,
        limit: usize,
        erasure: Option<Uuid>,
    ) -> impl Future<Output = Result<Vec<RemoteErasure>, StoreError>> + Send;

    /// Records how a claimed deletion ended. `false` when the row was no longer claimed.
    fn finish_remote_erasure(
        &self,
        id: Uuid,
        outcome: &RemoteOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The deletions of one erasure, in the order they were created.
    fn remote_erasures_of(
        &self,
        erasure: Uuid,
    ) -> impl Future<Output = Result<Vec<RemoteErasure>, StoreError>> + Send;

    /// Deletions not done yet: `(waiting or being retried, refused for good)`.
    fn remote_erasure_backlog(
        &self,
    ) -> impl Future<Output = Result<(usize, usize), StoreError>> + Send;

    /// Whether one of `keys` was erased at or after `since`.
    fn erased_since(
        &self,
        keys: &[String],
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

const COLUMNS: &str = "id, erasure_id, service, remote_id, status, attempts, last_error";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RemoteErasure, StoreError>> {
    let id: String = row.get(0)?;
    let erasure: String = row.get(1)?;
    let service: String = row.get(2)?;
    let remote_id: String = row.get(3)?;
    let status: String = row.get(4)?;
    let attempts: i64 = row.get(5)?;
    let last_error: Option<String> = row.get(6)?;
    let build = || -> Result<RemoteErasure, StoreError> {
        let corrupt = |c: &str| StoreError::Corrupt(format!("remote_erasures.{c}"));
        Ok(RemoteErasure {
            id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
            erasure_id: Uuid::parse_str(&erasure).map_err(|_| corrupt("erasure_id"))?,
            service: RemoteService::parse(&service)?,
            remote_id,
            status: serde_json::from_value(serde_json::Value::String(status))
                .map_err(|_| corrupt("status"))?,
            attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts"))?,
            last_error,
        })
    };
    Ok(build())
}

/// Inside the erasure's transaction: the tombstones and the remote deletions owed.
pub(super) fn record_erasure_sql(
    conn: &rusqlite::Connection,
    erasure: Uuid,
    keys: &[String],
    targets: &[RemoteTarget],
) -> Result<(), StoreError> {
    for key in keys {
        conn.execute_cached(
            "INSERT INTO erased (key) VALUES (?1) ON CONFLICT (key) DO UPDATE \
             SET erased_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            [key],
        )?;
    }
    for target in targets {
        conn.execute_cached(
            "INSERT INTO remote_erasures (id, erasure_id, service, remote_id) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (erasure_id, service, remote_id) DO NOTHING",
            rusqlite::params![
                Uuid::new_v4().to_string(),
                erasure.to_string(),
                target.service.as_str(),
                target.remote_id
            ],
        )?;
    }
    Ok(())
}

impl RemoteErasures for SqliteStore {
    async fn claim_remote_erasures(
        &self,
        lease: Duration,
        limit: usize,
        erasure: Option<Uuid>,
    ) -> Result<Vec<RemoteErasure>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = retry_delay(lease);
        let erasure = erasure.map(|e| e.to_string());
        self.call(move |c| {
            let tx = c.savepoint()?;
            let rows = {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE remote_erasures SET status = 'claimed', attempts = attempts + 1,
                         lease_until = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id IN (
                         SELECT id FROM remote_erasures
                         WHERE ((status = 'pending'
                                 AND next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                             OR (status = 'claimed'
                                 AND lease_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
                           AND (?3 IS NULL OR erasure_id = ?3)
                         ORDER BY next_attempt_at, seq LIMIT ?2)
                     RETURNING {COLUMNS}"
                ))?;
                let rows = stmt.query_map(rusqlite::params![lease, limit, erasure], from_row)?;
                super::sqlite::collect(rows)?
            };
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    async fn finish_remote_erasure(
        &self,
        id: Uuid,
        outcome: &RemoteOutcome,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let outcome = outcome.clone();
        self.call(move |c| {
            let changed = match outcome {
                RemoteOutcome::Done => c.execute_cached(
                    "UPDATE remote_erasures SET status = 'done', lease_until = NULL,
                         last_error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    [&id],
                )?,
                RemoteOutcome::Retry { after, error } => c.execute_cached(
                    "UPDATE remote_erasures SET status = 'pending', lease_until = NULL,
                         last_error = ?2,
                         next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    rusqlite::params![id, error, retry_delay(after)],
                )?,
                RemoteOutcome::Dead { error } => c.execute_cached(
                    "UPDATE remote_erasures SET status = 'dead', lease_until = NULL,
                         last_error = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    rusqlite::params![id, error],
                )?,
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn remote_erasures_of(&self, erasure: Uuid) -> Result<Vec<RemoteErasure>, StoreError> {
        let erasure = erasure.to_string();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM remote_erasures WHERE erasure_id = ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map([erasure], from_row)?;
            super::sqlite::collect(rows)
        })
        .await
    }

    async fn remote_erasure_backlog(&self) -> Result<(usize, usize), StoreError> {
        let (waiting, dead): (i64, i64) = self
            .call(|c| {
                Ok(c.query_row_cached(
                    "SELECT COUNT(*) FILTER (WHERE status IN ('pending', 'claimed')),
                            COUNT(*) FILTER (WHERE status = 'dead')
                     FROM remote_erasures",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await?;
        Ok((
            usize::try_from(waiting).unwrap_or(0),
            usize::try_from(dead).unwrap_or(0),
        ))
    }

    async fn erased_since(
        &self,
        keys: &[String],
        since: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if keys.is_empty() {
            return Ok(false);
        }
        let keys = keys.to_vec();
        let since = rfc3339(since)?;
        self.call(move |c| {
            for key in &keys {
                let erased_at: Option<String> = c
                    .query_row_cached("SELECT erased_at FROM erased WHERE key = ?1", [key], |r| {
                        r.get(0)
                    })
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        other => Err(other),
                    })?;
                if let Some(at) = erased_at {
                    if parse_time(&at)? >= parse_time(&since)? {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        })
        .await
    }
}

impl RemoteErasures for SupabaseStore {
    async fn claim_remote_erasures(
        &self,
        lease: Duration,
        limit: usize,
        erasure: Option<Uuid>,
    ) -> Result<Vec<RemoteErasure>, StoreError> {
        self.rpc_rows(
            "claim_remote_erasures",
            &serde_json::json!({
                "max_rows": limit,
                "lease_seconds": lease.as_secs().max(1),
                "p_erasure": erasure,
            }),
        )
        .await
    }

    async fn finish_remote_erasure(
        &self,
        id: Uuid,
        outcome: &RemoteOutcome,
    ) -> Result<bool, StoreError> {
        let body = match outcome {
            RemoteOutcome::Done => serde_json::json!({
                "status": "done", "lease_until": null, "last_error": null,
            }),
            RemoteOutcome::Retry { after, error } => serde_json::json!({
                "status": "pending", "lease_until": null, "last_error": error,
                "next_attempt_at": rfc3339(OffsetDateTime::now_utc() + *after)?,
            }),
            RemoteOutcome::Dead { error } => serde_json::json!({
                "status": "dead", "lease_until": null, "last_error": error,
            }),
        };
        let rows: Vec<serde_json::Value> = self
            .patch_rows(
                "remote_erasures",
                &body,
                &[("id", id.to_string()), ("status", "claimed".to_owned())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn remote_erasures_of(&self, erasure: Uuid) -> Result<Vec<RemoteErasure>, StoreError> {
        self.select_rows(
            "remote_erasures",
            &[("erasure_id", erasure.to_string())],
            "created_at.asc,service.asc,remote_id.asc",
        )
        .await
    }

    async fn remote_erasure_backlog(&self) -> Result<(usize, usize), StoreError> {
        let rows: Vec<RemoteErasure> = self
            .select_in(
                "remote_erasures",
                "status",
                &["pending", "claimed", "dead"],
                "created_at.asc",
            )
            .await?;
        let dead = rows
            .iter()
            .filter(|r| r.status == RemoteStatus::Dead)
            .count();
        Ok((rows.len() - dead, dead))
    }

    async fn erased_since(
        &self,
        keys: &[String],
        since: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        SupabaseStore::erased_since(self, keys, since).await
    }
}

/// Remote deletions and tombstones live in Supabase, shared by every instance.
impl RemoteErasures for OutboxStore {
    async fn claim_remote_erasures(
        &self,
        lease: Duration,
        limit: usize,
        erasure: Option<Uuid>,
    ) -> Result<Vec<RemoteErasure>, StoreError> {
        self.remote()
            .claim_remote_erasures(lease, limit, erasure)
            .await
    }

    async fn finish_remote_erasure(
        &self,
        id: Uuid,
        outcome: &RemoteOutcome,
    ) -> Result<bool, StoreError> {
        self.remote().finish_remote_erasure(id, outcome).await
    }

    async fn remote_erasures_of(&self, erasure: Uuid) -> Result<Vec<RemoteErasure>, StoreError> {
        self.remote().remote_erasures_of(erasure).await
    }

    async fn remote_erasure_backlog(&self) -> Result<(usize, usize), StoreError> {
        self.remote().remote_erasure_backlog().await
    }

    async fn erased_since(
        &self,
        keys: &[String],
        since: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Supabase is the truth; while it cannot answer, this instance's file knows what was
        // erased through it.
        match SupabaseStore::erased_since(self.remote(), keys, since).await {
            Err(error) if error.is_transient() => {
                tracing::debug!(%error, "tombstones read from the local file");
                self.local().erased_since(keys, since).await
            }
            other => other,
        }
    }
}

delegate_trait! {
    RemoteErasures;
    fn claim_remote_erasures(
        &self,
        lease: Duration,
        limit: usize,
        erasure: Option<Uuid>,
    ) -> Result<Vec<RemoteErasure>, StoreError>;
    fn finish_remote_erasure(&self, id: Uuid, outcome: &RemoteOutcome) -> Result<bool, StoreError>;
    fn remote_erasures_of(&self, erasure: Uuid) -> Result<Vec<RemoteErasure>, StoreError>;
    fn remote_erasure_backlog(&self) -> Result<(usize, usize), StoreError>;
    fn erased_since(&self, keys: &[String], since: OffsetDateTime) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_round_trip() {
        for service in RemoteService::ALL {
            assert_eq!(RemoteService::parse(service.as_str()), Ok(service));
        }
        assert!(RemoteService::parse("other").is_err());
    }
}
