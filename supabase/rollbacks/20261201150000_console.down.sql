-- Rollback of 20261201150000_console: drops the console's tables (operators, sessions, API
-- tokens, login failures, audit log: their data is lost) and the follow-up columns of bp.leads.
drop table if exists bp.audit_log;
drop table if exists bp.login_failures;
drop table if exists bp.api_tokens;
drop table if exists bp.operator_sessions;
drop table if exists bp.operators;
drop index if exists bp.calls_from_number_idx;
drop index if exists bp.leads_offered_phone_idx;
drop index if exists bp.leads_telephone_idx;
alter table bp.leads
  drop column if exists suivi_updated_at,
  drop column if exists suivi_by,
  drop column if exists suivi_version,
  drop column if exists suivi_note,
  drop column if exists suivi;
