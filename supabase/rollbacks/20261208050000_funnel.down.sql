-- Rollback of supabase/migrations/20261208050000_funnel.sql
--
-- Puts back bp.console_stats as 20261207010000_stats.sql made it (the number question answered
-- when `telephone` is set, whoever set it).
--
-- Apply in one transaction: psql -1 -v ON_ERROR_STOP=1 -f <this file>

create or replace function bp.console_stats(p jsonb) returns jsonb
language sql
stable
set search_path = ''
as $$
  with
  d as (select (n - 1)::int as i, (v->>0)::timestamptz as s, (v->>1)::timestamptz as e
        from jsonb_array_elements(p->'days') with ordinality as x(v, n)),
  w as (select (n - 1)::int as i, (v->>0)::timestamptz as s, (v->>1)::timestamptz as e
        from jsonb_array_elements(p->'weeks') with ordinality as x(v, n)),
  o as (select (v->>0)::timestamptz as s, (v->>1)::timestamptz as e
        from jsonb_array_elements(p->'open') as x(v)),
  period as (select (p->>'from')::timestamptz as f, (p->>'to')::timestamptz as t),
  c as (select c.* from bp.calls c, period
        where c.created_at >= period.f and c.created_at < period.t
          and coalesce(c.direction, 'inbound') not like 'outbound%'),
  l as (select l.* from bp.leads l, period
        where l.created_at >= period.f and l.created_at < period.t),
  calls as (
    select d.i, count(*) as calls,
           count(*) filter (where c.mode = 'bridge') as bridge,
           count(*) filter (where c.mode = 'ivr') as ivr,
           count(c.dial_status) as transfer,
           count(c.recording_sid) as voicemail,
           count(*) filter (where ll.language = 'fr') as french,
           count(*) filter (where ll.language = 'en') as english,
           count(*) filter (where not exists (select 1 from o where c.created_at >= o.s
                                                             and c.created_at < o.e)) as after_hours
    from c join d on c.created_at >= d.s and c.created_at < d.e
    left join bp.leads ll on ll.id = c.lead_id
    group by d.i),
  leads as (
    select d.i, count(*) as leads,
           count(*) filter (where l.status = 'nouveau') as nouveau,
           count(*) filter (where l.status = 'en_cours') as en_cours,
           count(*) filter (where l.status = 'qualifie') as qualifie,
           count(*) filter (where l.status = 'abandonne') as abandonne,
           count(*) filter (where l.status = 'transfere') as transfere,
           count(*) filter (where l.status = 'rappel') as rappel,
           count(*) filter (where l.urgence) as urgent
    from l join d on l.created_at >= d.s and l.created_at < d.e
    group by d.i),
  stops as (
    select case when nom_complet is null then 0 when telephone is null then 1
                when adresse_complete is null then 2 when type_service is null then 3
                when description is null then 4 when status <> 'qualifie' then 5 else 6 end as step,
           case status when 'abandonne' then 'hung_up' when 'transfere' then 'asked_person'
                when 'rappel' then 'asked_person' else 'open' end as how,
           count(*) as n
    from l group by 1, 2),
  dials as (select dial_status, count(*) as n from c where dial_status is not null group by 1),
  t as (select w.i, extract(epoch from l.suivi_first_at - l.created_at)::float8 as secs
        from l join w on l.created_at >= w.s and l.created_at < w.e
        where l.suivi_first_at is not null),
  r as (select i, secs, row_number() over (partition by i order by secs) as n,
               count(*) over (partition by i) as total from t),
  follow as (
    select i, max(total) as total,
           max(secs) filter (where n = (total + 1) / 2) as median,
           max(secs) filter (where n = (9 * total + 9) / 10) as p90
    from r group by i),
  alerts as (
    select coalesce(a.delivery_status, a.status) as status, count(*) as count
    from bp.alerts a, period
    where a.created_at >= period.f and a.created_at < period.t
    group by 1)
  select jsonb_build_object(
    'calls', coalesce((select jsonb_agg(to_jsonb(x)) from calls x), '[]'::jsonb),
    'leads', coalesce((select jsonb_agg(to_jsonb(x)) from leads x), '[]'::jsonb),
    'stops', coalesce((select jsonb_agg(jsonb_build_array(step, how, n)) from stops), '[]'::jsonb),
    'dials', coalesce((select jsonb_agg(jsonb_build_array(dial_status, n)) from dials), '[]'::jsonb),
    'follow_up', coalesce((select jsonb_agg(to_jsonb(x)) from follow x), '[]'::jsonb),
    'overdue', (select count(*) from l where l.suivi = 'nouveau'
                  and l.created_at < (p->>'overdue_before')::timestamptz),
    'alerts', coalesce((select jsonb_agg(to_jsonb(x) order by x.status) from alerts x), '[]'::jsonb))
$$;
revoke all on function bp.console_stats(jsonb) from public;
grant execute on function bp.console_stats(jsonb) to service_role;
