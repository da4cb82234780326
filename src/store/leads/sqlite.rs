//! Leads and calls on the embedded SQLite file: their columns and rows, the conditional lead
//! save, the call's insert-or-get, the mirror of a Supabase lead, and [`Store`] for
//! [`SqliteStore`].

use std::fmt::Write as _;

use rusqlite::{Connection, OptionalExtension, Row};

use crate::domain::{CallSid, ConversationMode, LeadId, LeadStatus};
use crate::qualification::Lead;
use crate::store::rows::{CallRecord, CallUpdate, LeadRow, MAX_PAGE, Saved, Store, StoreError};
use crate::store::sqlite::{CachedStatements as _, SqliteStore, collect, parse_time};

impl SqliteStore {
    /// `abandonne` unless final, for the lead of the call `sid`, in one statement.
    pub async fn abandon_call_lead(&self, sid: &CallSid) -> Result<(), StoreError> {
        let sid = sid.clone();
        self.call(move |conn| abandon_call_lead_sql(conn, &sid))
            .await
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Local(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt(format!("{column} is not valid JSON")))
}

pub(in crate::store) const LEAD_COLUMNS: &str = "id, nom_complet, telephone, telephone_raw, adresse_complete, \
    type_service, description, urgence, status, language, offered_phone, attempts, conversation, \
    created_at, updated_at, version";
/// How many columns [`LEAD_COLUMNS`] selects: a query that selects more after them reads them from
/// this index on.
pub(in crate::store) const LEAD_COLUMN_COUNT: usize = 16;

pub(in crate::store) fn lead_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Lead, StoreError>> {
    let id: String = row.get(0)?;
    let attempts: String = row.get(11)?;
    let conversation: String = row.get(12)?;
    let created: String = row.get(13)?;
    let updated: String = row.get(14)?;
    let version: i64 = row.get(15)?;
    let build = || -> Result<Lead, StoreError> {
        Lead::try_from(LeadRow {
            id: LeadId::try_from(id.as_str())
                .map_err(|_| StoreError::Corrupt("leads.id".into()))?,
            nom_complet: row.get(1)?,
            telephone: row.get(2)?,
            telephone_raw: row.get(3)?,
            adresse_complete: row.get(4)?,
            type_service: row.get(5)?,
            description: row.get(6)?,
            urgence: row.get(7)?,
            status: row.get(8)?,
            language: row.get(9)?,
            offered_phone: row.get(10)?,
            attempts: from_json(&attempts, "leads.attempts")?,
            conversation: from_json(&conversation, "leads.conversation")?,
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt("leads.version".into()))?,
            created_at: Some(parse_time(&created)?),
            updated_at: Some(parse_time(&updated)?),
        })
    };
    Ok(build())
}

/// A nullable JSON column.
fn from_json_column<T: serde::de::DeserializeOwned>(
    value: Option<String>,
    column: &str,
) -> Result<Option<T>, StoreError> {
    value
        .map(|j| serde_json::from_str(&j).map_err(|_| StoreError::Corrupt(column.to_owned())))
        .transpose()
}

pub(in crate::store) const CALL_COLUMNS: &str = "id, call_sid, lead_id, vapi_call_id, from_number, to_number, \
    direction, mode, mode_reason, status, duration, recording_url, transcript, ended_reason, \
    created_at, updated_at, dial_status, dial_duration, recording_sid, recording_duration, \
    recording_status, vapi_recording_url, vapi_summary, vapi_structured_data, vapi_turns, operator";

