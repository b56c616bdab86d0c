# One Dockerfile, two images:
#   docker build --target service  -t leaklab/reservation-service .
#   docker build --target loadtest -t leaklab/loadtest .
# Dependencies are compiled in their own layer (cargo-chef), so a source change rebuilds only
# the workspace's crates. No `# syntax=` line and no `RUN --mount`: the file must also build with
# the classic builder (DOCKER_BUILDKIT=0, or Docker without buildx), and the cooked layer already
# caches the dependencies those cache mounts were for.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked \
        -p reservation-service --bin reservation-service \
        -p loadtest --bin loadtest \
 && mkdir -p /out \
 && cp target/release/reservation-service target/release/loadtest /out/

FROM debian:${DEBIAN}-slim AS runtime
# curl serves the healthchecks; ca-certificates lets the binaries reach TLS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin leaklab

FROM runtime AS service
COPY --from=builder /out/reservation-service /usr/local/bin/reservation-service
# The anomaly profiler's captures: a directory the non-root user owns (under `/` it could not
# write; they are served at /debug/profiles).
RUN install -d -o 10001 -g 10001 /var/lib/leaklab /var/lib/leaklab/profiles
WORKDIR /var/lib/leaklab
USER 10001
ENV LISTEN_ADDR=0.0.0.0:8080 PROFILE_DIR=/var/lib/leaklab/profiles
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["reservation-service"]
CMD ["serve"]

FROM runtime AS loadtest
COPY --from=builder /out/loadtest /usr/local/bin/loadtest
COPY deploy/loadtest/entrypoint.sh /usr/local/bin/loadtest-entrypoint
# Starts as root only to step down to the owner of the mounted /reports (see the entrypoint);
# the generator itself never runs as root unless that directory is root's.
RUN install -d -o 10001 -g 10001 /reports
WORKDIR /reports
ENTRYPOINT ["loadtest-entrypoint"]
CMD ["--help"]
