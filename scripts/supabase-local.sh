#!/usr/bin/env bash
# A local stand-in for a Supabase project, for development: PostgreSQL 15 (scripts/local-pg.sh),
# PostgREST 12.0.2 serving schema bp, and the supabase_gateway binary in front of it providing
# /rest/v1 and the apikey check, like Supabase's Kong gateway.
#
# Usage: scripts/supabase-local.sh start | stop | env
#
#   start  idempotent: start PostgreSQL, create database `myriam` with the migrations if it does
#          not exist yet (existing dev data is kept), start PostgREST on 127.0.0.1:54330 and the
#          gateway on 127.0.0.1:54321
#   env    print STORE / SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY lines for a .env file
#          (`scripts/supabase-local.sh env >> .env`) or `set -a; eval "$(... env)"; set +a`
#   stop   stop the gateway and PostgREST (by PID) and PostgreSQL
#
# State lives in $MYRIAM_PG_DIR (see scripts/local-pg.sh): jwt-secret, *.jwt, *.pid, *.log.
# The JWT secret and keys are minted locally for this throwaway stack only.
# To pick up new migrations, recreate the database: scripts/local-pg.sh createdb myriam
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
LOCAL_PG="$SCRIPT_DIR/local-pg.sh"

# Same default as local-pg.sh, exported so both scripts use the same directory.
MYRIAM_PG_DIR=${MYRIAM_PG_DIR:-${TMPDIR:-/tmp}/myriam-pg-$(id -u)}
export MYRIAM_PG_DIR
DB=myriam
PGRST_PORT=54330
GATEWAY_LISTEN=127.0.0.1:54321
GATEWAY_WAIT=${MYRIAM_GATEWAY_WAIT:-600} # seconds; the first `cargo run` may compile

PGRST_PID="$MYRIAM_PG_DIR/postgrest.pid"
GATEWAY_PID="$MYRIAM_PG_DIR/gateway.pid"
SECRET_FILE="$MYRIAM_PG_DIR/jwt-secret"

