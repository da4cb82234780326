#!/usr/bin/env bash
# Builds the repository's Dockerfile with buildah and proves the image on this machine: it starts
# on a throwaway /data volume, answers /readyz, takes a whole signed call (`myriam simulate` from
# the host), the lead is in the volume's database, the process is not root, `myriam healthcheck`
# (the HEALTHCHECK) passes, and SIGTERM drains it to exit 0. Prints the image's size, the time
# from start to /readyz 200 and the idle RSS.
#
#   scripts/image-check.sh          the whole multi-stage build (`make image`; cargo-chef, release)
#   IMAGE_BUILD=prebuilt scripts/image-check.sh
#                                   the Dockerfile's runtime stage, unchanged, over the binaries
#                                   `cargo build` already made (`make test`: no second compile)
#
# `--format docker`: the OCI format has no HEALTHCHECK (docker build writes this format too).
# Leaves the image in buildah's local vfs storage as myriam:latest and myriam:<version>.
set -euo pipefail
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STORAGE=(--storage-driver vfs)
B() { buildah "${STORAGE[@]}" "$@"; }
say() { printf 'image-check: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

MODE=${IMAGE_BUILD:-full}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
SOURCE_URL=$(git remote get-url origin 2>/dev/null || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/myriam-image.XXXXXX")
chmod 755 "$work"
ctr=""
gateway_pid=""
cleanup() {
  [ -z "$gateway_pid" ] || kill -KILL "$gateway_pid" 2>/dev/null || true
  [ -z "$ctr" ] || B rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- build ----------------------------------------------------------------------------------------
build_args=(--build-arg "VERSION=$VERSION" --build-arg "MYRIAM_GIT_REVISION=$REVISION"
            --build-arg "SOURCE_URL=$SOURCE_URL")
started=$(date +%s)
if [ "$MODE" = prebuilt ]; then
  bash scripts/image-bases.sh runtime
  # The binaries the test suite built, with the revision stamped the same way (build.rs).
  cargo build --locked --quiet --bin myriam --bin check_secrets --bin preflight
  mkdir -p "$work/out/bin" "$work/out/data"
  for bin in myriam check_secrets preflight; do
    objcopy --strip-debug "target/debug/$bin" "$work/out/bin/$bin"
  done
  bin_ctr=$(B from scratch)
  B add "$bin_ctr" "$work/out" /out >/dev/null
  B commit --quiet --rm "$bin_ctr" localhost/myriam-prebuilt:latest >/dev/null
  # The Dockerfile's global ARGs and its runtime stage, verbatim, over a `builder` stage that
  # holds those binaries where the real builder leaves its own.
  {
    sed -n '/^FROM /q;/^ARG /p' Dockerfile
    echo "FROM localhost/myriam-prebuilt:latest AS builder"
    sed -n '/^FROM .* AS runtime$/,$p' Dockerfile
  } > "$work/Dockerfile.runtime"
  grep -q '^FROM .* AS runtime$' "$work/Dockerfile.runtime" || fail "no runtime stage in the Dockerfile"
  mkdir -p "$work/context"
  B bud --quiet --format docker --isolation chroot --pull=false --layers "${build_args[@]}" \
    -f "$work/Dockerfile.runtime" -t myriam:latest -t "myriam:$VERSION" "$work/context" >/dev/null
else
  bash scripts/image-bases.sh
  B bud --format docker --isolation chroot --pull=false --layers "${build_args[@]}" \
    -t myriam:latest -t "myriam:$VERSION" .
fi
say "built myriam:latest and myriam:$VERSION ($MODE) in $(( $(date +%s) - started )) s"

# --- what the image says about itself -------------------------------------------------------------
config=$(B inspect --type image myriam:latest)
python3 - "$config" "$REVISION" <<'PY' || fail "image configuration"
import json, sys
image = json.loads(sys.argv[1])
config = image["OCIv1"]["config"]
labels = config.get("Labels") or {}
checks = {
    "non-root user": config.get("User") == "65532:65532",
    "entrypoint": config.get("Entrypoint") == ["/usr/local/bin/myriam"],
    "cmd": config.get("Cmd") == ["serve"],
    "/data volume": "/data" in (config.get("Volumes") or {}),
    "BIND_ADDR": "BIND_ADDR=0.0.0.0:8080" in config.get("Env", []),
    "DATABASE_PATH": "DATABASE_PATH=/data/myriam.db" in config.get("Env", []),
    "STOPSIGNAL": config.get("StopSignal") == "SIGTERM",
    "revision label": labels.get("org.opencontainers.image.revision") == sys.argv[2],
    "version label": bool(labels.get("org.opencontainers.image.version")),
    "healthcheck": "healthcheck" in json.dumps(image.get("Docker", {}).get("config", {}).get("Healthcheck")),
}
bad = [name for name, ok in checks.items() if not ok]
if bad:
    print("image-check: configuration: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
size=$(B images --noheading --format '{{.Size}}' myriam:latest | sed -n 1p)
say "image size: $size (uncompressed; target <= 60 MB for the release build)"

# --- run it ------------------------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
volume="$work/data"
mkdir -p "$volume"
chown 65532:65532 "$volume"
# A production configuration: signatures enforced against a https public URL, IVR mode (no Vapi
# here), the embedded store on the volume. The auth token is a throwaway made for this run.
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
public=https://gw.image-check.test
ctr=$(B from myriam:latest)
# buildah 1.28 mounts a directory of its own over an image's VOLUME even when `-v` names the same
# path (docker and podman let -v win): drop the declaration from this working container only.
B config --volume /data- "$ctr"
env_args=(--env ENVIRONMENT=production --env "BIND_ADDR=127.0.0.1:$port" --env CALL_MODE=ivr
          --env STORE=sqlite --env "PUBLIC_BASE_URL=$public"
          --env TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef --env "TWILIO_AUTH_TOKEN=$token"
          --env DRAIN_TIMEOUT_SECS=10)
B run --isolation chroot -v "$volume:/data" "${env_args[@]}" "$ctr" -- /usr/local/bin/myriam --version \
  | tee "$work/version"
grep -q "(rev $REVISION)" "$work/version" || fail "--version does not name revision $REVISION"

launch=$(date +%s%N)
B run --isolation chroot -v "$volume:/data" "${env_args[@]}" "$ctr" -- /usr/local/bin/myriam serve \
  > "$work/gateway.log" 2>&1 &
runner=$!
ready_ms=""
for _ in $(seq 1 1000); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
    ready_at=$(date +%s%N)
    ready_ms=$(( (ready_at - launch) / 1000000 ))
    break
  fi
  kill -0 "$runner" 2>/dev/null || { cat "$work/gateway.log"; fail "the gateway exited before /readyz"; }
  sleep 0.005
done
[ -n "$ready_ms" ] || { cat "$work/gateway.log"; fail "/readyz never answered 200"; }
gateway_pid=$(pgrep -f "^/usr/local/bin/myriam serve" | sed -n 1p)
[ -n "$gateway_pid" ] || fail "cannot find the gateway's process"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$gateway_pid/status")
[ "$uid" = 65532 ] || fail "the gateway runs as uid $uid, not 65532 (nonroot)"
# The process's own start (from /proc, in clock ticks) to the first /readyz 200: the gateway's
# start-up without buildah's container set-up.
process_ms=$(python3 - "$gateway_pid" "$ready_at" <<'PY'
import os, sys, time
pid, ready_ns = sys.argv[1], int(sys.argv[2])
ticks = os.sysconf("SC_CLK_TCK")
start = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
uptime = float(open("/proc/uptime").read().split()[0])
# The process's age now, less the time since /readyz answered.
print(round((uptime - start) * 1000 - (time.time_ns() - ready_ns) / 1e6))
PY
)
say "start to /readyz 200: ${process_ms} ms from the process's start (±10 ms; target <= 200 ms), ${ready_ms} ms from \`buildah run\`; uid $uid"
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q "\"revision\":\"$REVISION\"" \
  || fail "/healthz does not give revision $REVISION"

# The HEALTHCHECK's command, run inside the container as the platform would.
B run --isolation chroot "${env_args[@]}" "$ctr" -- /usr/local/bin/myriam healthcheck >/dev/null \
  || fail "myriam healthcheck failed against a ready gateway"

# A whole call, signed for the public URL, as Twilio would send it.
TWILIO_AUTH_TOKEN=$token TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef ENVIRONMENT=production \
  target/debug/myriam simulate \
  --base-url "http://127.0.0.1:$port" --public-url "$public" --database "$volume/myriam.db" \
  > "$work/call.txt" 2>&1 || { cat "$work/call.txt"; fail "the simulated call failed"; }
python3 - "$volume/myriam.db" <<'PY' || { cat "$work/call.txt"; ls -la "$volume"; fail "the lead is not in the volume's database"; }
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT status, nom_complet, telephone FROM leads").fetchall()
assert len(row) == 1 and row[0][0] == "qualifie" and row[0][1] and row[0][2], row
PY
# A bad signature is refused in production.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Twilio-Signature: AAAA' \
  --data 'CallSid=CA00000000000000000000000000000000' "http://127.0.0.1:$port/twilio/voice")
[ "$code" = 403 ] || fail "a forged signature got $code, not 403"
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$gateway_pid/status")
say "a signed call was qualified and stored on the volume; forged signature 403; idle RSS ${rss_kib} KiB"

# SIGTERM (the image's STOPSIGNAL): the gateway drains and exits 0.
kill -TERM "$gateway_pid"
set +e
wait "$runner"
status=$?
set -e
gateway_pid=""
[ "$status" = 0 ] || { tail -20 "$work/gateway.log"; fail "exit status $status after SIGTERM"; }
# The orderly path: the signal seen, the drain run (calls, outbox), then `stopped`.
{ grep -q '"shutdown signal received"' "$work/gateway.log" && grep -q '"stopped"' "$work/gateway.log"; } \
  || { tail -20 "$work/gateway.log"; fail "no orderly shutdown in the log"; }
say "SIGTERM: drained and exited 0"
say "ok: size $size, ready in ${process_ms} ms, idle RSS ${rss_kib} KiB"
