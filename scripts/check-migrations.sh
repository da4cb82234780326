#!/usr/bin/env bash
# Applies supabase/migrations to a throwaway PostgreSQL cluster (15, 16 or 17) and asserts the schema's
# security model and behaviour, then proves up/down/up with supabase/rollbacks.
# Run from anywhere (preflight runs it from the repo root). Prints one line per check.
#
# Uses its own cluster (temporary directory, free port), so it never touches the cluster of
# scripts/local-pg.sh used by tests and development. The cluster is always stopped and removed.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
LOCAL_PG="$SCRIPT_DIR/local-pg.sh"
MIGRATIONS_DIR="$ROOT/supabase/migrations"
ROLLBACKS_DIR="$ROOT/supabase/rollbacks"
DB=check_migrations
TABLES="leads calls processed_events alerts operators operator_sessions api_tokens login_failures audit_log erased remote_erasures"
# The same list for SQL arrays.
TABLES_SQL="'$(echo "$TABLES" | sed "s/ /', '/g")'"

# A port nobody listens on right now: let the kernel pick one.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    echo $((40000 + RANDOM % 20000))
  fi
}

MYRIAM_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/myriam-check-migrations.XXXXXX")
MYRIAM_PG_PORT=$(free_port)
export MYRIAM_PG_DIR MYRIAM_PG_PORT
export PGOPTIONS='-c client_min_messages=warning' # no NOTICE chatter
LOG="$MYRIAM_PG_DIR/check.log"

cleanup() {
  bash "$LOCAL_PG" stop >/dev/null 2>&1 || true
  rm -rf "$MYRIAM_PG_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILED=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*"
  FAILED=$((FAILED + 1))
}
# Stops at once, showing the captured output of the step that failed.
abort() {
  printf 'FAIL  %s\n' "$1"
  [ ! -s "$LOG" ] || sed 's/^/      /' "$LOG"
  echo "migrations: check aborted"
  exit 1
}

# psql on the check database: SQL from stdin, unaligned tuples only, stop at the first error.
sql() { bash "$LOCAL_PG" psql "$DB" -qtA -v ON_ERROR_STOP=1 -f - 2>&1; }
# One value from a query; on error, psql's message (so the check fails and shows it).
scalar() { printf '%s\n' "$1" | sql || true; }

# Files in C-locale filename order (reverse order with -r).
migrations() { find "$MIGRATIONS_DIR" -maxdepth 1 -type f -name '*.sql' | LC_ALL=C sort "$@"; }
rollback_of() { printf '%s/%s.down.sql\n' "$ROLLBACKS_DIR" "$(basename "$1" .sql)"; }

# Applies each migration in its own transaction, as `supabase db push` does.
apply_migrations() {
  local f
  while IFS= read -r f; do
    bash "$LOCAL_PG" psql "$DB" -1 -q -v ON_ERROR_STOP=1 -f "$f" >"$LOG" 2>&1 \
      || abort "apply $(basename "$f")"
  done < <(migrations)
}

COUNT=$(migrations | grep -c . || true)
[ "$COUNT" -gt 0 ] || { echo "migrations: none in supabase/migrations, nothing to check"; exit 0; }

# --- cluster and first application -------------------------------------------------------------
bash "$LOCAL_PG" start >"$LOG" 2>&1 || abort "start PostgreSQL on 127.0.0.1:$MYRIAM_PG_PORT"
ok "PostgreSQL cluster on 127.0.0.1:$MYRIAM_PG_PORT with Supabase roles"
bash "$LOCAL_PG" createdb "$DB" >"$LOG" 2>&1 || abort "apply migrations to a fresh database"
ok "$COUNT migration(s) applied, one transaction each"

missing=""
while IFS= read -r f; do
  [ -f "$(rollback_of "$f")" ] || missing="$missing $(basename "$(rollback_of "$f")")"
done < <(migrations)
if [ -z "$missing" ]; then ok "every migration has a rollback"; else fail "missing rollback(s):$missing"; fi

