#!/usr/bin/env bash
# Page endpoint with a warm cache against a bare axum handler returning the same JSON, with the
# same generator (wrk) on the same machine, one after the other. Prints requests/s and the ratio.
#
#   bash service/bench/page_vs_bare.sh            # defaults below; needs wrk (apt-get install wrk)
#
# Env: DATABASE_URL (a scratch database is created), REDIS_URL, CACHE_MODE (fixed), DURATION (15s),
# CONNECTIONS (32), THREADS (1), ROUNDS (3: alternating runs, best of each reported).
set -euo pipefail
cd "$(dirname "$0")/../.."

DB_ROOT=${DB_ROOT:-mysql://root@127.0.0.1:3306}
DB_NAME=${DB_NAME:-leaklab_bench}
CACHE_MODE=${CACHE_MODE:-fixed}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
SERVICE_ADDR=127.0.0.1:18180
BARE_ADDR=127.0.0.1:18181
PAGE_PATH="/v1/activities/1/page?user_id=1"

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS $DB_NAME"
cargo build --release -q -p reservation-service --bin reservation-service --example bare_page
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/reservation-service
export DATABASE_URL="$DB_ROOT/$DB_NAME"

"$bin" seed --activities 1000 --users 10000 --reset >/dev/null
RUST_LOG=warn CACHE_PREAGE_HITS=0 CACHE_MODE=$CACHE_MODE LISTEN_ADDR=$SERVICE_ADDR REDIS_PREFIX="bench:$$:" "$bin" serve &
service_pid=$!
trap 'kill $service_pid ${bare_pid:-} 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://$SERVICE_ADDR/healthz" >/dev/null && break; sleep 0.2; done

body=$(mktemp)
# Warm: the activity and its related ones in the in-process cache, the hot state in Redis.
for _ in 1 2 3; do curl -fs "http://$SERVICE_ADDR$PAGE_PATH" -o "$body"; done
grep -q '"activity":"memory"' "$body" || { echo "page not served from the warm cache" >&2; exit 1; }
"$target_dir/release/examples/bare_page" "$body" "$BARE_ADDR" &
bare_pid=$!
for _ in $(seq 50); do curl -fs "http://$BARE_ADDR$PAGE_PATH" >/dev/null && break; sleep 0.2; done

rps() { wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$1" | awk '/Requests\/sec/ {print $2}'; }
best_page=0; best_bare=0
for round in $(seq "$ROUNDS"); do
  page=$(rps "http://$SERVICE_ADDR$PAGE_PATH"); bare=$(rps "http://$BARE_ADDR$PAGE_PATH")
  echo "round $round: page ${page} req/s, bare ${bare} req/s"
  best_page=$(python3 -c "print(max($best_page, $page))"); best_bare=$(python3 -c "print(max($best_bare, $bare))")
done
python3 - "$best_page" "$best_bare" <<'PY'
import sys
page, bare = map(float, sys.argv[1:])
print(f"page endpoint (warm cache): {page:,.0f} req/s")
print(f"bare handler, same JSON:    {bare:,.0f} req/s")
print(f"ratio page/bare: {page / bare:.2f}")
PY
