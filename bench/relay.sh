#!/usr/bin/env bash
# `make bench-relay`: one release `ordexa relay`, then Debezium Server (bench/debezium.sh), each on
# a fresh copy of the same outbox: drain a backlog, commit → Kafka at a fixed load, memory; and the
# relay's SQL and producer ceilings. Runs on a PostgreSQL of the bench's own (port
# $BENCH_PG_PORT, default 55433, wal_level=logical, state in .state/bench), stopped afterwards:
# the shared server is never restarted. Writes bench/results/relay.{md,json}.
# Knobs: BENCH_EVENTS (200000), BENCH_RATE (1000 events/s), BENCH_SECONDS (30),
# BENCH_DEBEZIUM (1; 0: the relay alone), BENCH_DEBEZIUM_POLL_MS (500, Debezium's default),
# BENCH_DEBEZIUM_HEAP (512m), BENCH_ORDEXA (a binary to measure instead of building), BENCH_SMOKE.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init relay

if [[ $SMOKE == 1 ]]; then
  EVENTS=2000 RATE=100 SECONDS_=2
else
  EVENTS=${BENCH_EVENTS:-200000} RATE=${BENCH_RATE:-1000} SECONDS_=${BENCH_SECONDS:-30}
fi
pg() { ORDEXA_STATE_DIR=$STATE_DIR/bench ORDEXA_PG_PORT=${BENCH_PG_PORT:-55433} bash infra/postgres.sh "$@"; }
trap 'pg stop >/dev/null 2>&1 || true' EXIT

bench_build
debezium=()
if [[ ${BENCH_DEBEZIUM:-1} == 1 ]]; then
  bash bench/debezium.sh install
  debezium=(--debezium "bash bench/debezium.sh run")
fi
bash infra/infra.sh up kafka
eval "$(bash infra/infra.sh env kafka)"
pg start
eval "$(pg env)"
if [[ $(psql -X -tA "$ORDEXA_DATABASE_URL" -c 'SHOW wal_level') != logical ]]; then
  psql -X -q "$ORDEXA_DATABASE_URL" -c 'ALTER SYSTEM SET wal_level = logical'
  pg stop && pg start
fi
# What an earlier run that died left: slots would hold WAL for ever. This server is the bench's alone.
psql -X -q "$ORDEXA_DATABASE_URL" -c 'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots' >/dev/null
psql -X -tA "$ORDEXA_DATABASE_URL" -c "SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE datname LIKE 'bench\_%'" |
  psql -X -q "$ORDEXA_DATABASE_URL" >/dev/null
"$BENCH" relay --ordexa "$ORDEXA" --admin-url "$ORDEXA_DATABASE_URL" --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" \
  --prefix "${PREFIX}_" --events "$EVENTS" --rate "$RATE" --seconds "$SECONDS_" "${debezium[@]}" \
  --pg-pid "$(head -n1 "$STATE_DIR/bench/postgres/data/postmaster.pid")" --work-dir "$WORK" --out "$OUT"
log "done in ${SECONDS}s"