pub(in crate::store) fn call_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<Result<CallRecord, StoreError>> {
    let id: String = row.get(0)?;
    let sid: String = row.get(1)?;
    let lead: Option<String> = row.get(2)?;
    let mode: Option<String> = row.get(7)?;
    let duration: Option<i64> = row.get(10)?;
    let created: String = row.get(14)?;
    let updated: String = row.get(15)?;
    let build = || -> Result<CallRecord, StoreError> {
        let corrupt = |c: &str| StoreError::Corrupt(format!("calls.{c}"));
        let mut fields =
            CallUpdate::new(CallSid::try_from(sid.as_str()).map_err(|_| corrupt("call_sid"))?);
        fields.lead_id = lead
            .map(|l| LeadId::try_from(l.as_str()).map_err(|_| corrupt("lead_id")))
            .transpose()?;
        fields.vapi_call_id = row.get(3)?;
        fields.from_number = row.get(4)?;
        fields.to_number = row.get(5)?;
        fields.direction = row.get(6)?;
        fields.mode = mode
            .map(|m| ConversationMode::from_str_opt(&m).ok_or_else(|| corrupt("mode")))
            .transpose()?;
        fields.mode_reason = row.get(8)?;
        fields.status = row.get(9)?;
        fields.duration = duration
            .map(|d| u32::try_from(d).map_err(|_| corrupt("duration")))
            .transpose()?;
        fields.recording_url = row.get(11)?;
        fields.transcript = row.get(12)?;
        fields.ended_reason = row.get(13)?;
        fields.dial_status = row.get(16)?;
        let seconds = |v: Option<i64>, column: &str| {
            v.map(|d| u32::try_from(d).map_err(|_| corrupt(column)))
                .transpose()
        };
        fields.dial_duration = seconds(row.get(17)?, "dial_duration")?;
        fields.recording_sid = row.get(18)?;
        fields.recording_duration = seconds(row.get(19)?, "recording_duration")?;
        fields.recording_status = row.get(20)?;
        fields.vapi_recording_url = row.get(21)?;
        fields.vapi_summary = row.get(22)?;
        fields.vapi_structured_data = from_json_column(row.get(23)?, "calls.vapi_structured_data")?;
        fields.vapi_turns = from_json_column(row.get(24)?, "calls.vapi_turns")?;
        fields.operator = row.get(25)?;
        Ok(CallRecord {
            id: Some(uuid::Uuid::parse_str(&id).map_err(|_| corrupt("id"))?),
            fields,
            created_at: Some(parse_time(&created)?),
            updated_at: Some(parse_time(&updated)?),
        })
    };
    Ok(build())
}

/// The values of a lead row, in `LEAD_WRITE_COLUMNS` order (`?1` … `?13`).
fn lead_values(row: &LeadRow) -> Result<[Box<dyn rusqlite::ToSql>; 13], StoreError> {
    Ok([
        Box::new(row.id.to_string()),
        Box::new(row.nom_complet.clone()),
        Box::new(row.telephone.clone()),
        Box::new(row.telephone_raw.clone()),
        Box::new(row.adresse_complete.clone()),
        Box::new(row.type_service.clone()),
        Box::new(row.description.clone()),
        Box::new(row.urgence),
        Box::new(row.status.clone()),
        Box::new(row.language.clone()),
        Box::new(row.offered_phone.clone()),
        Box::new(json(&row.attempts)?),
        Box::new(json(&row.conversation)?),
    ])
}

const LEAD_WRITE_COLUMNS: &str = "id, nom_complet, telephone, telephone_raw, adresse_complete, \
    type_service, description, urgence, status, language, offered_phone, attempts, conversation";

const LEAD_SET: &str = "nom_complet = ?2, telephone = ?3, telephone_raw = ?4, \
    adresse_complete = ?5, type_service = ?6, description = ?7, urgence = ?8, status = ?9, \
    language = ?10, offered_phone = ?11, attempts = ?12, conversation = ?13, \
    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Saves a lead inside an open connection, conditionally: a row based on version 0 is inserted
