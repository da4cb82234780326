#!/usr/bin/env bash
# Property-based check of the console API against its own OpenAPI document: builds `myriam`, starts
# the gateway on a throwaway SQLite file with two simulated calls' leads, creates an admin API token
# with `myriam operator token create`, and runs schemathesis (PyPI, in .venv) on
# /api/openapi.json: no 5xx, every response as documented (status, content type, schema, headers).
# Run by `make test`; scripts/install-tools.sh installs schemathesis.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

ST="$ROOT/.venv/bin/schemathesis"
[ -x "$ST" ] || { echo "schemathesis: not installed (scripts/install-tools.sh puts it in .venv/)"; exit 1; }

cargo build --quiet --locked --bin myriam
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/myriam"
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/myriam-schemathesis.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN ENVIRONMENT=development STORE=sqlite DATABASE_PATH="$RUN_DIR/api.db"
export BIND_ADDR="127.0.0.1:$PORT" PUBLIC_BASE_URL="http://127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG=warn

(cd "$RUN_DIR" && exec "$BIN" serve) >"$RUN_DIR/gateway.log" 2>&1 &
GATEWAY=$!
cleanup() {
  kill "$GATEWAY" 2>/dev/null || true
  wait "$GATEWAY" 2>/dev/null || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$RUN_DIR/gateway.log"; exit 1; }

"$BIN" simulate --base-url "http://127.0.0.1:$PORT" --language fr >/dev/null
"$BIN" simulate --base-url "http://127.0.0.1:$PORT" --language en >/dev/null
(cd "$RUN_DIR" && printf 'schemathesis-password-%s\n' "$PORT" | "$BIN" operator add schemathesis@bp.example --role admin >/dev/null)
TOKEN=$(cd "$RUN_DIR" && "$BIN" operator token create schemathesis --role admin --operator schemathesis@bp.example 2>/dev/null)

status=0
(cd "$RUN_DIR" && "$ST" --config-file "$ROOT/scripts/schemathesis.toml" run "http://127.0.0.1:$PORT/api/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --seed "${SCHEMATHESIS_SEED:-14}") || status=$?
if grep -q '"level":"ERROR"' "$RUN_DIR/gateway.log"; then
  echo "schemathesis: the gateway logged errors:"
  grep '"level":"ERROR"' "$RUN_DIR/gateway.log" | head -20
  status=1
fi
exit "$status"
