#!/usr/bin/env bash
# A throwaway local PostgreSQL (15, 16 or 17) cluster with Supabase's API roles, for tests and development.
#
# Usage: scripts/local-pg.sh start | stop | createdb NAME | dropdb NAME | url NAME | psql NAME [args...]
#
#   start         idempotent: initdb if needed, start on 127.0.0.1:PORT, apply scripts/supabase-roles.sql
#   stop          fast shutdown; fine if not running
#   createdb NAME (re)create NAME (dropped first, with force) and apply supabase/migrations/*.sql
#   dropdb NAME   drop NAME if it exists
#   url NAME      print the PostgREST connection string (role authenticator)
#   psql NAME     run psql as superuser postgres on NAME, passing any further arguments
#
# Environment:
#   MYRIAM_PG_DIR   cluster directory (default ${TMPDIR:-/tmp}/myriam-pg-<uid>): data/, pg.log, socket
#   MYRIAM_PG_PORT  TCP port on 127.0.0.1 (default 54329)
#   MYRIAM_PG_FSYNC fsync and synchronous_commit: off (default, throwaway test clusters) or on
#                   (as a production database commits; the Supabase benchmark). Read at start.
#   MYRIAM_PG_BIN   PostgreSQL binaries (default: the first of /usr/lib/postgresql/{15,16,17}/bin
#                   that exists — Debian 12 ships 15, Ubuntu 24.04 16, Debian 13 17 — else the
#                   newest /usr/lib/postgresql/*/bin)
#
# PostgreSQL refuses to run as root, so when invoked as root the server runs as `nobody`.
# Authentication is `trust` on loopback: local throwaway clusters only.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
ROLES_SQL="$SCRIPT_DIR/supabase-roles.sql"
MIGRATIONS_DIR="$ROOT/supabase/migrations"

PG_DIR=${MYRIAM_PG_DIR:-${TMPDIR:-/tmp}/myriam-pg-$(id -u)}
PG_PORT=${MYRIAM_PG_PORT:-54329}
PG_FSYNC=${MYRIAM_PG_FSYNC:-off}
[[ $PG_FSYNC == on || $PG_FSYNC == off ]] || { printf 'local-pg: error: MYRIAM_PG_FSYNC must be on or off\n' >&2; exit 1; }
default_pg_bin() {
  local major
  for major in 15 16 17; do
    if [ -x "/usr/lib/postgresql/$major/bin/initdb" ]; then
      echo "/usr/lib/postgresql/$major/bin"
      return
    fi
  done
  # shellcheck disable=SC2012
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
PG_BIN=${MYRIAM_PG_BIN:-$(default_pg_bin)}
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] \
  || { printf 'local-pg: error: no PostgreSQL server binaries (run scripts/install-tools.sh)\n' >&2; exit 1; }
DATA="$PG_DIR/data"
HOST=127.0.0.1

log() { printf 'local-pg: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a server-side command as the cluster owner (nobody when we are root), from a working
# directory that user can enter.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$PG_DIR" && runuser -u nobody -- "$@")
  else
    (cd "$PG_DIR" && "$@")
  fi
}

