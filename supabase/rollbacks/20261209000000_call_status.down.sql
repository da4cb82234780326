-- Rollback of supabase/migrations/20261209000000_call_status.sql
--
-- The gateway then reports call statuses step by step (eight requests), as before.
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop function if exists bp.report_call_status(jsonb, text, boolean, boolean);
