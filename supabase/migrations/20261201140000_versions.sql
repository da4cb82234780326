-- 20261201140000_versions
-- Several instances, one truth (issue 16): versioned rows, statuses that only move forward,
-- and one lead per call whichever instance creates it.
--
-- - bp.leads.version / bp.calls.version: bumped by every UPDATE (trigger). The gateway saves a
--   lead with a PATCH filtered on the version it read (`?id=eq.X&version=eq.N`); no row back means
--   another instance saved it first, and the change is re-applied on the fresh lead.
-- - Lead statuses only move forward: nouveau < en_cours < {qualifie, abandonne, transfere,
--   rappel}; rappel may follow transfere, and an abandoned lead may still be handed to people
--   (transfere, rappel) (the order is `LeadStatus::can_become` in the
--   gateway; tests compare the two). Anything else is refused (SQLSTATE 23514, HTTP 400).
-- - A call's status never moves backwards (bp.call_status_rank mirrors `calls::CALL_STATUS_RANKS`)
--   and a call's lead, once set, is never re-pointed: an update that tries keeps the old value.
-- - bp.start_call: a call's lead, insert-or-get by CallSid, in one transaction.
--
-- Rollback: supabase/rollbacks/20261201140000_versions.down.sql
-- Merged migrations are never edited: add a new file for any change.

alter table bp.leads
  add column version integer not null default 1
    constraint leads_version_check check (version >= 1);
alter table bp.calls
  add column version integer not null default 1
    constraint calls_version_check check (version >= 1);
comment on column bp.leads.version is 'Bumped by every update; the gateway saves a lead only over the version it read.';
comment on column bp.calls.version is 'Bumped by every update.';

create function bp.lead_status_rank(status text) returns integer
language sql immutable
set search_path = ''
as $$
  select case status when 'nouveau' then 0 when 'en_cours' then 1 else 2 end;
$$;
comment on function bp.lead_status_rank(text) is 'nouveau 0, en_cours 1, every final status 2.';

create function bp.call_status_rank(status text) returns integer
language sql immutable
set search_path = ''
as $$
  select case
    when status = 'initiated' then 1
    when status = 'ringing' then 2
    when status in ('in-progress', 'answered') then 3
    when status in ('completed', 'busy', 'failed', 'no-answer', 'canceled') then 4
    else 0 end;
$$;
comment on function bp.call_status_rank(text) is 'Order of Twilio call statuses; queued and unknown ones rank 0.';

create function bp.leads_forward() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.version := old.version + 1;
  if not (new.status = old.status
          or bp.lead_status_rank(new.status) > bp.lead_status_rank(old.status)
          or (old.status = 'transfere' and new.status = 'rappel')
          or (old.status = 'abandonne' and new.status in ('transfere', 'rappel'))) then
    raise exception using
      errcode = '23514',
      message = format('lead status cannot move from %s back to %s', old.status, new.status);
  end if;
  return new;
end;
$$;
comment on function bp.leads_forward() is 'BEFORE UPDATE on bp.leads: bumps version; refuses a status moving backwards.';

create trigger leads_forward
  before update on bp.leads
  for each row execute function bp.leads_forward();

create function bp.calls_forward() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.version := old.version + 1;
  if old.status is not null
     and (new.status is null
          or bp.call_status_rank(new.status) < bp.call_status_rank(old.status)) then
    new.status := old.status;
  end if;
  -- Never re-pointed (clearing it, as ON DELETE SET NULL does, is allowed).
  if old.lead_id is not null and new.lead_id is not null then
    new.lead_id := old.lead_id;
  end if;
  return new;
end;
$$;
comment on function bp.calls_forward() is 'BEFORE UPDATE on bp.calls: bumps version; keeps the status from moving backwards and the lead from being re-pointed.';

create trigger calls_forward
  before update on bp.calls
  for each row execute function bp.calls_forward();

-- A call's lead, insert-or-get by CallSid: the call row is created if missing and locked; if it
-- has no lead, p_lead is inserted (version 1) and the call points at it. Returns the call's lead.
create function bp.start_call(p_lead jsonb, p_call jsonb) returns setof bp.leads
language plpgsql
set search_path = ''
as $$
declare
  v_sid text := p_call->>'call_sid';
  v_lead uuid;
begin
  insert into bp.calls (call_sid, from_number, to_number, direction, status, mode, vapi_call_id)
  values (v_sid, p_call->>'from_number', p_call->>'to_number', p_call->>'direction',
          p_call->>'status', p_call->>'mode', p_call->>'vapi_call_id')
  on conflict (call_sid) do nothing;
  select c.lead_id into v_lead from bp.calls c where c.call_sid = v_sid for update;
  if v_lead is null then
    insert into bp.leads (id, nom_complet, telephone, telephone_raw, adresse_complete,
                          type_service, description, urgence, status, language, offered_phone,
                          attempts, conversation, version)
    select r.id, r.nom_complet, r.telephone, r.telephone_raw, r.adresse_complete,
           r.type_service, r.description, coalesce(r.urgence, false),
           coalesce(r.status, 'nouveau'), coalesce(r.language, 'fr'), r.offered_phone,
           coalesce(r.attempts, '{}'::jsonb), coalesce(r.conversation, '[]'::jsonb), 1
      from jsonb_populate_record(null::bp.leads, p_lead) as r
    returning id into v_lead;
    update bp.calls c
       set lead_id = v_lead,
           from_number = coalesce(c.from_number, p_call->>'from_number'),
           to_number = coalesce(c.to_number, p_call->>'to_number'),
           direction = coalesce(c.direction, p_call->>'direction'),
           mode = coalesce(c.mode, p_call->>'mode'),
           vapi_call_id = coalesce(c.vapi_call_id, p_call->>'vapi_call_id')
     where c.call_sid = v_sid;
  end if;
  return query select l.* from bp.leads l where l.id = v_lead;
end;
$$;
comment on function bp.start_call(jsonb, jsonb) is 'A call''s lead, insert-or-get by CallSid (one lead per call across instances).';

revoke all on function bp.lead_status_rank(text), bp.call_status_rank(text),
  bp.start_call(jsonb, jsonb) from public;
grant execute on function bp.lead_status_rank(text), bp.call_status_rank(text),
  bp.start_call(jsonb, jsonb) to service_role;
