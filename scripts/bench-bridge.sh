#!/usr/bin/env bash
# The bridge benchmark behind docs/PERFORMANCE.md. Release build; the gateway pinned to core 0, the
# load generator and the Vapi-like echo peer on core 1; everything on loopback. The peer runs inside
# each `loadgen run` (one process, one thread on core 1, and one clock for the one-way legs).
# Usage: scripts/bench-bridge.sh [SECONDS] [CALLS...]   (defaults: 20 s; 100 250 500 calls)
# Environment: CONTROL=0 skips the direct-echo control runs; GATEWAY_BIN=path runs another build of
# the gateway (an A/B comparison against a saved binary); PEER=separate runs the peer as its own
# process on core 1 instead (the set-up of the earlier rounds in docs/PERFORMANCE.md).
# HALT_POLL_NS=N sets the guest's halt polling (/sys/module/haltpoll/parameters/guest_halt_poll_ns,
# root only) for the run and restores it at the end: an idle vCPU polls for up to N ns before it
# halts, so waking it does not wait for the hypervisor to schedule it again (docs/PERFORMANCE.md).
# IDLE_SPIN=1 runs a SCHED_IDLE busy loop on each core for the run: the host sees both vCPUs busy
# and does not stack them on one physical CPU, and any task of the guest preempts the loop at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_CALL=${1:-20}
shift || true
CALLS=("${@:-100 250 500}")
read -r -a CALLS <<<"${CALLS[*]}"

# Each call holds four sockets across the three processes.
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked --quiet --bin myriam --bin loadgen
# Checked before anything starts, so a refusal leaves no process behind.
HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [ -n "${HALT_POLL_NS:-}" ] && [ ! -w "$HALT_POLL" ]; then
  echo "HALT_POLL_NS is set but $HALT_POLL is not writable (needs root and the haltpoll cpuidle driver)" >&2
  exit 1
fi
BIN=target/release
GATEWAY_BIN=${GATEWAY_BIN:-$BIN/myriam}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/myriam-bench.XXXXXX")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PEER_PORT=$(free_port)
GW_PORT=$(free_port)

PEER_ARGS=(--peer-listen "127.0.0.1:$PEER_PORT")
PEER_PID=
if [ "${PEER:-inprocess}" = separate ]; then
  taskset -c 1 "$BIN/loadgen" peer --listen "127.0.0.1:$PEER_PORT" >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  PEER_ARGS=()
fi
ENVIRONMENT=test CALL_MODE=bridge STORE=sqlite DATABASE_PATH="$WORK/bench.db" \
  VAPI_PRIVATE_KEY=7a9c31e2-5b4d-4f60-8e1a-c0ffee5eed42 VAPI_ASSISTANT_ID=0b5e3f8a-1c2d-4e5f-9a8b-7c6d5e4f3a2b \
  VAPI_BASE_URL="http://127.0.0.1:$PEER_PORT" PUBLIC_BASE_URL="http://127.0.0.1:$GW_PORT" \
  BIND_ADDR="127.0.0.1:$GW_PORT" MAX_CONCURRENT_CALLS=2000 RUST_LOG=warn LOG_FORMAT=json \
  taskset -c 0 "$GATEWAY_BIN" serve >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
HALT_POLL_BEFORE=
if [ -n "${HALT_POLL_NS:-}" ]; then
  HALT_POLL_BEFORE=$(cat "$HALT_POLL")
  echo "$HALT_POLL_NS" >"$HALT_POLL"
fi
echo "guest halt polling: $(cat "$HALT_POLL" 2>/dev/null || echo 'not available') ns"
SPINNERS=()
if [ "${IDLE_SPIN:-0}" != 0 ]; then
  for core in 0 1; do
    taskset -c "$core" chrt -i 0 sh -c 'while :; do :; done' &
    SPINNERS+=("$!")
  done
  echo "idle spinners: a SCHED_IDLE busy loop on cores 0 and 1"
fi
cleanup() {
  kill "$GATEWAY" ${PEER_PID:+"$PEER_PID"} ${SPINNERS[@]+"${SPINNERS[@]}"} 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "$HALT_POLL_BEFORE" ]; then echo "$HALT_POLL_BEFORE" >"$HALT_POLL"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

for n in "${CALLS[@]}"; do
  if [ "${CONTROL:-1}" != 0 ]; then
    echo "== $n calls, control (direct echo, no gateway) =="
    taskset -c 1 "$BIN/loadgen" run --control "ws://127.0.0.1:$PEER_PORT/echo" --calls "$n" --seconds "$SECONDS_PER_CALL" "${PEER_ARGS[@]}"
  fi
  echo "== $n calls through the gateway (pid $GATEWAY, core 0) =="
  taskset -c 1 "$BIN/loadgen" run --gateway "http://127.0.0.1:$GW_PORT" --calls "$n" --seconds "$SECONDS_PER_CALL" --gateway-pid "$GATEWAY" "${PEER_ARGS[@]}"
  echo
done
