-- Supabase's API roles, for a plain local PostgreSQL 15 (scripts/local-pg.sh applies this file).
-- Mirrors supabase/postgres init-scripts/00000000000000-initial-schema.sql plus
-- 20230529180330_alter_api_roles_for_inherit and 20221028101028_set_authenticator_timeout.
-- Left out (they only exist on Supabase): supabase_admin, supautils/safeupdate preloads.
--
-- IDEMPOTENT: safe to apply any number of times (psql -v ON_ERROR_STOP=1 -f scripts/supabase-roles.sql).
-- The authenticator password 'authpw' is for a local throwaway cluster only.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit password 'authpw';
  end if;
end
$$;

-- Re-granting an existing membership only emits a NOTICE, so these are idempotent as they stand.
grant anon          to authenticator;
grant authenticated to authenticator;
grant service_role  to authenticator;

-- 20230529180330_alter_api_roles_for_inherit
alter role anon          inherit;
alter role authenticated inherit;
alter role service_role  inherit;

grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on tables    to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to postgres, anon, authenticated, service_role;

alter role anon          set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
-- 20221028101028_set_authenticator_timeout
alter role authenticator set statement_timeout = '8s';

-- Supabase installs extensions in schema `extensions` (see config.toml extra_search_path).
-- The migrations need none (gen_random_uuid() is built into PostgreSQL 13+), so pgcrypto is
-- created only when postgresql-contrib provides it.
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
do $$
begin
  if exists (select from pg_available_extensions where name = 'pgcrypto') then
    create extension if not exists pgcrypto with schema extensions;
  end if;
end
$$;
