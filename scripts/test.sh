#!/usr/bin/env bash
# `make test`: the whole suite against real services. Starts a throwaway PostgreSQL 15 cluster with
# Supabase's roles (each store test creates its own database and starts its own PostgREST through
# tests/helpers/supabase.rs), runs `cargo test`, and stops and removes the cluster whatever happens.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

export MYRIAM_TEST_PG_DIR="${MYRIAM_TEST_PG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/myriam-test-pg.XXXXXX")}"
export MYRIAM_TEST_PG_PORT="${MYRIAM_TEST_PG_PORT:-$(free_port)}"

pg() { MYRIAM_PG_DIR="$MYRIAM_TEST_PG_DIR" MYRIAM_PG_PORT="$MYRIAM_TEST_PG_PORT" bash scripts/local-pg.sh "$@"; }

cleanup() {
  pg stop >/dev/null 2>&1 || true
  rm -rf "$MYRIAM_TEST_PG_DIR"
}
trap cleanup EXIT

pg start
bash scripts/install-postgrest.sh >/dev/null
cargo test --locked "$@"
