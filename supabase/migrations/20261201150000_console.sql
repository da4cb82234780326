-- 20261201150000_console
-- The operators' console (issue 14): operators, their server-side sessions and API tokens, login
-- failures (throttling shared by every instance), the audit log, and the staff's follow-up of a
-- lead (`suivi`), kept apart from the machine's `status` and versioned so a stale edit is refused.
-- Indexes for the erasure of a caller (Québec Law 25) by phone number.
--
-- Access model as in the initial schema: RLS on with no policy, nothing for anon/authenticated,
-- service_role only. Secrets are never stored: passwords as Argon2id PHC strings, session ids and
-- API tokens as SHA-256 hex digests.
--
-- Rollback: supabase/rollbacks/20261201150000_console.down.sql

-- ---------------------------------------------------------------------------------------------
-- bp.leads: the staff's follow-up
-- ---------------------------------------------------------------------------------------------
alter table bp.leads
  add column suivi text not null default 'nouveau'
    constraint leads_suivi_check
    check (suivi in ('nouveau', 'contacte', 'planifie', 'termine', 'perdu')),
  add column suivi_note text
    constraint leads_suivi_note_check check (char_length(suivi_note) <= 2000),
  add column suivi_version bigint not null default 0
    constraint leads_suivi_version_check check (suivi_version >= 0),
  add column suivi_by text,
  add column suivi_updated_at timestamptz;

comment on column bp.leads.suivi is 'Staff follow-up: nouveau, contacte, planifie, termine, perdu (not the machine''s status).';
comment on column bp.leads.suivi_note is 'Staff note about the follow-up.';
comment on column bp.leads.suivi_version is 'Bumped by every follow-up change; a change names the version it read (ETag/If-Match).';
comment on column bp.leads.suivi_by is 'Operator e-mail or token:NAME that made the last follow-up change.';

create index leads_telephone_idx on bp.leads (telephone) where telephone is not null;
create index leads_offered_phone_idx on bp.leads (offered_phone) where offered_phone is not null;
create index calls_from_number_idx on bp.calls (from_number) where from_number is not null;

-- ---------------------------------------------------------------------------------------------
-- Operators, sessions, API tokens
-- ---------------------------------------------------------------------------------------------
create table bp.operators (
  id            uuid primary key default gen_random_uuid(),
  email         text not null unique
    constraint operators_email_check check (email = lower(email) and position('@' in email) > 1),
  role          text not null
    constraint operators_role_check check (role in ('admin', 'staff')),
  password_hash text not null
    constraint operators_password_hash_check check (password_hash like '$argon2id$%'),
  disabled      boolean not null default false,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now()
);
comment on table bp.operators is 'Console operators (created with `myriam operator add`).';

create trigger operators_set_updated_at
  before update on bp.operators
  for each row execute function bp.set_updated_at();

create table bp.operator_sessions (
  id_hash      text primary key,
  operator_id  uuid not null references bp.operators (id) on delete cascade,
  created_at   timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  revoked_at   timestamptz
);
comment on table bp.operator_sessions is 'Server-side console sessions, keyed by the SHA-256 of the cookie secret.';
create index operator_sessions_operator_id_idx on bp.operator_sessions (operator_id);

create table bp.api_tokens (
  id         uuid primary key default gen_random_uuid(),
  name       text not null unique,
  role       text not null
    constraint api_tokens_role_check check (role in ('admin', 'staff')),
  token_hash text not null unique,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
comment on table bp.api_tokens is 'API tokens (shown once by `myriam operator token create`), keyed by SHA-256.';

-- ---------------------------------------------------------------------------------------------
-- Login throttling and the audit log
-- ---------------------------------------------------------------------------------------------
create table bp.login_failures (
  id  bigint generated always as identity primary key,
  key text not null,
  at  timestamptz not null default now()
);
comment on table bp.login_failures is 'Failed console logins per e-mail digest or client address, for throttling.';
create index login_failures_key_at_idx on bp.login_failures (key, at);

create table bp.audit_log (
  id     bigint generated always as identity primary key,
  at     timestamptz not null default now(),
  actor  text not null,
  action text not null
    constraint audit_log_action_check
    check (action in ('login', 'login_failed', 'login_throttled', 'logout', 'follow_up_changed',
                      'export', 'erase')),
  target text,
  detail text
);
comment on table bp.audit_log is 'Who did what in the console, when, on which ids. Never caller data.';
create index audit_log_at_idx on bp.audit_log (at desc, id desc);

-- ---------------------------------------------------------------------------------------------
-- Row-level security and privileges
-- ---------------------------------------------------------------------------------------------
alter table bp.operators         enable row level security;
alter table bp.operator_sessions enable row level security;
alter table bp.api_tokens        enable row level security;
alter table bp.login_failures    enable row level security;
alter table bp.audit_log         enable row level security;
-- No policies on purpose: only service_role (BYPASSRLS) may read or write.

revoke all on bp.operators, bp.operator_sessions, bp.api_tokens, bp.login_failures, bp.audit_log
  from anon, authenticated;
grant select, insert, update, delete
  on bp.operators, bp.operator_sessions, bp.api_tokens, bp.login_failures, bp.audit_log
  to service_role;
