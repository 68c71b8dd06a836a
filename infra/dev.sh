#!/usr/bin/env bash
# `make dev`: the real servers, then Ordexa's roles in the foreground until Ctrl-C.
SERVER=dev
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

API_ADDR=${ORDEXA_API_ADDR:-127.0.0.1:8081}
RELAY_ADDR=${ORDEXA_RELAY_ADDR:-127.0.0.1:8082}

bash "$ORDEXA_ROOT/infra/infra.sh" up
eval "$(bash "$ORDEXA_ROOT/infra/infra.sh" env)"
export ORDEXA_DATABASE_URL ORDEXA_KAFKA_BOOTSTRAP ORDEXA_CASSANDRA_NODES

info "building ordexa"
(cd "$ORDEXA_ROOT" && cargo build -q -p ordexa) || die "cargo build failed"
bin=${CARGO_TARGET_DIR:-$ORDEXA_ROOT/target}/debug/ordexa

# A development secret kept with the local state, so tokens minted earlier stay valid.
secret_file=$ORDEXA_STATE_DIR/dev-jwt-secret
[[ -s $secret_file ]] || head -c 48 /dev/urandom | base64 | tr -d '\n' >"$secret_file"
ORDEXA_JWT_SECRET=$(cat "$secret_file")
export ORDEXA_JWT_SECRET

"$bin" migrate --seed-dev || die "migrations failed"
"$bin" topics || die "creating the topics failed"

pids=()
stop_all() {
  info "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop_all EXIT INT TERM
ORDEXA_HTTP_ADDR=$API_ADDR "$bin" api &
pids+=($!)
ORDEXA_HTTP_ADDR=$RELAY_ADDR "$bin" relay &
pids+=($!)

for _ in $(seq 1 50); do
  curl -fsS "http://$API_ADDR/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
cat <<MSG

Ordexa is running (Ctrl-C stops it; the servers keep running — make infra-down stops them):
  API      http://$API_ADDR/api/v1   (OpenAPI: http://$API_ADDR/api/v1/openapi.json)
  relay    http://$RELAY_ADDR/metrics
  tokens   customer: $("$bin" token --user alice)
           staff:    $("$bin" token --user staff --admin)
  try      curl -H "Authorization: Bearer <token>" http://$API_ADDR/api/v1/products

MSG
wait -n "${pids[@]}" || true
