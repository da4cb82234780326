-- Hardening of the console (issue 26): the audit log records the client's address and aggregates
-- repeated entries (throttled logins, an account being guessed at) into one row with a count;
-- login failures are pruned by age.

alter table bp.audit_log add column client text;
alter table bp.audit_log add column count integer not null default 1
  constraint audit_log_count_check check (count >= 1);
comment on column bp.audit_log.client is 'The address the request came from.';
comment on column bp.audit_log.count is 'How many times this happened in the entry''s window (one entry per key and window).';

alter table bp.audit_log drop constraint audit_log_action_check;
alter table bp.audit_log add constraint audit_log_action_check
  check (action in ('login', 'login_failed', 'login_throttled', 'account_guessed', 'logout',
                    'follow_up_changed', 'export', 'erase'));

create index audit_log_action_target_idx on bp.audit_log (action, target, id desc);
create index login_failures_at_idx on bp.login_failures (at);