/// only if the lead does not exist; otherwise the update applies only where the stored version is
/// still `row.version`, and makes it one more.
pub(in crate::store) fn save_lead_sql(
    conn: &Connection,
    row: &LeadRow,
) -> Result<Saved, StoreError> {
    let values = lead_values(row)?;
    let changed = if row.version == 0 {
        conn.execute_cached(
            &format!(
                "INSERT INTO leads ({LEAD_WRITE_COLUMNS}, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            rusqlite::params_from_iter(values.iter()),
        )?
    } else {
        let mut params: Vec<Box<dyn rusqlite::ToSql>> = values.into_iter().collect();
        params.push(Box::new(i64::from(row.version)));
        conn.execute_cached(
            &format!(
                "UPDATE leads SET {LEAD_SET}, version = version + 1 WHERE id = ?1 AND version = ?14"
            ),
            rusqlite::params_from_iter(params.iter()),
        )?
    };
    Ok(if changed == 1 {
        Saved::Applied
    } else {
        Saved::Stale
    })
}

/// Copies a lead Supabase holds (or will hold) into the local mirror, at `version`, unless the
/// mirror already has a newer one. The mirror is a cache for reads while Supabase is unreachable,
/// never the truth.
pub(in crate::store) fn mirror_lead_sql(
    conn: &Connection,
    row: &LeadRow,
    version: u32,
) -> Result<(), StoreError> {
    let mut params: Vec<Box<dyn rusqlite::ToSql>> = lead_values(row)?.into_iter().collect();
    params.push(Box::new(i64::from(version.max(1))));
    conn.execute_cached(
        &format!(
            "INSERT INTO leads ({LEAD_WRITE_COLUMNS}, version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (id) DO UPDATE SET {LEAD_SET}, version = excluded.version \
             WHERE excluded.version > leads.version"
        ),
        rusqlite::params_from_iter(params.iter()),
    )?;
    Ok(())
}

/// `abandonne` unless final, in one statement; the status afterwards (`None`: no such lead).
fn abandon_lead_sql(conn: &Connection, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
    let id = id.to_string();
    conn.execute_cached(
        "UPDATE leads SET status = 'abandonne', version = version + 1, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = ?1 AND status IN ('nouveau', 'en_cours')",
        [&id],
    )?;
    let status: Option<String> = conn
        .query_row_cached("SELECT status FROM leads WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .optional()?;
    status
        .map(|s| {
            LeadStatus::try_from(s.as_str())
                .map_err(|_| StoreError::Corrupt("leads.status".to_owned()))
        })
        .transpose()
}

/// `abandonne` unless final, for the lead of the call `sid` (none: nothing changes).
fn abandon_call_lead_sql(conn: &Connection, sid: &CallSid) -> Result<(), StoreError> {
    conn.execute_cached(
        "UPDATE leads SET status = 'abandonne', version = version + 1, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = (SELECT lead_id FROM calls WHERE call_sid = ?1) \
           AND status IN ('nouveau', 'en_cours')",
        [sid.as_str()],
    )?;
    Ok(())
}

/// A call's lead, insert-or-get by CallSid, in one transaction: the call row is created if
/// missing; when it has no lead yet, `row` is inserted and the call points at it; otherwise the
/// call's lead is returned and `row` is not stored.
pub(in crate::store) fn start_call_sql(
    conn: &mut Connection,
    row: &LeadRow,
    call: &CallUpdate,
) -> Result<Lead, StoreError> {
    let tx = conn.savepoint()?;
    let sid = call.call_sid.as_str().to_owned();
    let existing: Option<Option<String>> = tx
        .query_row_cached(
            "SELECT lead_id FROM calls WHERE call_sid = ?1",
            [&sid],
            |r| r.get(0),
        )
        .optional()?;
    let lead_id = if let Some(id) = existing.flatten() {
        id
    } else {
        let mut fresh = row.clone();
        fresh.version = 0;
        if save_lead_sql(&tx, &fresh)? == Saved::Stale {
            return Err(StoreError::Local("lead id already taken".to_owned()));
        }
        let mut update = call.clone();
        update.lead_id = Some(row.id);
        upsert_call_sql(&tx, &update)?;
        row.id.to_string()
    };
    let lead = tx
        .query_row_cached(
            &format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1"),
            [&lead_id],
            lead_from_row,
        )
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::Corrupt("calls.lead_id points nowhere".to_owned()))?;
    tx.commit()?;
    Ok(lead)
}

/// `CASE <column> WHEN 'initiated' THEN 1 … ELSE 0 END`: `calls::status_rank` in SQL.
fn call_rank_sql(column: &str) -> String {
    let whens =
        crate::domain::CALL_STATUS_RANKS
            .iter()
            .fold(String::new(), |mut sql, (status, rank)| {
                let _ = write!(sql, " WHEN '{status}' THEN {rank}");
                sql
            });
    format!("(CASE {column}{whens} ELSE 0 END)")
}

fn upsert_call_sql(conn: &Connection, u: &CallUpdate) -> Result<(), StoreError> {
    // Only the columns the update sets: a partial update never clears what it does not name.
    let mut columns: Vec<&str> = vec!["id", "call_sid"];
    let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(uuid::Uuid::new_v4().to_string()),
        Box::new(u.call_sid.as_str().to_owned()),
    ];
    macro_rules! col {
        ($name:literal, $value:expr) => {
            if let Some(v) = $value {
                columns.push($name);
                values.push(Box::new(v));
            }
        };
    }
    col!("lead_id", u.lead_id.map(|l| l.to_string()));
    col!("vapi_call_id", u.vapi_call_id.clone());
    col!("from_number", u.from_number.clone());
    col!("to_number", u.to_number.clone());
    col!("direction", u.direction.clone());
    col!("mode", u.mode.map(|m| m.as_str().to_owned()));
    col!("mode_reason", u.mode_reason.clone());
    col!("status", u.status.clone());
    col!("duration", u.duration);
    col!("recording_url", u.recording_url.clone());
    col!("transcript", u.transcript.clone());
    col!("ended_reason", u.ended_reason.clone());
    col!("dial_status", u.dial_status.clone());
    col!("dial_duration", u.dial_duration);
    col!("recording_sid", u.recording_sid.clone());
    col!("recording_duration", u.recording_duration);
    col!("recording_status", u.recording_status.clone());
    col!("vapi_recording_url", u.vapi_recording_url.clone());
    col!("vapi_summary", u.vapi_summary.clone());
    col!(
        "vapi_structured_data",
        u.vapi_structured_data.as_ref().map(ToString::to_string)
    );
    col!(
        "vapi_turns",
        u.vapi_turns
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".to_owned()))
    );
    col!("operator", u.operator.clone());
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    // A status never moves backwards and a call's lead, once set, is never re-pointed: both
    // decided here, in the statement, whoever writes.
    let updates: Vec<String> = columns[2..]
        .iter()
        .map(|c| match *c {
            "status" => format!(
                "status = CASE WHEN calls.status IS NULL OR {} >= {} \
                 THEN excluded.status ELSE calls.status END",
                call_rank_sql("excluded.status"),
                call_rank_sql("calls.status")
            ),
            "lead_id" => "lead_id = COALESCE(calls.lead_id, excluded.lead_id)".to_owned(),
            c => format!("{c} = excluded.{c}"),
        })
        .chain([
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".to_owned(),
            "version = calls.version + 1".to_owned(),
        ])
        .collect();
    let sql = format!(
        "INSERT INTO calls ({}) VALUES ({}) ON CONFLICT (call_sid) DO UPDATE SET {}",
        columns.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    );
    conn.execute_cached(&sql, rusqlite::params_from_iter(values.iter()))?;
    Ok(())
}

