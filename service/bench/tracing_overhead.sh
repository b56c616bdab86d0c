#!/usr/bin/env bash
# Page-endpoint throughput with tracing off against tracing on (without export, and exporting at
# 1 %, 10 % and 100 % root sampling and at the service's default ratio to a local OTLP/gRPC
# receiver, examples/otlp_sink.rs), as ratios to "off".
#
# Paired, side by side: each measurement runs "off" and one other configuration AT THE SAME TIME,
# two release services each loaded by its own wrk (one thread), so that whatever else the shared
# machine does in those seconds slows both alike. Run one after the other, "off" against itself
# gave a median ratio of 1.058 over seven rounds here (per round 0.92 to 1.17): the neighbours'
# load moves between runs by more than the effect being measured. Pinning each pair to its own
# core was worse (0.50 to 1.52): the two vCPUs do not run at the same speed. Which service gets
# which port and is started first alternates by round. Per pair it reports requests/s and
# service CPU (user + system, from /proc) per request; the table gives the median over rounds of
# the per-round ratios, with a 95 % bootstrap interval of that median and the range
# (tracing_overhead_table.py, which also pools saved outputs of several runs). The two
# services share the cores, so each one's requests/s is about half of what it would be alone.
# "off-again" (off against itself) is the control: how far apart two identical services land.
#
#   bash service/bench/tracing_overhead.sh        # needs wrk (apt-get install wrk)
#
# Env: DB_ROOT (mysql://root@127.0.0.1:3306), REDIS_URL, CACHE_MODE (fixed), DURATION (5s),
# CONNECTIONS (32 per service), ROUNDS (12), CONFIGS ("off-again no-export 1% 10% 100% default";
# also "heap-off": tracing off and jemalloc's heap-profile sampling off, to compare with what the
# heap profiler costs), NO_BUILD=1 (use the release binaries already built).
set -euo pipefail
cd "$(dirname "$0")/../.."

DB_ROOT=${DB_ROOT:-mysql://root@127.0.0.1:3306}
DB_NAME=${DB_NAME:-leaklab_bench_tracing}
CACHE_MODE=${CACHE_MODE:-fixed}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-12}
ADDRS=(127.0.0.1:18190 127.0.0.1:18192)
SINK_ADDR=127.0.0.1:18191
PAGE_PATH="/v1/activities/1/page?user_id=1"
CONFIGS=${CONFIGS:-"off-again no-export 1% 10% 100% default"}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
# Every configuration runs against "off"; "off" against itself is the control, "off-again" (two
# sides of one name could not be told apart in the table).
[[ " $CONFIGS " != *" off "* ]] || { echo 'CONFIGS: use "off-again" for off against off' >&2; exit 2; }
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS $DB_NAME"
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p reservation-service --bin reservation-service --example otlp_sink
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/reservation-service
export DATABASE_URL="$DB_ROOT/$DB_NAME"
"$bin" seed --activities 1000 --users 10000 --reset >/dev/null

sink_log=$(mktemp)
"$target_dir/release/examples/otlp_sink" "$SINK_ADDR" >"$sink_log" &
sink_pid=$!
pids=()
results=$(mktemp)
work=$(mktemp -d)
trap 'kill $sink_pid ${pids[@]+"${pids[@]}"} 2>/dev/null || true; rm -rf "$sink_log" "$results" "$work"' EXIT
sink_count() { local n; n=$(tail -n1 "$sink_log" 2>/dev/null); echo "${n:-0}"; }

# Starts the service for one configuration on one address; appends its pid to pids.
start() {
  local config=$1 addr=$2
  local env=(RUST_LOG=warn ANOMALY_PROFILING=false CACHE_PREAGE_HITS=0 CACHE_MODE="$CACHE_MODE"
             LISTEN_ADDR="$addr" REDIS_PREFIX="bench:$$:$addr:")
  case $config in
    off|off-again) env+=(OTEL_SDK_DISABLED=true) ;;
    # For scale: tracing off, and the always-on heap profiler's sampling off too.
    heap-off) env+=(OTEL_SDK_DISABLED=true MALLOC_CONF=prof_active:false) ;;
    no-export) ;;
    default) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR") ;;
    *%) env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR"
              OTEL_TRACES_SAMPLER_ARG=$(python3 -c "print(${config%\%} / 100)")) ;;
    *) echo "unknown configuration: $config" >&2; exit 2 ;;
  esac
  env "${env[@]}" "$bin" serve &
  pids+=($!)
  for _ in $(seq 50); do curl -fs "http://$addr/healthz" >/dev/null && break; sleep 0.2; done
  curl -fs "http://$addr/healthz" >/dev/null || { echo "the service ($config) did not start" >&2; exit 1; }
  for _ in 1 2 3; do curl -fs "http://$addr$PAGE_PATH" >/dev/null; done
}

stop_all() {
  for pid in "${pids[@]}"; do
    kill -INT "$pid" 2>/dev/null || echo "a service exited before the end of its run" >&2
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
  for config in $CONFIGS; do
    # Alternate ports and start order, so that neither side always has the same one.
    if (( round % 2 )); then order=(off "$config"); else order=("$config" off); fi
    start "${order[0]}" "${ADDRS[0]}"
    start "${order[1]}" "${ADDRS[1]}"
    before=$(sink_count)
    cpu0=($(cpu_s "${pids[0]}") $(cpu_s "${pids[1]}"))
    wrks=()
    for i in 0 1; do
      wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://${ADDRS[$i]}$PAGE_PATH" >"$work/wrk$i" &
      wrks+=($!)
    done
    wait "${wrks[@]}"
    cpu1=($(cpu_s "${pids[0]}") $(cpu_s "${pids[1]}"))
    stop_all    # which flushes the exporter's last batch
    sleep 1.5   # the sink's next count line
    after=$(sink_count)
    line=
    for i in 0 1; do
      r=$(awk '/Requests\/sec/ {print $2}' "$work/wrk$i")
      us=$(python3 -c "print(round((${cpu1[$i]} - ${cpu0[$i]}) * 1e6 / ($r * float('${DURATION%s}')), 1))")
      line+=" ${order[$i]} $r $us"
    done
    s=$(python3 -c "print(round(($after - $before) / float('${DURATION%s}')))")
    echo "round $round:$line, ${s} spans/s received, load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$results"
  done
done

echo
# Saved outputs of several runs pool the same way: tracing_overhead_table.py run1.log run2.log
python3 service/bench/tracing_overhead_table.py "$results"
