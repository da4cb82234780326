-- Rollback of supabase/migrations/20261208010000_recordings.sql
--
-- Drops Vapi's summary, structured data and transcript turns (lost; the plain transcript stays
-- in `transcript`), and puts Vapi's recording URL back in `recording_url` where no voicemail is
-- stored there, as gateways of that version expect. Gateways of this version must be stopped
-- first (they write the new columns).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

update bp.calls
   set recording_url = vapi_recording_url
 where recording_url is null and vapi_recording_url is not null;
alter table bp.calls drop constraint if exists calls_vapi_turns_check;
alter table bp.calls drop column if exists vapi_turns;
alter table bp.calls drop column if exists vapi_structured_data;
alter table bp.calls drop column if exists vapi_summary;
alter table bp.calls drop column if exists vapi_recording_url;
