#!/usr/bin/env bash
# Installs what `make test` and `make preflight` need beyond the Rust toolchain, from package
# registries only. Idempotent: each tool is installed only when missing. Prints one line per tool.
set -euo pipefail

say() { printf 'tools: %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "missing $*: install it with your package manager (apt-get install $*)"
    return 1
  fi
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL 15 (Debian): the store tests run a throwaway cluster.
if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  say "postgresql 15 present"
elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # shellcheck disable=SC2012
  say "postgresql $(ls /usr/lib/postgresql | sort -V | tail -n 1) present (15 preferred)"
else
  say "installing postgresql-15 from Debian"
  apt_install postgresql-15
fi

# runuser (util-linux): the cluster runs as nobody when we are root.
command -v runuser >/dev/null 2>&1 || apt_install util-linux

# openssl (command line): the wss:// test makes a self-signed certificate with it.
command -v openssl >/dev/null 2>&1 || { say "installing openssl from Debian"; apt_install openssl; }

# Node.js and npm: PostgREST 12.0.2 comes pinned from the npm registry.
if ! command -v npm >/dev/null 2>&1; then
  say "installing nodejs and npm from Debian"
  apt_install nodejs npm
fi
postgrest=$(bash "$(dirname "${BASH_SOURCE[0]}")/install-postgrest.sh" 2>/dev/null)
say "$("$postgrest" --version 2>/dev/null | head -1) at ${postgrest#"$PWD/"}"

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
