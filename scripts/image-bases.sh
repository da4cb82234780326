#!/usr/bin/env bash
# Makes, from Debian's packages, the two base images the Dockerfile names, and tags them under the
# same names in buildah's local storage, so that `buildah bud` builds the repository's Dockerfile
# unchanged on a machine that reaches no image registry (shared/reference/deploy.md):
#   - RUST_IMAGE: Debian 12 (mmdebstrap minbase) + gcc, libc6-dev, ca-certificates + this host's
#     Rust toolchain (rustup's layout of the official rust:*-slim-bookworm image);
#   - RUNTIME_IMAGE: what gcr.io/distroless/cc-debian12:nonroot holds: glibc, libgcc, libssl,
#     CA certificates, tzdata, netbase, a `nonroot` user (65532), no shell, no package manager.
# Idempotent: an image already in storage is kept (FORCE=1 remakes it). `image-bases.sh runtime`
# makes the runtime base only (what the quick image check needs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STORAGE=(--storage-driver vfs)
RUST_IMAGE=${RUST_IMAGE:-$(sed -n 's/^ARG RUST_IMAGE=//p' Dockerfile)}
RUNTIME_IMAGE=${RUNTIME_IMAGE:-$(sed -n 's/^ARG RUNTIME_IMAGE=//p' Dockerfile)}
SUITE=bookworm
say() { printf 'image-bases: %s\n' "$*"; }

# Short names (`rust:…`) are Docker Hub's library images.
qualified() {
  case "$1" in
    */*/*) printf '%s\n' "$1" ;;
    */*) printf 'docker.io/%s\n' "$1" ;;
    *) printf 'docker.io/library/%s\n' "$1" ;;
  esac
}

have() { [ -z "${FORCE:-}" ] && buildah "${STORAGE[@]}" inspect --type image "$1" >/dev/null 2>&1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/myriam-bases.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the runtime: distroless cc, from the same Debian packages it is made of ---------------------
runtime=$(qualified "$RUNTIME_IMAGE")
if have "$runtime"; then
  say "$runtime present"
else
  say "making $runtime from Debian $SUITE packages"
  # `extract`: the packages' files only (no dpkg, no maintainer scripts, no shell). Then what
  # distroless's own build adds: the CA bundle, the users, a writable /tmp and nonroot's home.
  mmdebstrap --quiet --variant=extract \
    --include=base-files,libc6,libgcc-s1,libssl3,zlib1g,ca-certificates,tzdata,netbase \
    "$SUITE" "$work/runtime.tar"
  ctr=$(buildah "${STORAGE[@]}" from scratch)
  buildah "${STORAGE[@]}" add "$ctr" "$work/runtime.tar" / >/dev/null
  root=$(buildah "${STORAGE[@]}" mount "$ctr")
  find "$root/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat > "$root/etc/ssl/certs/ca-certificates.crt"
  [ -s "$root/etc/ssl/certs/ca-certificates.crt" ] || { say "no CA certificates"; exit 1; }
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$root/etc/group"
  mkdir -p "$root/tmp" "$root/home/nonroot"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
  buildah "${STORAGE[@]}" umount "$ctr" >/dev/null
  buildah "${STORAGE[@]}" config --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$ctr"
  buildah "${STORAGE[@]}" commit --quiet --rm "$ctr" "$runtime" >/dev/null
  say "$runtime made"
fi

# --- the builder: Debian 12 + gcc + this host's Rust toolchain, laid out as rust:*-slim ----------
[ "${1:-all}" = runtime ] && exit 0
rust=$(qualified "$RUST_IMAGE")
if have "$rust"; then
  say "$rust present"
else
  toolchain=$(rustc --print sysroot)
  say "making $rust from Debian $SUITE packages and the toolchain at $toolchain ($(rustc --version))"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev,pkg-config \
    --customize-hook='rm -rf "$1/usr/share/doc" "$1/usr/share/man" "$1/var/lib/apt/lists"/*' \
    "$SUITE" "$work/rust.tar"
  name=$(basename "$toolchain")
  ctr=$(buildah "${STORAGE[@]}" from scratch)
  buildah "${STORAGE[@]}" add "$ctr" "$work/rust.tar" / >/dev/null
  mnt=$(buildah "${STORAGE[@]}" mount "$ctr")
  mkdir -p "$mnt/usr/local/rustup/toolchains/$name" "$mnt/usr/local/cargo/bin"
  # The toolchain without its documentation (rust-docs is 0.8 GB and builds need none of it).
  tar -C "$toolchain" --exclude=./share/doc -cf - . | tar -C "$mnt/usr/local/rustup/toolchains/$name" -xf -
  # This machine's trust store (it may hold a local CA that TLS to the registries goes through):
  # the build downloads crates from crates.io.
  cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$name" > "$mnt/usr/local/rustup/settings.toml"
  cp "$(command -v rustup)" "$mnt/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
    ln -sf rustup "$mnt/usr/local/cargo/bin/$proxy"
  done
  buildah "${STORAGE[@]}" umount "$ctr" >/dev/null
  buildah "${STORAGE[@]}" config \
    --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$(rustc --version | cut -d' ' -f2)" "$ctr"
  buildah "${STORAGE[@]}" commit --quiet --rm "$ctr" "$rust" >/dev/null
  say "$rust made"
fi
