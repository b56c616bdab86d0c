#!/usr/bin/env bash
# Page-endpoint throughput with tracing off, on without export, and exporting at 1 %, 10 % and
# 100 % root sampling and at the service's default ratio to a local OTLP/gRPC receiver
# (examples/otlp_sink.rs), as ratios to "off", in one run. Each configuration restarts the
# release service; every round runs every configuration (in a rotated order), each ratio is taken
# against the same round's "off", and the table shows the MEDIAN over rounds of those ratios, so
# that other work on the machine, which moves whole rounds, cancels out as far as it can.
#
#   bash service/bench/tracing_overhead.sh        # needs wrk (apt-get install wrk)
#
# Env: DATABASE_URL root (DB_ROOT), REDIS_URL, CACHE_MODE (fixed), DURATION (10s),
# CONNECTIONS (32), THREADS (1), ROUNDS (5), CONFIGS (all six), NO_BUILD=1 (use the release
# binaries already built).
set -euo pipefail
cd "$(dirname "$0")/../.."

DB_ROOT=${DB_ROOT:-mysql://root@127.0.0.1:3306}
DB_NAME=${DB_NAME:-leaklab_bench_tracing}
CACHE_MODE=${CACHE_MODE:-fixed}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
SERVICE_ADDR=127.0.0.1:18190
SINK_ADDR=127.0.0.1:18191
PAGE_PATH="/v1/activities/1/page?user_id=1"
CONFIGS=${CONFIGS:-"off no-export 1% 10% 100% default"}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS $DB_NAME"
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p reservation-service --bin reservation-service --example otlp_sink
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/reservation-service
export DATABASE_URL="$DB_ROOT/$DB_NAME"
"$bin" seed --activities 1000 --users 10000 --reset >/dev/null

sink_log=$(mktemp)
"$target_dir/release/examples/otlp_sink" "$SINK_ADDR" >"$sink_log" &
sink_pid=$!
service_pid=
trap 'kill $sink_pid ${service_pid:-} 2>/dev/null || true' EXIT
sink_count() { local n; n=$(tail -n1 "$sink_log" 2>/dev/null); echo "${n:-0}"; }

# Starts the service for one configuration; prints nothing, sets service_pid.
start() {
  local env=(RUST_LOG=warn ANOMALY_PROFILING=false CACHE_PREAGE_HITS=0 CACHE_MODE="$CACHE_MODE" LISTEN_ADDR=$SERVICE_ADDR REDIS_PREFIX="bench:$$:")
  case $1 in
    off) env+=(OTEL_SDK_DISABLED=true) ;;
    no-export) ;;
    default) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR") ;;
    *%) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR"
              OTEL_TRACES_SAMPLER_ARG=$(python3 -c "print(${1%\%} / 100)")) ;;
  esac
  env "${env[@]}" "$bin" serve &
  service_pid=$!
  for _ in $(seq 50); do curl -fs "http://$SERVICE_ADDR/healthz" >/dev/null && break; sleep 0.2; done
  for _ in 1 2 3; do curl -fs "http://$SERVICE_ADDR$PAGE_PATH" >/dev/null; done
}

stop() {
  kill -INT "$service_pid" 2>/dev/null || echo "the service ($1) exited before the end of its run" >&2
  wait "$service_pid" 2>/dev/null || true
  service_pid=
}

# CPU seconds (user + system) the service has used so far: less sensitive than req/s to other
# work on the machine.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$service_pid/stat"; }

rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://$SERVICE_ADDR$PAGE_PATH" \
          | awk '/Requests\/sec/ {print $2}'; }

results=$(mktemp)
configs=($CONFIGS)
for round in $(seq "$ROUNDS"); do
  # Rotate the order, so that no configuration always runs first or right after a build.
  n=${#configs[@]}
  for k in $(seq 0 $((n - 1))); do
    config=${configs[$(( (k + round - 1) % n ))]}
    start "$config"
    before=$(sink_count)
    cpu_before=$(cpu_s)
    r=$(rps)
    cpu_after=$(cpu_s)
    sleep 1.5   # the exporter's last batch, and the sink's next count line
    after=$(sink_count)
    stop "$config"
    s=$(python3 -c "print(round(($after - $before) / float('${DURATION%s}')))")
    us=$(python3 -c "print(round(($cpu_after - $cpu_before) * 1e6 / ($r * float('${DURATION%s}')), 1))")
    echo "round $round: $config ${r} req/s, ${us} us CPU/request, ${s} spans/s received, load $(cut -d' ' -f1 /proc/loadavg)"
    echo "$round $config $r $us $s" >>"$results"
  done
done

echo
python3 - "$results" $CONFIGS <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
configs = sys.argv[2:]
by = {(int(r[0]), r[1]): (float(r[2]), float(r[3]), int(r[4])) for r in rows}
rounds = sorted({k[0] for k in by})
print(f"| tracing | req/s (median of {len(rounds)}) | ratio to off (median of per-round ratios) | min–max | "
      "service CPU µs/request (median) | CPU ratio to off (median) | spans/s received |")
print("|---|---|---|---|---|---|---|")
for c in configs:
    rps = [by[(r, c)][0] for r in rounds]
    us = [by[(r, c)][1] for r in rounds]
    ratios = [by[(r, c)][0] / by[(r, 'off')][0] for r in rounds]
    cpu = [by[(r, 'off')][1] / by[(r, c)][1] for r in rounds]
    spans = [by[(r, c)][2] for r in rounds]
    print(f"| {c} | {statistics.median(rps):,.0f} | {statistics.median(ratios):.3f} | "
          f"{min(ratios):.3f}–{max(ratios):.3f} | {statistics.median(us):.1f} | "
          f"{statistics.median(cpu):.3f} | {statistics.median(spans):,.0f} |")
PY
