#!/usr/bin/env bash
# The webhook benchmark behind docs/PERFORMANCE.md ("The Twilio webhooks"). Release build; the
# gateway pinned to core 0 (`taskset`), the load generator on core 1; everything on loopback.
#
# The gateway runs as in production: ENVIRONMENT=production (JSON logs at info, every signature
# checked against PUBLIC_BASE_URL), CALL_MODE=ivr, a random TWILIO_AUTH_TOKEN shared with the load
# generator through the environment (never printed). For each rate, `loadgen webhook` places fresh
# calls (distinct CallSids): `/twilio/voice`, six `/twilio/gather` answers in Québec French, the
# `completed` status callback, every request signed, sent on an open-loop schedule.
#
# STORE=sqlite (default): the default durable SQLite store in a temporary directory.
# STORE=supabase: the production path. A throwaway PostgreSQL cluster (scripts/local-pg.sh, with
# fsync and synchronous_commit on, as a production database commits) pinned to core 1, a real
# PostgREST 12 (scripts/install-postgrest.sh) and `supabase_gateway` (the `/rest/v1` + `apikey`
# front Supabase's Kong plays; it logs one line per request, which is how the requests PostgREST
# received are counted) on core 1 too, and INSTANCES gateways (default 1; 2 = two instances behind
# the load generator's round robin, request by request), each with its own outbox file, all on core
# 0. Reported per rate besides the load generator's figures: the requests PostgREST received per
# webhook and per call (by method and table), the CPU time per call of each process (gateways,
# PostgREST, supabase_gateway, PostgreSQL's postmaster and backends, from /proc/PID/stat), the
# outbox depth and dead letters. Before the runs, one call alone, a second apart, counts the round
# trips of each webhook (`voice`, each answer, `status`).
#
# Usage: scripts/bench-webhooks.sh [SECONDS] [RATES...]   (defaults: 20 s; 100 500 1000 req/s)
# Environment: STORE=sqlite|supabase; INSTANCES=1|2 (supabase); PGRST_POOL (PostgREST's pool,
# default 10); BUILD=0 skips `cargo build`; PROFILE=debug checks the script and counts round trips with the test build (its
# latencies and CPU are not the product's); GATEWAY_BIN=path runs another build of the gateway; GAP_MS (default 200) is the time
# between one call's requests; LOADGEN_CORE (default 1) is the core the load generator runs on
# (0: beside the gateway, leaving core 1 to PostgreSQL, PostgREST and the Kong stand-in).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUN_SECONDS=${1:-20}
shift || true
RATES=("${@:-100 500 1000}")
read -r -a RATES <<<"${RATES[*]}"

ulimit -n "$(ulimit -Hn)"
STORE=${STORE:-sqlite}
INSTANCES=${INSTANCES:-1}
case "$STORE" in sqlite | supabase) ;; *) echo "STORE must be sqlite or supabase" >&2; exit 2 ;; esac
PROFILE=${PROFILE:-release}
case "$PROFILE" in release) FLAGS=(--release) ;; debug) FLAGS=() ;; *) echo "PROFILE must be release or debug" >&2; exit 2 ;; esac
# BUILD=0: use the binaries already built.
[ "${BUILD:-1}" = 0 ] || cargo build "${FLAGS[@]}" --locked --quiet --bin myriam --bin loadgen --bin supabase_gateway
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/myriam}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/myriam-bench-webhooks.XXXXXX")
chmod 755 "$WORK" # PostgreSQL runs as nobody when we are root
PUBLIC=https://myriam.bench.invalid
ACCOUNT=AC0123456789abcdef0123456789abcdef
TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$STORE" = supabase ]; then bash scripts/local-pg.sh stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