# --- tables and row-level security --------------------------------------------------------------
for t in $TABLES; do
  rls=$(scalar "select c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'bp' and c.relname = '$t' and c.relkind = 'r';")
  case "$rls" in
    t) ok "bp.$t exists, RLS enabled" ;;
    f) fail "bp.$t exists but RLS is disabled" ;;
    *) fail "bp.$t does not exist${rls:+ ($rls)}" ;;
  esac
done

policies=$(scalar "select coalesce(string_agg(tablename || '.' || policyname, ', '), '') from pg_policies where schemaname = 'bp';")
if [ -z "$policies" ]; then ok "no RLS policies in bp (only service_role gets through)"; else fail "unexpected RLS policies: $policies"; fi

# --- privileges --------------------------------------------------------------------------------
for role in anon authenticated; do
  granted=$(sql <<SQL
select coalesce(string_agg(t || ':' || p, ', '), '')
from unnest(array[$TABLES_SQL]) as t,
     unnest(array['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger']) as p
where has_table_privilege('$role', 'bp.' || t, p);
SQL
  ) || true
  usage=$(scalar "select has_schema_privilege('$role', 'bp', 'usage');")
  if [ -z "$granted" ] && [ "$usage" = f ]; then
    ok "$role has no privilege on schema bp or its tables"
  else
    fail "$role has privileges: ${granted:-none on tables}; usage on bp: $usage"
  fi
done

missing=$(sql <<SQL
select coalesce(string_agg(t || ':' || p, ', '), '')
from unnest(array[$TABLES_SQL]) as t,
     unnest(array['select', 'insert', 'update', 'delete']) as p
where not has_table_privilege('service_role', 'bp.' || t, p);
SQL
) || true
usage=$(scalar "select has_schema_privilege('service_role', 'bp', 'usage');")
if [ -z "$missing" ] && [ "$usage" = t ]; then
  ok "service_role has usage on bp and select/insert/update/delete on its tables"
else
  fail "service_role lacks: ${missing:-nothing on tables}; usage on bp: $usage"
fi

# --- constraints (run as service_role, in transactions that are rolled back) --------------------
values=$(scalar "select array_to_string(array(
                   select (regexp_matches(pg_get_constraintdef(oid), '''([^'']*)''', 'g'))[1] order by 1), ',')
                 from pg_constraint where conrelid = 'bp.leads'::regclass and conname = 'leads_status_check';")
if [ "$values" = "abandonne,en_cours,nouveau,qualifie,rappel,transfere" ]; then
  ok "leads_status_check lists exactly nouveau, en_cours, qualifie, abandonne, transfere, rappel"
else
  fail "leads_status_check lists '${values}' (expected abandonne,en_cours,nouveau,qualifie,rappel,transfere)"
fi

if out=$(sql <<'SQL'
begin;
set local role service_role;
insert into bp.leads (status) values ('nouveau'), ('en_cours'), ('qualifie'), ('abandonne'), ('transfere'), ('rappel');
do $$
declare c text;
begin
  begin
    insert into bp.leads (status) values ('qualified');
    raise exception 'status ''qualified'' was accepted';
  exception when check_violation then
    get stacked diagnostics c = constraint_name;
    if c <> 'leads_status_check' then raise exception 'rejected by % instead', c; end if;
  end;
end $$;
rollback;
SQL
); then
  ok "status: the six values insert, 'qualified' is rejected by leads_status_check"
else
  fail "status constraint: $out"
fi

if out=$(sql <<'SQL'
begin;
set local role service_role;
insert into bp.leads (telephone, offered_phone) values ('+15145551234', '+14185550000');
do $$
declare bad text;
begin
  foreach bad in array array['5145551234', '+1514555123', '+11145551234', '+15141551234', '+33145551234'] loop
    begin
      insert into bp.leads (telephone) values (bad);
      raise exception 'telephone % was accepted', bad;
    exception when check_violation then null;
    end;
  end loop;
end $$;
rollback;
SQL
); then
  ok "telephone: E.164 NANP accepted, malformed numbers rejected"
