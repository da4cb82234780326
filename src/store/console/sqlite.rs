//! [`ConsoleStore`] on the embedded SQLite file (schema migration 2 of `store::sqlite`).

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::{
    ApiTokenRecord, AuditAction, AuditEntry, ConsoleStore, Email, Erasure, FollowUp,
    FollowUpChange, FollowUpState, LeadFilter, LeadPage, ListedLead, Note, Operator, Role,
    SearchTerm, SessionRecord,
};
use crate::domain::{LeadId, PhoneNumber};
use crate::store::erasures::{
    RemoteService, RemoteTarget, call_key, lead_key, number_key, record_erasure_sql,
};
use crate::store::leads::sqlite::{LEAD_COLUMN_COUNT, LEAD_COLUMNS, lead_from_row};
use crate::store::rows::StoreError;
use crate::store::sqlite::{CachedStatements as _, SqliteStore, collect, parse_time};

/// SQLite's own timestamp layout (`strftime('%Y-%m-%dT%H:%M:%fZ')`), so text comparison is time
/// comparison.
fn sql_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

fn role(s: &str) -> Result<Role, StoreError> {
    Role::try_from(s).map_err(|_| StoreError::Corrupt("role".to_owned()))
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Result<SessionRecord, StoreError>> {
    let id_hash: String = row.get(0)?;
    let operator: String = row.get(1)?;
    let created: String = row.get(2)?;
    let seen: String = row.get(3)?;
    let revoked: Option<String> = row.get(4)?;
    Ok((|| {
        Ok(SessionRecord {
            id_hash,
            operator_id: uuid(&operator, "operator_sessions.operator_id")?,
            created_at: parse_time(&created)?,
            last_seen_at: parse_time(&seen)?,
            revoked_at: revoked.as_deref().map(parse_time).transpose()?,
        })
    })())
}

fn uuid(s: &str, column: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(column.to_owned()))
}

const OPERATOR_COLUMNS: &str = "id, email, role, password_hash, disabled, created_at, phone";

fn operator_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Operator, StoreError>> {
    let id: String = row.get(0)?;
    let email: String = row.get(1)?;
    let r: String = row.get(2)?;
    let created: String = row.get(5)?;
    let hash: String = row.get(3)?;
    let disabled: bool = row.get(4)?;
    let phone: Option<String> = row.get(6)?;
    Ok((|| {
        Ok(Operator {
            id: uuid(&id, "operators.id")?,
            email: Email::try_from(email.as_str())
                .map_err(|_| StoreError::Corrupt("operators.email".to_owned()))?,
            role: role(&r)?,
            password_hash: hash,
            disabled,
            phone,
            created_at: Some(parse_time(&created)?),
        })
    })())
}

const TOKEN_COLUMNS: &str =
    "id, name, role, token_hash, created_at, revoked_at, operator_id, expires_at, last_used_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ApiTokenRecord, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let r: String = row.get(2)?;
    let hash: String = row.get(3)?;
    let created: String = row.get(4)?;
    let revoked: Option<String> = row.get(5)?;
    let operator: Option<String> = row.get(6)?;
    let expires: Option<String> = row.get(7)?;
    let used: Option<String> = row.get(8)?;
    Ok((|| {
        Ok(ApiTokenRecord {
            id: uuid(&id, "api_tokens.id")?,
            name,
            role: role(&r)?,
            token_hash: hash,
            created_at: Some(parse_time(&created)?),
            revoked_at: revoked.as_deref().map(parse_time).transpose()?,
            operator_id: operator
                .as_deref()
                .map(|o| uuid(o, "api_tokens.operator_id"))
                .transpose()?,
            expires_at: expires.as_deref().map(parse_time).transpose()?,
            last_used_at: used.as_deref().map(parse_time).transpose()?,
        })
    })())
}