STORE_ENV=(STORE=sqlite)
if [ "$STORE" = supabase ]; then
  export MYRIAM_PG_DIR="$WORK/pg" MYRIAM_PG_PORT=$(free_port) MYRIAM_PG_FSYNC=on
  bash scripts/local-pg.sh start 2>/dev/null
  bash scripts/local-pg.sh createdb bench 2>/dev/null
  PG_URI=$(bash scripts/local-pg.sh url bench)
  POSTMASTER=$(head -n 1 "$MYRIAM_PG_DIR/data/postmaster.pid")
  # PostgreSQL on core 1: the postmaster and its helpers; backends forked later inherit it.
  for pid in "$POSTMASTER" $(pgrep -P "$POSTMASTER"); do taskset -a -p -c 1 "$pid" >/dev/null; done
  PGRST_BIN=$(bash scripts/install-postgrest.sh 2>/dev/null)
  JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  SERVICE_KEY=$(python3 - "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, sys
b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
head = b64(b'{"alg":"HS256","typ":"JWT"}')
body = b64(b'{"role":"service_role","iat":1700000000,"exp":4102444800}')
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)
  PGRST_PORT=$(free_port)
  env -i PGRST_DB_URI="$PG_URI" PGRST_DB_SCHEMAS=bp PGRST_DB_ANON_ROLE=anon PGRST_JWT_SECRET="$JWT_SECRET"     PGRST_SERVER_HOST=127.0.0.1 PGRST_SERVER_PORT="$PGRST_PORT" PGRST_DB_POOL="${PGRST_POOL:-10}"     taskset -c 1 "$PGRST_BIN" >"$WORK/postgrest.log" 2>&1 &
  POSTGREST=$!
  PIDS+=("$POSTGREST")
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PGRST_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
  SB_PORT=$(free_port)
  env -i MYRIAM_GATEWAY_UPSTREAM="http://127.0.0.1:$PGRST_PORT" MYRIAM_GATEWAY_API_KEYS="$SERVICE_KEY"     MYRIAM_GATEWAY_LISTEN="127.0.0.1:$SB_PORT" MYRIAM_GATEWAY_ACCESS_LOG=1     taskset -c 1 "$BIN/supabase_gateway" >"$WORK/sb.out" 2>"$WORK/access.log" &
  SB_GATEWAY=$!
  PIDS+=("$SB_GATEWAY")
  for _ in $(seq 1 100); do grep -q listening "$WORK/sb.out" 2>/dev/null && break; sleep 0.1; done
  STORE_ENV=(STORE=supabase SUPABASE_URL="http://127.0.0.1:$SB_PORT" SUPABASE_SERVICE_ROLE_KEY="$SERVICE_KEY")
  # Production refuses a plain-http SUPABASE_URL; development on loopback accepts it and, with
  # TWILIO_AUTH_TOKEN set, checks every signature as production does. Logs as production's.
  MODE_ENV=(ENVIRONMENT=development LOG_FORMAT=json RUST_LOG=info)
else
  INSTANCES=1
  MODE_ENV=(ENVIRONMENT=production)
fi

GATEWAYS=()
URLS=()
for i in $(seq 1 "$INSTANCES"); do
  port=$(free_port)
  env -i PATH="$PATH" TWILIO_AUTH_TOKEN="$TWILIO_AUTH_TOKEN" \
    "${MODE_ENV[@]}" CALL_MODE=ivr "${STORE_ENV[@]}" DATABASE_PATH="$WORK/bench-$i.db" \
    PUBLIC_BASE_URL="$PUBLIC" TWILIO_ACCOUNT_SID="$ACCOUNT" BIND_ADDR="127.0.0.1:$port" \
    taskset -c 0 "$GATEWAY_BIN" serve >"$WORK/gateway-$i.log" 2>&1 &
  GATEWAYS+=($!)
  PIDS+=($!)
  URLS+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { tail -n 20 "$WORK/gateway-$i.log"; exit 1; }
done
GATEWAY=${GATEWAYS[0]}
GW_LIST=$(IFS=,; echo "${URLS[*]}")
echo "gateway: $GATEWAY_BIN × $INSTANCES (pids ${GATEWAYS[*]}, core 0), ${MODE_ENV[*]} CALL_MODE=ivr STORE=$STORE"

# CPU ticks (user + system, 1/100 s) of each process group, as JSON: gateways, and with Supabase
# PostgREST, supabase_gateway and PostgreSQL (the postmaster and every child, i.e. the backends).
cpu_snapshot() {
  python3 - "$STORE" "${GATEWAYS[*]}" "${POSTGREST:-}" "${SB_GATEWAY:-}" "${POSTMASTER:-}" <<'PY'
import json, os, sys
def ticks(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])
def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2:].split()[1] == pid:
                out.append(entry)
    return out
store, gateways, postgrest, sb, postmaster = sys.argv[1:6]
groups = {"gateway": {p: ticks(p) for p in gateways.split()}}
if store == "supabase":
    groups["postgrest"] = {postgrest: ticks(postgrest)}
    groups["supabase_gateway"] = {sb: ticks(sb)}
    groups["postgresql"] = {p: ticks(p) for p in [postmaster] + children(postmaster)}
print(json.dumps(groups))
PY
}

