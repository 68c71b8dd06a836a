#!/usr/bin/env bash
# `make bench-e2e`: the projector draining 200,000 preloaded events next to its ceiling (the same
# Cassandra writes from memory, no Kafka), then `ordexa api` + `ordexa relay` + `ordexa projector`:
# first a short ladder of open-loop create steps against the three of them finds the highest create
# rate the whole pipeline sustains on this machine, then open-loop creates at 25/50/75 % of that
# rate: commit → visible in Cassandra, a burst at 2× and the projector's catch-up, and each
# workload's resident memory. The report states bench-api's rate (the API alone) next to it.
# A fresh database, topics (`bench<stamp>.`) and keyspaces (`bench_e2e_<stamp>…`) of the run's
# own, all removed at the end. Writes bench/results/e2e-<UTC date>-<short commit>.md and .svg.
#
# Knobs (environment):
#   BENCH_EVENTS           events preloaded for the drain (default 200000)
#   BENCH_ORDERS           orders they belong to (default 20000: 10 events each)
#   BENCH_ROUNDS           rounds of (projector drain, ceiling); medians are reported (default 3)
#   BENCH_API_RATE_MODE    where the rate the live loads are fractions of comes from:
#                          measured (default): the ladder above, in this run, with the pipeline running;
#                          given: the API's rate alone, BENCH_API_RATE or the newest bench-api result
#   BENCH_API_RATE         the API's highest sustained create rate alone; setting it forces given
#                          (default: from the newest bench/results/api-*.md; with measured it is the
#                          ladder's starting hint and the reference the report states)
#   BENCH_LADDER_START     measured: the ladder's first rate per second (default 20 % of the bench-api
#                          rate; needed when there is no bench/results/api-*.md)
#   BENCH_LADDER_SECONDS   measured: seconds measured per ladder step, after 3 s of warm-up (default 15)
#   BENCH_LADDER_MAX_STEPS measured: most ladder steps (default 8; none starts after 200 s of ladder)
#                          (`ordexa-bench e2e --help` lists the ladder's other knobs, for BENCH_EXTRA)
#   BENCH_LEVELS           live loads as fractions of that rate (default 0.25,0.5,0.75)
#   BENCH_LEVEL_SECONDS    seconds measured per live load (default 30)
#   BENCH_BURST_FACTOR     the burst's rate as a multiple of that rate (default 2)
#   BENCH_BURST_SECONDS    seconds of burst (default 60)
#   BENCH_LOG              RUST_LOG of the workloads (default info, as deployed)
#   BENCH_QUIET_WAIT       seconds to wait, before each measurement, for a quiet machine (default 60)
#   BENCH_KEEP_DB=1        keep the database afterwards (topics and keyspaces are always removed)
#   BENCH_EXTRA            further arguments to `ordexa-bench e2e` (e.g. --skip-live)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init e2e

EVENTS=${BENCH_EVENTS:-200000}
ORDERS=${BENCH_ORDERS:-20000}
ROUNDS=${BENCH_ROUNDS:-3}
LEVELS=${BENCH_LEVELS:-0.25,0.5,0.75}
LEVEL_SECONDS=${BENCH_LEVEL_SECONDS:-30}
BURST_FACTOR=${BENCH_BURST_FACTOR:-2}
BURST_SECONDS=${BENCH_BURST_SECONDS:-60}
LOG=${BENCH_LOG:-info}
RATE_MODE=${BENCH_API_RATE_MODE:-measured}
LADDER_SECONDS=${BENCH_LADDER_SECONDS:-15}
LADDER_MAX_STEPS=${BENCH_LADDER_MAX_STEPS:-8}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
read -r -a EXTRA <<<"${BENCH_EXTRA:-}"
DB=ordexa_bench_e2e_${stamp,,}
PREFIX=bench${stamp}.
KEYSPACE_PREFIX=bench_e2e_${stamp,,}

