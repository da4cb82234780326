//! [`ConsoleStore`] on Supabase through PostgREST (migration `20261201150000_console.sql`).
//!
//! Unlike the call path (upserts only), the console sends PATCH and DELETE, always with a filter on
//! a key (`id`, `email`, `id_hash`, `name`, `key`, `call_sid`), so Supabase's safeupdate rule never
//! refuses them. A follow-up change is a PATCH conditional on `suivi_version`.

use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{
    ApiTokenRecord, AuditEntry, ConsoleStore, Email, Erasure, FollowUp, FollowUpChange,
    FollowUpState, LeadFilter, LeadPage, ListedLead, Note, Operator, SessionRecord,
};
use crate::domain::{LeadId, PhoneNumber};
use crate::qualification::Lead;
use crate::store::erasures::{RemoteTarget, number_key};
use crate::store::rows::{LeadRow, StoreError};
use crate::store::supabase::SupabaseStore;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn now() -> String {
    ts(OffsetDateTime::now_utc())
}

/// A PostgREST 409 on insert (unique violation): the row exists already.
fn inserted(result: Result<(u16, String), StoreError>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::Rejected { status: 409, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct FollowUpRow {
    suivi: String,
    suivi_note: Option<String>,
    suivi_version: i64,
    suivi_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    suivi_updated_at: Option<OffsetDateTime>,
}

impl TryFrom<FollowUpRow> for FollowUpState {
    type Error = StoreError;
    fn try_from(row: FollowUpRow) -> Result<Self, Self::Error> {
        Ok(FollowUpState {
            suivi: FollowUp::try_from(row.suivi.as_str())
                .map_err(|_| StoreError::Corrupt("leads.suivi".to_owned()))?,
            note: row.suivi_note,
            version: row.suivi_version,
            by: row.suivi_by,
            updated_at: row.suivi_updated_at,
        })
    }
}

#[derive(Deserialize)]
struct ListedRow {
    #[serde(flatten)]
    lead: LeadRow,
    #[serde(flatten)]
    follow_up: FollowUpRow,
}

const FOLLOW_UP_SELECT: &str = "suivi,suivi_note,suivi_version,suivi_by,suivi_updated_at";

/// A value inside a PostgREST logic tree (`or=(…)`), double-quoted: the search term and
/// timestamps contain `.` and `:`, which are reserved there. Terms never contain `"` or `\`.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace(['"', '\\'], ""))
}

impl SupabaseStore {
    async fn follow_up_of(&self, id: LeadId) -> Result<Option<FollowUpState>, StoreError> {
        let mut rows: Vec<FollowUpRow> = self
            .rows(
                self.client
                    .from("leads")
                    .select(FOLLOW_UP_SELECT)
                    .eq("id", id.to_string()),
            )
            .await?;
        rows.pop().map(FollowUpState::try_from).transpose()
    }

    async fn patch_count(&self, builder: postgrest::Builder) -> Result<usize, StoreError> {
        let rows: Vec<serde_json::Value> = self.rows(builder).await?;
        Ok(rows.len())
    }
}

impl ConsoleStore for SupabaseStore {
    async fn create_operator(&self, o: &Operator) -> Result<bool, StoreError> {
        let body = json!({
            "id": o.id, "email": o.email.as_str(), "role": o.role.as_str(),
            "password_hash": o.password_hash, "disabled": o.disabled, "phone": o.phone,
        });
        inserted(
            self.send(self.client.from("operators").insert(Self::body(&body)?))
                .await,
        )
    }

    async fn operator_by_email(&self, email: &Email) -> Result<Option<Operator>, StoreError> {
        let mut rows: Vec<Operator> = self
            .rows(
                self.client
                    .from("operators")
                    .select("*")
                    .eq("email", email.as_str()),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn operator_by_id(&self, id: Uuid) -> Result<Option<Operator>, StoreError> {
        let mut rows: Vec<Operator> = self
            .rows(
                self.client
                    .from("operators")
                    .select("*")
                    .eq("id", id.to_string()),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.rows(self.client.from("operators").select("*").order("email.asc"))
            .await
    }

    async fn set_operator_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let body = json!({ "disabled": disabled, "updated_at": now() });
        Ok(self
            .patch_count(
                self.client
                    .from("operators")
                    .eq("email", email.as_str())
                    .update(Self::body(&body)?),
            )
            .await?
            == 1)
    }

    async fn set_operator_phone(
        &self,
        email: &Email,
        phone: Option<&PhoneNumber>,
    ) -> Result<bool, StoreError> {
        let body = json!({ "phone": phone.map(PhoneNumber::as_e164), "updated_at": now() });
        Ok(self
            .patch_count(
                self.client
                    .from("operators")
                    .eq("email", email.as_str())
                    .update(Self::body(&body)?),
            )
            .await?
            == 1)
    }

    async fn callbacks_since(&self, actor: &str, since: OffsetDateTime) -> Result<u64, StoreError> {
        // A few dozen rows at most (the limit is 30 an hour): counted here.
        let rows: Vec<serde_json::Value> = self
            .rows(
                self.client
                    .from("calls")
                    .select("call_sid")
                    .eq("operator", actor)
                    .eq("direction", "outbound-callback")
                    .gte("created_at", ts(since))
                    .limit(1000),
            )
            .await?;
        Ok(rows.len() as u64)
    }

    async fn set_operator_password(&self, email: &Email, hash: &str) -> Result<bool, StoreError> {
        let body = json!({ "password_hash": hash, "updated_at": now() });
        Ok(self
            .patch_count(
                self.client
                    .from("operators")
                    .eq("email", email.as_str())
                    .update(Self::body(&body)?),
            )
            .await?
            == 1)
    }

    async fn create_session(&self, id_hash: &str, operator_id: Uuid) -> Result<(), StoreError> {
        let body = json!({ "id_hash": id_hash, "operator_id": operator_id });
        self.send(
            self.client
                .from("operator_sessions")
                .insert(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let mut rows: Vec<SessionRecord> = self
            .rows(
                self.client
                    .from("operator_sessions")
                    .select("*")
                    .eq("id_hash", id_hash),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn sessions(&self, id_hashes: &[String]) -> Result<Vec<SessionRecord>, StoreError> {
        // In slices, so that no request line grows past what proxies accept.
        let mut out = Vec::new();
        for slice in id_hashes.chunks(50) {
            let rows: Vec<SessionRecord> = self
                .rows(
                    self.client
                        .from("operator_sessions")
                        .select("*")
                        .in_("id_hash", slice),
                )
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let body = json!({ "last_seen_at": now() });
        self.patch_count(
            self.client
                .from("operator_sessions")
                .eq("id_hash", id_hash)
                .update(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn revoke_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let body = json!({ "revoked_at": now() });
        self.patch_count(
            self.client
                .from("operator_sessions")
                .eq("id_hash", id_hash)
                .is("revoked_at", "null")
                .update(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn revoke_sessions_of(&self, operator_id: Uuid) -> Result<(), StoreError> {
        let body = json!({ "revoked_at": now() });
        self.patch_count(
            self.client
                .from("operator_sessions")
                .eq("operator_id", operator_id.to_string())
                .is("revoked_at", "null")
                .update(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn create_api_token(&self, t: &ApiTokenRecord) -> Result<bool, StoreError> {
        let body = json!({
            "id": t.id, "name": t.name, "role": t.role.as_str(), "token_hash": t.token_hash,
            "operator_id": t.operator_id, "expires_at": t.expires_at.map(ts),
        });
        inserted(
            self.send(self.client.from("api_tokens").insert(Self::body(&body)?))
                .await,
        )
    }

    async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        let mut rows: Vec<ApiTokenRecord> = self
            .rows(
                self.client
                    .from("api_tokens")
                    .select("*")
                    .eq("token_hash", token_hash),
            )
            .await?;
        Ok(rows.pop())
    }

    async fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.rows(self.client.from("api_tokens").select("*").order("name.asc"))
            .await
    }

    async fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError> {
        let body = json!({ "last_used_at": now() });
        self.send(
            self.client
                .from("api_tokens")
                .eq("id", id.to_string())
                .update(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError> {
        let body = json!({ "revoked_at": now() });
        Ok(self
            .patch_count(
                self.client
                    .from("api_tokens")
                    .eq("name", name)
                    .is("revoked_at", "null")
                    .update(Self::body(&body)?),
            )
            .await?
            == 1)
    }

    async fn record_login_failure(&self, key: &str) -> Result<(), StoreError> {
        self.send(
            self.client
                .from("login_failures")
                .insert(Self::body(&json!({ "key": key }))?),
        )
        .await
        .map(drop)
    }

    async fn login_failures_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        #[derive(Deserialize)]
        struct At {
            #[serde(with = "time::serde::rfc3339")]
            at: OffsetDateTime,
        }
        let rows: Vec<At> = self
            .rows(
                self.client
                    .from("login_failures")
                    .select("at")
                    .eq("key", key)
                    .gte("at", ts(since))
                    .order("at.asc")
                    .limit(1000),
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.at).collect())
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.send(self.client.from("login_failures").eq("key", key).delete())
            .await
            .map(drop)
    }

    async fn forget_login_failure(&self, key: &str) -> Result<(), StoreError> {
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let newest: Vec<Id> = self
            .rows(
                self.client
                    .from("login_failures")
                    .select("id")
                    .eq("key", key)
                    .order("id.desc")
                    .limit(1),
            )
            .await?;
        if let Some(row) = newest.first() {
            self.send(
                self.client
                    .from("login_failures")
                    .eq("id", row.id.to_string())
                    .delete(),
            )
            .await?;
        }
        Ok(())
    }

    async fn prune_login_failures(&self, before: OffsetDateTime) -> Result<(), StoreError> {
        self.send(
            self.client
                .from("login_failures")
                .lt("at", ts(before))
                .delete(),
        )
        .await
        .map(drop)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let body = json!({
            "actor": e.actor, "action": e.action.as_str(), "target": e.target, "detail": e.detail,
            "client": e.client, "count": e.count,
        });
        self.send(self.client.from("audit_log").insert(Self::body(&body)?))
            .await
            .map(drop)
    }

    async fn bump_audit(&self, e: &AuditEntry, since: OffsetDateTime) -> Result<(), StoreError> {
        #[derive(Deserialize)]
        struct Counted {
            id: i64,
            count: i64,
        }
        let mut q = self
            .client
            .from("audit_log")
            .select("id,count")
            .eq("action", e.action.as_str())
            .gte("at", ts(since))
            .order("id.desc")
            .limit(1);
        q = match &e.target {
            Some(target) => q.eq("target", target),
            None => q.is("target", "null"),
        };
        let found: Vec<Counted> = self.rows(q).await?;
        let Some(row) = found.first() else {
            return self.append_audit(e).await;
        };
        // Read then write: two instances bumping at once may lose one count, never an entry.
        let body = json!({ "count": row.count + e.count, "detail": e.detail });
        self.send(
            self.client
                .from("audit_log")
                .eq("id", row.id.to_string())
                .update(Self::body(&body)?),
        )
        .await
        .map(drop)
    }

    async fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = self
            .client
            .from("audit_log")
            .select("id,at,actor,action,target,detail,client,count")
            .order("id.desc")
            .limit(limit);
        if let Some(before) = before {
            q = q.lt("id", before.to_string());
        }
        self.rows(q).await
    }

    async fn search_leads(&self, filter: &LeadFilter) -> Result<LeadPage, StoreError> {
        let size = filter.page_size();
        let mut q = self
            .client
            .from("leads")
            .select("*")
            .order("created_at.desc,id.desc")
            .limit(size + 1);
        if let Some(status) = filter.status {
            q = q.eq("status", status.as_str());
        }
        if let Some(suivi) = filter.suivi {
            q = q.eq("suivi", suivi.as_str());
        }
        if let Some(urgent) = filter.urgent {
            q = q.eq("urgence", urgent.to_string());
        }
        if let Some(from) = filter.created_from {
            q = q.gte("created_at", ts(from));
        }
        if let Some(before) = filter.created_before {
            q = q.lt("created_at", ts(before));
        }
        if let Some(after) = filter.updated_after {
            q = q.gt("updated_at", ts(after));
        }
        let mut trees = Vec::new();
        if let Some(term) = &filter.search {
            let text = quoted(&format!("*{}*", term.as_str()));
            let phone = term
                .phone_digits()
                .map_or_else(|| text.clone(), |d| quoted(&format!("*{d}*")));
            trees.push(format!(
                "or(nom_complet.ilike.{text},adresse_complete.ilike.{text},telephone.like.{phone})"
            ));
        }
        if let Some(cursor) = filter.cursor {
            let at = quoted(&ts(cursor.created_at));
            trees.push(format!(
                "or(created_at.lt.{at},and(created_at.eq.{at},id.lt.{}))",
                cursor.id
            ));
        }
        if !trees.is_empty() {
            q = q.and(trees.join(","));
        }
        let rows: Vec<ListedRow> = self.rows(q).await?;
        let leads = rows
            .into_iter()
            .map(|row| {
                Ok(ListedLead {
                    lead: Lead::try_from(row.lead)?,
                    follow_up: FollowUpState::try_from(row.follow_up)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(LeadPage::from_rows(leads, size))
    }

    async fn follow_up(&self, id: LeadId) -> Result<Option<FollowUpState>, StoreError> {
        self.follow_up_of(id).await
    }

    async fn change_follow_up(
        &self,
        id: LeadId,
        expected: i64,
        suivi: FollowUp,
        note: Option<&Note>,
        by: &str,
    ) -> Result<FollowUpChange, StoreError> {
        let body = json!({
            "suivi": suivi.as_str(),
            "suivi_note": note.map(Note::as_str),
            "suivi_version": expected + 1,
            "suivi_by": by,
            "suivi_updated_at": now(),
        });
        let mut rows: Vec<FollowUpRow> = self
            .rows(
                self.client
                    .from("leads")
                    .select(FOLLOW_UP_SELECT)
                    .eq("id", id.to_string())
                    .eq("suivi_version", expected.to_string())
                    .update(Self::body(&body)?),
            )
            .await?;
        if let Some(row) = rows.pop() {
            return Ok(FollowUpChange::Applied(FollowUpState::try_from(row)?));
        }
        Ok(match self.follow_up_of(id).await? {
            Some(state) => FollowUpChange::Stale(state),
            None => FollowUpChange::NotFound,
        })
    }

    async fn erase_caller(&self, phone: &PhoneNumber) -> Result<Erasure, StoreError> {
        self.erase_with(phone, &[], &[]).await
    }
}

/// What `bp.erase_caller` answers.
#[derive(Deserialize)]
struct ErasedRows {
    erasure_id: Uuid,
    #[serde(default)]
    lead_ids: Vec<LeadId>,
    calls: usize,
    events: usize,
    alerts: usize,
    sms_sent: usize,
    #[serde(default)]
    remote: Vec<RemoteTarget>,
}

impl SupabaseStore {
    /// `bp.erase_caller`: the caller's rows, their tombstones and the remote deletions owed, in
    /// one transaction. `keys` and `remote` are tombstones and remote objects found elsewhere
    /// (this instance's outbox mirror) to record with them.
    pub(in crate::store) async fn erase_with(
        &self,
        phone: &PhoneNumber,
        keys: &[String],
        remote: &[RemoteTarget],
    ) -> Result<Erasure, StoreError> {
        let answer: serde_json::Value = self
            .rpc_value(
                "erase_caller",
                &serde_json::json!({
                    "p_phone": phone.as_e164(),
                    "p_number_key": number_key(phone.as_e164()),
                    "p_extra": { "keys": keys, "remote": remote },
                }),
            )
            .await?;
        let rows: ErasedRows = serde_json::from_value(answer)
            .map_err(|_| StoreError::Corrupt("unexpected answer of rpc/erase_caller".to_owned()))?;
        let mut erasure = Erasure {
            id: rows.erasure_id,
            lead_ids: rows.lead_ids,
            calls: rows.calls,
            events: rows.events,
            alerts: rows.alerts,
            sms_sent: rows.sms_sent,
            remote: rows.remote,
            ..Erasure::default()
        };
        erasure.remote.sort();
        erasure.remote.dedup();
        Ok(erasure)
    }
}
