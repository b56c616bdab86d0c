#!/usr/bin/env bash
# Proves the real docker-compose.yml runs here with the stand-ins: builds the project's image
# with the real Dockerfile, starts mysql, redis, prometheus and jaeger, runs the seed, checks each
# one answers, then tears everything down (volumes included). Never starts service or loadtest.
# Runs as its own compose project (leaklab-smoke), so a `leaklab` stack is left alone.
#
#   sudo tests/compose/setup-docker.sh && sudo tests/compose/build-standins.sh
#   sudo tests/compose/smoke.sh    # KEEP=1: leave the stack running; BUILD=0: use existing images
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"
require_docker
[ -x "$COMPOSE" ] || die "no $COMPOSE: run tests/compose/setup-docker.sh first"

own_spans_dir=
if [ -z "${STANDIN_SPANS_DIR:-}" ]; then
	STANDIN_SPANS_DIR=$(mktemp -d /tmp/leaklab-smoke-spans.XXXXXX)
	own_spans_dir=1
fi
export STANDIN_SPANS_DIR
files=(-f "$REPO_ROOT/docker-compose.yml" -f "$REPO_ROOT/tests/compose/standins.yml")
# The host's own MariaDB/Redis (the ones `cargo test` uses) hold 3306/6379 here, and `up` would
# fail with "address already in use": publish the stack's elsewhere, as docker-compose.yml allows.
if ss -ltn '( sport = :3306 or sport = :6379 )' | grep -q LISTEN; then
	export LAB_MYSQL_PORT=${LAB_MYSQL_PORT:-13306} LAB_REDIS_PORT=${LAB_REDIS_PORT:-16379}
	log "3306/6379 taken on this host: publishing mysql/redis on $LAB_MYSQL_PORT/$LAB_REDIS_PORT"
fi
dc() { "$COMPOSE" -p leaklab-smoke "${files[@]}" "$@"; }

teardown() {
	if [ -n "${KEEP:-}" ]; then
		log "KEEP=1: stack left running; stop it with: $COMPOSE -p leaklab-smoke ${files[*]} down -v"
		return
	fi
	dc down -v --remove-orphans >/dev/null 2>&1 || true
	[ -z "$own_spans_dir" ] || rm -rf "$STANDIN_SPANS_DIR"
}
trap teardown EXIT

cid() { dc ps -a -q "$1"; }
on_net() { # on_net CMD...: run CMD in a throwaway container on the stack's network
	docker run --rm --network leaklab-smoke_default debian:bookworm-slim "$@"
}

if [ "${BUILD:-1}" = 1 ]; then
	timed "compose build (real Dockerfile)" dc build
else
	log "BUILD=0: using the existing leaklab/* images"
fi
timed "up -d --wait mysql redis prometheus jaeger" dc up -d --wait --wait-timeout 300 mysql redis prometheus jaeger
timed "up seed" dc up --no-log-prefix seed
[ "$(docker inspect -f '{{.State.ExitCode}}' "$(cid seed)")" = 0 ] || die "seed exited non-zero (see its output above)"

[ "$(docker inspect -f '{{.State.Health.Status}}' "$(cid mysql)")" = healthy ] || die "mysql not healthy"
activities=$(dc exec -T mysql mysql -uroot -N -e 'SELECT COUNT(*) FROM leaklab.activities')
[ "$activities" = 10000 ] || die "expected 10000 seeded activities, found '$activities'"
dc exec -T mysql mysql -uroot -N -e 'SHOW DATABASES' | grep -qx test || die "init.sql did not run (no database test)"
log "mysql: healthy, 10000 activities seeded, init.sql ran"

[ "$(on_net bash -c 'exec 3<>/dev/tcp/redis/6379; printf "PING\r\n" >&3; head -c 5 <&3')" = +PONG ] ||
	die "redis does not answer PING over the compose network"
log "redis: PONG over the network"

on_net curl -fsS --retry 10 --retry-connrefused --retry-delay 1 http://prometheus:9090/-/ready >/dev/null ||
	die "prometheus not ready on :9090"
curl -fsS http://127.0.0.1:9090/-/ready >/dev/null || die "prometheus not reachable on the published port 9090"
log "prometheus: ready on :9090 (network and published port)"

on_net bash -c 'exec 3<>/dev/tcp/jaeger/4317' || die "jaeger stand-in not listening on 4317"
log "jaeger stand-in: listening on jaeger:4317"

# Its report is written on SIGTERM: stopping it proves compose's shutdown reaches span_report.
dc stop jaeger >/dev/null
[ -s "$STANDIN_SPANS_DIR/spans.json" ] || die "jaeger stand-in wrote no $STANDIN_SPANS_DIR/spans.json on stop"
log "jaeger stand-in: wrote $STANDIN_SPANS_DIR/spans.json on stop"

print_timings
log "smoke test passed"
