//! Leads and calls, the [`Store`] trait's capability: SQLite ([`sqlite`]), Supabase through
//! PostgREST ([`supabase`]), the outbox (`outbox::store`), and [`AnyStore`]'s delegation (here).

pub(super) mod sqlite;
mod supabase;

use crate::domain::{CallSid, LeadId, LeadStatus};
use crate::qualification::Lead;
use crate::store::any::AnyStore;
use crate::store::rows::{
    CallRecord, CallUpdate, Saved, StatusApplied, StatusAtOnce, Store, StoreError,
};

delegate_trait! {
    Store;
    fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError>;
    fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError>;
    fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError>;
    fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError>;
    fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError>;
    fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError>;
    fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError>;
    fn find_call_by_vapi_id(&self, vapi_call_id: &str) -> Result<Option<CallRecord>, StoreError>;
    fn record_event(&self, key: &str) -> Result<bool, StoreError>;
    fn event_processed(&self, key: &str) -> Result<bool, StoreError>;
    fn claim_once(&self, key: &str) -> Result<bool, StoreError>;
    fn report_status_at_once(
        &self,
        report: &StatusAtOnce<'_>,
    ) -> Result<Option<StatusApplied>, StoreError>;
    fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError>;
    fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError>;
    fn health(&self) -> Result<(), StoreError>;
}
