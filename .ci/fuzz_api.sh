#!/usr/bin/env bash
# Fuzzes the running service from its own OpenAPI description with schemathesis.
#
# A fresh database ($FUZZ_DB, dropped first), a small seed, `serve` on 127.0.0.1 with free ports
# (admin routes on their own listener) and its own Redis key prefix; then schemathesis against the
# public /openapi.json and the admin listener's /openapi.json, with the checks below. The figures
# (requests served, by status class, and the time taken) come from the service's own /metrics.
# Fails loudly on any schemathesis failure, on any 5xx the service counted, or if it dies.
#
#   bash .ci/fuzz_api.sh                       # after `cargo build --workspace --bins`
#   FUZZ_MAX_EXAMPLES=500 bash .ci/fuzz_api.sh # more cases per operation
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
FUZZ_DB=${FUZZ_DB:-leaklab_fuzz}
# Generated cases per operation and phase: bounds the run (about 2 minutes on 2 shared cores, debug build).
FUZZ_MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-250}
FUZZ_SEED=${FUZZ_SEED:-8}
FUZZ_OUT=${FUZZ_OUT:-target/fuzz}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
BIN=${BIN:-target/debug/reservation-service}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}

log() { printf '\n==> fuzz: %s\n' "$*"; }
die() { printf 'FATAL: fuzz: %s\n' "$*" >&2; exit 1; }

# pip show exits 1 when the package is absent (a fresh machine): under pipefail that must not end the script.
installed=$(python3 -m pip show schemathesis 2>/dev/null | awk '/^Version:/ {print $2}' || true)
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION (found: ${installed:-none})"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi
ST=(python3 -m schemathesis.cli)
# Run from $FUZZ_OUT so that schemathesis' own cache (.schemathesis/) lands there, not in the tree.
st() { (cd "$FUZZ_OUT" && "${ST[@]}" "$@"); }
"${ST[@]}" --version | grep -qF "$SCHEMATHESIS_VERSION" || die "schemathesis is not $SCHEMATHESIS_VERSION"

[ -x "$BIN" ] || cargo build -p reservation-service --bin reservation-service

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
ADMIN_PORT=$(free_port)
while [ "$ADMIN_PORT" = "$PORT" ]; do ADMIN_PORT=$(free_port); done
PREFIX="leaklab-fuzz:$$:$(date +%s):"
TOKEN="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
BASE="http://127.0.0.1:$PORT"
ADMIN_BASE="http://127.0.0.1:$ADMIN_PORT"
rm -rf "$FUZZ_OUT"
mkdir -p "$FUZZ_OUT"
FUZZ_OUT=$(cd "$FUZZ_OUT" && pwd)

service_pid=
cleanup() {
  local rc=$?
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  redis-cli -h 127.0.0.1 --scan --pattern "${PREFIX}*" 2>/dev/null \
    | xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
  mariadb -uroot -h"$MYSQL_HOST" -e "DROP DATABASE IF EXISTS \`$FUZZ_DB\`" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: service log tail ($FUZZ_OUT/service.log):" >&2
    tail -n 30 "$FUZZ_OUT/service.log" >&2 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "fresh database $FUZZ_DB"
mariadb -uroot -h"$MYSQL_HOST" -e "DROP DATABASE IF EXISTS \`$FUZZ_DB\`; CREATE DATABASE \`$FUZZ_DB\`"
export DATABASE_URL="mysql://root@$MYSQL_HOST:3306/$FUZZ_DB"
"$BIN" migrate
"$BIN" seed --activities 200 --users 500 --reservations-per-user 2 --reset >"$FUZZ_OUT/seed.json"

log "serve on $BASE (admin on $ADMIN_BASE, Redis prefix $PREFIX)"
# A generous quota: this run tests input handling, not latency (a 504 would count as a 5xx).
LISTEN_ADDR="127.0.0.1:$PORT" ADMIN_LISTEN_ADDR="127.0.0.1:$ADMIN_PORT" ADMIN_TOKEN="$TOKEN" \
  REDIS_PREFIX="$PREFIX" CACHE_MODE=fixed CACHE_PREAGE_HITS=0 ANOMALY_PROFILING=false \
  REQUEST_QUOTA=10s PROFILE_DIR="$FUZZ_OUT/profiles" RUST_LOG=warn OTEL_SDK_DISABLED=true \
  "$BIN" serve >"$FUZZ_OUT/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 60); do
  if curl -fsS "$BASE/readyz" 2>/dev/null | grep -q '"ready"'; then break; fi
  kill -0 "$service_pid" 2>/dev/null || die "the service exited during start-up"
  sleep 1
done
curl -fsS "$BASE/readyz" | grep -q '"ready"' || die "the service is not ready"

started=$(date +%s)
status=0
log "schemathesis: public API ($BASE/openapi.json), $FUZZ_MAX_EXAMPLES examples per operation"
st run "$BASE/openapi.json" --checks "$CHECKS" \
  --max-examples "$FUZZ_MAX_EXAMPLES" --seed "$FUZZ_SEED" --workers 2 \
  --request-timeout 20 --suppress-health-check too_slow,filter_too_much \
  --report junit --report-junit-path "$FUZZ_OUT/public.xml" || status=$?

# The CPU profile holds its request for up to 120 s by design: left out.
log "schemathesis: admin listener ($ADMIN_BASE/openapi.json), with the token"
st run "$ADMIN_BASE/openapi.json" --checks "$CHECKS" \
  -H "Authorization: Bearer $TOKEN" --exclude-path /debug/pprof/profile \
  --max-examples "$FUZZ_MAX_EXAMPLES" --seed "$FUZZ_SEED" --workers 2 \
  --request-timeout 30 --suppress-health-check too_slow,filter_too_much \
  --report junit --report-junit-path "$FUZZ_OUT/admin.xml" || status=$?
elapsed=$(( $(date +%s) - started ))

kill -0 "$service_pid" 2>/dev/null || die "the service died during the run"
curl -fsS "$BASE/metrics" >"$FUZZ_OUT/metrics.txt"
metrics_rc=0
python3 - "$FUZZ_OUT/metrics.txt" "$elapsed" "$FUZZ_OUT/summary.txt" <<'PY' || metrics_rc=$?
import re, sys, collections
text, elapsed, out = open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[3]
by_class, by_status = collections.Counter(), collections.Counter()
for line in text.splitlines():
    m = re.match(r'http_server_requests_total\{(.*)\} (\S+)$', line)
    if not m:
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    n = int(float(m.group(2)))
    if labels.get("route") in ("/metrics", "/readyz"):
        continue
    by_status[labels["status"]] += n
    by_class[labels["status"][0] + "xx"] += n
total = sum(by_class.values())
lines = [f"requests served: {total} in {elapsed} s",
         "by class: " + ", ".join(f"{k} {v}" for k, v in sorted(by_class.items())),
         "by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(3 if by_class.get("5xx") else 0)
PY
[ "$metrics_rc" -eq 0 ] || { echo "FATAL: fuzz: the service answered 5xx (see above)" >&2; status=1; }
[ "$status" -eq 0 ] || die "schemathesis found failures (reports in $FUZZ_OUT)"
log "passed: $(head -n1 "$FUZZ_OUT/summary.txt")"