else
  fail "telephone constraint: $out"
fi

# --- alerts: one per lead, event and recipient ----------------------------------------------------
if out=$(sql <<'SQL'
begin;
set local role service_role;
insert into bp.leads (id) values ('00000000-0000-0000-0000-000000000002');
insert into bp.alerts (lead_id, event, recipient)
  values ('00000000-0000-0000-0000-000000000002', 'qualified', '+15145550100');
insert into bp.alerts (lead_id, event, recipient)
  values ('00000000-0000-0000-0000-000000000002', 'qualified', '+15145550100')
  on conflict (lead_id, event, recipient) do nothing;
do $$
declare c text;
begin
  if (select count(*) from bp.alerts) <> 1 then raise exception 'a duplicate alert was stored'; end if;
  begin
    insert into bp.alerts (lead_id, event, recipient)
      values ('00000000-0000-0000-0000-000000000002', 'qualified', '+15145550100');
    raise exception 'a duplicate alert was accepted';
  exception when unique_violation then
    get stacked diagnostics c = constraint_name;
    if c <> 'alerts_once' then raise exception 'rejected by % instead', c; end if;
  end;
  begin
    insert into bp.alerts (lead_id, event, recipient)
      values ('00000000-0000-0000-0000-000000000002', 'qualified', '5145550100');
    raise exception 'a recipient without + was accepted';
  exception when check_violation then null;
  end;
end $$;
rollback;
SQL
); then
  ok "alerts: one row per (lead, event, recipient) (alerts_once), recipients in E.164"
else
  fail "alerts constraints: $out"
fi

# --- updated_at trigger -------------------------------------------------------------------------
if out=$(sql <<'SQL'
begin;
set local role service_role;
insert into bp.leads (id, updated_at) values ('00000000-0000-0000-0000-000000000001', '2000-01-01');
insert into bp.calls (call_sid, lead_id, updated_at)
  values ('CA-check', '00000000-0000-0000-0000-000000000001', '2000-01-01');
update bp.leads set description = 'x' where id = '00000000-0000-0000-0000-000000000001';
update bp.calls set status = 'completed' where call_sid = 'CA-check';
do $$
begin
  if (select updated_at from bp.leads where id = '00000000-0000-0000-0000-000000000001') <> now() then
    raise exception 'bp.leads.updated_at was not bumped';
  end if;
  if (select updated_at from bp.calls where call_sid = 'CA-check') <> now() then
    raise exception 'bp.calls.updated_at was not bumped';
  end if;
end $$;
rollback;
SQL
); then
  ok "updated_at trigger bumps bp.leads and bp.calls on update"
else
  fail "updated_at trigger: $out"
fi

# --- down, then up again ------------------------------------------------------------------------
n=0
while IFS= read -r f; do
  down=$(rollback_of "$f")
  [ -f "$down" ] || { : >"$LOG"; abort "rollback $(basename "$down") is missing"; }
  bash "$LOCAL_PG" psql "$DB" -1 -q -v ON_ERROR_STOP=1 -f "$down" >"$LOG" 2>&1 \
    || abort "apply rollback $(basename "$down")"
  n=$((n + 1))
done < <(migrations -r)
left=$(scalar "select count(*) from pg_namespace where nspname = 'bp';")
if [ "$left" = 0 ]; then ok "$n rollback(s) applied in reverse order, schema bp is gone"; else fail "schema bp still exists after the rollbacks"; fi

apply_migrations
tables=$(scalar "select count(*) from pg_tables where schemaname = 'bp' and tablename in ($TABLES_SQL);")
expected=$(wc -w <<<"$TABLES")
if [ "$tables" = "$expected" ]; then ok "migrations re-applied after rollback (up/down/up)"; else fail "after re-applying, $tables of $expected tables exist"; fi

if [ "$FAILED" -gt 0 ]; then
  echo "migrations: $COUNT applied, $FAILED check(s) failed"
  exit 1
fi
echo "migrations: $COUNT applied, all checks passed"
