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

MODULES=$ORDEXA_ROOT/infra/k8s
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$MODULES/kube/go.mod")
[[ -n $K8S_VERSION ]] || die "no k8s.io/kubernetes version in $MODULES/kube/go.mod"
K8S_BIN=$ORDEXA_CACHE_DIR/k8s-bin/$K8S_VERSION
HELM=$K8S_BIN/helm
export GOMODCACHE=${GOMODCACHE:-$ORDEXA_CACHE_DIR/go/mod}
export GOCACHE=${GOCACHE:-$ORDEXA_CACHE_DIR/go/build}
# No VCS stamping: the binaries do not depend on this checkout's git state.
export GOFLAGS=${GOFLAGS:--mod=readonly -buildvcs=false}

API_PORT=${ORDEXA_K8S_API_PORT:-16443}
ETCD_PORT=${ORDEXA_K8S_ETCD_PORT:-12379}
ETCD_PEER_PORT=${ORDEXA_K8S_ETCD_PEER_PORT:-12380}
KCM_PORT=${ORDEXA_K8S_KCM_PORT:-16257}
START_TIMEOUT=${ORDEXA_K8S_START_TIMEOUT:-120}

K8S_HOME=$ORDEXA_STATE_DIR/k8s
PKI=$K8S_HOME/pki
LOGS=$K8S_HOME/log
KUBECONFIG_FILE=$K8S_HOME/kubeconfig
ETCD_PID=$K8S_HOME/etcd.pid
API_PID=$K8S_HOME/kube-apiserver.pid
KCM_PID=$K8S_HOME/kube-controller-manager.pid

# ---- build ---------------------------------------------------------------------------------

# build_one NAME MODULE_DIR PACKAGE: go build into the cache unless the binary is there and was
# built from the same go.mod/go.sum (a stamp next to it records their hash).
build_one() {
  local name=$1 dir=$2 pkg=$3 stamp want
  stamp=$K8S_BIN/.$name.stamp
  want=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
  if [[ -x $K8S_BIN/$name && -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  command -v go >/dev/null 2>&1 || die "go not found on PATH; the control plane is built from Go modules"
  info "building $name from $(basename "$dir")/go.mod (first run only; several minutes on 2 cores)"
  local start=$SECONDS
  mkdir -p "$K8S_BIN"
  (cd "$dir" && go build -trimpath -ldflags=-s -o "$K8S_BIN/$name.partial" "$pkg") ||
    die "building $name failed; the Go module proxy must be reachable on the first run"
  mv "$K8S_BIN/$name.partial" "$K8S_BIN/$name"
  echo "$want" >"$stamp"
  info "built $name in $((SECONDS - start))s"
}

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

# issue NAME SUBJECT EXTENSIONS: a key and a certificate signed by our CA.
issue() {
  local name=$1 subject=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# Generated once per state folder, in a side folder renamed into place when complete.
ensure_pki() {
  [[ -f $PKI/complete ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found; apt-get install openssl"
  local final=$PKI
  PKI=$K8S_HOME/pki.partial
  rm -rf "$PKI"
  mkdir -p "$PKI"
  info "generating certificates in $final"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=ordexa-test-ca" \
    -days 3650 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  issue apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
    'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1')"
  local client='basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
  issue admin "/O=system:masters/CN=ordexa-test-admin" "$client"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/complete"
  rm -rf "$final"
  mv "$PKI" "$final"
  PKI=$final
}

# write_kubeconfig FILE CERT_NAME
write_kubeconfig() {
  cat >"$1" <<EOF
# Generated by infra/k8s.sh: the local test API server.
apiVersion: v1
kind: Config
clusters:
- name: ordexa-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: ordexa-test
  context: {cluster: ordexa-test, user: $2, namespace: default}
current-context: ordexa-test
EOF
}

# ---- processes -----------------------------------------------------------------------------

# ours PIDFILE BINARY: the pid file names a live process running our binary (a stale pid
# file after a reboot may name an unrelated process).
ours() {
  pid_alive "$1" && [[ $(readlink "/proc/$(head -n1 "$1")/exe" 2>/dev/null) == "$K8S_BIN/$2" ]]
}

# launch NAME PIDFILE ARGS...: start a binary from the cache in the background, detached.
launch() {
  local name=$1 pidfile=$2
  shift 2
  setsid "$K8S_BIN/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

api_ready() {
  curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null
}
etcd_ready() { curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
kcm_ready() { curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null; }

start_etcd() {
  if ours "$ETCD_PID" etcd; then return 0; fi
  require_port_free "$ETCD_PORT" ORDEXA_K8S_ETCD_PORT
  require_port_free "$ETCD_PEER_PORT" ORDEXA_K8S_ETCD_PEER_PORT
  launch etcd "$ETCD_PID" --name ordexa-test --data-dir "$K8S_HOME/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "ordexa-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true --log-level=warn
  wait_until "etcd on 127.0.0.1:$ETCD_PORT" "$START_TIMEOUT" "$LOGS/etcd.log" "$ETCD_PID" etcd_ready
}

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
  ensure_pki
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
