#!/usr/bin/env bash
# The lab's main test: `docker compose up` as a user runs it, on this machine, judged from what
# the user would read. It
#   1. installs and starts what it needs (setup-docker.sh: engine, Compose v2, base images) and
#      builds the stand-ins for the third-party images no registry here can give (build-standins.sh);
#   2. copies this checkout (tracked and new files, as a clone would have them) into the home of
#      a non-root user in the `docker` group, and as that user runs the real docker-compose.yml with
#      tests/compose/standins.yml, which only swaps those images: the project's own two images
#      are built by the real Dockerfile, everything else is compose's own defaults;
#   3. waits for the default flow: mysql healthy -> seed done -> service healthy -> loadtest (the
#      default shape, flip to fixed at 140 s) -> report in ./reports/latest;
#   4. collects `docker inspect`, Prometheus's targets, the OTLP stand-in's spans and each
#      container's peak memory, restarts the service to check that the flip survives it, and
#   5. judges it all with check.py; everything it started is removed, whatever happens.
#
#   sudo tests/compose/run.sh            # evidence in target/compose-e2e/<time>/
#
# Knobs (environment): OUT, E2E_USER (leaklab-e2e), E2E_TIMEOUT (seconds for the flow, 1200),
# KEEP=1 (leave the stack up and the copy in place, for a look by hand). Any variable compose
# reads (CACHE_MODE, SERVICE_MEMORY, ...) is passed on, as a user would set it.
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"
require_root

OUT=${OUT:-$REPO_ROOT/target/compose-e2e/$(date -u +%Y%m%dT%H%M%SZ)}
E2E_USER=${E2E_USER:-leaklab-e2e}
E2E_TIMEOUT=${E2E_TIMEOUT:-1200}
PROJECT=leaklab-e2e
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

timed "install and start Docker, base images" "$REPO_ROOT/tests/compose/setup-docker.sh"
timed "stand-in images" "$REPO_ROOT/tests/compose/build-standins.sh"

# A user of the docker group, not root: the path a Linux user takes, bind mounts included.
getent group docker >/dev/null || groupadd --system docker
id "$E2E_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups docker "$E2E_USER"
E2E_UID=$(id -u "$E2E_USER")
LAB=$(getent passwd "$E2E_USER" | cut -d: -f6)/leaklab
chmod 755 "$(dirname "$LAB")"
rm -rf "$LAB"
mkdir -p "$LAB"
# What a clone holds: tracked files and new ones not ignored, as they are in this work tree.
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
  xargs -0 sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' files |
  tar --null -T - -cf -) | tar -C "$LAB" -xf -
chown -R "$E2E_USER:" "$LAB"

# This machine's own MariaDB and Redis hold 3306 and 6379: publish the lab's elsewhere, as the
# compose file tells such a user to.
export LAB_MYSQL_PORT=${LAB_MYSQL_PORT:-23306} LAB_REDIS_PORT=${LAB_REDIS_PORT:-26379}
# The variables a user could have set, passed through su's clean environment.
PASS_ENV=()
for v in $(compgen -e); do
  case $v in CACHE_* | SERVICE_MEMORY | LOAD_* | ADMIN_TOKEN | RUST_LOG | LAB_*) PASS_ENV+=("$v=${!v}") ;; esac
done
E2E_HOME=$(getent passwd "$E2E_USER" | cut -d: -f6)
# runuser, not su: su would read compose's -p and -f as its own options. A clean environment,
# as the user's login would have, plus what they chose to set.
as_user() {
  runuser -u "$E2E_USER" -- env -i HOME="$E2E_HOME" USER="$E2E_USER" PATH="/usr/local/bin:/usr/bin:/bin" \
    "${PASS_ENV[@]}" bash -c 'cd "$1" && shift && exec "$@"' as_user "$LAB" "$@"
}
compose() { as_user "$COMPOSE" -p "$PROJECT" -f docker-compose.yml -f tests/compose/standins.yml "$@"; }

cleanup() { # status: the script's exit status, kept
  local rc=$1
  # Nothing in here may end the script early (the ERR trap would, leaving the stack up).
  trap - ERR
  if [ "${KEEP:-0}" = 1 ]; then
    log "KEEP=1: the stack is still up (project $PROJECT, in $LAB)"
    return
  fi
  compose down -v --remove-orphans --timeout 20 >"$OUT/down.log" 2>&1 || true
  rm -rf "$LAB"
  exit "$rc"
}
trap 'cleanup $?' EXIT

container() { docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -1; }

timed "build the project's images (real Dockerfile)" compose build
compose config >"$OUT/compose-config.yml"

