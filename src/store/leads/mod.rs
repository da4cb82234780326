//! Leads and calls, the [`Store`] trait's capability: SQLite ([`sqlite`]), Supabase through
//! PostgREST ([`supabase`]), the outbox (`outbox::store`), and [`AnyStore`]'s delegation (here).

pub(super) mod sqlite;
mod supabase;

use crate::domain::{CallSid, LeadId, LeadStatus};
use crate::qualification::Lead;
use crate::store::any::AnyStore;
use crate::store::rows::{CallRecord, CallUpdate, Saved, Store, StoreError};

impl Store for AnyStore {
    async fn save_lead(&self, lead: &Lead) -> Result<Saved, StoreError> {
        delegate!(self, "save_lead", s => s.save_lead(lead))
    }
    async fn abandon_lead(&self, id: LeadId) -> Result<Option<LeadStatus>, StoreError> {
        delegate!(self, "abandon_lead", s => s.abandon_lead(id))
    }
    async fn start_call(&self, lead: &Lead, call: &CallUpdate) -> Result<Lead, StoreError> {
        delegate!(self, "start_call", s => s.start_call(lead, call))
    }
    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        delegate!(self, "get_lead", s => s.get_lead(id))
    }
    async fn find_lead_by_call(&self, call_sid: &CallSid) -> Result<Option<Lead>, StoreError> {
        delegate!(self, "find_lead_by_call", s => s.find_lead_by_call(call_sid))
    }
    async fn upsert_call(&self, update: &CallUpdate) -> Result<(), StoreError> {
        delegate!(self, "upsert_call", s => s.upsert_call(update))
    }
    async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        delegate!(self, "get_call", s => s.get_call(call_sid))
    }
    async fn find_call_by_vapi_id(
        &self,
        vapi_call_id: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        delegate!(self, "find_call_by_vapi_id", s => s.find_call_by_vapi_id(vapi_call_id))
    }
    async fn record_event(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "record_event", s => s.record_event(key))
    }
    async fn event_processed(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "event_processed", s => s.event_processed(key))
    }
    async fn claim_once(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, "claim_once", s => s.claim_once(key))
    }
    async fn list_leads(&self, limit: usize, offset: usize) -> Result<Vec<Lead>, StoreError> {
        delegate!(self, "list_leads", s => s.list_leads(limit, offset))
    }
    async fn calls_of_lead(&self, lead_id: LeadId) -> Result<Vec<CallRecord>, StoreError> {
        delegate!(self, "calls_of_lead", s => s.calls_of_lead(lead_id))
    }
    async fn health(&self) -> Result<(), StoreError> {
        delegate!(self, "health", s => s.health())
    }
}
