#!/usr/bin/env bash
# The deployment files, each checked by the tool that can check it here (`make deploy-check`, run
# by `make test`; the nginx configuration runs in front of a gateway in tests/proxy.rs and the
# Dockerfile in scripts/image-check.sh):
#   - deploy/prometheus/alerts.yml: `promtool check rules`, then `promtool test rules`;
#   - deploy/systemd/myriam.service: `systemd-analyze verify` (ExecStart pointed at a built
#     binary, since verify requires it to exist), and the `systemd-analyze security` score;
#   - fly.toml and railway.json: parsed, and their stop timeouts checked against the drain;
#   - the Dockerfile's HEALTHCHECK, ENTRYPOINT and STOPSIGNAL against what the binary offers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'deploy-check: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

(cd deploy/prometheus && promtool check rules alerts.yml >/dev/null && promtool test rules alerts.test.yml >/dev/null) \
  || { (cd deploy/prometheus && promtool check rules alerts.yml; promtool test rules alerts.test.yml) || true; fail "prometheus rules"; }
say "prometheus: $(grep -c '^      - alert:' deploy/prometheus/alerts.yml) alert rules checked and unit-tested (promtool)"

cargo build --locked --quiet --bin myriam
work=$(mktemp -d "${TMPDIR:-/tmp}/myriam-deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/local/bin/myriam |ExecStart=$PWD/target/debug/myriam |" \
  deploy/systemd/myriam.service > "$work/myriam.service"
grep -q "^ExecStart=$PWD/target/debug/myriam serve$" "$work/myriam.service" || fail "ExecStart not found in the unit"
if ! out=$(systemd-analyze verify "$work/myriam.service" 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out"
  fail "systemd-analyze verify"
fi
exposure=$(systemd-analyze security --offline=true "$work/myriam.service" 2>/dev/null | sed -n 's/.*Overall exposure level for myriam.service: //p')
say "systemd: verify passed; security exposure $exposure"

python3 - <<'PY' || fail "platform files"
import json, re, tomllib

def drain_default():
    src = open("src/secrets/catalogue.rs", encoding="utf-8").read()
    block = src[src.index('name: "DRAIN_TIMEOUT_SECS"'):]
    return int(re.search(r'default: Some\("(\d+)"\)', block).group(1))

drain = drain_default()
fly = tomllib.load(open("fly.toml", "rb"))
assert fly["build"]["dockerfile"] == "Dockerfile", "fly.toml builds the Dockerfile"
assert fly["kill_signal"] == "SIGTERM", "fly.toml: the gateway drains on SIGTERM"
fly_drain = int(fly["env"].get("DRAIN_TIMEOUT_SECS", drain))
assert int(fly["kill_timeout"]) > fly_drain, "fly.toml: kill_timeout must exceed the drain"
if int(fly["kill_timeout"]) > 300:
    size = fly.get("vm", [{}])[0].get("size", "")
    assert size.startswith("performance"), "fly.toml: kill_timeout > 300 s needs a performance VM"
assert fly["mounts"]["destination"] == "/data", "fly.toml mounts the image's /data"
checks = fly["http_service"]["checks"]
assert any(c["path"] == "/readyz" for c in checks), "fly.toml checks /readyz"
assert fly["env"]["CLIENT_IP_HEADER"] == "fly-client-ip"

railway = json.load(open("railway.json"))
assert railway["build"]["builder"] == "DOCKERFILE"
deploy = railway["deploy"]
assert deploy["healthcheckPath"] == "/readyz"
assert isinstance(deploy["drainingSeconds"], int) and deploy["drainingSeconds"] > drain, \
    "railway.json: drainingSeconds (a number) must exceed DRAIN_TIMEOUT_SECS"

unit = open("deploy/systemd/myriam.service").read()
stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
assert stop > drain, "the unit's TimeoutStopSec must exceed the drain"

docker = open("Dockerfile").read()
assert 'HEALTHCHECK' in docker and '"healthcheck"' in docker
assert re.search(r"^STOPSIGNAL SIGTERM$", docker, re.M)
assert re.search(r"^USER 65532:65532$", docker, re.M)
print(f"deploy-check: fly.toml, railway.json, the unit and the Dockerfile agree with the drain ({drain} s)")
PY
"$PWD/target/debug/myriam" healthcheck --help >/dev/null || fail "myriam healthcheck (the image's HEALTHCHECK)"
say "ok"
