//! SMS alerts to staff as rows (`bp.alerts` / the SQLite `alerts` table): one per lead, event and
//! recipient (a unique key), created in the same store write that qualifies the lead, then claimed
//! with a lease by whichever instance sends it.
//!
//! A row moves `pending` → `claimed` (an instance holds it until `lease_until`) → `sent` (Twilio
//! accepted it: `message_sid`) or `dead` (refused for good: `error_code`), or back to `pending`
//! with a later `next_attempt_at` after a transient failure. A claim whose lease ran out (its
//! instance died) is claimed again; the sender then looks for the message at Twilio before sending
//! (see [`crate::twilio::rest`]), so a crash between sending and recording never sends twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::any::AnyStore;
use super::outbox::OutboxStore;
use super::rows::{AlertEvent, LeadRow, NewAlert, Saved, WriteOp};
use super::rows::{StoreError, rfc3339};
use super::sqlite::{CachedStatements as _, SqliteStore, parse_time, retry_delay};
use super::supabase::SupabaseStore;
use crate::domain::LeadId;
use crate::qualification::Lead;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Pending,
    Claimed,
    Sent,
    Dead,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: uuid::Uuid,
    pub lead_id: LeadId,
    pub event: AlertEvent,
    pub recipient: String,
    pub status: AlertStatus,
    pub message_sid: Option<String>,
    /// Twilio's message status from the status callback.
    pub delivery_status: Option<String>,
    /// Claims so far (1 during the first send).
    pub attempts: u32,
    pub error_code: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// How a claimed alert's send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Twilio accepted it (201), or it was found already sent.
    Sent { message_sid: String, status: String },
    /// Try again after `after` (5xx, 429, timeout). `error` names the failure, no caller data.
    Retry { after: Duration, error: String },
    /// Refused for good (invalid or unsubscribed number, permission): kept as a dead letter.
    Dead { code: Option<i64>, error: String },
}

/// Twilio's message statuses in the order a message moves through them; a status callback never
/// moves an alert backwards (callbacks may arrive late or twice).
pub fn delivery_rank(status: &str) -> u8 {
    match status {
        "accepted" | "scheduled" | "queued" => 1,
        "sending" => 2,
        "sent" => 3,
        "delivered" | "undelivered" | "failed" | "read" | "canceled" => 4,
        _ => 0,
    }
}

