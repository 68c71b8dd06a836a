#!/usr/bin/env bash
# The API's contract check: schemathesis (PyPI, installed by `make prereqs`) generates requests
# from the API's own OpenAPI document — valid ones and invalid ones — and runs every check it
# has (status codes, content types, headers and bodies as documented; valid data accepted,
# invalid data refused; auth enforced; 405 with Allow for undocumented methods). It runs once as
# a customer and once as staff, against `ordexa dev` (api + relay + projector) on spare ports
# with fresh state, and fails when schemathesis finds anything.
#
# Uses the running local servers (make infra-up) but nothing of `make dev`'s data: its own
# PostgreSQL database (recreated every run), Cassandra keyspace and topic prefix, and a
# throw-away JWT secret. Bounded in time: ORDEXA_SCHEMATHESIS_MAX_EXAMPLES cases per operation and at most
# ORDEXA_SCHEMATHESIS_MAX_TIME seconds per run. The app's log and the reports land in
# $ORDEXA_SCHEMATHESIS_OUT (default <target dir>/schemathesis).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=infra/dev.sh
source "$here/../../../infra/dev.sh"
SERVER=schemathesis

max_examples=${ORDEXA_SCHEMATHESIS_MAX_EXAMPLES:-40}
max_time=${ORDEXA_SCHEMATHESIS_MAX_TIME:-45}
schemathesis=${ORDEXA_SCHEMATHESIS:-$ORDEXA_CACHE_DIR/venv/bin/schemathesis}
[[ -x $schemathesis ]] || die "schemathesis is missing at $schemathesis; install it with make prereqs"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=127.0.0.1:$(free_port)
relay=127.0.0.1:$(free_port)
projector=127.0.0.1:$(free_port)

eval "$(bash "$ORDEXA_ROOT/infra/infra.sh" env)"
[[ -n ${ORDEXA_DATABASE_URL:-} ]] || die "the local servers are not running; start them with make infra-up"
db=ordexa_schemathesis
admin_url=$ORDEXA_DATABASE_URL
export ORDEXA_DATABASE_URL=${admin_url%/*}/$db
export ORDEXA_KAFKA_BOOTSTRAP ORDEXA_CASSANDRA_NODES
export ORDEXA_CASSANDRA_KEYSPACE=ordexa_schemathesis
export ORDEXA_TOPIC_PREFIX=ordexa-schemathesis.

out=${ORDEXA_SCHEMATHESIS_OUT:-${CARGO_TARGET_DIR:-$ORDEXA_ROOT/target}/schemathesis}
tmp=$(mktemp -d)
mkdir -p "$out"
log=$out/app.log
: >"$log"

cleanup() {
  local status=$?
  stop_app >>"$log" 2>&1
  psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  if ((status != 0)); then
    info "failed; the app's last log lines ($log):"
    tail -n 20 "$log" >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null \
  || die "cannot create the database $db"
build_ordexa
use_jwt_secret "$tmp/jwt-secret"
prepare_system >>"$log" 2>&1

info "starting ordexa dev: api http://$api"
start_backend "$api" "$relay" "$projector" >>"$log" 2>&1
wait_ready "http://$api/readyz" "the API"
curl -fsS "http://$api/api/v1/openapi.json" -o "$out/openapi.json" || die "the API serves no OpenAPI document"

# run NAME TOKEN: one schemathesis run with every check on, max_response_time included.
run() {
  local name=$1 token=$2 started=$SECONDS seed=()
  [[ -z ${ORDEXA_SCHEMATHESIS_SEED:-} ]] || seed=(--seed "$ORDEXA_SCHEMATHESIS_SEED")
  info "schemathesis as $name (at most $max_examples cases per operation, $max_time s)"
  # From $out: schemathesis keeps its example database (.hypothesis, replayed first next time)
  # and its cache in the working directory, which must not be the source tree.
  if ! (cd "$out" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$here PYTHONDONTWRITEBYTECODE=1 \
    "$schemathesis" --config-file "$here/schemathesis.toml" \
    run "http://$api/api/v1/openapi.json" --url "http://$api" \
    --checks all --max-response-time 5 --request-timeout 15 \
    --max-examples "$max_examples" --max-time "$max_time" "${seed[@]}" \
    -H "Authorization: Bearer $token" \
    --report junit --report-dir "$out/$name"); then
    info "schemathesis as $name found problems (report: $out/$name; rerun with ORDEXA_SCHEMATHESIS_SEED=<the Seed above>)"
    return 1
  fi
  info "schemathesis as $name: nothing found in $((SECONDS - started)) s"
}

customer=$("$ORDEXA_BIN" token --user schemathesis-customer --ttl 1h)
staff=$("$ORDEXA_BIN" token --user schemathesis-staff --admin --ttl 1h)
failed=0
run customer "$customer" || failed=1
run staff "$staff" || failed=1
exit "$failed"
