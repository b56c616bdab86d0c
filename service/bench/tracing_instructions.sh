#!/usr/bin/env bash
# What tracing costs a page view, in instructions rather than time: valgrind's callgrind counts
# the same for the same binary and input whatever else the machine runs, where requests/s on a
# shared VM move by more than the effect. For each configuration (OpenTelemetry off, on without an
# endpoint, and exporting to a local do-nothing receiver at the default 1 %, at 10 % and at 100 %
# root sampling) the release service runs under callgrind; after five warm-up views the counters
# are zeroed, exactly N page views are sent over one keep-alive connection, and the counters are
# dumped (all threads: the exporter's too). Prints instructions per view and
# the ratio to "off". Slow (the service runs ~50x slower under valgrind), but each number is exact.
#
# With CACHE_SIM=1, callgrind also simulates the L1 caches and the branch predictor, and the table
# adds per view: L1 instruction-cache misses, L1 data-read misses, mispredicted branches
# (conditional + indirect), and a weighted count, instructions + 10 x L1 misses + 15 x
# mispredictions, whose ratio to "off" estimates what the extra misses cost in time (the weights
# are typical cycle penalties, not measured on this machine, which has no hardware counters).
# Instructions alone miss that: a longer path also evicts hot code and data and trains the
# predictor worse. Still deterministic; about twice as slow.
#
# Env: DB_ROOT (mysql://root@127.0.0.1:3306), REDIS_URL, N (2000), NO_BUILD=1, KEEP=dir (keep the
# callgrind profiles there, for callgrind_annotate), CACHE_SIM=1.
set -euo pipefail
cd "$(dirname "$0")/../.."

DB_ROOT=${DB_ROOT:-mysql://root@127.0.0.1:3306}
DB_NAME=${DB_NAME:-leaklab_bench_instructions}
N=${N:-2000}
SERVICE_ADDR=127.0.0.1:18196
SINK_ADDR=127.0.0.1:18197
PAGE_URL="http://$SERVICE_ADDR/v1/activities/1/page?user_id=1"

for tool in valgrind callgrind_control curl mariadb; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS $DB_NAME"
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p reservation-service --bin reservation-service --example otlp_sink
bin=${CARGO_TARGET_DIR:-target}/release/reservation-service
export DATABASE_URL="$DB_ROOT/$DB_NAME"
"$bin" seed --activities 1000 --users 10000 --reset >/dev/null

work=$(mktemp -d)
"${CARGO_TARGET_DIR:-target}/release/examples/otlp_sink" "$SINK_ADDR" >/dev/null &
sink_pid=$!
service_pid=
trap 'kill $sink_pid ${service_pid:-} 2>/dev/null || true; [[ -z ${KEEP:-} ]] || { mkdir -p "$KEEP"; cp "$work"/*.out.1 "$KEEP"/; }; rm -rf "$work"' EXIT
for _ in $(seq "$N"); do printf 'url = "%s"\noutput = /dev/null\n' "$PAGE_URL"; done >"$work/views.cfg"

# Instructions of all threads while exactly N views are served.
count() {
  local name=$1
  shift
  env RUST_LOG=warn ANOMALY_PROFILING=false CACHE_PREAGE_HITS=0 CACHE_MODE=fixed \
    CACHE_SWEEP_INTERVAL=1h LISTEN_ADDR=$SERVICE_ADDR REDIS_PREFIX="bench:$$:" "$@" \
    valgrind --tool=callgrind ${CACHE_SIM:+--cache-sim=yes --branch-sim=yes} --callgrind-out-file="$work/$name.out" "$bin" serve \
    >"$work/$name.log" 2>&1 &
  service_pid=$!
  for _ in $(seq 120); do curl -fs "http://$SERVICE_ADDR/healthz" >/dev/null && break; sleep 1; done
  for _ in 1 2 3 4 5; do curl -fs "$PAGE_URL" >/dev/null; done
  callgrind_control -z "$service_pid" >/dev/null
  curl -fs -K "$work/views.cfg"
  callgrind_control -d "$service_pid" >/dev/null
  kill -INT "$service_pid"
  wait "$service_pid" 2>/dev/null || true
  service_pid=
  # Ir, or with CACHE_SIM: Ir,I1mr,D1mr,Bcm+Bim (events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim)
  awk -v sim="${CACHE_SIM:-}" '/^totals:/ { if (sim) print $2 "," $5 "," $6 "," $12 + $14; else print $2 }' \
    "$work/$name.out.1"
}

off=$(count off OTEL_SDK_DISABLED=true)
rows=("off $off")
rows+=("no-export $(count no-export)")
rows+=("default(1%) $(count default OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR")")
for ratio in 0.1 1.0; do
  rows+=("$ratio $(count "ratio-$ratio" OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK_ADDR" OTEL_TRACES_SAMPLER_ARG=$ratio)")
done
python3 - "$N" "${rows[@]}" <<'PY'
import sys
n = int(sys.argv[1])
rows = [(r.split()[0], [int(x) for x in r.split()[1].split(",")]) for r in sys.argv[2:]]
off = rows[0][1]
if len(off) == 1:
    print("| tracing | instructions per page view | ratio to off |")
    print("|---|---|---|")
    for name, (ir,) in rows:
        print(f"| {name} | {ir // n:,} | {ir / off[0]:.3f} |")
else:
    weighted = lambda ir, i1, d1, bm: ir + 10 * (i1 + d1) + 15 * bm
    print("| tracing | instructions per view | ratio to off | L1i misses | L1d read misses | "
          "mispredicted branches | weighted per view | weighted ratio to off |")
    print("|---|---|---|---|---|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v[0] // n:,} | {v[0] / off[0]:.3f} | {v[1] / n:,.0f} | {v[2] / n:,.0f} | "
              f"{v[3] / n:,.0f} | {weighted(*v) / n:,.0f} | {weighted(*v) / weighted(*off):.3f} |")
PY
