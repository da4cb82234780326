-- Rollback of supabase/migrations/20261201100000_humans.sql
--
-- DESTRUCTIVE: deletes every SMS alert record and the transfer/voicemail columns of bp.calls.
-- Leads whose status is transfere or rappel are moved back to abandonne (the closest older
-- status: unfinished, callback wanted) so the older CHECK constraint can be restored.
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop function if exists bp.record_sms_status(text, text, integer);
drop function if exists bp.sms_status_rank(text);
drop function if exists bp.claim_alerts(integer, integer);
drop function if exists bp.enqueue_alerts(jsonb);
drop table if exists bp.alerts;

alter table bp.calls
  drop column if exists dial_status,
  drop column if exists dial_duration,
  drop column if exists recording_sid,
  drop column if exists recording_duration,
  drop column if exists recording_status;
comment on column bp.calls.recording_url is null;

update bp.leads set status = 'abandonne' where status in ('transfere', 'rappel');
alter table bp.leads drop constraint leads_status_check;
alter table bp.leads add constraint leads_status_check
  check (status in ('nouveau', 'en_cours', 'qualifie', 'abandonne'));
comment on column bp.leads.status is 'Qualification state: nouveau, en_cours, qualifie, abandonne.';
