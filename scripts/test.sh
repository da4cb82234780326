#!/usr/bin/env bash
# `make test`: the whole suite against real services. Starts a throwaway PostgreSQL (15, 16 or 17) cluster with
# Supabase's roles (each store test creates its own database and starts its own PostgREST through
# tests/helpers/supabase.rs), runs `cargo test`, and stops and removes the cluster whatever happens.
# Extra arguments go to `cargo test`. `MYRIAM_TEST_RUNNER` replaces `cargo test --locked` with another
# runner of the same suite (scripts/coverage.sh runs cargo tarpaulin this way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every temporary file of the run (the SQLite file of each test gateway, the cluster, the log) goes
# under one directory that is removed at the end, whatever happens.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/myriam-test-run.XXXXXX")
# The cluster runs as an unprivileged user (scripts/local-pg.sh), who must be able to pass through.
chmod 711 "$SCRATCH"
export TMPDIR="$SCRATCH"

export MYRIAM_TEST_PG_DIR="${MYRIAM_TEST_PG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/myriam-test-pg.XXXXXX")}"
export MYRIAM_TEST_PG_PORT="${MYRIAM_TEST_PG_PORT:-$(free_port)}"

pg() { MYRIAM_PG_DIR="$MYRIAM_TEST_PG_DIR" MYRIAM_PG_PORT="$MYRIAM_TEST_PG_PORT" bash scripts/local-pg.sh "$@"; }

cleanup() {
  pg stop >/dev/null 2>&1 || true
  rm -rf "$MYRIAM_TEST_PG_DIR" "$SCRATCH"
}
trap cleanup EXIT

pg start
bash scripts/install-postgrest.sh >/dev/null
# The output streams as usual and is kept, so the summary can count the live tests that were
# skipped (tests/helpers/live.rs prints one `SKIPPED <test>: <reason>` line each). A failure still
# fails: the exit status is cargo's.
TEST_LOG="$SCRATCH/test.log"
set +e
read -r -a runner <<<"${MYRIAM_TEST_RUNNER:-cargo test --locked}"
"${runner[@]}" "$@" 2>&1 | tee "$TEST_LOG"
status=${PIPESTATUS[0]}
set -e
# Not anchored: with tests running in parallel, a SKIPPED line can follow another test's `test … `.
skips=$(grep -oE 'SKIPPED live_[A-Za-z0-9_]+::[A-Za-z0-9_]+: .*' "$TEST_LOG" | sort -u || true)
echo
echo "test.sh: $(grep -c . <<<"$skips" || true) live test(s) skipped (hosted Vapi / Supabase)"
[ -z "$skips" ] || sed 's/^/  /' <<<"$skips"
exit "$status"
