#!/usr/bin/env bash
# `make cluster-e2e`: Ordexa the way a platform team meets it, on the single-node cluster of
# infra/cluster.sh. Installs the operator's Helm chart, creates the Secrets, applies one
# OrderingSystem pointing at the host's PostgreSQL, Kafka and Cassandra, waits for Ready, then:
#   1. Chromium (playwright-core) orders through the deployed frontend and staff confirms it
#      (frontend/e2e/cluster.test.mjs);
#   2. the api is scaled to 3 replicas and back to 1;
#   3. a setting (logLevel) changes and every workload rolls to new pods;
#   4. the OrderingSystem is deleted and everything it owned goes with it.
# Each step fails the run with a message naming what did not happen; on failure the pods,
# events and workload logs are printed. Screenshots: frontend/test-output/cluster/.
#
# Knobs: ORDEXA_CLUSTER_E2E_TIMEOUT (seconds for Ready, default 900), ORDEXA_CLUSTER_E2E_KEEP=1
# (leave the OrderingSystem and namespace for inspection instead of steps 2-4's deletion).
SERVER=cluster-e2e
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NS=ordexa-e2e
OPERATOR_NS=ordexa-system
NAME=shop
DB=ordexa_cluster
READY_TIMEOUT=${ORDEXA_CLUSTER_E2E_TIMEOUT:-900}
HOST=$ORDEXA_CLUSTER_HOST_ADDR
NODE_PORT=30080
TARGET=${CARGO_TARGET_DIR:-$ORDEXA_CACHE_DIR/target}
ORDEXA_BIN=$TARGET/release/ordexa
CLUSTER=$ORDEXA_ROOT/infra/cluster.sh

eval "$(bash "$CLUSTER" env)"
k() { "$ORDEXA_KUBECTL" "$@"; }
helm_() { "$ORDEXA_HELM" --kubeconfig "$KUBECONFIG" "$@"; }

step() { info "== $*"; }

# wait_for DESC TIMEOUT CMD...: poll CMD every 2 s until it succeeds.
wait_for() {
  local desc=$1 timeout=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - start < timeout)) || die "$desc: not within ${timeout}s"
    sleep 2
  done
  info "$desc: after $((SECONDS - start))s"
}

diagnose() {
  info "diagnostics: pods, events, OrderingSystem status, workload logs"
  k get pods -A -o wide || true
  k -n "$NS" get events --sort-by=.lastTimestamp | tail -n 40 || true
  k -n "$NS" get orderingsystem "$NAME" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' || true
  local ns pod
  for ns in "$NS" "$OPERATOR_NS"; do
    for pod in $(k -n "$ns" get pods -o name 2>/dev/null); do
      echo "----- $ns/$pod" >&2
      k -n "$ns" logs "$pod" --all-containers --tail=20 >&2 2>/dev/null || true
    done
  done
}

