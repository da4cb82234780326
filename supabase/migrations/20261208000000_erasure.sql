-- 20261208000000_erasure
-- Erasure that erases (issue 26, Québec Law 25).
--
-- - bp.erase_caller(p_phone, p_number_key, p_extra): one transaction. It locks the caller's leads
--   and calls, collects what lives at Twilio and Vapi (Call SIDs, voicemail Recording SIDs, the
--   Message SIDs of the SMS alerts sent about the caller, Vapi call ids) into bp.remote_erasures,
--   deletes the processed events, calls and leads (alerts cascade), records the tombstones in
--   bp.erased, and answers what it removed and what is owed remotely.
-- - bp.erased: `lead:<uuid>` (lead ids are random, not personal data), `number:<sha256 hex>` and
--   `call:<sha256 hex>` (of the E.164 number and of the CallSid: never the values themselves),
--   with when they were erased. A lead whose id was erased is never inserted again, nor a call
--   pointing at it (SQLSTATE MYR01, which the gateway drops and counts instead of retrying).
--   The gateways' outboxes drop a queued write that names something erased after it was queued.
-- - bp.remote_erasures: the deletions owed at Twilio and Vapi, claimed with a lease by whichever
--   instance runs them (bp.claim_remote_erasures, `skip locked`), like bp.alerts.
--
-- Access model as before: RLS on with no policy, nothing for anon/authenticated, service_role only.
--
-- Rollback: supabase/rollbacks/20261208000000_erasure.down.sql
-- Merged migrations are never edited: add a new file for any change.

create table bp.erased (
  key       text primary key
    constraint erased_key_check
    check (key ~ '^(lead:[0-9a-f-]{36}|number:[0-9a-f]{64}|call:[0-9a-f]{64})$'),
  erased_at timestamptz not null default now()
);

comment on table bp.erased is 'What a Law 25 erasure removed, so that no late or replayed write brings it back. Numbers and CallSids as SHA-256 hex, never in clear.';
comment on column bp.erased.erased_at is 'When it was (last) erased: a queued write older than this is dropped.';

create table bp.remote_erasures (
  id              uuid primary key default gen_random_uuid(),
  erasure_id      uuid not null,
  service         text not null
    constraint remote_erasures_service_check
    check (service in ('twilio_recording', 'twilio_call', 'twilio_message', 'vapi_call')),
  remote_id       text not null,
  status          text not null default 'pending'
    constraint remote_erasures_status_check
    check (status in ('pending', 'claimed', 'done', 'dead')),
  attempts        integer not null default 0
    constraint remote_erasures_attempts_check check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  lease_until     timestamptz,
  last_error      text,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint remote_erasures_once unique (erasure_id, service, remote_id)
);

comment on table bp.remote_erasures is 'Deletions owed at Twilio (recordings, call logs, messages) and Vapi (calls) after an erasure; claimed with a lease, retried until done.';
comment on column bp.remote_erasures.status is 'pending (due at next_attempt_at), claimed (an instance holds it until lease_until), done (deleted, or 404: already gone), dead (refused for good: last_error).';

create index remote_erasures_due_idx on bp.remote_erasures (next_attempt_at)
  where status in ('pending', 'claimed');
create index remote_erasures_erasure_idx on bp.remote_erasures (erasure_id);

create trigger remote_erasures_set_updated_at
  before update on bp.remote_erasures
  for each row execute function bp.set_updated_at();

alter table bp.erased enable row level security;
alter table bp.remote_erasures enable row level security;
-- No policies on purpose: only service_role (BYPASSRLS) may read or write.
revoke all on bp.erased, bp.remote_erasures from anon, authenticated;
grant select, insert, update, delete on bp.erased, bp.remote_erasures to service_role;

-- A write that would bring an erased lead back is refused.
create function bp.refuse_erased() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_lead uuid := (to_jsonb(new)->>(case tg_table_name when 'leads' then 'id' else 'lead_id' end))::uuid;
begin
  if v_lead is not null and exists (select 1 from bp.erased e where e.key = 'lead:' || v_lead) then
    raise exception using
      errcode = 'MYR01',
      message = 'this lead was erased (Law 25); the write is refused';
  end if;
  return new;
end;
$$;
comment on function bp.refuse_erased() is 'BEFORE INSERT on bp.leads and bp.calls: refuses a row of an erased lead (SQLSTATE MYR01).';

create trigger leads_not_erased
  before insert on bp.leads
  for each row execute function bp.refuse_erased();
create trigger calls_not_erased
  before insert on bp.calls
  for each row execute function bp.refuse_erased();