log() { printf 'supabase-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Creates the JWT secret (48 hex chars) and the service_role/anon keys once. The keys are stored
# so that `env` prints exactly the key the running gateway accepts.
ensure_keys() {
  mkdir -p "$MYRIAM_PG_DIR"
  if [ ! -s "$SECRET_FILE" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(24))' >"$SECRET_FILE")
  fi
  local role
  for role in service_role anon; do
    if [ ! -s "$MYRIAM_PG_DIR/$role.jwt" ] || [ "$SECRET_FILE" -nt "$MYRIAM_PG_DIR/$role.jwt" ]; then
      (umask 077 && mint_jwt "$role" >"$MYRIAM_PG_DIR/$role.jwt")
    fi
  done
}

# HS256 JWT {"role", "iat", "exp": iat + 10 years} signed with the local secret.
mint_jwt() {
  python3 - "$(cat "$SECRET_FILE")" "$1" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b64(json.dumps({"role": sys.argv[2], "iat": now, "exp": now + 10 * 365 * 24 * 3600}).encode())
s = b64(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
EOF
}

# True if the PID stored in file $1 is alive and its command line contains $2.
running() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [ ! -r "/proc/$pid/cmdline" ] || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# Sends TERM to the PID in file $1 (if it is still the process matching $2) and waits for it.
stop_pid() {
  local file=$1 pattern=$2 name=$3 pid i
  if running "$file" "$pattern"; then
    pid=$(cat "$file")
    kill "$pid"
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$i" -lt 50 ] || { log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"; kill -9 "$pid" 2>/dev/null || true; }
      sleep 0.1
    done
    log "$name stopped (pid $pid)"
  else
    log "$name not running"
  fi
  rm -f "$file"
}

# HTTP status of GET $1, or 000 when nothing answers.
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

start_postgrest() {
  if running "$PGRST_PID" postgrest; then
    log "PostgREST already running (pid $(cat "$PGRST_PID"))"
    return 0
  fi
  local bin pid i
  bin=$(bash "$SCRIPT_DIR/install-postgrest.sh")
  log "starting PostgREST on 127.0.0.1:$PGRST_PORT (log: $MYRIAM_PG_DIR/postgrest.log)"
  # Same settings the Supabase CLI passes (config.toml [api]); exposed schema: bp only.
  PGRST_DB_URI=$(bash "$LOCAL_PG" url "$DB") \
    PGRST_DB_SCHEMAS=bp \
    PGRST_DB_ANON_ROLE=anon \
    PGRST_DB_EXTRA_SEARCH_PATH=public,extensions \
    PGRST_DB_MAX_ROWS=1000 \
    PGRST_JWT_SECRET=$(cat "$SECRET_FILE") \
    PGRST_SERVER_HOST=127.0.0.1 \
    PGRST_SERVER_PORT=$PGRST_PORT \
    nohup "$bin" >"$MYRIAM_PG_DIR/postgrest.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PGRST_PID"
  # 503 while the schema cache loads, then 200.
  for i in $(seq 1 100); do
    [ "$(http_status "http://127.0.0.1:$PGRST_PORT/")" = 200 ] && break
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
      tail -n 20 "$MYRIAM_PG_DIR/postgrest.log" >&2 || true
      die "PostgREST did not become ready on 127.0.0.1:$PGRST_PORT"
    fi
    sleep 0.1
  done
  log "PostgREST ready (pid $pid)"
}

start_gateway() {
  if running "$GATEWAY_PID" supabase_gateway; then
    log "gateway already running (pid $(cat "$GATEWAY_PID"))"
    return 0
  fi
  local pid i
  log "starting supabase_gateway on $GATEWAY_LISTEN (log: $MYRIAM_PG_DIR/gateway.log)"
  # `cargo run` replaces itself with the binary on Unix, so $! ends up being the gateway's PID.
  (
    cd "$ROOT"
    MYRIAM_GATEWAY_UPSTREAM="http://127.0.0.1:$PGRST_PORT" \
      MYRIAM_GATEWAY_LISTEN="$GATEWAY_LISTEN" \
      MYRIAM_GATEWAY_API_KEYS="$(cat "$MYRIAM_PG_DIR/service_role.jwt"),$(cat "$MYRIAM_PG_DIR/anon.jwt")" \
      exec nohup cargo run --quiet --bin supabase_gateway
  ) >"$MYRIAM_PG_DIR/gateway.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$GATEWAY_PID"
  for i in $(seq 1 $((GATEWAY_WAIT * 2))); do
    [ "$(http_status "http://$GATEWAY_LISTEN/")" != 000 ] && break
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" = $((GATEWAY_WAIT * 2)) ]; then
      tail -n 20 "$MYRIAM_PG_DIR/gateway.log" >&2 || true
      die "gateway did not start on $GATEWAY_LISTEN"
    fi
    sleep 0.5
  done
  log "gateway ready (pid $pid): http://$GATEWAY_LISTEN/rest/v1/"
}

cmd_start() {
  bash "$LOCAL_PG" start
  local exists
  exists=$(bash "$LOCAL_PG" psql postgres -qtA -c "select 1 from pg_database where datname = '$DB'")
  if [ "$exists" = 1 ]; then
    log "database $DB exists; keeping its data (recreate: scripts/local-pg.sh createdb $DB)"
  else
    bash "$LOCAL_PG" createdb "$DB"
  fi
  ensure_keys
  start_postgrest
  start_gateway
  log "ready; add its environment to .env with: scripts/supabase-local.sh env >> .env"
}

cmd_stop() {
  stop_pid "$GATEWAY_PID" supabase_gateway gateway
  stop_pid "$PGRST_PID" postgrest PostgREST
  bash "$LOCAL_PG" stop
}

# Prints the local (throwaway) credentials: this is the documented purpose of `env`.
cmd_env() {
  ensure_keys
  printf 'STORE=supabase\n'
  printf 'SUPABASE_URL=http://%s\n' "$GATEWAY_LISTEN"
  printf 'SUPABASE_SERVICE_ROLE_KEY=%s\n' "$(cat "$MYRIAM_PG_DIR/service_role.jwt")"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  *)
    sed -n '6,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