fn follow_up_from_row(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<Result<FollowUpState, StoreError>> {
    let suivi: String = row.get(at)?;
    let note: Option<String> = row.get(at + 1)?;
    let version: i64 = row.get(at + 2)?;
    let by: Option<String> = row.get(at + 3)?;
    let updated: Option<String> = row.get(at + 4)?;
    Ok((|| {
        Ok(FollowUpState {
            suivi: FollowUp::try_from(suivi.as_str())
                .map_err(|_| StoreError::Corrupt("leads.suivi".to_owned()))?,
            note,
            version,
            by,
            updated_at: updated.as_deref().map(parse_time).transpose()?,
        })
    })())
}

const FOLLOW_UP_COLUMNS: &str = "suivi, suivi_note, suivi_version, suivi_by, suivi_updated_at";

fn listed_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ListedLead, StoreError>> {
    let lead = lead_from_row(row)?;
    let follow_up = follow_up_from_row(row, LEAD_COLUMN_COUNT)?;
    Ok(lead.and_then(|lead| {
        Ok(ListedLead {
            lead,
            follow_up: follow_up?,
        })
    }))
}

/// The WHERE clause and parameters of a filter.
fn where_clause(filter: &LeadFilter) -> (String, Vec<Box<dyn ToSql>>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    let mut push = |clause: &str, value: Box<dyn ToSql>, values: &mut Vec<Box<dyn ToSql>>| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(status) = filter.status {
        push("status = ?", Box::new(status.as_str()), &mut values);
    }
    if let Some(suivi) = filter.suivi {
        push("suivi = ?", Box::new(suivi.as_str()), &mut values);
    }
    if let Some(urgent) = filter.urgent {
        push("urgence = ?", Box::new(urgent), &mut values);
    }
    if let Some(from) = filter.created_from {
        push("created_at >= ?", Box::new(sql_time(from)), &mut values);
    }
    if let Some(before) = filter.created_before {
        push("created_at < ?", Box::new(sql_time(before)), &mut values);
    }
    if let Some(after) = filter.updated_after {
        push("updated_at > ?", Box::new(sql_time(after)), &mut values);
    }
    if let Some(term) = &filter.search {
        if let Some(query) = full_text_query(term) {
            values.push(Box::new(query));
            clauses.push(format!(
                "seq IN (SELECT rowid FROM leads_text WHERE leads_text MATCH ?{})",
                values.len()
            ));
        } else {
            // Under three characters the trigram index cannot help: a scan.
            let text = format!("%{}%", term.as_str());
            let phone = term
                .phone_digits()
                .map_or_else(|| text.clone(), |d| format!("%{d}%"));
            values.push(Box::new(text));
            let t = values.len();
            values.push(Box::new(phone));
            let p = values.len();
            clauses.push(format!(
                "(nom_complet LIKE ?{t} OR adresse_complete LIKE ?{t} OR telephone LIKE ?{p})"
            ));
        }
    }
    if let Some(cursor) = filter.cursor {
        values.push(Box::new(sql_time(cursor.created_at)));
        let c = values.len();
        values.push(Box::new(cursor.id.to_string()));
        let i = values.len();
        clauses.push(format!(
            "(created_at < ?{c} OR (created_at = ?{c} AND id < ?{i}))"
        ));
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, values)
}

/// The FTS5 query of a search: the term as a phrase in names and addresses, or (its digits when it
/// looks like a number) in the phone number; `None` when the term is too short for trigrams.
fn full_text_query(term: &SearchTerm) -> Option<String> {
    let text = term.as_str();
    let phone = term.phone_digits().unwrap_or_else(|| text.to_owned());
    // A search term holds no `"` (see `SearchTerm`), so a phrase cannot be broken out of.
    (text.chars().count() >= 3 && phone.chars().count() >= 3).then(|| {
        format!("{{nom_complet adresse_complete}} : \"{text}\" OR telephone : \"{phone}\"")
    })
}

fn search(conn: &Connection, filter: &LeadFilter) -> Result<LeadPage, StoreError> {
    let size = filter.page_size();
    let (clause, mut values) = where_clause(filter);
    values.push(Box::new(i64::try_from(size + 1).unwrap_or(i64::MAX)));
    // The page's rows are chosen on narrow columns first: sorting many matches never carries their
    // conversations along.
    let sql = format!(
        "SELECT {LEAD_COLUMNS}, {FOLLOW_UP_COLUMNS} FROM leads WHERE seq IN \
         (SELECT seq FROM leads {clause} ORDER BY created_at DESC, id DESC LIMIT ?{}) \
         ORDER BY created_at DESC, id DESC",
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values.iter()), listed_from_row)?;
    Ok(LeadPage::from_rows(collect(rows)?, size))
}

