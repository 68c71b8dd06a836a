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

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RATES=${BENCH_RATES:-100,200,400,600,800,900,1000,1100,1200,1300,1400,1500,1600,1700,1800,2000,2200,2400}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
P99_MS=${BENCH_P99_MS:-200}
POOL=${BENCH_POOL:-16}
MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-512}
API_LOG=${BENCH_API_LOG:-info}
DB=ordexa_bench

export ORDEXA_CACHE_DIR=${ORDEXA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ordexa}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORDEXA_CACHE_DIR/target}
STATE_DIR=${ORDEXA_STATE_DIR:-$ROOT/.state}

log() { printf '[bench-api] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
WORK=$ORDEXA_CACHE_DIR/bench/api-$stamp
mkdir -p "$WORK"
log "work folder (raw JSON, pgbench logs, API log): $WORK"

api_pid=
bench_url=
admin_url=
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
  if [[ -n $admin_url && ${BENCH_KEEP_DB:-0} != 1 ]]; then
    psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------------
log "building ordexa and ordexa-bench (release)"
cargo build --release --locked -p ordexa -p ordexa-bench
ORDEXA=$CARGO_TARGET_DIR/release/ordexa
BENCH=$CARGO_TARGET_DIR/release/ordexa-bench

# --- a fresh database on the local server --------------------------------------------------------
bash infra/infra.sh up postgres
eval "$(bash infra/infra.sh env postgres)"
admin_url=$ORDEXA_DATABASE_URL
bench_url=${admin_url%/*}/$DB
psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"$ORDEXA" migrate --seed-dev --database-url "$bench_url"
sql() { psql -X -q -tA "$bench_url" -c "$1"; }
sync_commit=$(sql 'SHOW synchronous_commit')
[[ $sync_commit == on ]] || die "synchronous_commit is '$sync_commit' on the server; this benchmark needs it on"
pg_version=$(sql 'SELECT version()')
settings=()
for name in synchronous_commit fsync wal_sync_method full_page_writes shared_buffers max_wal_size commit_delay; do
  settings+=(--setting "PostgreSQL $name=$(sql "SHOW $name")")
done
settings+=(--setting "schema (migrations applied)=$(sql "SELECT string_agg(version || ' ' || description, ', ' ORDER BY version) FROM _sqlx_migrations")")
pg_pid=$(head -n1 "$STATE_DIR/postgres/data/postmaster.pid" 2>/dev/null || true)
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
commit=$(git rev-parse HEAD)
dirty=()
# Earlier results waiting to be committed do not make the measured code dirty.
[[ -z $(git status --porcelain -- . ':!bench/results') ]] || dirty=(--dirty)
out=bench/results/api-$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD).md
"$BENCH" report --api "$WORK/api.json" --pgbench "$WORK/pgbench.json" --out "$out" \
  --commit "$commit" "${dirty[@]}" --date "$started" --pg-version "$pg_version" "${settings[@]}" >/dev/null
log "results: $out"
