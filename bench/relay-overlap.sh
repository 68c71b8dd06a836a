#!/usr/bin/env bash
# `make bench-relay-overlap`: a release `ordexa relay` under pgbench writers whose multi-row
# transactions overlap its claims (16 connections, a paced rate), then a check that the outbox is
# empty a few seconds after the writers stop. A claim that judged a writer finished while it was
# not would leave that writer's rows behind for good (until another relay leads); this found one.
# Needs the servers of `make infra-up`. Knobs: OVERLAP_SECONDS (20), OVERLAP_RATE (330
# transactions/s), OVERLAP_ROWS (78 per transaction), OVERLAP_CONNECTIONS (16), OVERLAP_RUNS (3).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init relay-overlap

SECONDS_=${OVERLAP_SECONDS:-20}
RATE=${OVERLAP_RATE:-330}
ROWS=${OVERLAP_ROWS:-78}
CONNECTIONS=${OVERLAP_CONNECTIONS:-16}
RUNS=${OVERLAP_RUNS:-3}
PGBENCH=$(find /usr/lib/postgresql -path '*/bin/pgbench' | sort | tail -1)
[[ -n $PGBENCH ]] || die "pgbench not found (Debian's postgresql package ships it)"
ADDR=127.0.0.1:18097

bench_build
bash infra/infra.sh up kafka
eval "$(bash infra/infra.sh env kafka)"
cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO outbox (event_id, aggregate_id, aggregate_version, event_type, schema_version, payload, headers)
SELECT gen_random_uuid(), gen_random_uuid(), 1, 'order.created', 1, '{"x":1}', '{}' FROM generate_series(1, :n);
SQL

failed=0
for run in $(seq 1 "$RUNS"); do
  bench_database "overlap_${stamp,,}_$run" >/dev/null
  url=$bench_url
  prefix=bench${stamp}r$run.
  ORDEXA_KAFKA_BOOTSTRAP=$ORDEXA_KAFKA_BOOTSTRAP ORDEXA_TOPIC_PREFIX=$prefix "$ORDEXA" topics --partitions 6 >/dev/null
  ORDEXA_DATABASE_URL=$url ORDEXA_TOPIC_PREFIX=$prefix ORDEXA_HTTP_ADDR=$ADDR RUST_LOG=warn \
    "$ORDEXA" relay 2>"$WORK/relay-$run.log" &
  relay=$!
  sleep 1
  "$PGBENCH" -n -c "$CONNECTIONS" -j 2 -T "$SECONDS_" -R "$RATE" -D n="$ROWS" -f "$WORK/insert.sql" "$url" \
    >"$WORK/pgbench-$run.log" 2>&1
  left=0
  for _ in $(seq 1 50); do
    left=$(psql -qAt "$url" -c "SELECT count(*) FROM outbox")
    [[ $left == 0 ]] && break
    sleep 0.2
  done
  kill -TERM "$relay"; wait "$relay" || true
  committed=$(grep -oP 'number of transactions actually processed: \K[0-9]+' "$WORK/pgbench-$run.log" || echo "?")
  if [[ $left == 0 ]]; then
    log "run $run: $committed transactions of $ROWS rows, outbox empty"
  else
    log "run $run: $committed transactions of $ROWS rows, $left rows LEFT in the outbox (by writer transaction):"
    psql -qAt "$url" -c "SELECT xmin, count(*), min(id), max(id) FROM outbox GROUP BY 1 ORDER BY 3" >&2
    failed=1
  fi
  "$BENCH" relay-cleanup --kafka-bootstrap "$ORDEXA_KAFKA_BOOTSTRAP" --topic-prefix "$prefix" >/dev/null 2>&1 || true
  bench_drop_database
done
exit "$failed"
