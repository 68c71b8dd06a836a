#!/usr/bin/env bash
# `make dev`: the real servers, migrations, topics and schema, then Ordexa's app processes
# (`ordexa dev` = api + relay + projector, and `ordexa web` serving the SPA) in the foreground
# until Ctrl-C, which stops the app processes and leaves the servers running.
#
# The functions below are also used by frontend/e2e/stack.sh (sourced; `main` only runs when
# this file is executed), so the end-to-end tests start the system exactly like `make dev`.
SERVER=dev
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# How the backend runs: `combined` = one `ordexa dev` process (api + relay + projector);
# `separate` = `ordexa api`, `ordexa relay` and `ordexa projector` as three processes.
ORDEXA_DEV_ROLES=${ORDEXA_DEV_ROLES:-combined}

APP_PIDS=()

# Builds the `ordexa` binary; sets $ORDEXA_BIN.
build_ordexa() {
  info "building ordexa"
  (cd "$ORDEXA_ROOT" && cargo build -q -p ordexa) || die "cargo build -p ordexa failed"
  ORDEXA_BIN=${CARGO_TARGET_DIR:-$ORDEXA_ROOT/target}/debug/ordexa
}

# Installs the frontend's packages (npm ci, only when the lock file changed) and builds it
# into frontend/dist. npm's cache lives in $ORDEXA_CACHE_DIR/npm.
build_frontend() {
  local dir=$ORDEXA_ROOT/frontend
  command -v npm >/dev/null || die "npm is missing; install Node.js 20.19 or newer"
  export npm_config_cache=$ORDEXA_CACHE_DIR/npm
  if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    info "installing the frontend's packages (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  fi
  info "building the frontend"
  (cd "$dir" && npm run --silent build -- --logLevel warn) || die "the frontend build failed"
}

# The development JWT secret, kept in $1 so tokens minted earlier stay valid; exports it.
use_jwt_secret() {
  local file=$1
  [[ -s $file ]] || head -c 48 /dev/urandom | base64 | tr -d '\n' >"$file"
  ORDEXA_JWT_SECRET=$(cat "$file")
  export ORDEXA_JWT_SECRET
}

# Write model, development catalog, topics and the read model's schema (all idempotent).
prepare_system() {
  "$ORDEXA_BIN" migrate --seed-dev || die "migrations failed"
  "$ORDEXA_BIN" topics || die "creating the topics failed"
  "$ORDEXA_BIN" cassandra-schema || die "creating the Cassandra schema failed"
}

# start_backend API_ADDR RELAY_ADDR PROJECTOR_ADDR: the api, relay and projector roles in the
# background (see ORDEXA_DEV_ROLES). Their pids join APP_PIDS.
start_backend() {
  local api=$1 relay=$2 projector=$3
  case $ORDEXA_DEV_ROLES in
    combined)
      ORDEXA_HTTP_ADDR=$api ORDEXA_DEV_RELAY_ADDR=$relay ORDEXA_DEV_PROJECTOR_ADDR=$projector "$ORDEXA_BIN" dev &
      APP_PIDS+=($!)
      ;;
    separate)
      ORDEXA_HTTP_ADDR=$api "$ORDEXA_BIN" api &
      APP_PIDS+=($!)
      ORDEXA_HTTP_ADDR=$relay "$ORDEXA_BIN" relay &
      APP_PIDS+=($!)
      ORDEXA_HTTP_ADDR=$projector "$ORDEXA_BIN" projector &
      APP_PIDS+=($!)
      ;;
    *) die "ORDEXA_DEV_ROLES must be combined or separate, got $ORDEXA_DEV_ROLES" ;;
  esac
}

# start_web WEB_ADDR API_ADDR: `ordexa web` with development sign-in, serving frontend/dist.
start_web() {
  local web=$1 api=$2
  ORDEXA_HTTP_ADDR=$web ORDEXA_API_UPSTREAM=http://$api ORDEXA_WEB_ASSETS=$ORDEXA_ROOT/frontend/dist \
    "$ORDEXA_BIN" web --dev-sign-in &
  APP_PIDS+=($!)
}

# wait_ready URL NAME [SECONDS]: until URL answers 2xx; fails early when an app process died.
wait_ready() {
  local url=$1 name=$2 deadline=$((SECONDS + ${3:-90})) pid
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    for pid in "${APP_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || die "an app process (pid $pid) exited while waiting for $name; see its log above"
    done
    ((SECONDS < deadline)) || die "$name did not become ready at $url in time"
    sleep 0.3
  done
}

# Stops the app processes: SIGTERM (graceful shutdown), SIGKILL after 15 s. Safe to call twice.
stop_app() {
  local pid deadline=$((SECONDS + 15))
  ((${#APP_PIDS[@]} > 0)) || return 0
  info "stopping the app processes"
  for pid in "${APP_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${APP_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  APP_PIDS=()
}

main() {
  local web=${ORDEXA_WEB_ADDR:-127.0.0.1:8080}
  local api=${ORDEXA_API_ADDR:-127.0.0.1:8081}
  local relay=${ORDEXA_RELAY_ADDR:-127.0.0.1:8082}
  local projector=${ORDEXA_PROJECTOR_ADDR:-127.0.0.1:8083}
  local addr
  for addr in "$web" "$api" "$relay" "$projector"; do
    port_in_use "${addr##*:}" && die "port ${addr##*:} ($addr) is already in use; stop that process or choose other addresses with ORDEXA_WEB_ADDR, ORDEXA_API_ADDR, ORDEXA_RELAY_ADDR, ORDEXA_PROJECTOR_ADDR"
  done

  bash "$ORDEXA_ROOT/infra/infra.sh" up
  eval "$(bash "$ORDEXA_ROOT/infra/infra.sh" env)"
  export ORDEXA_DATABASE_URL ORDEXA_KAFKA_BOOTSTRAP ORDEXA_CASSANDRA_NODES

  build_ordexa
  build_frontend
  use_jwt_secret "$ORDEXA_STATE_DIR/dev-jwt-secret"
  prepare_system

  trap stop_app EXIT
  trap 'exit 130' INT TERM
  start_backend "$api" "$relay" "$projector"
  start_web "$web" "$api"
  wait_ready "http://$api/readyz" "the API"
  wait_ready "http://$web/healthz" "the web server"

  cat <<MSG

Ordexa is running — open http://$web  (Ctrl-C stops it; the servers keep running, make infra-down stops them)

  Sign in  development mode: type any user name (e.g. alice) and press "Sign in";
           tick "Staff (admin role)" for the staff pages (orders by status, catalog).
  API      http://$web/api/v1 (same origin), directly http://$api/api/v1
           OpenAPI http://$api/api/v1/openapi.json
  tokens   customer: $("$ORDEXA_BIN" token --user alice)
           staff:    $("$ORDEXA_BIN" token --user staff --admin)
  try      curl -H "Authorization: Bearer <token>" http://$web/api/v1/products
  backend  ORDEXA_DEV_ROLES=$ORDEXA_DEV_ROLES; relay http://$relay/metrics, projector http://$projector/metrics

MSG
  # Runs until Ctrl-C or until an app process exits (then the others are stopped too).
  wait -n "${APP_PIDS[@]}" || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