# psql as superuser on database $1 over TCP; no ~/.psqlrc, no NOTICEs, stop at the first error.
pg_psql() {
  local db=$1
  shift
  PGOPTIONS='-c client_min_messages=warning' \
    "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

is_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" >/dev/null 2>&1; }

require_running() {
  is_ready || die "no server on $HOST:$PG_PORT (run: $0 start)"
}

# Database names are limited to [A-Za-z0-9_-] (always double-quoted in SQL, safe in a URL).
check_name() {
  [ $# -ge 1 ] || die "missing database name"
  [[ $1 =~ ^[A-Za-z0-9_-]{1,63}$ ]] || die "invalid database name '$1' (allowed: [A-Za-z0-9_-], 1-63 chars)"
}

# Serialises start/stop/createdb/dropdb on one cluster (parallel test processes). The lock fd is
# closed for the server process so the postmaster never holds it.
lock() {
  mkdir -p "$PG_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$PG_DIR/.lock"
    flock 9
  fi
}

# True if PID is a live (not zombie) postgres process. Without /proc, any live PID counts.
postgres_alive() {
  local pid=$1 state
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [ -r "/proc/$pid/stat" ] || return 0
  # A killed postmaster stays a zombie until its parent (often init) reaps it.
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ] && grep -qx 'postgres' "/proc/$pid/comm" 2>/dev/null
}

# PID recorded in postmaster.pid, or nothing.
recorded_pid() { head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true; }

# Removes postmaster.pid (and socket lock files) left behind by a server that was killed.
# Fails if a live postgres process still owns the data directory.
clear_stale_pid() {
  local pid i
  [ -f "$DATA/postmaster.pid" ] || return 0
  pid=$(recorded_pid)
  for i in $(seq 1 50); do # give a server that is shutting down 5 s to exit
    postgres_alive "$pid" || break
    [ "$i" -lt 50 ] || die "postgres (pid $pid) owns $DATA but does not answer on $HOST:$PG_PORT; run: $0 stop"
    sleep 0.1
  done
  log "removing stale postmaster.pid (pid ${pid:-?} is gone)"
  rm -f "$DATA/postmaster.pid" "$PG_DIR"/.s.PGSQL.*
}

cmd_start() {
  [[ $PG_DIR != *"'"* ]] || die "MYRIAM_PG_DIR must not contain a single quote"
  # Under the lock, so a concurrent start has finished applying the roles before we return.
  lock
  if is_ready; then
    log "server already answering on $HOST:$PG_PORT"
    return 0
  fi
  if [ "$(id -u)" = 0 ]; then
    chown nobody: "$PG_DIR"
    runuser -u nobody -- test -x "$PG_DIR" \
      || die "user nobody cannot enter $PG_DIR (check the parent directories' permissions)"
  fi

  if [ ! -s "$DATA/PG_VERSION" ]; then
    if [ -e "$DATA" ]; then
      log "removing incomplete data directory $DATA"
      rm -rf "$DATA"
    fi
    local locale=C
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then locale=C.UTF-8; fi
    log "initdb $DATA"
    as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale="$locale" >/dev/null
  fi

  clear_stale_pid
  log "starting PostgreSQL on $HOST:$PG_PORT (log: $PG_DIR/pg.log)"
  if ! as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$PG_DIR/pg.log" -w -t 60 \
    -o "-p $PG_PORT -k '$PG_DIR' -c listen_addresses=$HOST -c fsync=$PG_FSYNC -c synchronous_commit=$PG_FSYNC -c max_connections=200" \
    start >/dev/null 9>&-; then
    tail -n 20 "$PG_DIR/pg.log" >&2 || true
    die "pg_ctl start failed"
  fi
  local i
  for i in $(seq 1 100); do
    is_ready && break
    [ "$i" -lt 100 ] || die "server did not become ready on $HOST:$PG_PORT"
    sleep 0.1
  done

  # Roles are cluster-wide; the schema-level parts (public grants, default privileges, schema
  # `extensions`) are per database, so they go into template1 too and every new database gets them.
  local db
  for db in template1 postgres; do
    pg_psql "$db" -q -f "$ROLES_SQL" >/dev/null
  done
  log "ready: postgres://postgres@$HOST:$PG_PORT/postgres"
}

cmd_stop() {
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "no cluster in $DATA; nothing to stop"
    return 0
  fi
  lock
  if postgres_alive "$(recorded_pid)"; then
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    log "stopped"
  else
    [ ! -f "$DATA/postmaster.pid" ] || clear_stale_pid
    log "not running"
  fi
}

cmd_dropdb() {
  check_name "$@"
  require_running
  lock
  pg_psql postgres -q -c "drop database if exists \"$1\" with (force)"
}

cmd_createdb() {
  check_name "$@"
  local name=$1 f n=0
  require_running
  lock
  pg_psql postgres -q -c "drop database if exists \"$name\" with (force)"
  pg_psql postgres -q -c "create database \"$name\""
  # Idempotent; covers a server that `start` did not set up (e.g. already running elsewhere).
  pg_psql "$name" -q -f "$ROLES_SQL" >/dev/null
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    if ! pg_psql "$name" -1 -q -f "$f" >/dev/null; then
      die "migration $(basename "$f") failed on database $name"
    fi
    n=$((n + 1))
  done < <(find "$MIGRATIONS_DIR" -maxdepth 1 -type f -name '*.sql' 2>/dev/null | LC_ALL=C sort)
  log "database $name: $n migration(s) applied"
}

cmd_url() {
  check_name "$@"
  printf 'postgres://authenticator:authpw@%s:%s/%s\n' "$HOST" "$PG_PORT" "$1"
}

cmd_psql() {
  check_name "$@"
  local name=$1
  shift
  exec "$PG_BIN/psql" -X -h "$HOST" -p "$PG_PORT" -U postgres -d "$name" "$@"
}

usage() {
  sed -n '3,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  createdb) cmd_createdb "$@" ;;
  dropdb) cmd_dropdb "$@" ;;
  url) cmd_url "$@" ;;
  psql) cmd_psql "$@" ;;
  -h | --help | help) usage ;;
  *) log "unknown command '$command'"; usage ;;
esac
