# syntax=docker/dockerfile:1
# Myriam's production image: cargo-chef's three stages (the dependency layer is rebuilt only when
# Cargo.toml or Cargo.lock change), then the release binaries on distroless `cc` (glibc, libgcc,
# OpenSSL's libraries, CA certificates; no shell, no package manager), as the non-root user.
#
#   docker build --build-arg MYRIAM_GIT_REVISION=$(git rev-parse --short=12 HEAD) -t myriam .
#   docker run -p 8080:8080 -v myriam-data:/data --env-file .env myriam
#
# `make image` builds this file here with buildah (scripts/image-check.sh), base images made from
# Debian's packages under the same names. Pin the bases by digest where you pull them:
#   ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:…  (skopeo inspect gives it)
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS chef
# cargo-chef computes the dependency "recipe"; pinned like every other build input.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: this layer stays cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# `.git` is not in the build context (.dockerignore): the revision comes in as an argument.
ARG MYRIAM_GIT_REVISION=unknown
RUN cargo build --release --locked --bin myriam --bin check_secrets --bin preflight \
 && mkdir -p /out/bin /out/data \
 && cp target/release/myriam target/release/check_secrets target/release/preflight /out/bin/ \
 && strip /out/bin/*

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG MYRIAM_GIT_REVISION=unknown
# Where the sources are published (`git remote get-url origin`); image-check passes it.
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="myriam" \
      org.opencontainers.image.description="BP Émondage call-handling gateway: Twilio ⇄ Vapi bridge, speech IVR, lead qualification" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${MYRIAM_GIT_REVISION}" \
      org.opencontainers.image.licenses="UNLICENSED"
COPY --from=builder /out/bin/ /usr/local/bin/
# The embedded SQLite store (and, with Supabase, the outbox) lives on the volume.
ENV ENVIRONMENT=production \
    BIND_ADDR=0.0.0.0:8080 \
    DATABASE_PATH=/data/myriam.db \
    LOG_FORMAT=json
# Distroless's `nonroot` (65532) owns the volume's mount point, so a fresh named volume is writable.
COPY --from=builder --chown=65532:65532 /out/data /data
VOLUME ["/data"]
USER 65532:65532
WORKDIR /data
EXPOSE 8080
# The gateway drains on SIGTERM: live calls finish (DRAIN_TIMEOUT_SECS), the outbox flushes.
STOPSIGNAL SIGTERM
# No curl in the image: the binary asks its own /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/myriam", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/myriam"]
CMD ["serve"]
