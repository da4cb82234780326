-- 20261208020000_callback
-- Callbacks from the console (issue 27 §2, "Rappeler"): Twilio calls the operator's own phone,
-- the operator presses 1, then `<Dial>` reaches the lead with the business number as caller ID.
-- - `operators.phone`: the operator's own phone (E.164, North American), where a callback rings
--   first (`myriam operator set-phone`, the console's profile page);
-- - `calls.operator`: who placed a callback (their e-mail); callbacks are call rows of their
--   lead with `direction = 'outbound-callback'`, their outcome in `status` (the operator's leg),
--   `ended_reason` (`operator-declined`, `operator-timeout`) and `dial_status` (the lead's leg);
-- - an index for the per-operator rate limit (callbacks by operator since an instant);
-- - audit actions `callback` and `phone_changed`;
-- - `bp.console_callbacks(jsonb)`: the dashboard's callbacks of a period, grouped by outcome
--   columns (the gateway names the outcome; src/store/stats.rs).
--
-- Access model as in the initial schema: service_role only.
--
-- Rollback: supabase/rollbacks/20261208020000_callback.down.sql

alter table bp.operators add column phone text
  constraint operators_phone_check check (phone is null or phone ~ '^\+1[2-9][0-9]{2}[2-9][0-9]{6}$');
comment on column bp.operators.phone is 'The operator''s own phone (E.164): where a console callback rings first.';

alter table bp.calls add column operator text;
comment on column bp.calls.operator is 'A callback''s operator (e-mail); callbacks have direction outbound-callback.';
create index calls_operator_idx on bp.calls (operator, created_at) where operator is not null;

alter table bp.audit_log drop constraint audit_log_action_check;
alter table bp.audit_log add constraint audit_log_action_check
  check (action in ('login', 'login_failed', 'login_throttled', 'account_guessed', 'logout',
                    'follow_up_changed', 'export', 'erase', 'recording_played', 'callback',
                    'phone_changed'));

create function bp.console_callbacks(p jsonb) returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_array(x.dial_status, x.ended_reason, x.status, x.n)),
                  '[]'::jsonb)
  from (select coalesce(c.dial_status, '') as dial_status,
               coalesce(c.ended_reason, '') as ended_reason,
               coalesce(c.status, '') as status,
               count(*) as n
        from bp.calls c
        where c.created_at >= (p->>'from')::timestamptz and c.created_at < (p->>'to')::timestamptz
          and c.direction = 'outbound-callback'
        group by 1, 2, 3) x
$$;
comment on function bp.console_callbacks(jsonb) is 'The dashboard''s callbacks of a period, grouped by outcome columns.';

revoke all on function bp.console_callbacks(jsonb) from public;
grant execute on function bp.console_callbacks(jsonb) to service_role;

-- The caller's confirmation SMS (issue 27 §3, CALLER_SMS=1): alerts of event `confirmation`, sent
-- to the caller's own number by the same durable, exactly-once machinery as the staff alerts.
alter table bp.alerts drop constraint alerts_event_check;
alter table bp.alerts add constraint alerts_event_check
  check (event in ('qualified', 'voicemail', 'confirmation'));
comment on column bp.alerts.event is 'What the alert is about: qualified (urgent or ALERT_ON=all), voicemail (urgent caller after hours), or confirmation (the caller''s own SMS, CALLER_SMS=1).';
