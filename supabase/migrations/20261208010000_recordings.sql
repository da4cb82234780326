-- 20261208010000_recordings
-- Recordings and bridged calls (issues 26 and 27): a bridged call's Vapi recording gets its own
-- column instead of the voicemail's (the two overwrote each other, and the console played Vapi's
-- URL as a voicemail through the Twilio proxy, which refused it), and Vapi's end-of-call report
-- is kept: the summary, the structured data and the transcript as turns.
--
-- Existing rows: a URL in the voicemail column that is not a Twilio recording (`…/Recordings/RE…`)
-- can only be Vapi's; it moves to `vapi_recording_url`.
--
-- Access model as in the initial schema: service_role only.
--
-- Rollback: supabase/rollbacks/20261208010000_recordings.down.sql

alter table bp.calls add column vapi_recording_url text;
alter table bp.calls add column vapi_summary text;
alter table bp.calls add column vapi_structured_data jsonb;
alter table bp.calls add column vapi_turns jsonb;

alter table bp.calls add constraint calls_vapi_turns_check
  check (vapi_turns is null or jsonb_typeof(vapi_turns) = 'array');

comment on column bp.calls.vapi_recording_url is 'Vapi''s recording of a bridged call (artifact.recording); not a voicemail.';
comment on column bp.calls.vapi_summary is 'Vapi''s summary of a bridged call (analysis.summary), in French per docs/vapi-assistant.json.';
comment on column bp.calls.vapi_structured_data is 'Vapi''s structured data of a bridged call (analysis.structuredData), as sent.';
comment on column bp.calls.vapi_turns is 'Vapi''s transcript of a bridged call as turns: [{speaker, text, at_ms}].';

update bp.calls
   set vapi_recording_url = recording_url, recording_url = null
 where recording_url is not null and recording_url not like '%/Recordings/RE%';
