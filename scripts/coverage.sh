#!/usr/bin/env bash
# `make coverage`: line coverage of src/ with cargo-tarpaulin's LLVM engine (no llvm-tools
# component needed: this toolchain's LLVM is newer than the distribution's), over the whole suite
# against the same throwaway PostgreSQL as `make test`. Prints the per-file table and the total, and
# writes target/coverage/lcov.info and target/coverage/tarpaulin-report.html.
# Excluded, with their reason: src/bin/loadgen.rs (the load generator, run by the benchmarks).
# Extra arguments go to cargo tarpaulin (e.g. --fail-under 90).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo-tarpaulin >/dev/null 2>&1; then
  echo "coverage: installing cargo-tarpaulin from crates.io (once)"
  cargo install --locked cargo-tarpaulin
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export MYRIAM_TEST_PG_DIR="${MYRIAM_TEST_PG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/myriam-cov-pg.XXXXXX")}"
export MYRIAM_TEST_PG_PORT="${MYRIAM_TEST_PG_PORT:-$(free_port)}"
pg() { MYRIAM_PG_DIR="$MYRIAM_TEST_PG_DIR" MYRIAM_PG_PORT="$MYRIAM_TEST_PG_PORT" bash scripts/local-pg.sh "$@"; }
cleanup() {
  pg stop >/dev/null 2>&1 || true
  rm -rf "$MYRIAM_TEST_PG_DIR"
}
trap cleanup EXIT
pg start
bash scripts/install-postgrest.sh >/dev/null

cargo tarpaulin --engine llvm --skip-clean --target-dir target/tarpaulin \
  --out Lcov --out Html --output-dir target/coverage \
  --exclude-files 'src/bin/loadgen.rs' --timeout 300 "$@"
