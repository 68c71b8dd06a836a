#!/usr/bin/env bash
# `make bench-api`: `POST /api/v1/orders` (release `ordexa api`, open-loop load) next to pgbench
# running the API's own create transaction at the same rates. Writes bench/results/api.{md,json}.
# Knobs: BENCH_RATES (comma-separated, per second), BENCH_SECONDS (10), BENCH_POOL (16), BENCH_SMOKE.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init api

if [[ $SMOKE == 1 ]]; then
  RATES=20 SECONDS_=1 WARMUP=0.5
else
  RATES=${BENCH_RATES:-200,400,600,800,1000,1200,1400,1600,1800,2000} SECONDS_=${BENCH_SECONDS:-10} WARMUP=2
fi
trap bench_drop_database EXIT
bench_build
bash infra/infra.sh up cassandra
eval "$(bash infra/infra.sh env cassandra)"
bench_database --seed-dev
"$BENCH" api --ordexa "$ORDEXA" --database-url "$DB_URL" --pg-log "$STATE_DIR/postgres/log/postgres.log" \
  --cassandra-nodes "$ORDEXA_CASSANDRA_NODES" --keyspace "$PREFIX" --rates "$RATES" --seconds "$SECONDS_" \
  --warmup "$WARMUP" --pool "${BENCH_POOL:-16}" --work-dir "$WORK" --out "$OUT"
log "done in ${SECONDS}s"
