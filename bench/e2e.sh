#!/usr/bin/env bash
# `make bench-e2e`: the release `ordexa projector` draining a preloaded topic next to the raw
# driver making the same writes; then `ordexa api`, `relay` and `projector` under open-loop
# creates: commit → visible in Cassandra and each workload's memory. A database, topics and
# keyspaces of the run's own, removed afterwards. Writes bench/results/e2e.{md,json}.
# Knobs: BENCH_ORDERS (20000, 4 events each), BENCH_RATE (100 creates/s), BENCH_SECONDS (30), BENCH_SMOKE.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init e2e

if [[ $SMOKE == 1 ]]; then
  ORDERS=200 RATE=20 SECONDS_=2 WARMUP=0.5
else
  ORDERS=${BENCH_ORDERS:-20000} RATE=${BENCH_RATE:-100} SECONDS_=${BENCH_SECONDS:-30} WARMUP=3
fi
trap bench_drop_database EXIT
bench_build
bash infra/infra.sh up kafka cassandra
eval "$(bash infra/infra.sh env kafka cassandra)"
bench_database --seed-dev
"$BENCH" e2e --ordexa "$ORDEXA" --database-url "$DB_URL" --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" \
  --cassandra-nodes "$ORDEXA_CASSANDRA_NODES" --prefix "$PREFIX" --orders "$ORDERS" --rate "$RATE" \
  --seconds "$SECONDS_" --warmup "$WARMUP" --work-dir "$WORK" --out "$OUT"
log "done in ${SECONDS}s"