impl Store for SqliteStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        let row = LeadRow::from(lead);
        self.call(move |conn| save_lead_sql(conn, &row)).await
    }

    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        self.call(move |conn| abandon_lead_sql(conn, id)).await
    }

    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        let row = LeadRow::from(lead);
        let call = call.clone();
        self.call(move |conn| start_call_sql(conn, &row, &call))
            .await
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1"),
                [id.to_string()],
                lead_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        let sid = call_sid.as_str().to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!(
                    "SELECT {} FROM leads l JOIN calls c ON c.lead_id = l.id WHERE c.call_sid = ?1",
                    LEAD_COLUMNS
                        .split(", ")
                        .map(|c| format!("l.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                [sid],
                lead_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        let update = update.clone();
        self.call(move |conn| upsert_call_sql(conn, &update)).await
    }

    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        let sid = call_sid.as_str().to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_sid = ?1"),
                [sid],
                call_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let id = vapi_call_id.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {CALL_COLUMNS} FROM calls WHERE vapi_call_id = ?1 ORDER BY seq DESC LIMIT 1"),
                [id],
                call_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            let inserted = conn.execute_cached(
                "INSERT INTO processed_events (key) VALUES (?1) ON CONFLICT (key) DO NOTHING",
                [key],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row_cached(
                    "SELECT 1 FROM processed_events WHERE key = ?1",
                    [key],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_PAGE)).unwrap_or(0);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LEAD_COLUMNS} FROM leads ORDER BY created_at DESC, seq DESC LIMIT ?1 OFFSET ?2"
            ))?;
            let rows = stmt.query_map([limit, offset], lead_from_row)?;
            collect(rows)
        })
        .await
    }

    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE lead_id = ?1 ORDER BY created_at, seq"
            ))?;
            let rows = stmt.query_map([lead_id.to_string()], call_from_row)?;
            collect(rows)
        })
        .await
    }

    /// A real durable write (the probe row, committed with `synchronous=FULL`): a full disk, a
    /// read-only file or file system fails it, where a `SELECT 1` would still pass.
    async fn health(&self) -> Result<(), StoreError> {
        self.call(|conn| {
            conn.execute_cached(
                "INSERT INTO readiness_probe (id, at) \
                 VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                [],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_column_count_matches_the_list() {
        assert_eq!(LEAD_COLUMNS.split(',').count(), LEAD_COLUMN_COUNT);
    }
}
