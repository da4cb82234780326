-- Rollback of supabase/migrations/20261201140000_versions.sql
--
-- Drops the version columns, the forward-only triggers and bp.start_call. Data is kept (the
-- version numbers are lost). Gateways of this version must be stopped first: they send
-- `version` in every lead save.
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop function if exists bp.start_call(jsonb, jsonb);
drop trigger if exists calls_forward on bp.calls;
drop trigger if exists leads_forward on bp.leads;
drop function if exists bp.calls_forward();
drop function if exists bp.leads_forward();
drop function if exists bp.call_status_rank(text);
drop function if exists bp.lead_status_rank(text);
alter table bp.calls drop column if exists version;
alter table bp.leads drop column if exists version;
