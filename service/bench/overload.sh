#!/usr/bin/env bash
# Overload, one service configuration after another in one run: where the service tips over in a
# ramp (RAMP, default 1,000 to 7,000 page views/s over 60 s) and how it holds at about 3x the
# knee (BURST, default 8,500/s for 20 s). Release build, `fixed` cache, no pre-age, no trace
# export, the load generator on the same machine; compare the configurations with each other,
# not with another run's figures.
#
#   service/bench/overload.sh                                    # the three configurations below
#   CONFIGS="adaptive fixed-512" ROUNDS=2 service/bench/overload.sh
#
# Configurations: adaptive (the default limit), adaptive-T (LIMIT_TARGET_LATENCY=T, e.g.
# adaptive-20ms), fixed-N (CONCURRENCY_LIMIT=fixed MAX_IN_FLIGHT=N).
# Knobs: OUT (default target/overload/<time>), CONFIGS, ROUNDS (1), PORT (28095), NO_BUILD=1,
# LEAKLAB_DATABASE (leaklab; seeded afresh once), RAMP and BURST (loadtest flags).
# Writes OUT/<config>/<round>/{ramp,burst}/ (loadtest output, summary.json, windows.csv, the
# service's /metrics, RSS samples) and OUT/README.md, the table of both.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-target/overload/$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a CONFIGS <<<"${CONFIGS:-fixed-512 fixed-64 adaptive}"
ROUNDS=${ROUNDS:-1}
PORT=${PORT:-28095}
DB_NAME=${LEAKLAB_DATABASE:-leaklab}
DB_URL=mysql://root@127.0.0.1:3306/$DB_NAME
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
RAMP=${RAMP:---rate 500 --stages 10s:1000,60s:7000 --connections 1024}
BURST=${BURST:---rate 8500 --duration 20s --connections 2048}
BASE=http://127.0.0.1:$PORT
BIN=target/release

log() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "overload: $*" >&2; exit 1; }

for config in "${CONFIGS[@]}"; do
  case $config in adaptive | adaptive-[0-9]* | fixed-[0-9]*) ;; *) die "unknown configuration '$config'" ;; esac
done
mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null || die "MySQL/MariaDB is not answering on 127.0.0.1:3306"
redis-cli -u "$REDIS_URL" ping >/dev/null || die "Redis is not answering at $REDIS_URL"

if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building (release)"
  cargo build --release -q -p reservation-service -p loadtest --bins
fi
mkdir -p "$OUT"
log "seeding $DB_URL"
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`"
DATABASE_URL=$DB_URL "$BIN/reservation-service" seed --activities 10000 --users 100000 --reset >"$OUT/seed.json"

SVC=
cleanup() { [ -z "$SVC" ] || kill "$SVC" 2>/dev/null || true; }
trap cleanup EXIT

sample_rss() { # pid out
  while kill -0 "$1" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null >>"$2" || true
    sleep 1
  done
}

# One fresh service per load, so that neither inherits the other's limit or memory.
serve_and_load() { # config dir loadtest-flags...
  local config=$1 dir=$2; shift 2
  local env=(CACHE_MODE=fixed CACHE_PREAGE_HITS=0 DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL"
    REDIS_PREFIX="leaklab:overload:$$:" LISTEN_ADDR="127.0.0.1:$PORT" LOG_FORMAT=json)
  case $config in
    adaptive) env+=(CONCURRENCY_LIMIT=adaptive) ;;
    adaptive-*) env+=(CONCURRENCY_LIMIT=adaptive LIMIT_TARGET_LATENCY="${config#adaptive-}") ;;
    fixed-*) env+=(CONCURRENCY_LIMIT=fixed MAX_IN_FLIGHT="${config#fixed-}") ;;
  esac
  mkdir -p "$dir"
  env -u OTEL_EXPORTER_OTLP_ENDPOINT "${env[@]}" "$BIN/reservation-service" serve >"$dir/service.log" 2>&1 &
  SVC=$!
  for _ in $(seq 120); do
    curl -sf "$BASE/readyz" >/dev/null && break
    kill -0 "$SVC" 2>/dev/null || { tail -20 "$dir/service.log" >&2; die "$config: the service exited"; }
    sleep 0.5
  done
  curl -sf "$BASE/readyz" >/dev/null || die "$config: the service is not ready after 60 s"
  sample_rss "$SVC" "$dir/rss_kib.txt" &
  set +e
  "$BIN/loadtest" run --target "$BASE" --out "$dir" --progress plain "$@" >"$dir/loadtest-output.txt" 2>&1
  set -e
  curl -sf "$BASE/metrics" -o "$dir/metrics.txt" || true
  kill -TERM "$SVC"
  wait "$SVC" || true
  SVC=
  redis-cli -u "$REDIS_URL" --scan --pattern "leaklab:overload:$$:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
}

for round in $(seq "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    log "round $round: $config, ramp"
    # shellcheck disable=SC2086 # RAMP and BURST are lists of flags
    serve_and_load "$config" "$OUT/$config/$round/ramp" $RAMP
    log "round $round: $config, about 3x the knee"
    # shellcheck disable=SC2086
    serve_and_load "$config" "$OUT/$config/$round/burst" $BURST
  done
done

python3 service/bench/overload_table.py "$OUT" "${CONFIGS[@]}" | tee "$OUT/README.md"
log "done: $OUT"