create function bp.erase_caller(p_phone text, p_number_key text, p_extra jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_erasure uuid := gen_random_uuid();
  v_leads   uuid[];
  v_sids    text[];
  v_calls   integer := 0;
  v_events  integer := 0;
  v_alerts  integer := 0;
  v_sent    integer := 0;
  v_remote  jsonb;
begin
  if p_phone is null or p_phone !~ '^\+[1-9][0-9]{6,14}$' then
    raise exception using errcode = '22023', message = 'p_phone must be an E.164 number';
  end if;
  if p_number_key is null or p_number_key <> 'number:' || encode(sha256(convert_to(p_phone, 'UTF8')), 'hex') then
    raise exception using errcode = '22023', message = 'p_number_key must be the number''s key';
  end if;
  -- The caller's leads and calls, locked: a concurrent save waits for the erasure, then finds
  -- nothing (and a new insert of these leads is refused by bp.refuse_erased).
  select coalesce(array_agg(l.id), '{}') into v_leads
    from (select id from bp.leads
           where telephone = p_phone or offered_phone = p_phone
           for update) l;
  select coalesce(array_agg(distinct c.call_sid), '{}') into v_sids
    from (select call_sid from bp.calls
           where from_number = p_phone or lead_id = any (v_leads)
           for update) c;
  select count(*), count(a.message_sid) into v_alerts, v_sent
    from bp.alerts a where a.lead_id = any (v_leads);

  -- What lives at Twilio and Vapi, collected before the rows go.
  insert into bp.remote_erasures (erasure_id, service, remote_id)
  select v_erasure, t.service, t.remote_id
    from (
      select 'twilio_call'::text as service, s as remote_id from unnest(v_sids) s
      union
      select 'vapi_call', c.vapi_call_id from bp.calls c
       where c.call_sid = any (v_sids) and nullif(btrim(c.vapi_call_id), '') is not null
      union
      select 'twilio_recording', c.recording_sid from bp.calls c
       where c.call_sid = any (v_sids) and c.recording_sid ~ '^RE[0-9a-fA-F]{32}$'
      union
      select 'twilio_recording', substring(c.recording_url from '/Recordings/(RE[0-9a-fA-F]{32})')
        from bp.calls c
       where c.call_sid = any (v_sids) and c.recording_url ~ '/Recordings/RE[0-9a-fA-F]{32}'
      union
      select 'twilio_message', a.message_sid from bp.alerts a
       where a.lead_id = any (v_leads) and a.message_sid is not null
      union
      select r->>'service', r->>'remote_id'
        from jsonb_array_elements(coalesce(p_extra->'remote', '[]'::jsonb)) r
    ) t
   where t.remote_id is not null
  on conflict on constraint remote_erasures_once do nothing;

  delete from bp.processed_events e
   where exists (select 1 from unnest(v_sids) s where strpos(e.key, s) > 0);
  get diagnostics v_events = row_count;
  delete from bp.calls where call_sid = any (v_sids);
  get diagnostics v_calls = row_count;
  delete from bp.leads where id = any (v_leads);

  insert into bp.erased (key)
  select k from (
      select p_number_key as k
      union select 'lead:' || l from unnest(v_leads) l
      union select 'call:' || encode(sha256(convert_to(s, 'UTF8')), 'hex') from unnest(v_sids) s
      union select jsonb_array_elements_text(coalesce(p_extra->'keys', '[]'::jsonb))
    ) t
  on conflict (key) do update set erased_at = now();

  select coalesce(jsonb_agg(jsonb_build_object('service', r.service, 'remote_id', r.remote_id)
                            order by r.service, r.remote_id), '[]'::jsonb)
    into v_remote
    from bp.remote_erasures r where r.erasure_id = v_erasure;
  return jsonb_build_object(
    'erasure_id', v_erasure, 'lead_ids', to_jsonb(v_leads), 'calls', v_calls,
    'events', v_events, 'alerts', v_alerts, 'sms_sent', v_sent, 'remote', v_remote);
end;
$$;
comment on function bp.erase_caller(text, text, jsonb) is 'Erases a caller in one transaction: rows, tombstones, and the remote deletions owed at Twilio and Vapi.';

-- Claims due remote deletions for one instance (only those of p_erasure when given): pending and
-- due, or claimed with an expired lease. Rows another transaction is claiming are skipped.
create function bp.claim_remote_erasures(max_rows integer, lease_seconds integer, p_erasure uuid default null)
returns setof bp.remote_erasures
language sql
set search_path = ''
as $$
  update bp.remote_erasures r
     set status = 'claimed',
         attempts = r.attempts + 1,
         lease_until = now() + make_interval(secs => lease_seconds)
   where r.id in (
     select d.id from bp.remote_erasures d
      where ((d.status = 'pending' and d.next_attempt_at <= now())
             or (d.status = 'claimed' and d.lease_until < now()))
        and (p_erasure is null or d.erasure_id = p_erasure)
      order by d.next_attempt_at
      limit max_rows
      for update skip locked)
  returning r.*;
$$;
comment on function bp.claim_remote_erasures(integer, integer, uuid) is 'Claims due remote deletions with a lease (skip locked).';

revoke all on function bp.refuse_erased(), bp.erase_caller(text, text, jsonb),
  bp.claim_remote_erasures(integer, integer, uuid) from public;
grant execute on function bp.erase_caller(text, text, jsonb),
  bp.claim_remote_erasures(integer, integer, uuid) to service_role;
