-- Hardening of the console (issue 26): the audit log records the client's address and aggregates
-- repeated entries (throttled logins, an account being guessed at) into one row with a count;
-- login failures are pruned by age; API tokens belong to the operator who created them (disabling
-- the operator disables them), may expire, and record their last use.

alter table bp.audit_log add column client text;
alter table bp.audit_log add column count integer not null default 1
  constraint audit_log_count_check check (count >= 1);
comment on column bp.audit_log.client is 'The address the request came from.';
comment on column bp.audit_log.count is 'How many times this happened in the entry''s window (one entry per key and window).';

alter table bp.audit_log drop constraint audit_log_action_check;
alter table bp.audit_log add constraint audit_log_action_check
  check (action in ('login', 'login_failed', 'login_throttled', 'account_guessed', 'logout',
                    'follow_up_changed', 'export', 'erase', 'recording_played'));

create index audit_log_action_target_idx on bp.audit_log (action, target, id desc);
create index login_failures_at_idx on bp.login_failures (at);

alter table bp.api_tokens add column operator_id uuid references bp.operators (id) on delete cascade;
alter table bp.api_tokens add column expires_at timestamptz;
alter table bp.api_tokens add column last_used_at timestamptz;
comment on column bp.api_tokens.operator_id is 'The operator who created the token: a disabled operator''s tokens do not authenticate.';
comment on column bp.api_tokens.expires_at is 'After this the token does not authenticate (null: no expiry).';
comment on column bp.api_tokens.last_used_at is 'Last authenticated use, written at most once a minute.';

-- Live updates of the console ask for the leads changed since their last poll.
create index leads_updated_at_idx on bp.leads (updated_at);
