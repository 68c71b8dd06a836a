#!/usr/bin/env bash
# `make bench-api`: open-loop load on POST /api/v1/orders at rising rates, next to pgbench
# running the identical SQL transaction against the same PostgreSQL in the same run, with
# synchronous_commit=on. Writes bench/results/api-<UTC date>-<short commit>.md.
#
# Knobs (environment):
#   BENCH_RATES       comma-separated target rates, requests (transactions) per second
#   BENCH_DURATION    seconds measured per rate (default 10)
#   BENCH_WARMUP      seconds of load per rate before measuring (default 2)
#   BENCH_P99_MS      p99 bound of the sustain rule, ms (default 200)
#   BENCH_POOL        the API's PostgreSQL pool = pgbench's connections (default 16, the API's default)
#   BENCH_MAX_IN_FLIGHT  the load generator's in-flight cap (default 512)
#   BENCH_API_LOG     RUST_LOG of the API under load (default info, as deployed)
#   BENCH_KEEP_DB=1   keep the ordexa_bench database afterwards
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init api

RATES=${BENCH_RATES:-100,200,400,600,800,900,1000,1100,1200,1300,1400,1500,1600,1700,1800,2000,2200,2400}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
P99_MS=${BENCH_P99_MS:-200}
POOL=${BENCH_POOL:-16}
MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-512}
API_LOG=${BENCH_API_LOG:-info}
DB=ordexa_bench

log "work folder (raw JSON, pgbench logs, API log): $WORK"

api_pid=
cleanup() {
  local status=$?
  if [[ -n $api_pid ]] && kill -0 "$api_pid" 2>/dev/null; then
    log "stopping the API (pid $api_pid)"
    kill -TERM "$api_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$api_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  bench_drop_database
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------------
bench_build

# --- a fresh database on the local server --------------------------------------------------------
bench_database "$DB" --seed-dev
settings=()
bench_pg_facts
pg_pid_arg=()
[[ -n $pg_pid ]] && pg_pid_arg=(--pg-pid "$pg_pid")
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench) || die "pgbench not found (Debian's postgresql-15 ships it)"

# The run starts from empty tables and a fresh checkpoint.
fresh_tables() {
  sql 'TRUNCATE orders, order_items, outbox, idempotency_keys' >/dev/null
  sql 'CHECKPOINT' >/dev/null
}

# --- the API and pgbench, interleaved rate by rate -----------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
fresh_tables
log "starting the API on 127.0.0.1:$port (pool $POOL, RUST_LOG=$API_LOG)"
ORDEXA_DATABASE_URL=$bench_url ORDEXA_JWT_SECRET=$secret ORDEXA_HTTP_ADDR=127.0.0.1:$port \
  ORDEXA_DATABASE_MAX_CONNECTIONS=$POOL RUST_LOG=$API_LOG \
  "$ORDEXA" api >"$WORK/api.log" 2>&1 &
api_pid=$!

ORDEXA_JWT_SECRET=$secret "$BENCH" compare \
  --rates "$RATES" --duration "$DURATION" --warmup "$WARMUP" --p99-bound-ms "$P99_MS" "${pg_pid_arg[@]}" \
  --url "http://127.0.0.1:$port" --max-in-flight "$MAX_IN_FLIGHT" --api-pid "$api_pid" \
  --setting "API database pool=$POOL connections" --setting "API RUST_LOG=$API_LOG" \
  --database-url "$bench_url" --pgbench "$PGBENCH" --clients "$POOL" --work-dir "$WORK/pgbench" \
  --api-json "$WORK/api.json" --pgbench-json "$WORK/pgbench.json"
log "API memory after the run: $(grep -E '^Vm(RSS|HWM)' "/proc/$api_pid/status" | tr -s ' \t' ' ' | paste -sd';')"
orders=$(sql 'SELECT count(*) FROM orders')
outbox=$(sql 'SELECT count(*) FROM outbox')
log "the API and pgbench wrote $orders orders and $outbox outbox rows"
[[ $orders == "$outbox" ]] || die "orders ($orders) and outbox rows ($outbox) differ"
kill -TERM "$api_pid"
wait "$api_pid" || true
api_pid=

# --- the report ------------------------------------------------------------------------------------
bench_result api
"$BENCH" report --api "$WORK/api.json" --pgbench "$WORK/pgbench.json" --out "$out" \
  --commit "$commit" "${dirty[@]}" --date "$started" --pg-version "$pg_version" "${settings[@]}" >/dev/null
log "results: $out"
