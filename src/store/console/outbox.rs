//! [`ConsoleStore`] over the outbox: the console reads and writes Supabase directly (sessions,
//! operators and the audit log are shared by every instance, and a console request can be retried
//! by its user); erasing a caller also clears this instance's local file (outbox, dead letters,
//! mirror) first, so no queued write brings the caller back.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ApiTokenRecord, AuditEntry, ConsoleStore, Email, Erasure, FollowUp, FollowUpChange,
    FollowUpState, LeadFilter, LeadPage, Note, Operator, SessionRecord,
};
use crate::domain::{LeadId, PhoneNumber};
use crate::store::erasures::{RemoteService, call_key, lead_key};
use crate::store::outbox::OutboxStore;
use crate::store::rows::StoreError;

impl ConsoleStore for OutboxStore {
    async fn create_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        self.remote().create_operator(operator).await
    }
    async fn operator_by_email(&self, email: &Email) -> Result<Option<Operator>, StoreError> {
        self.remote().operator_by_email(email).await
    }
    async fn operator_by_id(&self, id: Uuid) -> Result<Option<Operator>, StoreError> {
        self.remote().operator_by_id(id).await
    }
    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.remote().operators().await
    }
    async fn set_operator_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        self.remote().set_operator_disabled(email, disabled).await
    }
    async fn set_operator_phone(
        &self,
        email: &Email,
        phone: Option<&PhoneNumber>,
    ) -> Result<bool, StoreError> {
        self.remote().set_operator_phone(email, phone).await
    }
    async fn callbacks_since(&self, actor: &str, since: OffsetDateTime) -> Result<u64, StoreError> {
        self.remote().callbacks_since(actor, since).await
    }
    async fn set_operator_password(&self, email: &Email, hash: &str) -> Result<bool, StoreError> {
        self.remote().set_operator_password(email, hash).await
    }
    async fn create_session(&self, id_hash: &str, operator_id: Uuid) -> Result<(), StoreError> {
        self.remote().create_session(id_hash, operator_id).await
    }
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.remote().session(id_hash).await
    }
    async fn sessions(&self, id_hashes: &[String]) -> Result<Vec<SessionRecord>, StoreError> {
        self.remote().sessions(id_hashes).await
    }
    async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.remote().touch_session(id_hash).await
    }
    async fn revoke_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.remote().revoke_session(id_hash).await
    }
    async fn revoke_sessions_of(&self, operator_id: Uuid) -> Result<(), StoreError> {
        self.remote().revoke_sessions_of(operator_id).await
    }
    async fn create_api_token(&self, token: &ApiTokenRecord) -> Result<bool, StoreError> {
        self.remote().create_api_token(token).await
    }
    async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        self.remote().api_token(token_hash).await
    }
    async fn revoke_api_token(&self, name: &str) -> Result<bool, StoreError> {
        self.remote().revoke_api_token(name).await
    }
    async fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.remote().api_tokens().await
    }
    async fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError> {
        self.remote().touch_api_token(id).await
    }
    async fn record_login_failure(&self, key: &str) -> Result<(), StoreError> {
        self.remote().record_login_failure(key).await
    }
    async fn login_failures_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        self.remote().login_failures_since(key, since).await
    }
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.remote().clear_login_failures(key).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.remote().append_audit(entry).await
    }
    async fn forget_login_failure(&self, key: &str) -> Result<(), StoreError> {
        self.remote().forget_login_failure(key).await
    }
    async fn prune_login_failures(&self, before: OffsetDateTime) -> Result<(), StoreError> {
        self.remote().prune_login_failures(before).await
    }
    async fn bump_audit(
        &self,
        entry: &AuditEntry,
        since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.remote().bump_audit(entry, since).await
    }
    async fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.remote().audit_page(before, limit).await
    }
    async fn search_leads(&self, filter: &LeadFilter) -> Result<LeadPage, StoreError> {
        self.remote().search_leads(filter).await
    }
    async fn follow_up(&self, id: LeadId) -> Result<Option<FollowUpState>, StoreError> {
        self.remote().follow_up(id).await
    }
    async fn change_follow_up(
        &self,
        id: LeadId,
        expected: i64,
        suivi: FollowUp,
        note: Option<&Note>,
        by: &str,
    ) -> Result<FollowUpChange, StoreError> {
        self.remote()
            .change_follow_up(id, expected, suivi, note, by)
            .await
    }
    async fn erase_caller(&self, phone: &PhoneNumber) -> Result<Erasure, StoreError> {
        // This file first (its queued writes must not replay the caller back), without remote
        // deletions of its own: what its mirror knew goes to Supabase with the erasure, so one
        // table, shared by every instance, holds what is owed at Twilio and Vapi.
        let local = self.local().erase_number(phone, false).await?;
        let mut keys: Vec<String> = local.lead_ids.iter().map(|id| lead_key(*id)).collect();
        keys.extend(
            local
                .remote
                .iter()
                .filter(|t| t.service == RemoteService::TwilioCall)
                .map(|t| call_key(&t.remote_id)),
        );
        let mut erasure = self
            .remote()
            .erase_with(phone, &keys, &local.remote)
            .await?;
        let local = Erasure {
            id: erasure.id,
            ..local
        };
        erasure.add(local);
        Ok(erasure)
    }
}
