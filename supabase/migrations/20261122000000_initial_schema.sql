-- 20261122000000_initial_schema
-- Schema `bp`: leads qualified by the phone agent, the calls that produced them, and the
-- idempotency keys of webhook events already processed.
--
-- Access model: only the backend writes here, through PostgREST with the service_role key.
-- RLS is enabled on every table with NO policy, so anon/authenticated see nothing even if a
-- grant slips in later; service_role bypasses RLS (BYPASSRLS) but still needs the GRANTs below.
--
-- Rollback: supabase/rollbacks/20261122000000_initial_schema.down.sql
-- Merged migrations are never edited: add a new file for any change.

create schema bp;
comment on schema bp is 'Myriam telephony gateway: leads, calls and processed webhook events.';

-- Keeps updated_at current on every UPDATE.
create function bp.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
comment on function bp.set_updated_at() is 'BEFORE UPDATE trigger: sets updated_at = now().';

-- ---------------------------------------------------------------------------------------------
-- bp.leads
-- ---------------------------------------------------------------------------------------------
create table bp.leads (
  id               uuid primary key default gen_random_uuid(),
  nom_complet      text,
  telephone        text
    constraint leads_telephone_check
    check (telephone ~ '^\+1[2-9][0-9]{2}[2-9][0-9]{6}$'),
  telephone_raw    text,
  adresse_complete text,
  type_service     text
    constraint leads_type_service_check
    check (type_service in ('elagage', 'abattage', 'essouchement', 'haie',
                            'urgence_tempete', 'plantation', 'evaluation', 'autre')),
  description      text,
  urgence          boolean not null default false,
  status           text not null default 'nouveau'
    constraint leads_status_check
    check (status in ('nouveau', 'en_cours', 'qualifie', 'abandonne')),
  language         text not null default 'fr'
    constraint leads_language_check
    check (language in ('fr', 'en')),
  offered_phone    text
    constraint leads_offered_phone_check
    check (offered_phone ~ '^\+1[2-9][0-9]{2}[2-9][0-9]{6}$'),
  attempts         jsonb not null default '{}'::jsonb,
  conversation     jsonb not null default '[]'::jsonb,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

comment on table bp.leads is 'A prospective customer qualified over the phone (one row per qualification).';
comment on column bp.leads.nom_complet is 'Full name as confirmed by the caller.';
comment on column bp.leads.telephone is 'Callback number, E.164 NANP (+1NXXNXXXXXX).';
comment on column bp.leads.telephone_raw is 'Callback number as heard/typed, before normalisation.';
comment on column bp.leads.adresse_complete is 'Address where the work is to be done.';
comment on column bp.leads.type_service is 'Requested service category.';
comment on column bp.leads.description is 'Free-text description of the job.';
comment on column bp.leads.urgence is 'True when the caller reported an emergency (e.g. tree on a house).';
comment on column bp.leads.status is 'Qualification state: nouveau, en_cours, qualifie, abandonne.';
comment on column bp.leads.language is 'Conversation language: fr or en.';
comment on column bp.leads.offered_phone is 'Caller ID offered by the carrier, E.164 NANP, when present.';
comment on column bp.leads.attempts is 'Per-field retry counters of the qualification dialogue.';
comment on column bp.leads.conversation is 'Ordered transcript turns of the qualification dialogue.';

create index leads_created_at_id_idx on bp.leads (created_at desc, id desc);

create trigger leads_set_updated_at
  before update on bp.leads
  for each row execute function bp.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- bp.calls
-- ---------------------------------------------------------------------------------------------
create table bp.calls (
  id            uuid primary key default gen_random_uuid(),
  lead_id       uuid references bp.leads (id) on delete set null,
  call_sid      text not null unique,
  vapi_call_id  text,
  from_number   text,
  to_number     text,
  direction     text,
  mode          text
    constraint calls_mode_check
    check (mode in ('bridge', 'ivr')),
  mode_reason   text,
  status        text,
  duration      integer
    constraint calls_duration_check
    check (duration >= 0),
  recording_url text,
  transcript    text,
  ended_reason  text,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now()
);

comment on table bp.calls is 'One inbound phone call handled by the gateway (keyed by the carrier call SID).';
comment on column bp.calls.lead_id is 'Lead produced by this call, if any (set null if the lead is deleted).';
comment on column bp.calls.call_sid is 'Carrier call identifier; unique.';
comment on column bp.calls.vapi_call_id is 'Vapi call identifier when the call was bridged to the voice agent.';
comment on column bp.calls.mode is 'How the call was handled: bridge (voice agent) or ivr (fallback menu).';
comment on column bp.calls.mode_reason is 'Why that mode was chosen (e.g. agent unavailable).';
comment on column bp.calls.duration is 'Call duration in seconds.';
comment on column bp.calls.ended_reason is 'Reason reported when the call ended.';

-- A lead's calls, oldest first (calls_of_lead); also serves the ON DELETE SET NULL lookup.
create index calls_lead_id_created_at_idx on bp.calls (lead_id, created_at, id);
create index calls_vapi_call_id_idx on bp.calls (vapi_call_id) where vapi_call_id is not null;

create trigger calls_set_updated_at
  before update on bp.calls
  for each row execute function bp.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- bp.processed_events
-- ---------------------------------------------------------------------------------------------
create table bp.processed_events (
  key        text primary key,
  created_at timestamptz not null default now()
);

comment on table bp.processed_events is 'Idempotency keys of webhook events already handled (insert-once).';
comment on column bp.processed_events.key is 'Provider-specific event key.';

-- ---------------------------------------------------------------------------------------------
-- Row-level security and privileges
-- ---------------------------------------------------------------------------------------------
alter table bp.leads            enable row level security;
alter table bp.calls            enable row level security;
alter table bp.processed_events enable row level security;
-- No policies on purpose: only service_role (BYPASSRLS) may read or write.

revoke all on all tables in schema bp from anon, authenticated;
revoke all on function bp.set_updated_at() from public;

grant usage on schema bp to service_role;
grant select, insert, update, delete on bp.leads, bp.calls, bp.processed_events to service_role;
