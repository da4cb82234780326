#!/usr/bin/env bash
# Instructions the gateway executes per relayed frame, counted by callgrind: repeatable whatever else
# the machine (or the hypervisor) is doing, unlike CPU time. User space only: the kernel's socket
# work is not counted. Each call sends a 20 ms frame every 20 ms and the Vapi-like peer echoes it,
# so a round trip is four WebSocket frames through the gateway (Twilio in, Vapi out, Vapi in,
# Twilio out). Counting starts once every call is live and stops WINDOW seconds later.
# Usage: scripts/bench-relay-instructions.sh [CALLS] [WINDOW]   (defaults: 10 calls, 5 s)
# Environment: GATEWAY_BIN=path counts another build of the gateway (an A/B comparison).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CALLS=${1:-10}
WINDOW=${2:-5}
cargo build --release --locked --quiet --bin myriam --bin loadgen
BIN=target/release
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/myriam}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/myriam-cg.XXXXXX")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PEER_PORT=$(free_port)
GW_PORT=$(free_port)
"$BIN/loadgen" peer --listen "127.0.0.1:$PEER_PORT" >"$WORK/peer.log" 2>&1 &
PEER=$!
ENVIRONMENT=test CALL_MODE=bridge STORE=sqlite DATABASE_PATH="$WORK/bench.db" \
  VAPI_PRIVATE_KEY=7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42 VAPI_ASSISTANT_ID=0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b \
  VAPI_BASE_URL="http://127.0.0.1:$PEER_PORT" PUBLIC_BASE_URL="http://127.0.0.1:$GW_PORT" \
  BIND_ADDR="127.0.0.1:$GW_PORT" MAX_CONCURRENT_CALLS=2000 RUST_LOG=warn LOG_FORMAT=json \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
  "$GATEWAY_BIN" serve >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
cleanup() { kill "$GATEWAY" "$PEER" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

"$BIN/loadgen" run --gateway "http://127.0.0.1:$GW_PORT" --calls "$CALLS" --seconds $((WINDOW + 8)) >"$WORK/load.log" 2>&1 &
LOAD=$!
sleep 5                                   # every call placed and streaming
callgrind_control --zero "$GATEWAY" >/dev/null
sleep "$WINDOW"
callgrind_control --dump "$GATEWAY" >/dev/null
wait "$LOAD"
cat "$WORK/load.log"
sleep 1
callgrind_annotate "$WORK"/callgrind.out.1 >"$WORK/annotate.txt" 2>&1 || true
TOTAL=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$WORK/annotate.txt")
FRAMES=$((CALLS * 50 * WINDOW * 4))
echo "instructions:    $TOTAL in ${WINDOW} s of $CALLS live calls ≈ $FRAMES frames relayed = $((TOTAL / FRAMES)) per frame"
if [ -n "${KEEP:-}" ]; then cp "$WORK"/callgrind.out.1 "$KEEP"; fi