/// Alert storage, implemented by every store.
pub trait Alerts: Send + Sync {
    /// Saves the lead (conditionally, as [`super::Store::save_lead`]) and creates `alerts` in one
    /// durable write: both or neither. An alert that already exists (same lead, event and
    /// recipient) is left as it is.
    fn save_lead_with_alerts(
        &self,
        lead: &Lead,
        alerts: &[NewAlert],
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// Claims up to `limit` alerts that are due (pending, or claimed with an expired lease) until
    /// `lease` from now, counting an attempt each. Another instance never gets the same row while
    /// the lease runs.
    fn claim_due_alerts(
        &self,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AlertRecord>, StoreError>> + Send;

    /// Records how the send of a claimed alert ended. `false` when the row was no longer claimed.
    fn finish_alert(
        &self,
        id: uuid::Uuid,
        outcome: &AlertOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A status callback: moves the delivery status forward only. `false` for an unknown SID or
    /// a status that would move backwards.
    fn record_delivery(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A lead's alerts, oldest first.
    fn alerts_of_lead(
        &self,
        lead_id: LeadId,
    ) -> impl Future<Output = Result<Vec<AlertRecord>, StoreError>> + Send;

    /// How many alerts wait to be sent and the age of the oldest (for the queue metrics).
    fn alert_backlog(&self) -> impl Future<Output = Result<(usize, Duration), StoreError>> + Send;
}

const ALERT_COLUMNS: &str = "id, lead_id, event, recipient, status, message_sid, \
    delivery_status, attempts, error_code, last_error, created_at";

fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<AlertRecord, StoreError>> {
    let id: String = row.get(0)?;
    let lead: String = row.get(1)?;
    let event: String = row.get(2)?;
    let status: String = row.get(4)?;
    let attempts: i64 = row.get(7)?;
    let created: String = row.get(10)?;
    let recipient: String = row.get(3)?;
    let message_sid: Option<String> = row.get(5)?;
    let delivery_status: Option<String> = row.get(6)?;
    let error_code: Option<i64> = row.get(8)?;
    let last_error: Option<String> = row.get(9)?;
    let build = || -> Result<AlertRecord, StoreError> {
        let corrupt = |c: &str| StoreError::Corrupt(format!("alerts.{c}"));
        Ok(AlertRecord {
            id: uuid::Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
            lead_id: LeadId::try_from(lead.as_str()).map_err(|_| corrupt("lead_id"))?,
            event: AlertEvent::parse(&event)?,
            recipient,
            status: serde_json::from_value(serde_json::Value::String(status))
                .map_err(|_| corrupt("status"))?,
            message_sid,
            delivery_status,
            attempts: u32::try_from(attempts).map_err(|_| corrupt("attempts"))?,
            error_code,
            last_error,
            created_at: parse_time(&created)?,
        })
    };
    Ok(build())
}

/// Inserts `alerts` inside an open transaction; existing ones are kept.
pub(super) fn insert_alerts_sql(
    conn: &rusqlite::Connection,
    alerts: &[NewAlert],
) -> Result<(), StoreError> {
    for alert in alerts {
        conn.execute_cached(
            "INSERT INTO alerts (id, lead_id, event, recipient) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (lead_id, event, recipient) DO NOTHING",
            rusqlite::params![
                alert.id.to_string(),
                alert.lead_id.to_string(),
                alert.event.as_str(),
                alert.recipient
            ],
        )?;
    }
    Ok(())
}

impl Alerts for SqliteStore {
    async fn save_lead_with_alerts(
        &self,
        lead: &Lead,
        alerts: &[NewAlert],
    ) -> Result<Saved, StoreError> {
        let row = LeadRow::from(lead);
        let alerts = alerts.to_vec();
        self.call(move |c| {
            let tx = c.savepoint()?;
            if super::leads::sqlite::save_lead_sql(&tx, &row)? == Saved::Stale {
                return Ok(Saved::Stale);
            }
            insert_alerts_sql(&tx, &alerts)?;
            tx.commit()?;
            Ok(Saved::Applied)
        })
        .await
    }

    async fn claim_due_alerts(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = retry_delay(lease);
        self.call(move |c| {
            let tx = c.savepoint()?;
            let rows = {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE alerts SET status = 'claimed', attempts = attempts + 1,
                         lease_until = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id IN (
                         SELECT id FROM alerts
                         WHERE (status = 'pending'
                                AND next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                            OR (status = 'claimed'
                                AND lease_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                         ORDER BY next_attempt_at LIMIT ?2)
                     RETURNING {ALERT_COLUMNS}"
                ))?;
                let rows = stmt.query_map(rusqlite::params![lease, limit], alert_from_row)?;
                super::sqlite::collect(rows)?
            };
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    async fn finish_alert(
        &self,
        id: uuid::Uuid,
        outcome: &AlertOutcome,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let outcome = outcome.clone();
        self.call(move |c| {
            let changed = match outcome {
                AlertOutcome::Sent {
                    message_sid,
                    status,
                } => c.execute_cached(
                    "UPDATE alerts SET status = 'sent', message_sid = ?2,
                         delivery_status = COALESCE(delivery_status, ?3), lease_until = NULL,
                         last_error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    rusqlite::params![id, message_sid, status],
                )?,
                AlertOutcome::Retry { after, error } => c.execute_cached(
                    "UPDATE alerts SET status = 'pending', lease_until = NULL, last_error = ?2,
                         next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3),
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    rusqlite::params![id, error, retry_delay(after)],
                )?,
                AlertOutcome::Dead { code, error } => c.execute_cached(
                    "UPDATE alerts SET status = 'dead', lease_until = NULL, error_code = ?2,
                         last_error = ?3, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE id = ?1 AND status = 'claimed'",
                    rusqlite::params![id, code, error],
                )?,
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn record_delivery(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<bool, StoreError> {
        let sid = message_sid.to_owned();
        let status = status.to_owned();
        self.call(move |c| {
            let current: Option<Option<String>> = c
                .query_row_cached(
                    "SELECT delivery_status FROM alerts WHERE message_sid = ?1",
                    [&sid],
                    |r| r.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    other => Err(other),
                })?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current
                .as_deref()
                .is_some_and(|c| delivery_rank(c) > delivery_rank(&status))
            {
                return Ok(false);
            }
            // Conditional on what was read: a concurrent callback that moved it wins.
            let changed = c.execute_cached(
                "UPDATE alerts SET delivery_status = ?2, error_code = COALESCE(?3, error_code),
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                 WHERE message_sid = ?1 AND delivery_status IS ?4",
                rusqlite::params![sid, status, error_code, current],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn alerts_of_lead(&self, lead_id: LeadId) -> Result<Vec<AlertRecord>, StoreError> {
        let lead = lead_id.to_string();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE lead_id = ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map([lead], alert_from_row)?;
            super::sqlite::collect(rows)
        })
        .await
    }

    async fn alert_backlog(&self) -> Result<(usize, Duration), StoreError> {
        let (count, oldest): (i64, Option<String>) = self
            .call(|c| {
                Ok(c.query_row_cached(
                    "SELECT COUNT(*), MIN(created_at) FROM alerts
                     WHERE status IN ('pending', 'claimed')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await?;
        let age = match oldest {
            Some(t) => (OffsetDateTime::now_utc() - parse_time(&t)?)
                .try_into()
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        Ok((usize::try_from(count).unwrap_or(0), age))
    }
}

impl Alerts for SupabaseStore {
    async fn save_lead_with_alerts(
        &self,
        lead: &Lead,
        alerts: &[NewAlert],
    ) -> Result<Saved, StoreError> {
        self.apply(&WriteOp::SaveLeadWithAlerts {
            lead: LeadRow::from(lead),
            alerts: alerts.to_vec(),
        })
        .await
    }

    async fn claim_due_alerts(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.rpc_rows(
            "claim_alerts",
            &serde_json::json!({
                "max_rows": limit,
                "lease_seconds": lease.as_secs().max(1),
            }),
        )
        .await
    }

    async fn finish_alert(
        &self,
        id: uuid::Uuid,
        outcome: &AlertOutcome,
    ) -> Result<bool, StoreError> {
        let body = match outcome {
            AlertOutcome::Sent {
                message_sid,
                status,
            } => serde_json::json!({
                "status": "sent", "message_sid": message_sid, "delivery_status": status,
                "lease_until": null, "last_error": null,
            }),
            AlertOutcome::Retry { after, error } => serde_json::json!({
                "status": "pending", "lease_until": null, "last_error": error,
                "next_attempt_at": rfc3339(OffsetDateTime::now_utc() + *after)?,
            }),
            AlertOutcome::Dead { code, error } => serde_json::json!({
                "status": "dead", "lease_until": null, "error_code": code, "last_error": error,
            }),
        };
        let rows: Vec<serde_json::Value> = self
            .patch_rows(
                "alerts",
                &body,
                &[("id", id.to_string()), ("status", "claimed".to_owned())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn record_delivery(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<bool, StoreError> {
        let changed: serde_json::Value = self
            .rpc_value(
                "record_sms_status",
                &serde_json::json!({
                    "sid": message_sid, "new_status": status, "code": error_code,
                }),
            )
            .await?;
        Ok(changed.as_bool().unwrap_or(false))
    }

    async fn alerts_of_lead(&self, lead_id: LeadId) -> Result<Vec<AlertRecord>, StoreError> {
        self.select_rows(
            "alerts",
            &[("lead_id", lead_id.to_string())],
            "created_at.asc,id.asc",
        )
        .await
    }

    async fn alert_backlog(&self) -> Result<(usize, Duration), StoreError> {
        let rows: Vec<AlertRecord> = self
            .select_in(
                "alerts",
                "status",
                &["pending", "claimed"],
                "created_at.asc",
            )
            .await?;
        let age = rows.first().map_or(Duration::ZERO, |r| {
            (OffsetDateTime::now_utc() - r.created_at)
                .try_into()
                .unwrap_or(Duration::ZERO)
        });
        Ok((rows.len(), age))
    }
}

/// Through the outbox: the lead-and-alerts write queues like any write; claims, results and
/// delivery statuses go to Supabase directly (the sender retries them on its next round, and a
/// status callback Supabase could not take is answered 503 so Twilio may retry it).
impl Alerts for OutboxStore {
    async fn save_lead_with_alerts(
        &self,
        lead: &Lead,
        alerts: &[NewAlert],
    ) -> Result<Saved, StoreError> {
        Ok(
            match self
                .write(WriteOp::SaveLeadWithAlerts {
                    lead: LeadRow::from(lead),
                    alerts: alerts.to_vec(),
                })
                .await?
            {
                super::outbox::Written::Stale => Saved::Stale,
                super::outbox::Written::Direct { .. } | super::outbox::Written::Queued => {
                    Saved::Applied
                }
            },
        )
    }

    async fn claim_due_alerts(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.remote().claim_due_alerts(lease, limit).await
    }

    async fn finish_alert(
        &self,
        id: uuid::Uuid,
        outcome: &AlertOutcome,
    ) -> Result<bool, StoreError> {
        self.remote().finish_alert(id, outcome).await
    }

    async fn record_delivery(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.remote()
            .record_delivery(message_sid, status, error_code)
            .await
    }

    async fn alerts_of_lead(&self, lead_id: LeadId) -> Result<Vec<AlertRecord>, StoreError> {
        self.remote().alerts_of_lead(lead_id).await
    }

    async fn alert_backlog(&self) -> Result<(usize, Duration), StoreError> {
        self.remote().alert_backlog().await
    }
}

delegate_trait! {
    Alerts;
    fn save_lead_with_alerts(&self, lead: &Lead, alerts: &[NewAlert]) -> Result<Saved, StoreError>;
    fn claim_due_alerts(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    fn finish_alert(&self, id: uuid::Uuid, outcome: &AlertOutcome) -> Result<bool, StoreError>;
    fn record_delivery(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<bool, StoreError>;
    fn alerts_of_lead(&self, lead_id: LeadId) -> Result<Vec<AlertRecord>, StoreError>;
    fn alert_backlog(&self) -> Result<(usize, Duration), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_statuses_only_move_forward() {
        assert!(delivery_rank("delivered") > delivery_rank("sent"));
        assert!(delivery_rank("sent") > delivery_rank("sending"));
        assert!(delivery_rank("sending") > delivery_rank("queued"));
        assert_eq!(delivery_rank("queued"), delivery_rank("accepted"));
        assert_eq!(delivery_rank("something-new"), 0);
    }

    #[test]
    fn events_round_trip() {
        for event in [AlertEvent::Qualified, AlertEvent::Voicemail] {
            assert_eq!(AlertEvent::parse(event.as_str()), Ok(event));
        }
        assert!(AlertEvent::parse("other").is_err());
    }
}
