-- 20261201100000_humans
-- Reaching a human (issue 13): the lead statuses `transfere` and `rappel`, what a call's transfer
-- and voicemail produced, and the SMS alerts sent to staff.
--
-- Rollback: supabase/rollbacks/20261201100000_humans.down.sql
-- Merged migrations are never edited: add a new file for any change.

-- ---------------------------------------------------------------------------------------------
-- bp.leads: two more statuses
-- ---------------------------------------------------------------------------------------------
alter table bp.leads drop constraint leads_status_check;
alter table bp.leads add constraint leads_status_check
  check (status in ('nouveau', 'en_cours', 'qualifie', 'abandonne', 'transfere', 'rappel'));
comment on column bp.leads.status is
  'Qualification state: nouveau, en_cours, qualifie, abandonne, transfere (handed to the office line), rappel (voicemail: call back).';

-- ---------------------------------------------------------------------------------------------
-- bp.calls: the transfer (<Dial>) and the voicemail (<Record>)
-- ---------------------------------------------------------------------------------------------
alter table bp.calls
  add column dial_status text
    constraint calls_dial_status_check
    check (dial_status in ('answered', 'busy', 'no-answer', 'failed', 'canceled')),
  add column dial_duration integer
    constraint calls_dial_duration_check
    check (dial_duration >= 0),
  add column recording_sid text,
  add column recording_duration integer
    constraint calls_recording_duration_check
    check (recording_duration >= 0),
  add column recording_status text;

comment on column bp.calls.dial_status is 'Outcome of the transfer to the office line: answered, busy, no-answer, failed, canceled.';
comment on column bp.calls.dial_duration is 'Seconds the caller spent with the office line.';
comment on column bp.calls.recording_url is 'Voicemail recording (Twilio media URL; needs the account credentials to fetch).';
comment on column bp.calls.recording_sid is 'Voicemail recording SID (RE...).';
comment on column bp.calls.recording_duration is 'Voicemail length in seconds.';
comment on column bp.calls.recording_status is 'Voicemail recording status: in-progress, completed, absent (empty recording).';

-- ---------------------------------------------------------------------------------------------
-- bp.alerts: one SMS per (lead, event, recipient), claimed before it is sent
-- ---------------------------------------------------------------------------------------------
create table bp.alerts (
  id              uuid primary key default gen_random_uuid(),
  lead_id         uuid not null references bp.leads (id) on delete cascade,
  event           text not null
    constraint alerts_event_check
    check (event in ('qualified', 'voicemail')),
  channel         text not null default 'sms'
    constraint alerts_channel_check
    check (channel in ('sms')),
  recipient       text not null
    constraint alerts_recipient_check
    check (recipient ~ '^\+[1-9][0-9]{6,14}$'),
  status          text not null default 'pending'
    constraint alerts_status_check
    check (status in ('pending', 'claimed', 'sent', 'dead')),
  message_sid     text,
  delivery_status text,
  attempts        integer not null default 0 constraint alerts_attempts_check check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  lease_until     timestamptz,
  error_code      integer,
  last_error      text,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint alerts_once unique (lead_id, event, recipient)
);

comment on table bp.alerts is 'SMS alerts to staff about a lead; the unique key makes each one exactly-once across instances.';
comment on column bp.alerts.event is 'What the alert is about: qualified (urgent or ALERT_ON=all) or voicemail (urgent caller after hours).';
comment on column bp.alerts.recipient is 'Staff number from ALERT_SMS_TO, E.164.';
comment on column bp.alerts.status is 'pending (due at next_attempt_at), claimed (an instance is sending it until lease_until), sent (Twilio accepted it: message_sid), dead (refused for good: error_code).';
comment on column bp.alerts.delivery_status is 'Twilio''s message status from the status callback (queued, sent, delivered, undelivered, failed ...), moved forward only.';
comment on column bp.alerts.message_sid is 'Twilio Message SID once Twilio accepted the message; never sent again after that.';
comment on column bp.alerts.error_code is 'Twilio error code of a refusal or failed delivery (e.g. 21211, 21610, 30003).';

create index alerts_due_idx on bp.alerts (next_attempt_at) where status in ('pending', 'claimed');
create unique index alerts_message_sid_idx on bp.alerts (message_sid) where message_sid is not null;

create trigger alerts_set_updated_at
  before update on bp.alerts
  for each row execute function bp.set_updated_at();

alter table bp.alerts enable row level security;
-- No policies on purpose: only service_role (BYPASSRLS) may read or write.
revoke all on bp.alerts from anon, authenticated;
grant select, insert, update, delete on bp.alerts to service_role;

-- ---------------------------------------------------------------------------------------------
-- Alert functions (called through PostgREST's /rpc by service_role only)
-- ---------------------------------------------------------------------------------------------

-- Inserts alerts once: an alert that exists (same lead, event, recipient) is kept as it is.
create function bp.enqueue_alerts(alerts jsonb) returns void
language sql
set search_path = ''
as $$
  insert into bp.alerts (id, lead_id, event, recipient)
  select (a->>'id')::uuid, (a->>'lead_id')::uuid, a->>'event', a->>'recipient'
  from jsonb_array_elements(alerts) as a
  on conflict (lead_id, event, recipient) do nothing;
$$;
comment on function bp.enqueue_alerts(jsonb) is 'Creates SMS alerts once per (lead, event, recipient).';

-- Claims due alerts for one instance: pending and due, or claimed with an expired lease. Rows
-- another transaction is claiming are skipped, so two instances never claim the same alert.
create function bp.claim_alerts(max_rows integer, lease_seconds integer)
returns setof bp.alerts
language sql
set search_path = ''
as $$
  update bp.alerts a
     set status = 'claimed',
         attempts = a.attempts + 1,
         lease_until = now() + make_interval(secs => lease_seconds)
   where a.id in (
     select d.id from bp.alerts d
      where (d.status = 'pending' and d.next_attempt_at <= now())
         or (d.status = 'claimed' and d.lease_until < now())
      order by d.next_attempt_at
      limit max_rows
      for update skip locked)
  returning a.*;
$$;
comment on function bp.claim_alerts(integer, integer) is 'Claims due SMS alerts with a lease (skip locked).';

-- A delivery status callback: moves the status forward only (callbacks may come late or twice).
create function bp.sms_status_rank(status text) returns integer
language sql immutable
set search_path = ''
as $$
  select case
    when status in ('accepted', 'scheduled', 'queued') then 1
    when status = 'sending' then 2
    when status = 'sent' then 3
    when status in ('delivered', 'undelivered', 'failed', 'read', 'canceled') then 4
    else 0 end;
$$;

create function bp.record_sms_status(sid text, new_status text, code integer)
returns boolean
language sql
set search_path = ''
as $$
  with changed as (
    update bp.alerts
       set delivery_status = new_status,
           error_code = coalesce(code, error_code)
     where message_sid = sid
       and (delivery_status is null
            or bp.sms_status_rank(delivery_status) <= bp.sms_status_rank(new_status))
    returning 1)
  select exists (select 1 from changed);
$$;
comment on function bp.record_sms_status(text, text, integer) is 'Records an SMS delivery status, forward only.';

revoke all on function bp.enqueue_alerts(jsonb), bp.claim_alerts(integer, integer),
  bp.sms_status_rank(text), bp.record_sms_status(text, text, integer) from public;
grant execute on function bp.enqueue_alerts(jsonb), bp.claim_alerts(integer, integer),
  bp.sms_status_rank(text), bp.record_sms_status(text, text, integer) to service_role;
