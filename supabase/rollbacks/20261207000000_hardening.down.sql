-- Rollback of supabase/migrations/20261207000000_hardening.sql
--
-- Drops the API tokens' operator, expiry and last use, the audit log's client address and count
-- (aggregated entries become single ones) and the new indexes; `account_guessed` entries are deleted so the old action check holds again.
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop index if exists bp.leads_updated_at_idx;
alter table bp.api_tokens drop column last_used_at;
alter table bp.api_tokens drop column expires_at;
alter table bp.api_tokens drop column operator_id;
drop index if exists bp.login_failures_at_idx;
drop index if exists bp.audit_log_action_target_idx;
delete from bp.audit_log where action in ('account_guessed', 'recording_played');
alter table bp.audit_log drop constraint audit_log_action_check;
alter table bp.audit_log add constraint audit_log_action_check
  check (action in ('login', 'login_failed', 'login_throttled', 'logout', 'follow_up_changed',
                    'export', 'erase'));
alter table bp.audit_log drop column count;
alter table bp.audit_log drop column client;
