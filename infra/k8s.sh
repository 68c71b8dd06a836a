#!/usr/bin/env bash
# A real Kubernetes control plane for the operator's tests, without Docker or a kubelet: etcd,
# kube-apiserver and kube-controller-manager built from their Go modules (infra/k8s/etcd and
# infra/k8s/kube, modules of our own whose mains call the upstream commands) and run as plain
# processes on 127.0.0.1, with certificates generated here by openssl. Helm (infra/k8s/helm) is
# built into the same cache for the chart's tests.
#
#   k8s.sh build | up | down | reset | status | env | helm ARGS...
#
# Binaries: $ORDEXA_CACHE_DIR/k8s-bin/<kubernetes version>/ (built once, reused by every clone).
# Go module and build caches: $ORDEXA_CACHE_DIR/go/{mod,build}.
# State (certificates, etcd data, logs, kubeconfig): $ORDEXA_STATE_DIR/k8s.
# Ports: ORDEXA_K8S_API_PORT (16443), ORDEXA_K8S_ETCD_PORT (12379), ORDEXA_K8S_ETCD_PEER_PORT
# (12380), ORDEXA_K8S_KCM_PORT (16257).
SERVER=k8s
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=k8s-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-lib.sh"

API_PORT=${ORDEXA_K8S_API_PORT:-16443}
ETCD_PORT=${ORDEXA_K8S_ETCD_PORT:-12379}
ETCD_PEER_PORT=${ORDEXA_K8S_ETCD_PEER_PORT:-12380}
KCM_PORT=${ORDEXA_K8S_KCM_PORT:-16257}
START_TIMEOUT=${ORDEXA_K8S_START_TIMEOUT:-120}

K8S_HOME=$ORDEXA_STATE_DIR/k8s
# For infra/k8s-lib.sh.
CLUSTER_NAME=ordexa-test
API_URL=https://127.0.0.1:$API_PORT
STATE_HOME=$K8S_HOME
ETCD_PORT_VAR=ORDEXA_K8S_ETCD_PORT
ETCD_PEER_PORT_VAR=ORDEXA_K8S_ETCD_PEER_PORT
PKI=$K8S_HOME/pki
LOGS=$K8S_HOME/log
KUBECONFIG_FILE=$K8S_HOME/kubeconfig
ETCD_PID=$K8S_HOME/etcd.pid
API_PID=$K8S_HOME/kube-apiserver.pid
KCM_PID=$K8S_HOME/kube-controller-manager.pid

# ---- build ---------------------------------------------------------------------------------

cmd_build() {
  mkdir -p "$K8S_BIN"
  # One build at a time: CI starts one in the background early, and `k8s-up` then waits for it
  # here instead of building the same binaries a second time.
  exec {build_lock}>"$K8S_BIN/.build.lock"
  flock "$build_lock"
  build_one etcd "$MODULES/etcd" ./cmd/etcd
  build_one kube-apiserver "$MODULES/kube" ./cmd/kube-apiserver
  build_one kube-controller-manager "$MODULES/kube" ./cmd/kube-controller-manager
  build_one helm "$MODULES/helm" helm.sh/helm/v3/cmd/helm
  # Closed before any server starts, so no server process inherits (and holds) the lock.
  exec {build_lock}>&-
}

# ---- certificates --------------------------------------------------------------------------

issue_certs() {
  issue apiserver "/CN=kube-apiserver" "$SERVER_EXT
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1"
  issue admin "/O=system:masters/CN=ordexa-test-admin" "$CLIENT_EXT"
}

# ---- processes -----------------------------------------------------------------------------

api_ready() {
  curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null
}
kcm_ready() { curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null; }

start_apiserver() {
  if ours "$API_PID" kube-apiserver; then return 0; fi
  require_port_free "$API_PORT" ORDEXA_K8S_API_PORT
  launch kube-apiserver "$API_PID" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode RBAC \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --service-account-issuer "https://127.0.0.1:$API_PORT" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --endpoint-reconciler-type none --profiling=false --v=1
  wait_until "kube-apiserver on 127.0.0.1:$API_PORT" "$START_TIMEOUT" "$LOGS/kube-apiserver.log" "$API_PID" api_ready
}

start_controller_manager() {
  if ours "$KCM_PID" kube-controller-manager; then return 0; fi
  require_port_free "$KCM_PORT" ORDEXA_K8S_KCM_PORT
  # The controller-manager uses the admin certificate: without per-controller ServiceAccount
  # credentials its own identity may not create pods for Jobs and ReplicaSets.
  write_kubeconfig "$K8S_HOME/controller-manager.kubeconfig" admin
  launch kube-controller-manager "$KCM_PID" \
    --kubeconfig "$K8S_HOME/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$K8S_HOME/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$K8S_HOME/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$K8S_HOME/kcm-certs" \
    --leader-elect=false --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=false --controllers '*' --v=1
  wait_until "kube-controller-manager on 127.0.0.1:$KCM_PORT" "$START_TIMEOUT" "$LOGS/kube-controller-manager.log" "$KCM_PID" kcm_ready
}

cmd_up() {
  ensure_state_dir
  local start=$SECONDS
  cmd_build
  mkdir -p "$K8S_HOME" "$LOGS"
  ensure_pki issue_certs
  start_etcd
  start_apiserver
  start_controller_manager
  write_kubeconfig "$KUBECONFIG_FILE" admin
  info "up in $((SECONDS - start))s; configure a shell with: eval \"\$(make -s k8s-env)\""
}

cmd_down() {
  stop_pid kube-controller-manager "$KCM_PID" 30
  stop_pid kube-apiserver "$API_PID" 30
  stop_pid etcd "$ETCD_PID" 30
}

cmd_status() {
  local name pidfile
  for name in etcd kube-apiserver kube-controller-manager; do
    pidfile=$K8S_HOME/$name.pid
    if ours "$pidfile" "$name"; then
      echo "$name: running (pid $(cat "$pidfile"))"
    else
      echo "$name: stopped"
    fi
  done
  echo "api server: https://127.0.0.1:$API_PORT, kubeconfig $KUBECONFIG_FILE"
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export ORDEXA_HELM=$HELM"
}

case ${1:-} in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
reset)
  cmd_down
  rm -rf "$K8S_HOME"
  ;;
status) cmd_status ;;
env) cmd_env ;;
helm)
  shift
  build_one helm "$MODULES/helm" helm.sh/helm/v3/cmd/helm
  exec "$HELM" "$@"
  ;;
*) die "usage: $0 build|up|down|reset|status|env|helm ARGS..." ;;
esac
