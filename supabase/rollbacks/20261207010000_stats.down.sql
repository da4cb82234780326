-- Rollback of supabase/migrations/20261207010000_stats.sql
--
-- Drops bp.console_stats, the first-follow-up trigger and column (the dates it holds are lost:
-- re-applying the migration backfills them from suivi_updated_at, which may be later), and the
-- time indexes. Gateways of that version must be stopped first (their dashboard calls the
-- function).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop function if exists bp.console_stats(jsonb);
drop trigger if exists leads_suivi_first on bp.leads;
drop function if exists bp.leads_suivi_first();
alter table bp.leads drop column if exists suivi_first_at;
drop index if exists bp.leads_created_at_idx;
drop index if exists bp.calls_created_at_idx;
drop index if exists bp.alerts_created_at_idx;
