#!/usr/bin/env bash
# The lab's reproduction on one machine, without Docker: the service (release build, default
# settings) on the local MySQL/MariaDB and Redis, loaded with the load generator's default shape,
# once per cache mode. Everything a user would look at is collected per run: the loadtest
# report and charts, cache figures every 5 s, CPU and heap profiles, the anomaly profiler's
# captures, the slowest traces (from an OTLP receiver standing in for Jaeger), and the servers'
# own timings (Redis SLOWLOG, MySQL slow statements) to set against the client spans. The load
# generator samples TRACE_SAMPLE of its requests; every root trace (each sweep) is exported.
#
#   scripts/reproduce.sh                 # leaky, then fixed
#   scripts/reproduce.sh leaky fixed moka flip
#
# Runs: leaky | fixed | moka (CACHE_MODE for the whole run), flip (leaky, then PUT /admin/cache
# to fixed at FLIP_AT). MySQL/MariaDB must be on 127.0.0.1:3306 with user root and no password:
# the script sets long_query_time globally for the servers' own timings. Knobs (environment):
# OUT (default target/reproduce/<time>), LEAKLAB_DATABASE (default leaklab; seeded afresh each
# run), REDIS_URL, PORT (28080), OTLP_PORT (14317), TRACE_SAMPLE (share of requests traced, 0.01),
# FLIP_AT (100s), LOADTEST_ARGS (extra loadtest flags, e.g. "--rate 1000 --duration 1m").
# Any CACHE_* or other service variable in the environment reaches the service.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(leaky fixed)
OUT=${OUT:-target/reproduce/$(date -u +%Y%m%dT%H%M%SZ)}
DB_NAME=${LEAKLAB_DATABASE:-leaklab}
DB_URL=mysql://root@127.0.0.1:3306/$DB_NAME
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PORT=${PORT:-28080}
OTLP_PORT=${OTLP_PORT:-14317}
TRACE_SAMPLE=${TRACE_SAMPLE:-0.01}
FLIP_AT=${FLIP_AT:-100s}
TOKEN=${ADMIN_TOKEN:-reproduce-$$}
BASE=http://127.0.0.1:$PORT
BIN=target/release

log() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "reproduce: $*" >&2; exit 1; }

for run in "${RUNS[@]}"; do
  case $run in leaky | fixed | moka | flip) ;; *) die "unknown run '$run' (leaky, fixed, moka, flip)" ;; esac
done
command -v mariadb >/dev/null || die "needs the mariadb (or mysql) client"
command -v redis-cli >/dev/null || die "needs redis-cli"
mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null || die "MySQL/MariaDB is not answering on 127.0.0.1:3306"
redis-cli -u "$REDIS_URL" ping >/dev/null || die "Redis is not answering at $REDIS_URL"

log "building (release)"
cargo build --release -q -p reservation-service -p loadtest --bins
cargo build --release -q -p reservation-service --example span_report
mkdir -p "$OUT"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  restore_server_settings
}
trap cleanup EXIT

# The servers' own view of slow commands, to tell a slow server from a stalled client.
SLOWLOG_BEFORE=$(redis-cli -u "$REDIS_URL" config get slowlog-log-slower-than | tail -1)
LQT_BEFORE=$(mariadb -uroot -h127.0.0.1 -N -e 'SELECT @@global.long_query_time')
restore_server_settings() {
  redis-cli -u "$REDIS_URL" config set slowlog-log-slower-than "$SLOWLOG_BEFORE" >/dev/null || true
  mariadb -uroot -h127.0.0.1 -e "SET GLOBAL long_query_time = $LQT_BEFORE" || true
}
slow_statements() {
  mariadb -uroot -h127.0.0.1 -N -e "SHOW GLOBAL STATUS LIKE 'Slow_queries'" | awk '{print $2}'
}

auth=(-H "Authorization: Bearer $TOKEN")

sample_cache() { # pid out: cache figures and RSS every 5 s while the service runs
  local pid=$1 out=$2 t0
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null; do
    local stats rss
    stats=$(curl -sf "${auth[@]}" "$BASE/admin/cache") || stats=null
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    printf '{"t_s":%d,"rss_kib":%s,"cache":%s}\n' $(($(date +%s) - t0)) "${rss:-0}" "$stats" >>"$out"
    sleep 5
  done
}

