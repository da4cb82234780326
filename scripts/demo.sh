#!/usr/bin/env bash
# `make demo`: starts the gateway in development mode with the embedded SQLite store and a throwaway
# Twilio auth token, plays a French call and an English call through it with `myriam simulate`
# (signed exactly as Twilio signs), prints the dialogues and the stored leads, then the console URL
# and a throwaway administrator login (on a terminal the gateway keeps running until Ctrl-C; otherwise
# it stops).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --locked --bin myriam
BIN=${CARGO_TARGET_DIR:-target}/debug/myriam
DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/myriam-demo.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# A throwaway token shared by the gateway and the simulated Twilio: nothing real is involved.
TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN
export ENVIRONMENT=development STORE=sqlite DATABASE_PATH="$DEMO_DIR/demo.db"
export BIND_ADDR="127.0.0.1:$PORT" PUBLIC_BASE_URL="http://127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG=warn

"$BIN" serve >"$DEMO_DIR/gateway.log" 2>&1 &
GATEWAY=$!
cleanup() {
  kill "$GATEWAY" 2>/dev/null || true
  wait "$GATEWAY" 2>/dev/null || true
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$DEMO_DIR/gateway.log"; exit 1; }

echo "== French call =="
"$BIN" simulate --base-url "http://127.0.0.1:$PORT" --language fr
echo
echo "== English call =="
"$BIN" simulate --base-url "http://127.0.0.1:$PORT" --language en

# The console: a throwaway administrator for this demo's database, then its URL and login.
DEMO_EMAIL=demo@bp-emondage.test
DEMO_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
printf '%s\n' "$DEMO_PASSWORD" | "$BIN" operator add "$DEMO_EMAIL" --role admin >/dev/null
echo
echo "== Operators' console =="
echo "URL:      http://127.0.0.1:$PORT/console"
echo "login:    $DEMO_EMAIL"
echo "password: $DEMO_PASSWORD   (throwaway: this demo's database is deleted when it stops)"
if [ -t 0 ]; then
  echo "The gateway keeps running for the console; press Ctrl-C to stop it."
  wait "$GATEWAY" || true
fi
