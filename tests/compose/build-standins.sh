#!/usr/bin/env bash
# Builds the STAND-IN images for the third-party services docker-compose.yml needs but that
# cannot be pulled here (see tests/compose/standins.yml). Run after setup-docker.sh. Always
# rebuilds; Docker's layer cache makes a rerun take seconds.
#
#   sudo tests/compose/build-standins.sh
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"
require_docker
image_exists debian:$DEBIAN_SUITE-slim || die "no debian:$DEBIAN_SUITE-slim image: run tests/compose/setup-docker.sh first"

HERE=$REPO_ROOT/tests/compose/standins
CTX=
trap '[ -z "$CTX" ] || rm -rf "$CTX"' EXIT

build() { # build TAG DIR
	DOCKER_BUILDKIT=0 docker build -t "$1" "$2"
}

# The Jaeger stand-in runs the project's own OTLP receiver, built here on the host (the toolchain
# is here, and the binary links against the same bookworm glibc as the image).
build_span_report() {
	command -v cargo >/dev/null ||
		die "no cargo on PATH (under sudo, PATH is root's: sudo env PATH=\"\$PATH\" $0)"
	# A debug build: it receives a few hundred spans a second at most, and CI has just built
	# the workspace's examples in that profile (`cargo test`), so this costs seconds, not a
	# release build of the whole dependency tree.
	(cd "$REPO_ROOT" && cargo build --locked -p reservation-service --example span_report)
	local target
	target=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
	SPAN_REPORT=$target/debug/examples/span_report
	[ -x "$SPAN_REPORT" ] || die "cargo succeeded but $SPAN_REPORT is missing"
}

build_jaeger() {
	# A temporary context: the binary must not land inside the repository.
	CTX=$(mktemp -d /var/tmp/leaklab-jaeger-ctx.XXXXXX)
	cp -a "$HERE/jaeger/." "$CTX/"
	cp "$SPAN_REPORT" "$CTX/span_report"
	build "$STANDIN_JAEGER" "$CTX"
}

timed "image $STANDIN_MYSQL" build "$STANDIN_MYSQL" "$HERE/mysql"
timed "image $STANDIN_REDIS" build "$STANDIN_REDIS" "$HERE/redis"
timed "image $STANDIN_PROMETHEUS" build "$STANDIN_PROMETHEUS" "$HERE/prometheus"
timed "cargo build span_report (host)" build_span_report
timed "image $STANDIN_JAEGER" build_jaeger

print_timings
docker images --filter reference='leaklab-standin/*' >&2
