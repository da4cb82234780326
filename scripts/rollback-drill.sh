#!/usr/bin/env bash
# Upgrade and roll back without losing anything: builds OLD_REV and the working tree's HEAD, then on
# one data directory:
#   1. OLD serves: a call is played, an operator is added; a second, Supabase-backed data
#      directory gets a write queued in the outbox (Supabase unreachable);
#   2. HEAD starts on the same files (its migrations apply), keeps everything, takes a call, signs
#      the operator in, still holds the queued write;
#   3. OLD starts again on the migrated files: it must serve (readyz, a call, every lead there) or
#      refuse to start naming the schema version it found and the one it knows — never corrupt
#      and never drop data.
#
#   scripts/rollback-drill.sh OLD_REV        e.g. scripts/rollback-drill.sh ea95d69
#
# Debug builds (the drill is about data, not speed), in this checkout's target directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OLD_REV=${1:?usage: scripts/rollback-drill.sh OLD_REV}
say() { printf 'rollback-drill: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/myriam-drill.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  git -C "$ROOT" worktree remove --force "$work/old" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

old_sha=$(git rev-parse --short=12 "$OLD_REV^{commit}")
new_sha=$(git rev-parse --short=12 HEAD)
say "OLD $old_sha, HEAD $new_sha$( [ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock)" ] || echo ' (with uncommitted changes)')"
git worktree add --detach "$work/old" "$old_sha" >/dev/null 2>&1
# One target directory for both: the dependencies are built once (each checkout's own crate has
# its own artifacts); each binary is copied out right after its build.
(cd "$work/old" && CARGO_TARGET_DIR="$ROOT/target" cargo build --locked --quiet --bin myriam)
cp "$ROOT/target/debug/myriam" "$work/myriam-old"
cargo build --locked --quiet --bin myriam
cp target/debug/myriam "$work/myriam-new"
"$work/myriam-new" --version | grep -q "(rev $new_sha)" || fail "the HEAD binary does not name revision $new_sha"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sql() { python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute(sys.argv[2]).fetchone()[0])
PY
}

DATA="$work/data"          # the embedded store
QUEUE="$work/queue"        # Supabase (unreachable) in front of its outbox
mkdir -p "$DATA" "$QUEUE"
PASSWORD='Érable-rouge-2026!'
DEAD_PORT=$(free_port)     # nothing listens there: Supabase is down

# Starts `$1` (a binary) on data directory `$2` with extra environment; sets $port and $pid.
start() {
  local bin=$1 dir=$2 log=$3
  shift 3
  port=$(free_port)
  env -i PATH="$PATH" HOME="$HOME" ENVIRONMENT=development BIND_ADDR="127.0.0.1:$port" \
    CALL_MODE=ivr DATABASE_PATH="$dir/myriam.db" "$@" "$bin" serve > "$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 400); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop() {
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  [ "$status" = 0 ] || fail "exit status $status after SIGTERM"
}
call() {
  local bin=$1 dir=$2 from=$3
  env -i PATH="$PATH" HOME="$HOME" ENVIRONMENT=development "$bin" simulate \
    --base-url "http://127.0.0.1:$port" --database "$dir/myriam.db" --from "$from" > "$work/call.txt" 2>&1 \
    || { cat "$work/call.txt"; fail "a call on $(basename "$bin") failed"; }
}
supabase_env=(STORE=supabase "SUPABASE_URL=http://127.0.0.1:$DEAD_PORT"
  SUPABASE_SERVICE_ROLE_KEY=sb_secret_rollbackdrillrollbackdrill0000)

# --- 1. OLD with data ---------------------------------------------------------------------------------
start "$work/myriam-old" "$DATA" "$work/old-1.log" || { cat "$work/old-1.log"; fail "OLD did not start"; }
call "$work/myriam-old" "$DATA" +15145550101
printf '%s\n' "$PASSWORD" | env -i PATH="$PATH" HOME="$HOME" ENVIRONMENT=development \
  DATABASE_PATH="$DATA/myriam.db" "$work/myriam-old" operator add admin@bp.example --role admin >/dev/null
stop
leads_1=$(sql "$DATA/myriam.db" "SELECT count(*) FROM leads")
version_old=$(sql "$DATA/myriam.db" "SELECT max(version) FROM schema_version")
start "$work/myriam-old" "$QUEUE" "$work/old-q.log" "${supabase_env[@]}" || { cat "$work/old-q.log"; fail "OLD (Supabase) did not start"; }
call "$work/myriam-old" "$QUEUE" +15145550102 || true
stop
queued=$(sql "$QUEUE/myriam.db" "SELECT count(*) FROM outbox")
[ "$queued" -gt 0 ] || fail "OLD queued nothing while Supabase was down"
say "1. OLD: $leads_1 lead, an operator, schema version $version_old; $queued write(s) queued for Supabase"

# --- 2. HEAD on the same files -----------------------------------------------------------------------
start "$work/myriam-new" "$DATA" "$work/new.log" || { cat "$work/new.log"; fail "HEAD did not start on OLD's data"; }
call "$work/myriam-new" "$DATA" +15145550103
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/x-www-form-urlencoded' \
  -H "origin: http://127.0.0.1:$port" \
  --data-urlencode email=admin@bp.example --data-urlencode "password=$PASSWORD" \
  "http://127.0.0.1:$port/console/login")
[ "$code" = 303 ] || fail "OLD's operator cannot sign in on HEAD (HTTP $code)"
stop
leads_2=$(sql "$DATA/myriam.db" "SELECT count(*) FROM leads")
version_new=$(sql "$DATA/myriam.db" "SELECT max(version) FROM schema_version")
[ "$leads_2" = $((leads_1 + 1)) ] || fail "HEAD has $leads_2 leads, expected $((leads_1 + 1))"
start "$work/myriam-new" "$QUEUE" "$work/new-q.log" "${supabase_env[@]}" || { cat "$work/new-q.log"; fail "HEAD (Supabase) did not start"; }
stop
queued_2=$(sql "$QUEUE/myriam.db" "SELECT count(*) FROM outbox")
[ "$queued_2" -ge "$queued" ] || fail "HEAD lost queued writes ($queued_2 of $queued)"
say "2. HEAD: migrated to schema version $version_new, $leads_2 leads, the operator signs in, $queued_2 write(s) still queued"

# --- 3. OLD again on the migrated files ---------------------------------------------------------------
if start "$work/myriam-old" "$DATA" "$work/old-2.log" && curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"; then
  call "$work/myriam-old" "$DATA" +15145550104
  stop
  leads_3=$(sql "$DATA/myriam.db" "SELECT count(*) FROM leads")
  [ "$leads_3" = $((leads_2 + 1)) ] || fail "OLD after HEAD has $leads_3 leads, expected $((leads_2 + 1))"
  say "3. OLD again: serves on schema version $version_new, $leads_3 leads, nothing lost"
else
  wait "$pid" 2>/dev/null || true
  grep -q "schema version $version_new is newer than this gateway ($version_old)" "$work/old-2.log" \
    || { cat "$work/old-2.log"; fail "OLD neither served nor refused with a clear message"; }
  leads_3=$(sql "$DATA/myriam.db" "SELECT count(*) FROM leads")
  [ "$leads_3" = "$leads_2" ] || fail "the refused start changed the data"
  say "3. OLD again: refuses to start (\"schema version $version_new is newer than this gateway ($version_old)\"); the data is untouched ($leads_3 leads)"
fi
say "ok"
