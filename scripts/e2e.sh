#!/usr/bin/env bash
# End-to-end test of the operators' console in a real browser (Playwright driving Debian's Chromium):
# 1. e2e/console.e2e.mjs: the gateway in development mode on a throwaway SQLite file and port, and a
#    throwaway administrator made with `myriam operator add`.
# 2. e2e/dashboard.e2e.mjs: a fresh file. Two calls are first bridged to Vapi (`loadgen run` plays
#    Twilio's media stream and serves a Vapi-like peer: Vapi's REST API and WebSocket); the gateway
#    is then restarted on the same file as the speech IVR (office open all week, a transfer line),
#    and the script plays its own calls and checks the dashboard's figures.
#    The second gateway has Twilio REST credentials pointing at scripts/fake-twilio-rest.py (which
#    appends every created call to a file the script reads) and a BUSINESS_NUMBER: the script sets
#    the operator's phone on the profile page, clicks Rappeler on a lead and plays Twilio's side
#    of that callback, signed with the auth token, before checking the dashboard.
# Screenshots and the exported CSVs go to target/e2e/ (or $E2E_OUT). Run by `make test` and by
# preflight's e2e step; scripts/install-tools.sh installs chromium and e2e/node_modules.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "e2e: $CHROMIUM not found (scripts/install-tools.sh installs Debian's chromium)"; exit 1; }
[ -d e2e/node_modules/playwright-core ] && [ -d e2e/node_modules/axe-core ] || (cd e2e && npm ci --no-audit --no-fund >/dev/null)

cargo build --quiet --locked --bin myriam --bin loadgen
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/debug/myriam"
OUT=${E2E_OUT:-$TARGET/e2e}
rm -rf "$OUT" && mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/myriam-e2e.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN STORE=sqlite BIND_ADDR="127.0.0.1:$PORT" PUBLIC_BASE_URL="http://127.0.0.1:$PORT"
export LOG_FORMAT=json RUST_LOG=warn

GATEWAY=
REST=
# serve LOG [NAME=VALUE...]: starts the gateway with these variables and waits for /healthz.
serve() {
  local log=$1
  shift
  (cd "$RUN_DIR" && exec env "$@" "$BIN" serve) >>"$OUT/$log" 2>&1 &
  GATEWAY=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$OUT/$log"; exit 1; }
}
stop() {
  [ -z "$GATEWAY" ] && return 0
  kill "$GATEWAY" 2>/dev/null || true
  wait "$GATEWAY" 2>/dev/null || true
  GATEWAY=
}
cleanup() {
  stop
  [ -n "$REST" ] && { kill "$REST" 2>/dev/null || true; wait "$REST" 2>/dev/null || true; }
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

EMAIL=e2e-admin@bp-emondage.test
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
admin() {
  printf '%s\n' "$PASSWORD" | (cd "$RUN_DIR" && env "$@" "$BIN" operator add "$EMAIL" --role admin) >/dev/null
}

# 1. The console.
serve gateway.log ENVIRONMENT=development DATABASE_PATH="$RUN_DIR/e2e.db"
admin ENVIRONMENT=development DATABASE_PATH="$RUN_DIR/e2e.db"
BASE_URL="http://127.0.0.1:$PORT" EMAIL="$EMAIL" PASSWORD="$PASSWORD" MYRIAM_BIN="$BIN" \
  OUT_DIR="$OUT" CHROMIUM="$CHROMIUM" node e2e/console.e2e.mjs
stop

# 2. The dashboard. Bridged calls first: test mode (loadgen's media stream is not signed), Vapi's
# REST API and WebSocket played by loadgen's peer on a port of its own.
DASH_DB="$RUN_DIR/dashboard.db"
BRIDGED_CALLS=2
PEER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serve gateway-bridge.log ENVIRONMENT=test CALL_MODE=bridge DATABASE_PATH="$DASH_DB" \
  VAPI_PRIVATE_KEY=7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42 VAPI_ASSISTANT_ID=0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b \
  VAPI_BASE_URL="http://127.0.0.1:$PEER_PORT"
"$TARGET/debug/loadgen" run --gateway "http://127.0.0.1:$PORT" --calls "$BRIDGED_CALLS" --seconds 1 \
  --peer-listen "127.0.0.1:$PEER_PORT" >"$OUT/loadgen.log" 2>&1 || { cat "$OUT/loadgen.log"; exit 1; }
stop
# The callback: Twilio's REST API played by scripts/fake-twilio-rest.py (created calls go to a file).
REST_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CALLS_FILE="$RUN_DIR/created-calls.jsonl"
python3 scripts/fake-twilio-rest.py "$REST_PORT" "$RUN_DIR/sms.jsonl" "$CALLS_FILE" &
REST=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$REST_PORT/" && break
  sleep 0.1
done
TWILIO_ACCOUNT_SID="AC$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
BUSINESS_NUMBER=+14505550123
serve gateway-dashboard.log ENVIRONMENT=development DATABASE_PATH="$DASH_DB" \
  TRANSFER_NUMBER=+14505550100 BUSINESS_HOURS="mon-sun 00:00-24:00" BUSINESS_TIMEZONE=America/Toronto \
  TWILIO_ACCOUNT_SID="$TWILIO_ACCOUNT_SID" TWILIO_API_BASE_URL="http://127.0.0.1:$REST_PORT" \
  BUSINESS_NUMBER="$BUSINESS_NUMBER"
admin ENVIRONMENT=development DATABASE_PATH="$DASH_DB"
BASE_URL="http://127.0.0.1:$PORT" EMAIL="$EMAIL" PASSWORD="$PASSWORD" MYRIAM_BIN="$BIN" \
  OUT_DIR="$OUT" CHROMIUM="$CHROMIUM" BRIDGED_CALLS="$BRIDGED_CALLS" \
  TWILIO_ACCOUNT_SID="$TWILIO_ACCOUNT_SID" BUSINESS_NUMBER="$BUSINESS_NUMBER" CALLS_FILE="$CALLS_FILE" \
  node e2e/dashboard.e2e.mjs