/// What lives at Twilio and Vapi, read before the rows go: each call's SID, Vapi call id and
/// voicemail recording, and the Message SIDs of the alerts sent about the leads.
fn remote_targets(
    tx: &Connection,
    sids: &[String],
    lead_ids: &[String],
    erasure: &mut Erasure,
) -> Result<(), StoreError> {
    for sid in sids {
        erasure.remote.push(RemoteTarget {
            service: RemoteService::TwilioCall,
            remote_id: sid.clone(),
        });
        let (vapi, recording_sid, recording_url): (Option<String>, Option<String>, Option<String>) =
            tx.query_row_cached(
                "SELECT vapi_call_id, recording_sid, recording_url FROM calls WHERE call_sid = ?1",
                [sid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        if let Some(vapi) = vapi.filter(|v| !v.trim().is_empty()) {
            erasure.remote.push(RemoteTarget {
                service: RemoteService::VapiCall,
                remote_id: vapi,
            });
        }
        for recording in [recording_sid, recording_url]
            .iter()
            .flatten()
            .filter_map(|v| super::recording_sid(v))
        {
            erasure.remote.push(RemoteTarget {
                service: RemoteService::TwilioRecording,
                remote_id: recording,
            });
        }
    }
    for id in lead_ids {
        let mut stmt = tx.prepare_cached("SELECT message_sid FROM alerts WHERE lead_id = ?1")?;
        for message in stmt.query_map([id], |r| r.get::<_, Option<String>>(0))? {
            erasure.alerts += 1;
            if let Some(sid) = message? {
                erasure.sms_sent += 1;
                erasure.remote.push(RemoteTarget {
                    service: RemoteService::TwilioMessage,
                    remote_id: sid,
                });
            }
        }
    }
    erasure.remote.sort();
    erasure.remote.dedup();
    Ok(())
}

/// Erases every record of `phone` in one transaction: the leads, their calls, processed events,
/// queued writes, dead letters and alerts go; the tombstones stay (`erased`); with
/// `record_remote`, the remote objects found in the rows become `remote_erasures` rows (the outbox
/// passes them to Supabase instead).
pub(in crate::store) fn erase(
    conn: &mut Connection,
    phone: &str,
    record_remote: bool,
) -> Result<Erasure, StoreError> {
    let tx = conn.savepoint()?;
    let lead_ids: Vec<String> = {
        let mut stmt =
            tx.prepare("SELECT id FROM leads WHERE telephone = ?1 OR offered_phone = ?1")?;
        stmt.query_map([phone], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut sids: Vec<String> = {
        let mut stmt = tx.prepare("SELECT call_sid FROM calls WHERE from_number = ?1")?;
        stmt.query_map([phone], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for id in &lead_ids {
        let mut stmt = tx.prepare_cached("SELECT call_sid FROM calls WHERE lead_id = ?1")?;
        for sid in stmt.query_map([id], |r| r.get::<_, String>(0))? {
            let sid = sid?;
            if !sids.contains(&sid) {
                sids.push(sid);
            }
        }
    }
    let mut erasure = Erasure {
        id: Uuid::new_v4(),
        ..Erasure::default()
    };
    remote_targets(&tx, &sids, &lead_ids, &mut erasure)?;
    let mut entities: Vec<String> = lead_ids.iter().map(|id| format!("lead:{id}")).collect();
    entities.extend(sids.iter().map(|sid| format!("call:{sid}")));
    for sid in &sids {
        erasure.events += tx.execute_cached(
            "DELETE FROM processed_events WHERE instr(key, ?1) > 0",
            [sid],
        )?;
        erasure.calls += tx.execute_cached("DELETE FROM calls WHERE call_sid = ?1", [sid])?;
    }
    for table in ["outbox", "dead_letters"] {
        let mut removed = tx.execute_cached(
            &format!("DELETE FROM {table} WHERE instr(op, ?1) > 0"),
            [phone],
        )?;
        for entity in &entities {
            removed +=
                tx.execute_cached(&format!("DELETE FROM {table} WHERE entity = ?1"), [entity])?;
        }
        if table == "outbox" {
            erasure.outbox = removed;
        } else {
            erasure.dead_letters = removed;
        }
    }
    for id in &lead_ids {
        tx.execute_cached("DELETE FROM leads WHERE id = ?1", [id])?;
        erasure.lead_ids.push(
            LeadId::try_from(id.as_str()).map_err(|_| StoreError::Corrupt("leads.id".into()))?,
        );
    }
    if !lead_ids.is_empty() {
        // The search index keeps deleted entries until its segments merge: merge them now.
        tx.execute_cached(
            "INSERT INTO leads_text (leads_text) VALUES ('optimize')",
            [],
        )?;
    }
    // The tombstones: no late or replayed write brings any of it back.
    let mut keys = vec![number_key(phone)];
    keys.extend(erasure.lead_ids.iter().map(|id| lead_key(*id)));
    keys.extend(sids.iter().map(|sid| call_key(sid)));
    let targets = if record_remote {
        erasure.remote.clone()
    } else {
        Vec::new()
    };
    record_erasure_sql(&tx, erasure.id, &keys, &targets)?;
    tx.commit()?;
    Ok(erasure)
}

impl SqliteStore {
    /// [`erase`] on the store's thread, then the WAL checkpointed so the erased bytes leave it.
    /// `record_remote`: the remote deletions are this file's to do (`STORE=sqlite`); the outbox
    /// passes `false` and hands them to Supabase.
    pub(in crate::store) async fn erase_number(
        &self,
        phone: &PhoneNumber,
        record_remote: bool,
    ) -> Result<Erasure, StoreError> {
        let phone = phone.as_e164().to_owned();
        let erasure = self
            .call(move |conn| erase(conn, &phone, record_remote))
            .await?;
        let path = self.path().to_owned();
        match tokio::task::spawn_blocking(move || checkpoint(&path)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the erased data may stay in the WAL until the next checkpoint");
            }
            Err(error) => tracing::warn!(%error, "the checkpoint after an erasure did not run"),
        }
        Ok(erasure)
    }
}

/// Copies the WAL into the database and empties it (`wal_checkpoint(TRUNCATE)`), from a
/// connection of its own (the store's may be inside a batch's transaction): the pages that held an
/// erased caller, zeroed by `secure_delete`, replace the old ones and the WAL's copies are gone.
fn checkpoint(path: &std::path::Path) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy == 0 {
        Ok(())
    } else {
        Err(StoreError::Local(
            "the WAL checkpoint after an erasure was blocked by a reader".to_owned(),
        ))
    }
}

impl ConsoleStore for SqliteStore {
    async fn create_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let o = operator.clone();
        self.call(move |conn| {
            let inserted = conn.execute_cached(
                "INSERT INTO operators (id, email, role, password_hash, disabled, phone) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (email) DO NOTHING",
                params![
                    o.id.to_string(),
                    o.email.as_str(),
                    o.role.as_str(),
                    o.password_hash,
                    o.disabled,
                    o.phone
                ],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn operator_by_email(&self, email: &Email) -> Result<Option<Operator>, StoreError> {
        let email = email.as_str().to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE email = ?1"),
                [email],
                operator_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn operator_by_id(&self, id: Uuid) -> Result<Option<Operator>, StoreError> {
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = ?1"),
                [id.to_string()],
                operator_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY email"
            ))?;
            let rows = stmt.query_map([], operator_from_row)?;
            collect(rows)
        })
        .await
    }

    async fn set_operator_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let email = email.as_str().to_owned();
        self.call(move |conn| {
            Ok(conn.execute_cached(
                &format!("UPDATE operators SET disabled = ?1, updated_at = {NOW} WHERE email = ?2"),
                params![disabled, email],
            )? == 1)
        })
        .await
    }

    async fn set_operator_phone(
        &self,
        email: &Email,
        phone: Option<&PhoneNumber>,
    ) -> Result<bool, StoreError> {
        let (email, phone) = (
            email.as_str().to_owned(),
            phone.map(|p| p.as_e164().to_owned()),
        );
        self.call(move |conn| {
            Ok(conn.execute_cached(
                &format!("UPDATE operators SET phone = ?1, updated_at = {NOW} WHERE email = ?2"),
                params![phone, email],
            )? == 1)
        })
        .await
    }

    async fn callbacks_since(&self, actor: &str, since: OffsetDateTime) -> Result<u64, StoreError> {
        let (actor, since) = (actor.to_owned(), sql_time(since));
        self.call(move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM calls WHERE operator = ?1 \
                     AND direction = 'outbound-callback' AND created_at >= ?2",
                )?
                .query_row(params![actor, since], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn set_operator_password(&self, email: &Email, hash: &str) -> Result<bool, StoreError> {
        let (email, hash) = (email.as_str().to_owned(), hash.to_owned());
        self.call(move |conn| {
            Ok(conn.execute_cached(
                &format!(
                    "UPDATE operators SET password_hash = ?1, updated_at = {NOW} WHERE email = ?2"
                ),
                params![hash, email],
            )? == 1)
        })
        .await
    }

    async fn create_session(&self, id_hash: &str, operator_id: Uuid) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.call(move |conn| {
            conn.execute_cached(
                "INSERT INTO operator_sessions (id_hash, operator_id) VALUES (?1, ?2)",
                params![id_hash, operator_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id_hash = id_hash.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                "SELECT id_hash, operator_id, created_at, last_seen_at, revoked_at \
                 FROM operator_sessions WHERE id_hash = ?1",
                [id_hash],
                session_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn sessions(&self, id_hashes: &[String]) -> Result<Vec<SessionRecord>, StoreError> {
        let list = serde_json::to_string(id_hashes).unwrap_or_else(|_| "[]".to_owned());
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id_hash, operator_id, created_at, last_seen_at, revoked_at \
                 FROM operator_sessions WHERE id_hash IN (SELECT value FROM json_each(?1))",
            )?;
            let rows = stmt.query_map([list], session_from_row)?;
            collect(rows)
        })
        .await
    }

    async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.call(move |conn| {
            conn.execute_cached(
                &format!("UPDATE operator_sessions SET last_seen_at = {NOW} WHERE id_hash = ?1"),
                [id_hash],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_owned();
        self.call(move |conn| {
            conn.execute_cached(
                &format!(
                    "UPDATE operator_sessions SET revoked_at = {NOW} \
                     WHERE id_hash = ?1 AND revoked_at IS NULL"
                ),
                [id_hash],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_sessions_of(&self, operator_id: Uuid) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute_cached(
                &format!(
                    "UPDATE operator_sessions SET revoked_at = {NOW} \
                     WHERE operator_id = ?1 AND revoked_at IS NULL"
                ),
                [operator_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<bool, StoreError> {
        let t = token.clone();
        self.call(move |conn| {
            Ok(conn.execute_cached(
                "INSERT INTO api_tokens (id, name, role, token_hash, operator_id, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![
                    t.id.to_string(),
                    t.name,
                    t.role.as_str(),
                    t.token_hash,
                    t.operator_id.map(|id| id.to_string()),
                    t.expires_at.map(sql_time)
                ],
            )? == 1)
        })
        .await
    }

    async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
                [token_hash],
                token_from_row,
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
            ))?;
            let rows = stmt.query_map([], token_from_row)?;
            collect(rows)
        })
        .await
    }

    async fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute_cached(
                &format!("UPDATE api_tokens SET last_used_at = {NOW} WHERE id = ?1"),
                [id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.call(move |conn| {
            Ok(conn.execute_cached(
                &format!(
                    "UPDATE api_tokens SET revoked_at = {NOW} WHERE name = ?1 AND revoked_at IS NULL"
                ),
                [name],
            )? == 1)
        })
        .await
    }

    async fn record_login_failure(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.execute_cached("INSERT INTO login_failures (key) VALUES (?1)", [&key])?;
            Ok(())
        })
        .await
    }

    async fn login_failures_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at FROM login_failures WHERE key = ?1 AND at >= ?2 ORDER BY at LIMIT 1000",
            )?;
            let rows = stmt.query_map([key, sql_time(since)], |r| {
                let at: String = r.get(0)?;
                Ok(parse_time(&at))
            })?;
            collect(rows)
        })
        .await
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.execute_cached("DELETE FROM login_failures WHERE key = ?1", [key])?;
            Ok(())
        })
        .await
    }

    async fn forget_login_failure(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.execute_cached(
                "DELETE FROM login_failures WHERE seq = \
                 (SELECT max(seq) FROM login_failures WHERE key = ?1)",
                [key],
            )?;
            Ok(())
        })
        .await
    }

    async fn prune_login_failures(&self, before: OffsetDateTime) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute_cached(
                "DELETE FROM login_failures WHERE at < ?1",
                [sql_time(before)],
            )?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let e = entry.clone();
        self.call(move |conn| {
            conn.execute_cached(
                "INSERT INTO audit_log (actor, action, target, detail, client, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    e.actor,
                    e.action.as_str(),
                    e.target,
                    e.detail,
                    e.client,
                    e.count
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn bump_audit(
        &self,
        entry: &AuditEntry,
        since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let e = entry.clone();
        self.call(move |conn| {
            let bumped = conn.execute_cached(
                "UPDATE audit_log SET count = count + ?1, detail = ?2 WHERE seq = \
                 (SELECT max(seq) FROM audit_log WHERE action = ?3 AND target IS ?4 AND at >= ?5)",
                params![
                    e.count,
                    e.detail,
                    e.action.as_str(),
                    e.target,
                    sql_time(since)
                ],
            )?;
            if bumped == 0 {
                conn.execute_cached(
                    "INSERT INTO audit_log (actor, action, target, detail, client, count) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        e.actor,
                        e.action.as_str(),
                        e.target,
                        e.detail,
                        e.client,
                        e.count
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = before.unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, actor, action, target, detail, client, count FROM audit_log \
                 WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map([before, limit], |row| {
                let id: i64 = row.get(0)?;
                let at: String = row.get(1)?;
                let actor: String = row.get(2)?;
                let action: String = row.get(3)?;
                let target: Option<String> = row.get(4)?;
                let detail: Option<String> = row.get(5)?;
                let client: Option<String> = row.get(6)?;
                let count: i64 = row.get(7)?;
                Ok((|| {
                    Ok(AuditEntry {
                        id: Some(id),
                        at: Some(parse_time(&at)?),
                        actor,
                        action: AuditAction::try_from(action.as_str())?,
                        target,
                        detail,
                        client,
                        count,
                    })
                })())
            })?;
            collect(rows)
        })
        .await
    }

    async fn search_leads(&self, filter: &LeadFilter) -> Result<LeadPage, StoreError> {
        let filter = filter.clone();
        self.call(move |conn| search(conn, &filter)).await
    }

    async fn follow_up(&self, id: LeadId) -> Result<Option<FollowUpState>, StoreError> {
        self.call(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {FOLLOW_UP_COLUMNS} FROM leads WHERE id = ?1"),
                [id.to_string()],
                |row| follow_up_from_row(row, 0),
            )
            .optional()?
            .transpose()
        })
        .await
    }

    async fn change_follow_up(
        &self,
        id: LeadId,
        expected: i64,
        suivi: FollowUp,
        note: Option<&Note>,
        by: &str,
    ) -> Result<FollowUpChange, StoreError> {
        let note = note.map(|n| n.as_str().to_owned());
        let by = by.to_owned();
        self.call(move |conn| {
            let changed = conn.execute_cached(
                &format!(
                    "UPDATE leads SET suivi = ?1, suivi_note = ?2, suivi_version = suivi_version + 1, \
                     suivi_by = ?3, suivi_updated_at = {NOW}, updated_at = {NOW} \
                     WHERE id = ?4 AND suivi_version = ?5"
                ),
                params![suivi.as_str(), note, by, id.to_string(), expected],
            )?;
            let current = conn
                .query_row_cached(
                    &format!("SELECT {FOLLOW_UP_COLUMNS} FROM leads WHERE id = ?1"),
                    [id.to_string()],
                    |row| follow_up_from_row(row, 0),
                )
                .optional()?
                .transpose()?;
            Ok(match (changed, current) {
                (_, None) => FollowUpChange::NotFound,
                (1, Some(state)) => FollowUpChange::Applied(state),
                (_, Some(state)) => FollowUpChange::Stale(state),
            })
        })
        .await
    }

    async fn erase_caller(&self, phone: &PhoneNumber) -> Result<Erasure, StoreError> {
        self.erase_number(phone, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_of_three_characters_or_more_use_the_full_text_index() {
        let q = |s: &str| full_text_query(&SearchTerm::try_from(s).unwrap());
        assert_eq!(
            q("Côté").as_deref(),
            Some(r#"{nom_complet adresse_complete} : "Côté" OR telephone : "Côté""#)
        );
        assert_eq!(
            q("514-555").as_deref(),
            Some(r#"{nom_complet adresse_complete} : "514-555" OR telephone : "514555""#)
        );
        assert_eq!(q("Ro"), None);
    }

    #[test]
    fn sql_times_sort_as_text() {
        let a = sql_time(time::macros::datetime!(2026-12-01 12:00:00.12 UTC));
        let b = sql_time(time::macros::datetime!(2026-12-01 12:00:00.125 UTC));
        assert_eq!(a, "2026-12-01T12:00:00.120Z");
        assert!(a < b);
    }
}
