#!/usr/bin/env bash
# End-to-end test of the operators' console in a real browser: builds `myriam`, starts the gateway in
# development mode on a throwaway SQLite file and port, creates a throwaway administrator with
# `myriam operator add`, and runs e2e/console.e2e.mjs (Playwright driving Debian's Chromium).
# Screenshots and the exported CSV go to target/e2e/ (or $E2E_OUT). Run by `make test` and by
# preflight's e2e step; scripts/install-tools.sh installs chromium and e2e/node_modules.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "e2e: $CHROMIUM not found (scripts/install-tools.sh installs Debian's chromium)"; exit 1; }
[ -d e2e/node_modules/playwright-core ] || (cd e2e && npm ci --no-audit --no-fund >/dev/null)

cargo build --quiet --locked --bin myriam
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/debug/myriam"
OUT=${E2E_OUT:-$TARGET/e2e}
rm -rf "$OUT" && mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/myriam-e2e.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

TWILIO_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export TWILIO_AUTH_TOKEN ENVIRONMENT=development STORE=sqlite DATABASE_PATH="$RUN_DIR/e2e.db"
export BIND_ADDR="127.0.0.1:$PORT" PUBLIC_BASE_URL="http://127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG=warn

(cd "$RUN_DIR" && exec "$BIN" serve) >"$OUT/gateway.log" 2>&1 &
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
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$OUT/gateway.log"; exit 1; }

EMAIL=e2e-admin@bp-emondage.test
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
printf '%s\n' "$PASSWORD" | (cd "$RUN_DIR" && "$BIN" operator add "$EMAIL" --role admin) >/dev/null

BASE_URL="http://127.0.0.1:$PORT" EMAIL="$EMAIL" PASSWORD="$PASSWORD" MYRIAM_BIN="$BIN" \
  OUT_DIR="$OUT" CHROMIUM="$CHROMIUM" node e2e/console.e2e.mjs
