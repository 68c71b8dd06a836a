#!/usr/bin/env bash
# `make test-e2e`: the whole system on non-default ports with temporary state, the browser
# suite against it, then the app processes stopped — also when the suite fails.
#
# Uses the running local servers (make infra-up) but nothing of `make dev`'s data: a fresh
# PostgreSQL database (ordexa_e2e, recreated every run), its own Cassandra keyspace and topic
# prefix, and a throw-away JWT secret. The app processes' log: frontend/test-output/e2e-app.log.
set -euo pipefail
# shellcheck source=infra/dev.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/infra/dev.sh"
SERVER=e2e

web=${ORDEXA_E2E_WEB_ADDR:-127.0.0.1:18180}
api=${ORDEXA_E2E_API_ADDR:-127.0.0.1:18181}
relay=${ORDEXA_E2E_RELAY_ADDR:-127.0.0.1:18182}
projector=${ORDEXA_E2E_PROJECTOR_ADDR:-127.0.0.1:18183}
for addr in "$web" "$api" "$relay" "$projector"; do
  port_in_use "${addr##*:}" && die "port ${addr##*:} ($addr) is in use; choose others with ORDEXA_E2E_{WEB,API,RELAY,PROJECTOR}_ADDR"
done

eval "$(bash "$ORDEXA_ROOT/infra/infra.sh" env)"
[[ -n ${ORDEXA_DATABASE_URL:-} ]] || die "the local servers are not running; start them with make infra-up"
db=ordexa_e2e
admin_url=$ORDEXA_DATABASE_URL
export ORDEXA_DATABASE_URL=${admin_url%/*}/$db
export ORDEXA_KAFKA_BOOTSTRAP ORDEXA_CASSANDRA_NODES
export ORDEXA_CASSANDRA_KEYSPACE=ordexa_e2e
export ORDEXA_TOPIC_PREFIX=ordexa-e2e.

out=$ORDEXA_ROOT/frontend/test-output
tmp=$(mktemp -d)
mkdir -p "$out"
log=$out/e2e-app.log
: >"$log"

cleanup() {
  local status=$?
  stop_app >>"$log" 2>&1
  psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  if ((status != 0)); then
    info "failed; the app processes' last log lines ($log):"
    tail -n 40 "$log" >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null \
  || die "cannot create the database $db"
build_ordexa
build_frontend
use_jwt_secret "$tmp/jwt-secret"
prepare_system >>"$log" 2>&1

info "starting the stack: web http://$web, api http://$api (ORDEXA_DEV_ROLES=$ORDEXA_DEV_ROLES)"
start_backend "$api" "$relay" "$projector" >>"$log" 2>&1
start_web "$web" "$api" >>"$log" 2>&1
wait_ready "http://$api/readyz" "the API"
wait_ready "http://$web/healthz" "the web server"

info "running the browser suite; screenshots go to $out/screenshots"
(cd "$ORDEXA_ROOT/frontend" && ORDEXA_E2E_BASE_URL=http://$web ORDEXA_E2E_SCREENSHOTS=$out/screenshots npm run --silent e2e)
