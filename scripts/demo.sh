#!/usr/bin/env bash
# `make demo`: starts the gateway in development mode with the embedded SQLite store and a throwaway
# Twilio auth token, plays calls through it with `myriam simulate` (signed exactly as Twilio signs):
# an urgent French call (staff get an SMS alert, received by a stand-in for Twilio's REST API,
# scripts/fake-twilio-rest.py), an English call, and a caller who asks for a person (transfer, no
# answer, voicemail). Prints the dialogues, the stored leads and the SMS, then the console URL and
# a throwaway administrator login (on a terminal the gateway keeps running until Ctrl-C;
# otherwise it stops).
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

# Reaching a person and SMS alerts, against the stand-in for Twilio's REST API.
REST_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/fake-twilio-rest.py "$REST_PORT" "$DEMO_DIR/sms.jsonl" &
REST=$!
export TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000
export TWILIO_API_BASE_URL="http://127.0.0.1:$REST_PORT"
export TWILIO_SMS_FROM=+14505550000 ALERT_SMS_TO=+15145550101
export TRANSFER_NUMBER=+14505550100 BUSINESS_HOURS="mon-sun 00:00-24:00"

"$BIN" serve >"$DEMO_DIR/gateway.log" 2>&1 &
GATEWAY=$!
cleanup() {
  kill "$GATEWAY" "$REST" 2>/dev/null || true
  wait "$GATEWAY" "$REST" 2>/dev/null || true
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
echo
echo "== A caller who asks for a person (office open, the line does not answer) =="
printf '%s\n' "Jean Tremblay" "je veux parler à quelqu'un" >"$DEMO_DIR/person.txt"
"$BIN" simulate --base-url "http://127.0.0.1:$PORT" --answers "$DEMO_DIR/person.txt" --from +15145550177
echo
echo "== SMS alerts staff received (urgent leads) =="
for _ in $(seq 1 50); do
  [ -s "$DEMO_DIR/sms.jsonl" ] && break
  sleep 0.1
done
if [ -s "$DEMO_DIR/sms.jsonl" ]; then
  python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    m = json.loads(line)
    print("to %s from %s:" % (m["to"], m["from"]))
    print("  " + m["body"].replace("\n", "\n  "))
' "$DEMO_DIR/sms.jsonl"
else
  echo "(none arrived)"; tail -20 "$DEMO_DIR/gateway.log"; exit 1
fi

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
