-- Rollback of supabase/migrations/20261208020000_callback.sql
--
-- Drops bp.console_callbacks, the calls' operator (callback rows stay, as outbound calls without
-- an operator) and its index, the operators' phones (they must be set again after re-applying),
-- and deletes the `callback` and `phone_changed` audit entries so the old action check holds
-- again; deletes the callers' confirmation SMS (`confirmation` alerts) so the old event check
-- holds. Gateways of that version must be stopped first (they write the new columns).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

delete from bp.alerts where event = 'confirmation';
alter table bp.alerts drop constraint alerts_event_check;
alter table bp.alerts add constraint alerts_event_check check (event in ('qualified', 'voicemail'));
drop function if exists bp.console_callbacks(jsonb);
delete from bp.audit_log where action in ('callback', 'phone_changed');
alter table bp.audit_log drop constraint audit_log_action_check;
alter table bp.audit_log add constraint audit_log_action_check
  check (action in ('login', 'login_failed', 'login_throttled', 'account_guessed', 'logout',
                    'follow_up_changed', 'export', 'erase', 'recording_played'));
drop index if exists bp.calls_operator_idx;
alter table bp.calls drop column if exists operator;
alter table bp.operators drop column if exists phone;
