-- Rollback of supabase/migrations/20261122000000_initial_schema.sql
--
-- DESTRUCTIVE: deletes every lead, call and processed-event key.
--
-- Drops the whole schema `bp` and everything in it, which is exactly what the migration created:
--   tables   bp.leads, bp.calls, bp.processed_events (with their data, constraints, indexes,
--            RLS settings, comments and the leads_set_updated_at / calls_set_updated_at triggers)
--   function bp.set_updated_at()
--   grants   usage on schema bp and table privileges given to service_role
-- The roles (anon, authenticated, service_role, authenticator) are Supabase's and are not touched.
-- CASCADE would also drop objects added in bp by later migrations: roll those back first
-- (rollbacks are applied in reverse filename order).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop schema if exists bp cascade;