for run in "${RUNS[@]}"; do
  dir=$OUT/$run
  mkdir -p "$dir"
  mode=$run flip=()
  if [ "$run" = flip ]; then mode=leaky flip=(--flip-at "$FLIP_AT" --flip-to fixed); fi
  prefix="leaklab:reproduce:$run:$$:"

  log "$run: seeding $DB_URL"
  mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`"
  DATABASE_URL=$DB_URL "$BIN/reservation-service" seed --activities 10000 --users 100000 --reset \
    >"$dir/seed.json"

  redis-cli -u "$REDIS_URL" config set slowlog-log-slower-than 10000 >/dev/null # 10 ms
  redis-cli -u "$REDIS_URL" slowlog reset >/dev/null
  mariadb -uroot -h127.0.0.1 -e 'SET GLOBAL long_query_time = 0.01' # for connections opened from now
  slow_before=$(slow_statements)

  "$BIN/examples/span_report" "127.0.0.1:$OTLP_PORT" "$dir/traces" 2>>"$dir/span_report.log" &
  sink=$!
  PIDS+=("$sink")

  log "$run: starting the service (CACHE_MODE=$mode; pre-ageing takes up to a minute)"
  CACHE_MODE=$mode DATABASE_URL=$DB_URL REDIS_URL=$REDIS_URL REDIS_PREFIX=$prefix \
    LISTEN_ADDR=127.0.0.1:$PORT ADMIN_TOKEN=$TOKEN PROFILE_DIR=$dir/profiles \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_PORT OTEL_TRACES_SAMPLER_ARG=1 LOG_FORMAT=json \
    "$BIN/reservation-service" serve >"$dir/service.log" 2>&1 &
  svc=$!
  PIDS+=("$svc")
  for _ in $(seq 600); do
    curl -sf "$BASE/readyz" >/dev/null && break
    kill -0 "$svc" 2>/dev/null || { tail -20 "$dir/service.log" >&2; die "$run: the service exited"; }
    sleep 0.5
  done
  curl -sf "$BASE/readyz" >/dev/null || die "$run: the service is not ready after 5 minutes"
  grep -m1 'cache pre-aged' "$dir/service.log" >&2 || true

  sample_cache "$svc" "$dir/cache.jsonl" &
  PIDS+=("$!")
  # A CPU profile across the first peak (60-80 s into the default shape).
  (sleep 62 && curl -sf "${auth[@]}" "$BASE/debug/pprof/profile?seconds=15&format=flamegraph" \
    -o "$dir/cpu-flamegraph.svg") &
  PIDS+=("$!")

  log "$run: load (loadtest's default shape)"
  set +e
  # shellcheck disable=SC2086 # LOADTEST_ARGS is a list of flags
  "$BIN/loadtest" run --target "$BASE" --out "$dir/loadtest" --trace-sample "$TRACE_SAMPLE" \
    --admin-token "$TOKEN" --progress plain "${flip[@]}" ${LOADTEST_ARGS:-} 2>&1 | tee "$dir/loadtest-output.txt"
  status=${PIPESTATUS[0]}
  set -e
  echo "$status" >"$dir/loadtest-exit-code"

  log "$run: collecting profiles and figures"
  curl -sf "${auth[@]}" "$BASE/debug/pprof/heap?format=flamegraph" -o "$dir/heap-flamegraph.svg" || true
  curl -sf "${auth[@]}" "$BASE/debug/pprof/heap" -o "$dir/heap.pb.gz" || true
  curl -sf "${auth[@]}" "$BASE/debug/profiles" -o "$dir/anomaly-profiles.json" || true
  curl -sf "$BASE/metrics" -o "$dir/metrics.txt" || true
  curl -sf "${auth[@]}" "$BASE/admin/cache" -o "$dir/cache-final.json" || true
  {
    echo "redis_slowlog_over_10ms $(redis-cli -u "$REDIS_URL" slowlog len)"
    echo "mysql_statements_over_10ms $(($(slow_statements) - slow_before))"
  } >"$dir/server-timings.txt"
  redis-cli -u "$REDIS_URL" slowlog get 10 >"$dir/redis-slowlog.txt"

  kill -TERM "$svc"
  wait "$svc" || true
  kill -TERM "$sink"
  wait "$sink" || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  restore_server_settings
  python3 scripts/evidence.py run "$dir" "$run" >&2
done

python3 scripts/evidence.py table "$OUT" "${RUNS[@]}" | tee "$OUT/README.md"
log "done: $OUT"
