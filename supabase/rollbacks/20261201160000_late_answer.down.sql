-- Rollback of supabase/migrations/20261201160000_late_answer.sql
--
-- Puts back bp.leads_forward as 20261201140000_versions made it: an abandoned lead can no longer
-- be qualified by a late last answer (such a save is refused again, 23514).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

create or replace function bp.leads_forward() returns trigger
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
