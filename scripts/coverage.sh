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

# The same throwaway PostgreSQL and PostgREST as `make test`, with tarpaulin as the runner.
MYRIAM_TEST_RUNNER="cargo tarpaulin --engine llvm --skip-clean --target-dir target/tarpaulin \
--out Lcov --out Html --output-dir target/coverage --exclude-files src/bin/loadgen.rs --timeout 300" \
  exec bash scripts/test.sh "$@"
