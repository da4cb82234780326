#!/usr/bin/env bash
# Installs what `make test` and `make preflight` need beyond the Rust toolchain, from package
# registries only. Idempotent: each tool is installed only when missing. Prints one line per tool.
set -euo pipefail

say() { printf 'tools: %s\n' "$*"; }

# check-jsonschema (PyPI): lints .github/workflows against GitHub's workflow schema.
if command -v check-jsonschema >/dev/null 2>&1 || python3 -m check_jsonschema --version >/dev/null 2>&1; then
  say "check-jsonschema present"
else
  say "installing check-jsonschema from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check check-jsonschema \
    || python3 -m pip install --quiet --disable-pip-version-check --user check-jsonschema
fi

# rustfmt and clippy: preflight and the hooks run them.
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      say "installing rust component ${component}"
      rustup component add "${component}"
    fi
  done
fi
