#!/usr/bin/env bash
# The webhook benchmark behind docs/PERFORMANCE.md ("The Twilio webhooks"). Release build; the
# gateway pinned to core 0 (`taskset`), the load generator on core 1; everything on loopback.
#
# The gateway runs as in production: ENVIRONMENT=production (JSON logs at info, every signature
# checked against PUBLIC_BASE_URL), CALL_MODE=ivr, the default durable SQLite store in a temporary
# directory, a random TWILIO_AUTH_TOKEN shared with the load generator through the environment
# (never printed). For each rate, `loadgen webhook` places fresh calls (distinct CallSids):
# `/twilio/voice`, six `/twilio/gather` answers in Québec French, the `completed` status callback,
# every request signed, sent on an open-loop schedule.
#
# Usage: scripts/bench-webhooks.sh [SECONDS] [RATES...]   (defaults: 20 s; 100 500 1000 req/s)
# Environment: GATEWAY_BIN=path runs another build of the gateway; GAP_MS (default 200) is the time
# between one call's requests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_SECONDS=${1:-20}
shift || true
RATES=("${@:-100 500 1000}")
read -r -a RATES <<<"${RATES[*]}"

ulimit -n "$(ulimit -Hn)"
cargo build --release --locked --quiet --bin myriam --bin loadgen
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/myriam}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/myriam-bench-webhooks.XXXXXX")
GW_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PUBLIC=https://myriam.bench.invalid
ACCOUNT=AC0123456789abcdef0123456789abcdef
TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN

env -i PATH="$PATH" TWILIO_AUTH_TOKEN="$TWILIO_AUTH_TOKEN" \
  ENVIRONMENT=production CALL_MODE=ivr STORE=sqlite DATABASE_PATH="$WORK/bench.db" \
  PUBLIC_BASE_URL="$PUBLIC" TWILIO_ACCOUNT_SID="$ACCOUNT" BIND_ADDR="127.0.0.1:$GW_PORT" \
  taskset -c 0 "$GATEWAY_BIN" serve >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
cleanup() { kill "$GATEWAY" 2>/dev/null || true; wait "$GATEWAY" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null || { tail -n 20 "$WORK/gateway.log"; exit 1; }
echo "gateway: $GATEWAY_BIN (pid $GATEWAY, core 0), ENVIRONMENT=production CALL_MODE=ivr STORE=sqlite"

for rate in "${RATES[@]}"; do
  echo "== $rate requests/s for $RUN_SECONDS s (host load average before: $(cut -d" " -f1-3 /proc/loadavg)) =="
  taskset -c 1 "$BIN/loadgen" webhook --gateway "http://127.0.0.1:$GW_PORT" --public-url "$PUBLIC" \
    --account-sid "$ACCOUNT" --rate "$rate" --seconds "$RUN_SECONDS" --gap-ms "${GAP_MS:-200}" \
    --gateway-pid "$GATEWAY"
  echo
done
leads=$(python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from leads where status = ?", ("qualifie",)).fetchone()[0])' "$WORK/bench.db" 2>/dev/null || echo "?")
echo "qualified leads in the store after all runs: $leads"
echo "gateway log: $(wc -l <"$WORK/gateway.log") lines, $(grep -c '"level":"ERROR"' "$WORK/gateway.log" || true) errors, $(grep -c '"level":"WARN"' "$WORK/gateway.log" || true) warnings; the most frequent:"
python3 - "$WORK/gateway.log" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("level") in ("ERROR", "WARN"):
        fields = event.get("fields", {})
        seen[(event["level"], fields.get("message", ""), fields.get("error", ""))] += 1
for (level, message, error), n in seen.most_common(5):
    print(f"  {n} × {level} {message} {error}".rstrip())
PY
