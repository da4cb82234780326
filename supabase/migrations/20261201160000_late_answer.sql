-- 20261201160000_late_answer
-- Several instances, one truth (issue 16): the last answer may still qualify a lead that the
-- call's end abandoned.
--
-- Twilio sends the `completed` status callback as soon as the caller hangs up, which can be
-- before the request carrying the caller's last answer is processed (another instance, a slow
-- store). The end of the call then marks the lead `abandonne` (conditionally: it was still open)
-- and the answer, given during the call, arrives on an abandoned lead. The gateway applies it
-- (`LeadStatus::can_become`: abandonne → qualifie), so the lead is what one instance would have
-- made of the same call. Nothing else about the order changes.
--
-- Rollback: supabase/rollbacks/20261201160000_late_answer.down.sql
-- Merged migrations are never edited: add a new file for any change.

create or replace function bp.leads_forward() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.version := old.version + 1;
  if not (new.status = old.status
          or bp.lead_status_rank(new.status) > bp.lead_status_rank(old.status)
          or (old.status = 'transfere' and new.status = 'rappel')
          or (old.status = 'abandonne' and new.status in ('transfere', 'rappel', 'qualifie'))) then
    raise exception using
      errcode = '23514',
      message = format('lead status cannot move from %s back to %s', old.status, new.status);
  end if;
  return new;
end;
$$;
comment on function bp.leads_forward() is 'BEFORE UPDATE on bp.leads: bumps version; refuses a status moving backwards (an abandoned lead may still be qualified by a late last answer, or handed to people).';
