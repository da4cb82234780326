-- Rollback of supabase/migrations/20261208000000_erasure.sql
--
-- Drops bp.erase_caller, bp.claim_remote_erasures, the triggers refusing erased leads, and the
-- tables bp.erased and bp.remote_erasures. What they hold is lost: the tombstones (a queued write
-- of an erased caller could then be replayed back) and the remote deletions not done yet (list
-- them first: `select service, remote_id from bp.remote_erasures where status <> 'done'`, and
-- delete them by hand at Twilio and Vapi). Gateways of that version must be stopped first.
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

drop function if exists bp.claim_remote_erasures(integer, integer, uuid);
drop function if exists bp.erase_caller(text, text, jsonb);
drop trigger if exists calls_not_erased on bp.calls;
drop trigger if exists leads_not_erased on bp.leads;
drop function if exists bp.refuse_erased();
drop table if exists bp.remote_erasures;
drop table if exists bp.erased;
