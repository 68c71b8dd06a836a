#!/usr/bin/env bash
# `make bench-relay`: one `ordexa relay` (release) draining a backlog of real outbox rows, then
# under a steady open-loop write load, next to its two ceilings measured in the same run — the
# relay's producer sending the same messages from memory, and the relay's claim-and-remove SQL
# alone. A fresh database and topics of the run's own (`bench<stamp>.`), both removed at the end.
# Writes bench/results/relay-<UTC date>-<short commit>.md.
#
# Knobs (environment):
#   BENCH_EVENTS           outbox rows in the backlog (default 200000)
#   BENCH_ORDERS           orders they belong to (default 20000: 10 events each)
#   BENCH_BATCH            the relay's ORDEXA_RELAY_BATCH_SIZE, also the ceilings' batch (default 1000, the relay's default)
#   BENCH_IN_FLIGHT        the relay's ORDEXA_RELAY_BATCHES_IN_FLIGHT, also the producer ceiling's (default 4, the relay's default)
#   BENCH_VACUUM_EVERY     the relay's ORDEXA_RELAY_VACUUM_EVERY (default 50000, the relay's default; 0: autovacuum alone)
#   BENCH_PARTITIONS       partitions of the topics (default 6, `ordexa topics`'s default)
#   BENCH_STEADY_SECONDS   seconds of steady load (default 30)
#   BENCH_STEADY_FRACTION  the steady rate as a fraction of the drain rate (default 0.5)
#   BENCH_STEADY_RATE      the steady rate in events/s, in place of the fraction (default unset), to compare runs
#   BENCH_WRITERS          the steady writer's connections (default 32)
#   BENCH_EVENTS_PER_COMMIT  events in each steady-load transaction, each of a different order (default auto:
#                          the smallest number that keeps the writer's commits/s within an eighth of what it can
#                          commit, the closed-loop writer ceiling with the NOTIFY trigger and no relay waiting,
#                          measured just before the steady load; or a number, 1 being one event per transaction as the store commits)
#   BENCH_WRITER_COMMIT_RATE  commits/s the writer can make, for auto in place of that measured ceiling (default unset)
#   BENCH_WRITER_TRANSACTION  how the steady writer commits: statement (one multi-row INSERT per transaction) or
#                          explicit (BEGIN, one INSERT per event, COMMIT, as the store's commands) (default statement)
#   BENCH_ROUNDS           rounds of (drain, producer ceiling, SQL ceiling); medians are reported (default 3)
#   BENCH_RELAY_LOG        RUST_LOG of the relay under test (default info, as deployed)
#   BENCH_QUIET_WAIT       seconds to wait, before each phase, for the machine to be quiet (default 60)
#   BENCH_KEEP_DB=1        keep the database afterwards (the topics are always deleted)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init relay

EVENTS=${BENCH_EVENTS:-200000}
ORDERS=${BENCH_ORDERS:-20000}
BATCH=${BENCH_BATCH:-1000}
IN_FLIGHT=${BENCH_IN_FLIGHT:-4}
VACUUM_EVERY=${BENCH_VACUUM_EVERY:-50000}
PARTITIONS=${BENCH_PARTITIONS:-6}
STEADY_SECONDS=${BENCH_STEADY_SECONDS:-30}
STEADY_FRACTION=${BENCH_STEADY_FRACTION:-0.5}
STEADY_RATE=${BENCH_STEADY_RATE:-}
WRITERS=${BENCH_WRITERS:-32}
EVENTS_PER_COMMIT=${BENCH_EVENTS_PER_COMMIT:-auto}
WRITER_COMMIT_RATE=${BENCH_WRITER_COMMIT_RATE:-}
WRITER_TRANSACTION=${BENCH_WRITER_TRANSACTION:-statement}
ROUNDS=${BENCH_ROUNDS:-3}
RELAY_LOG=${BENCH_RELAY_LOG:-info}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
# Names of this run's own: never the system's `ordexa.` topics, never another run's database.
DB=ordexa_bench_relay_${stamp,,}
PREFIX=bench${stamp}.

log "work folder (raw JSON, relay log): $WORK"

prefix_armed=
cleanup() {
  local status=$?
  local pid
  # The bench tool stops the relay itself; if it died first, the pid file is left behind.
  if [[ -f $WORK/relay.pid ]]; then
    pid=$(cat "$WORK/relay.pid")
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'ordexa relay'; then
      log "stopping the relay (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  fi
  if [[ -n $prefix_armed ]]; then
    "$BENCH" relay-cleanup --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" --topic-prefix "$PREFIX" ||
      log "could not delete the topics $PREFIX*; delete them by hand"
  fi
  bench_drop_database
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------------
bench_build

# --- the servers, a fresh database -------------------------------------------------------------
bash infra/infra.sh up kafka
eval "$(bash infra/infra.sh env kafka)"
bench_database "$DB"
settings=()
bench_pg_facts
pids=()
[[ -n $pg_pid ]] && pids+=(--pg-pid "$pg_pid")
kafka_pid=$(cat "$STATE_DIR/kafka/kafka.pid" 2>/dev/null || true)
[[ -n $kafka_pid ]] && pids+=(--kafka-pid "$kafka_pid")
writer=(--writer-events-per-commit "$EVENTS_PER_COMMIT" --writer-transaction "$WRITER_TRANSACTION")
[[ -n $WRITER_COMMIT_RATE ]] && writer+=(--writer-commit-rate "$WRITER_COMMIT_RATE")
kafka_version=$(cat "$STATE_DIR/kafka/kafka.version" 2>/dev/null || echo unknown)
settings+=(--setting "Kafka=$kafka_version, one KRaft broker+controller on loopback, heap ${ORDEXA_KAFKA_HEAP:-512m}")
settings+=(--setting "database, topic prefix=$DB, $PREFIX (both removed afterwards)")

# --- the run -----------------------------------------------------------------------------------
prefix_armed=1
"$BENCH" relay \
  --database-url "$bench_url" --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" --topic-prefix "$PREFIX" \
  --ordexa "$ORDEXA" --events "$EVENTS" --orders "$ORDERS" --batch-size "$BATCH" --batches-in-flight "$IN_FLIGHT" --vacuum-every "$VACUUM_EVERY" --partitions "$PARTITIONS" \
  --steady-seconds "$STEADY_SECONDS" --steady-fraction "$STEADY_FRACTION" ${STEADY_RATE:+--steady-rate "$STEADY_RATE"} --writers "$WRITERS" "${writer[@]}" \
  --rounds "$ROUNDS" \
  --relay-log "$RELAY_LOG" --quiet-wait "$QUIET_WAIT" "${pids[@]}" \
  --work-dir "$WORK" --json "$WORK/relay.json"

# --- the report ----------------------------------------------------------------------------------
bench_result relay
"$BENCH" relay-report --json "$WORK/relay.json" --out "$out" \
  --commit "$commit" "${dirty[@]}" --date "$started" --pg-version "$pg_version" "${settings[@]}" >/dev/null
log "results: $out"