# One call alone, its requests a second apart: the requests PostgREST receives for each webhook.
if [ "$STORE" = supabase ]; then
  before=$(wc -l <"$WORK/access.log")
  start_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
  : >"$WORK/probe.times"
  ( tail -n +$((before + 1)) -f "$WORK/access.log" | while IFS= read -r line; do
      printf '%s %s\n' "$(date +%s%3N)" "$line"; done >>"$WORK/probe.times" ) &
  TAIL=$!
  taskset -c 1 "$BIN/loadgen" webhook --gateway "${URLS[0]}" --public-url "$PUBLIC" \
    --account-sid "$ACCOUNT" --rate 8 --seconds 1 --gap-ms 1000 >/dev/null
  sleep 1
  kill "$TAIL" 2>/dev/null || true
  pkill -P "$TAIL" 2>/dev/null || true
  # The `tail -f` under the subshell outlives it otherwise (and keeps its reader loop alive).
  pkill -f "tail -n \+[0-9]+ -f $WORK/access.log" 2>/dev/null || true
  echo "round trips to PostgREST per webhook (one call alone, its requests a second apart):"
  python3 - "$WORK/probe.times" "$start_ms" <<'PY'
import collections, sys
steps = ["voice", "gather 1", "gather 2", "gather 3", "gather 4", "gather 5", "gather 6", "status"]
start = int(sys.argv[2]) + 50
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    ms, method, path, status = line.split()[:4]
    by[min(7, max(0, (int(ms) - start) // 1000))].append(f"{method} {path.replace('/rest/v1', '')}")
for k, name in enumerate(steps):
    print(f"  {name:<9} {len(by[k])}: {', '.join(by[k])}")
PY
fi

for rate in "${RATES[@]}"; do
  echo "== $rate requests/s for $RUN_SECONDS s (host load average before: $(cut -d" " -f1-3 /proc/loadavg)) =="
  cpu_before=$(cpu_snapshot)
  log_before=$( [ "$STORE" = supabase ] && wc -l <"$WORK/access.log" || echo 0)
  taskset -c "${LOADGEN_CORE:-1}" "$BIN/loadgen" webhook --gateway "$GW_LIST" --public-url "$PUBLIC" \
    --account-sid "$ACCOUNT" --rate "$rate" --seconds "$RUN_SECONDS" --gap-ms "${GAP_MS:-200}" \
    --gateway-pid "$GATEWAY" | tee "$WORK/run.txt"
  cpu_after=$(cpu_snapshot)
  if [ "$STORE" = supabase ]; then
    sleep 1
    tail -n +$((log_before + 1)) "$WORK/access.log" >"$WORK/run.access"
    python3 - "$WORK/run.txt" "$WORK/run.access" "$cpu_before" "$cpu_after" <<'PY'
import collections, json, re, sys
run = open(sys.argv[1]).read()
sent = int(re.search(r"requests:\s+(\d+) sent", run).group(1))
calls = int(re.search(r"calls:\s+\d+ of (\d+)", run).group(1))
lines = [l.split() for l in open(sys.argv[2]) if l.strip()]
kinds = collections.Counter(f"{l[0]} {l[1].replace('/rest/v1', '')}" for l in lines)
bad = sum(1 for l in lines if not l[2].startswith("2"))
print(f"PostgREST:       {len(lines)} requests = {len(lines) / max(sent, 1):.2f} per webhook, {len(lines) / max(calls, 1):.1f} per call; {bad} not 2xx")
print("  " + ", ".join(f"{k} {n / max(calls, 1):.2f}" for k, n in kinds.most_common()))
before, after = json.loads(sys.argv[3]), json.loads(sys.argv[4])
parts = []
for group, pids in after.items():
    ticks = sum(t - before.get(group, {}).get(pid, 0) for pid, t in pids.items())
    parts.append(f"{group} {ticks * 10 / max(calls, 1):.2f}")
print("CPU per call (ms): " + ", ".join(parts))
PY
    depth=0
    for i in $(seq 1 "$INSTANCES"); do
      d=$(python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from outbox").fetchone()[0], c.execute("select count(*) from dead_letters").fetchone()[0])' "$WORK/bench-$i.db" 2>/dev/null || echo "? ?")
      echo "instance $i outbox after the run: $d (queued, dead letters)"
    done
  fi
  echo
done
if [ "$STORE" = supabase ]; then
  leads=$(bash scripts/local-pg.sh psql bench -At -c "select count(*) from bp.leads where status = 'qualifie'" 2>/dev/null || echo "?")
else
  leads=$(python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from leads where status = ?", ("qualifie",)).fetchone()[0])' "$WORK/bench-1.db" 2>/dev/null || echo "?")
fi
echo "qualified leads in the store after all runs: $leads"
cat "$WORK"/gateway-*.log >"$WORK/gateway.log"
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