log "work folder (raw JSON, workload logs): $WORK"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The rate the live loads are fractions of: measured in the run (a ladder with the whole pipeline,
# from a fraction of the API-alone rate), or given (BENCH_API_RATE, or the newest api result's).
[[ $RATE_MODE == measured || $RATE_MODE == given ]] ||
  die "BENCH_API_RATE_MODE must be measured or given, not '$RATE_MODE'"
rate_args=()
if [[ -n ${BENCH_API_RATE:-} ]]; then
  [[ $RATE_MODE == given ]] || log "BENCH_API_RATE is set: the live loads are fractions of it (given), no ladder"
  RATE_MODE=given
  rate_args+=(--api-rate "$BENCH_API_RATE" --api-rate-source "BENCH_API_RATE")
  log "API rate: $BENCH_API_RATE/s (BENCH_API_RATE, given)"
else
  api_result=$(ls -t bench/results/api-*.md 2>/dev/null | head -n1 || true)
  if [[ -n $api_result ]]; then
    API_RATE=$(sed -n 's/^| API, `POST \/api\/v1\/orders` | \*\*\([0-9]*\)\/s\*\*.*/\1/p' "$api_result" | head -n1)
    [[ -n $API_RATE ]] || die "cannot read the highest sustained rate from $api_result; set BENCH_API_RATE"
    rate_args+=(--api-rate "$API_RATE" --api-rate-source "$api_result")
    log "API alone: $API_RATE/s (highest sustained rate in $api_result, not re-measured)"
  elif [[ $RATE_MODE == given || -z ${BENCH_LADDER_START:-} ]]; then
    die "no bench/results/api-*.md to take the API's rate from; run make bench-api, or set BENCH_API_RATE (given) or BENCH_LADDER_START (measured)"
  fi
fi
rate_args+=(--api-rate-mode "$RATE_MODE")
if [[ $RATE_MODE == measured ]]; then
  rate_args+=(--ladder-seconds "$LADDER_SECONDS" --ladder-max-steps "$LADDER_MAX_STEPS")
  [[ -n ${BENCH_LADDER_START:-} ]] && rate_args+=(--ladder-start-rate "$BENCH_LADDER_START")
  log "the live loads' rate: measured in this run with the whole pipeline (a ladder of up to $LADDER_MAX_STEPS steps)"
fi

armed=
cleanup() {
  local status=$?
  local f pid
  # The bench tool stops the workloads itself; if it died first, their pid files are left behind.
  for f in "$WORK"/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^[^ ]*ordexa '; then
      log "stopping $(basename "$f" .pid) (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n $armed ]]; then
    "$BENCH" e2e-cleanup --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" --cassandra-nodes "$ORDEXA_CASSANDRA_NODES" \
      --topic-prefix "$PREFIX" --keyspace-prefix "$KEYSPACE_PREFIX" ||
      log "could not remove the topics $PREFIX* or keyspaces $KEYSPACE_PREFIX*; remove them by hand"
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
bash infra/infra.sh up cassandra
eval "$(bash infra/infra.sh env kafka)"
eval "$(bash infra/infra.sh env cassandra)"
bench_database "$DB" --seed-dev
settings=()
bench_pg_facts
pids=()
[[ -n $pg_pid ]] && pids+=(--pg-pid "$pg_pid")
kafka_pid=$(cat "$STATE_DIR/kafka/kafka.pid" 2>/dev/null || true)
[[ -n $kafka_pid ]] && pids+=(--kafka-pid "$kafka_pid")
cassandra_pid=$(cat "$STATE_DIR/cassandra/cassandra.pid" 2>/dev/null || true)
[[ -n $cassandra_pid ]] && pids+=(--cassandra-pid "$cassandra_pid")
kafka_version=$(cat "$STATE_DIR/kafka/kafka.version" 2>/dev/null || echo unknown)
cassandra_version=$(find "$ORDEXA_CACHE_DIR" -maxdepth 1 -name 'cassandra-*.classpath' -printf '%f\n' 2>/dev/null | sed 's/\.classpath$//' | head -n1)
settings+=(--setting "Kafka=$kafka_version, one KRaft broker+controller on loopback, heap ${ORDEXA_KAFKA_HEAP:-512m}")
settings+=(--setting "Cassandra=${cassandra_version:-unknown}, one node on loopback")
settings+=(--setting "database, topic prefix, keyspace prefix=$DB, $PREFIX, $KEYSPACE_PREFIX (all removed afterwards)")

# --- the run -----------------------------------------------------------------------------------
armed=1
"$BENCH" e2e \
  --database-url "$bench_url" --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" --cassandra-nodes "$ORDEXA_CASSANDRA_NODES" \
  --topic-prefix "$PREFIX" --keyspace-prefix "$KEYSPACE_PREFIX" --ordexa "$ORDEXA" \
  --events "$EVENTS" --orders "$ORDERS" --rounds "$ROUNDS" --log "$LOG" \
  "${rate_args[@]}" --levels "$LEVELS" --level-seconds "$LEVEL_SECONDS" \
  --burst-factor "$BURST_FACTOR" --burst-seconds "$BURST_SECONDS" --quiet-wait "$QUIET_WAIT" "${pids[@]}" \
  --work-dir "$WORK" --json "$WORK/e2e.json" "${EXTRA[@]}"
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the report ----------------------------------------------------------------------------------
bench_result e2e
"$BENCH" e2e-report --json "$WORK/e2e.json" --out "$out" \
  --commit "$commit" "${dirty[@]}" --date "$started" --pg-version "$pg_version" "${settings[@]}" >/dev/null
log "results: $out (chart: ${out%.md}.svg)"
