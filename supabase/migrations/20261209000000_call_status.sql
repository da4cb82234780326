-- 20261209000000_call_status
-- A call's status report in one round trip (issue 28: "an RPC can be one").
--
-- Twilio's status callback (and Vapi's end-of-call report) used to cost eight PostgREST requests:
-- the idempotency key read, the call read, the call upsert, the lead read, the `call-ended` event,
-- the abandonment, the lead read again, the key written. bp.report_call_status does the same in one
-- transaction, with the same rules as `Calls::report_status` (src/calls.rs), which the gateway
-- still runs step by step on SQLite and while Supabase is unreachable (the outbox):
--
-- - a repeated idempotency key changes nothing (`duplicate`);
-- - the call row is upserted with the columns given (PostgREST's merge-duplicates: the other
--   columns keep their values); a status moving backwards is kept back by bp.calls_forward;
-- - a report that ends the call (`p_ends`), unless it comes from the bridged side of a call the
--   IVR took over or the assistant handed to people, marks the call `completed` when it has no
--   final status and no status was given, and marks its lead `abandonne` unless final;
-- - the first end of the call records `call-ended:{CallSid}` (`first_end`: the gateway counts the
--   call once across instances).
--
-- Returns {duplicate, ends, first_end, lead_id, lead_status, mode}.
--
-- Rollback: supabase/rollbacks/20261209000000_call_status.down.sql

create function bp.report_call_status(p_call jsonb, p_key text, p_ends boolean,
                                      p_from_bridged_side boolean) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_sid text := p_call->>'call_sid';
  v_call jsonb := p_call;
  v_current bp.calls;
  v_rank integer;
  v_ends boolean;
  v_first boolean := false;
  v_status text;
  v_cols text;
  v_sets text;
begin
  if v_sid is null then
    raise exception using errcode = '22023', message = 'p_call needs call_sid';
  end if;
  if p_key is not null and exists (select 1 from bp.processed_events e where e.key = p_key) then
    return jsonb_build_object('duplicate', true);
  end if;
  -- The row is locked: two reports of one call are applied one after the other.
  select c.* into v_current from bp.calls c where c.call_sid = v_sid for update;
  v_rank := coalesce(bp.call_status_rank(v_current.status), 0);
  v_ends := coalesce(p_ends, false)
            and not (coalesce(p_from_bridged_side, false)
                     and (v_current.mode = 'ivr' or v_current.mode_reason = 'handed_off'));
  if v_ends and v_rank < 4 and v_call->>'status' is null then
    -- A report that ends the call without a status (Vapi's end-of-call report).
    v_call := v_call || jsonb_build_object('status', 'completed');
  end if;
  -- PostgREST's upsert: only the columns the report carries.
  select string_agg(quote_ident(a.attname), ', ' order by a.attnum),
         string_agg(format('%1$I = excluded.%1$I', a.attname), ', ' order by a.attnum)
    into v_cols, v_sets
    from pg_catalog.pg_attribute a
   where a.attrelid = 'bp.calls'::regclass and a.attnum > 0 and not a.attisdropped
     and v_call ? a.attname;
  execute format(
    'insert into bp.calls as c (%1$s) select %1$s from jsonb_populate_record(null::bp.calls, $1) '
    'on conflict (call_sid) do update set %2$s', v_cols, v_sets)
    using v_call;
  if v_ends then
    select c.* into v_current from bp.calls c where c.call_sid = v_sid;
    if v_rank < 4 then
      insert into bp.processed_events (key) values ('call-ended:' || v_sid)
        on conflict (key) do nothing;
      v_first := found;
    end if;
    if v_current.lead_id is not null then
      update bp.leads l set status = 'abandonne'
       where l.id = v_current.lead_id and l.status in ('nouveau', 'en_cours');
      select l.status into v_status from bp.leads l where l.id = v_current.lead_id;
    end if;
  end if;
  if p_key is not null then
    insert into bp.processed_events (key) values (p_key) on conflict (key) do nothing;
  end if;
  return jsonb_build_object(
    'duplicate', false,
    'ends', v_ends,
    'first_end', v_first,
    'lead_id', v_current.lead_id,
    'lead_status', v_status,
    'mode', v_current.mode);
end;
$$;
comment on function bp.report_call_status(jsonb, text, boolean, boolean) is
  'A call''s status report in one transaction: idempotency key, upsert, end of call, abandonment.';

revoke all on function bp.report_call_status(jsonb, text, boolean, boolean) from public;
grant execute on function bp.report_call_status(jsonb, text, boolean, boolean) to service_role;