log "docker compose up (the default flow; the load generator runs for 3 m 20 s after the service is ready)"
start=$SECONDS
# up -d returns once every container has started, which for the load generator means once the
# service is healthy (after its pre-age): a dependency that never gets there fails it here.
if ! compose up -d >"$OUT/up.log" 2>&1; then
  cat "$OUT/up.log" >&2
  compose ps -a >&2 || true
  compose logs --tail 20 service seed >&2 || true
  die "docker compose up failed"
fi
sampler() { # each container's memory every 5 s, for the peak figures
  trap - EXIT ERR # a background copy of the script: never the one to take the stack down
  while sleep 5; do
    docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(docker ps -q --filter "label=com.docker.compose.project=$PROJECT") >>"$OUT/memory.log" 2>/dev/null || true
  done
}
sampler &
SAMPLER=$!
# The sampler may be gone already (it is stopped once the load ends): a failing kill must neither
# fire the ERR trap nor replace the script's exit status.
trap 'rc=$?; kill "$SAMPLER" 2>/dev/null || true; cleanup "$rc"' EXIT

loadtest=
while [ $((SECONDS - start)) -lt "$E2E_TIMEOUT" ]; do
  loadtest=$(container loadtest)
  if [ -n "$loadtest" ] && [ "$(docker inspect -f '{{.State.Status}}' "$loadtest")" = exited ]; then break; fi
  seed=$(container seed)
  if [ -n "$seed" ] && [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$seed")" = "exited 1" ]; then
    docker logs "$seed" >&2
    die "the seed failed"
  fi
  sleep 5
done
[ -n "$loadtest" ] && [ "$(docker inspect -f '{{.State.Status}}' "$loadtest")" = exited ] ||
  { compose ps >&2; compose logs --tail 30 service >&2 || true; die "the load generator did not finish within ${E2E_TIMEOUT}s"; }
TIMINGS+=("$(printf '%-45s %5ss' "compose up to the load generator's exit" $((SECONDS - start)))")
kill "$SAMPLER" 2>/dev/null || true

log "collecting the evidence into $OUT"
docker logs "$loadtest" >"$OUT/loadtest-output.txt" 2>&1
echo "$(docker inspect -f '{{.State.ExitCode}}' "$loadtest")" >"$OUT/loadtest-exit-code"
compose logs --no-color service >"$OUT/service.log" 2>&1 || true
compose logs --no-color seed >"$OUT/seed.log" 2>&1 || true
compose ps -a >"$OUT/ps.txt"
docker inspect $(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT") >"$OUT/inspect.json"
curl -fsS http://127.0.0.1:9090/api/v1/targets >"$OUT/prometheus-targets.json" ||
  echo '{"data":{"activeTargets":[]}}' >"$OUT/prometheus-targets.json"
curl -fsS http://127.0.0.1:8080/metrics >"$OUT/metrics.txt" || true
token=${ADMIN_TOKEN:-leaklab-admin}
curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:8080/admin/cache >"$OUT/cache-after-run.json" || true

# A flip must survive what users do: restart the service and read which mode came back.
compose restart service >/dev/null 2>&1
for _ in $(seq 120); do curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break; sleep 1; done
curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:8080/admin/cache >"$OUT/cache-after-restart.json" || true

# The Jaeger stand-in writes what it received when it stops.
compose stop jaeger >/dev/null 2>&1
cp -a "$LAB/reports/latest" "$OUT/report"
cp -a "$LAB/reports/spans" "$OUT/spans" 2>/dev/null || true
# check.py reads ownership from the copy: keep the owner the container gave the files.
stat -c '%u %n' "$LAB"/reports/latest/* >"$OUT/report-owners.txt"

status=0
python3 "$REPO_ROOT/tests/compose/check.py" "$OUT" --owner "$E2E_UID" >"$OUT/check.txt" || status=$?
cat "$OUT/check.txt"
python3 - "$OUT" <<'EOF' | tee -a "$OUT/check.txt"
import json, sys, re
out = sys.argv[1]
after = json.load(open(f"{out}/cache-after-restart.json")) if open(f"{out}/cache-after-restart.json").read().strip() else {}
print(f"  after `docker compose restart service`: mode {after.get('mode')}, from {after.get('mode_source')}")
peaks = {}
for line in open(f"{out}/memory.log"):
    name, used = line.split()[0], line.split()[1]
    m = re.match(r"([\d.]+)([KMG]i?B)", used)
    if m:
        v = float(m.group(1)) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1000, "MB": 1, "GB": 1000}.get(m.group(2), 1)
        peaks[name] = max(peaks.get(name, 0), v)
print("  peak memory (docker stats, every 5 s): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sorted(peaks.items())))
EOF
grep -q '"mode":"fixed"' "$OUT/cache-after-restart.json" || { echo "FAIL: the service came back from a restart without the flip" | tee -a "$OUT/check.txt"; status=1; }
print_timings
exit "$status"