on_exit() {
  local status=$?
  ((status == 0)) || diagnose
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- the cluster, the servers, the images --------------------------------------------------
step "cluster up"
bash "$CLUSTER" up

# The host's servers must listen on the bridge's address; ones started before the bridge
# existed listen on loopback only and are restarted once.
reachable() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
step "PostgreSQL, Kafka and Cassandra reachable from pods at $HOST"
declare -A server_port=([postgres]=$ORDEXA_PG_PORT [kafka]=$ORDEXA_KAFKA_POD_PORT [cassandra]=$ORDEXA_CASSANDRA_PORT)
# Cassandra must also advertise that address (drivers connect to the address a node advertises).
advertises_pod_addr() { grep -q "^broadcast_rpc_address: $HOST\$" "$ORDEXA_STATE_DIR/cassandra/conf/cassandra.yaml" 2>/dev/null; }
for server in postgres kafka cassandra; do
  if ! reachable "${server_port[$server]}" || { [[ $server == cassandra ]] && ! advertises_pod_addr; }; then
    info "$server does not listen on $HOST:${server_port[$server]}; restarting it"
    bash "$ORDEXA_ROOT/infra/infra.sh" down "$server"
  fi
  bash "$ORDEXA_ROOT/infra/infra.sh" up "$server"
  reachable "${server_port[$server]}" || die "$server still does not listen on $HOST:${server_port[$server]}"
done
eval "$(bash "$ORDEXA_ROOT/infra/infra.sh" env)"

step "images"
bash "$ORDEXA_ROOT/infra/images.sh" build
bash "$CLUSTER" import-images
[[ -x $ORDEXA_BIN ]] || die "$ORDEXA_BIN is missing after the image build"

# ---- install ------------------------------------------------------------------------------
step "operator chart"
helm_ upgrade --install ordexa-operator "$ORDEXA_ROOT/charts/ordexa-operator" --namespace "$OPERATOR_NS" \
  --create-namespace --set image.tag=dev --set image.pullPolicy=Never --wait --timeout 5m

if k get namespace "$NS" >/dev/null 2>&1; then
  step "removing the previous run's namespace $NS"
  k -n "$NS" delete orderingsystem --all --timeout=300s
  k delete namespace "$NS" --timeout=300s
fi
step "namespace, Secrets, database"
admin_url=$ORDEXA_DATABASE_URL
pg_url=${admin_url%/*}/$DB
psql -X -q "$admin_url" -tAc "select 1 from pg_database where datname = '$DB'" | grep -q 1 ||
  psql -X -q "$admin_url" -c "CREATE DATABASE $DB" >/dev/null
pod_pg_url=${pg_url/127.0.0.1/$HOST}
jwt_secret=$(openssl rand -hex 32)
run=$(date -u +%Y%m%d%H%M%S)
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create secret generic "$NAME-postgres" --from-literal=url="$pod_pg_url" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create secret generic "$NAME-jwt" --from-literal=secret="$jwt_secret" --dry-run=client -o yaml | k apply -f - >/dev/null

step "OrderingSystem $NS/$NAME"
k apply -f - <<EOF
apiVersion: ordexa.io/v1alpha1
kind: OrderingSystem
metadata: {name: $NAME, namespace: $NS}
spec:
  image: ordexa:dev
  imagePullPolicy: Never
  postgres: {urlSecretRef: {name: $NAME-postgres, key: url}}
  kafka: {bootstrapServers: "$HOST:$ORDEXA_KAFKA_POD_PORT", topicPrefix: "cluster-e2e.", partitions: 3, replicationFactor: 1, topicDeletionPolicy: Delete}
  cassandra: {nodes: ["$HOST:$ORDEXA_CASSANDRA_PORT"], keyspace: ordexa_cluster, replicationFactor: 1}
  auth: {jwtSecretRef: {name: $NAME-jwt, key: secret}}
  api: {replicas: 1}
  relay: {replicas: 1}
  projector: {replicas: 1}
  frontend: {enabled: true, replicas: 1, service: {type: NodePort, nodePort: $NODE_PORT}}
  logLevel: info
EOF
step "kubectl wait --for=condition=Ready"
start=$SECONDS
k -n "$NS" wait --for=condition=Ready "orderingsystem/$NAME" --timeout="${READY_TIMEOUT}s"
info "Ready after $((SECONDS - start))s"

# ---- 1. order through the deployed frontend -------------------------------------------------
step "browser: order through http://$HOST:$NODE_PORT, staff confirms"
[[ -d $ORDEXA_ROOT/frontend/node_modules/playwright-core ]] || (cd "$ORDEXA_ROOT/frontend" && npm ci --no-audit --no-fund)
ORDEXA_E2E_BASE_URL=http://$HOST:$NODE_PORT \
  ORDEXA_E2E_RUN=$run \
  ORDEXA_E2E_CUSTOMER_TOKEN=$("$ORDEXA_BIN" token --jwt-secret "$jwt_secret" --user "cluster-customer-$run" --ttl 1h) \
  ORDEXA_E2E_STAFF_TOKEN=$("$ORDEXA_BIN" token --jwt-secret "$jwt_secret" --user "cluster-staff-$run" --admin --ttl 1h) \
  node --test --test-concurrency=1 --test-reporter=spec "$ORDEXA_ROOT/frontend/e2e/cluster.test.mjs"

if [[ ${ORDEXA_CLUSTER_E2E_KEEP:-} == 1 ]]; then
  info "ORDEXA_CLUSTER_E2E_KEEP=1: leaving $NS/$NAME running; the frontend is at http://$HOST:$NODE_PORT"
  exit 0
fi

# ---- 2. scale ---------------------------------------------------------------------------------
api_ready_is() { [[ $(k -n "$NS" get deployment "$NAME-api" -o jsonpath='{.status.readyReplicas}') == "$1" ]]; }
api_pods_are() {
  [[ $(k -n "$NS" get pods -l "app.kubernetes.io/instance=$NAME,app.kubernetes.io/component=api" --no-headers 2>/dev/null | wc -l) == "$1" ]]
}
step "scale the api to 3"
k -n "$NS" patch orderingsystem "$NAME" --type merge -p '{"spec":{"api":{"replicas":3}}}' >/dev/null
wait_for "3 api replicas ready" 300 api_ready_is 3
step "and back to 1"
k -n "$NS" patch orderingsystem "$NAME" --type merge -p '{"spec":{"api":{"replicas":1}}}' >/dev/null
wait_for "1 api pod left" 300 api_pods_are 1

# ---- 3. a setting changes: every workload rolls ------------------------------------------------
step "logLevel info -> debug rolls the workloads"
pods_before=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$NAME" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
hash_before=$(k -n "$NS" get deployment "$NAME-api" -o jsonpath='{.spec.template.metadata.annotations.ordexa\.io/config-hash}')
k -n "$NS" patch orderingsystem "$NAME" --type merge -p '{"spec":{"logLevel":"debug"}}' >/dev/null
changed_hash() { [[ $(k -n "$NS" get deployment "$NAME-api" -o jsonpath='{.spec.template.metadata.annotations.ordexa\.io/config-hash}') != "$hash_before" ]]; }
wait_for "a new config hash on the api's pod template" 120 changed_hash
for deploy in $(k -n "$NS" get deployments -l "app.kubernetes.io/instance=$NAME" -o name); do
  k -n "$NS" rollout status "$deploy" --timeout=300s
done
wait_for "the Ready condition again" 300 k -n "$NS" wait --for=condition=Ready "orderingsystem/$NAME" --timeout=5s
pods_after=$(k -n "$NS" get pods -l "app.kubernetes.io/instance=$NAME" --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
survivors=$(comm -12 <(echo "$pods_before") <(echo "$pods_after") | grep -v -- '-migrate-\|-schema-' || true)
[[ -z $survivors ]] || die "pods survived the setting change, so it did not roll: $survivors"
info "rolled: $(echo "$pods_before" | wc -l) pods before, none of them left"

# ---- 4. delete: everything owned goes ----------------------------------------------------------
step "delete the OrderingSystem"
k -n "$NS" delete orderingsystem "$NAME" --timeout=300s
nothing_owned() {
  [[ -z $(k -n "$NS" get deployments,services,jobs,configmaps,pods -l "app.kubernetes.io/instance=$NAME" -o name 2>/dev/null) ]]
}
wait_for "nothing labelled app.kubernetes.io/instance=$NAME left" 300 nothing_owned
k -n "$NS" get secret "$NAME-postgres" "$NAME-jwt" -o name >/dev/null ||
  die "the Secrets the user created were deleted with the OrderingSystem"
info "cluster e2e passed"
