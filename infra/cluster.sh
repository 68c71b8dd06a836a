#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and CoreDNS built from our Go
# modules (infra/k8s/*), containerd, runc and the CNI plugins from Debian. Pods live on the
# bridge $ORDEXA_CLUSTER_BRIDGE (default ordexa0), whose host side, $ORDEXA_CLUSTER_HOST_ADDR
# (default 10.244.0.1), is where they reach the API server, cluster DNS, and the host's
# PostgreSQL, Kafka and Cassandra (infra/*.sh also listen there when the bridge exists).
#
#   cluster.sh build | up | down | reset | status | env | kubectl ARGS... | import-images
#
# Needs root (containerd, kubelet, kube-proxy and the bridge do). State under
# $ORDEXA_STATE_DIR/cluster; containerd's runtime state under /run/ordexa-containerd.
# Ports (on the host address unless noted): API server ORDEXA_CLUSTER_API_PORT (17443), kubelet
# 17250; on loopback: etcd 13379/13380, controller-manager 17257, scheduler 17259, kubelet
# health 17248, kube-proxy 17249/17256, CoreDNS health 17080 and readiness 17181. DNS on
# the host address, port 53. NodePorts: on the host address and on 127.0.0.1.
SERVER=cluster
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=k8s-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-lib.sh"

HOST_ADDR=$ORDEXA_CLUSTER_HOST_ADDR
BRIDGE=$ORDEXA_CLUSTER_BRIDGE
POD_CIDR=$ORDEXA_CLUSTER_POD_CIDR
SERVICE_CIDR=${ORDEXA_CLUSTER_SERVICE_CIDR:-10.96.0.0/16}
API_SERVICE_IP=${ORDEXA_CLUSTER_API_SERVICE_IP:-10.96.0.1}
NODE_NAME=${ORDEXA_CLUSTER_NODE_NAME:-ordexa-node}
API_PORT=${ORDEXA_CLUSTER_API_PORT:-17443}
ETCD_PORT=13379
ETCD_PEER_PORT=13380
KCM_PORT=17257
SCHED_PORT=17259
KUBELET_PORT=17250
KUBELET_HEALTHZ_PORT=17248
PROXY_METRICS_PORT=17249
PROXY_HEALTHZ_PORT=17256
DNS_HEALTH_PORT=17080
DNS_READY_PORT=17181
START_TIMEOUT=${ORDEXA_CLUSTER_START_TIMEOUT:-180}

HOME_DIR=$ORDEXA_STATE_DIR/cluster
# For infra/k8s-lib.sh.
CLUSTER_NAME=ordexa-cluster
API_URL=https://$HOST_ADDR:$API_PORT
STATE_HOME=$HOME_DIR
ETCD_PORT_VAR="the cluster's etcd port"
ETCD_PEER_PORT_VAR="the cluster's etcd peer port"
PKI=$HOME_DIR/pki
LOGS=$HOME_DIR/log
KUBECONFIG_FILE=$HOME_DIR/kubeconfig
CONTAINERD_RUN=/run/ordexa-containerd
CONTAINERD_SOCK=$CONTAINERD_RUN/containerd.sock
CONTAINERD_ROOT=$HOME_DIR/containerd
KUBELET_ROOT=$HOME_DIR/kubelet
CNI_CONF=$HOME_DIR/cni
CNI_BIN=/usr/lib/cni
PAUSE_IMAGE=docker.io/library/ordexa-pause:dev
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)

[[ $(id -u) == 0 ]] || die "the cluster needs root: containerd, the kubelet, kube-proxy and the pod bridge do"

pidfile() { echo "$HOME_DIR/$1.pid"; }

# ---- prerequisites and build ---------------------------------------------------------------------

# Debian package -> why
declare -A PACKAGES=(
  [containerd]="the container runtime the kubelet drives (CRI)"
  [runc]="runs the containers"
  [containernetworking-plugins]="bridge, host-local, portmap and loopback CNI plugins"
  [iptables]="kube-proxy's service rules"
  [conntrack]="kube-proxy clears stale connections"
)

cmd_install() {
  local pkg missing=()
  for pkg in "${!PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  for pkg in "${missing[@]}"; do info "missing $pkg: ${PACKAGES[$pkg]}"; done
  info "installing ${missing[*]} from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

cmd_build() {
  mkdir -p "$K8S_BIN"
  # The same lock as infra/k8s.sh: both build into this folder.
  exec {build_lock}>"$K8S_BIN/.build.lock"
  flock "$build_lock"
  build_one etcd "$MODULES/etcd" ./cmd/etcd
  local name
  for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    build_one "$name" "$MODULES/kube" "./cmd/$name"
  done
  build_one coredns "$MODULES/coredns" ./cmd/coredns
  CGO_ENABLED=0 build_one pause "$MODULES/pause" ./cmd/pause
  build_one helm "$MODULES/helm" helm.sh/helm/v3/cmd/helm
  exec {build_lock}>&-
}

# ---- host network ----------------------------------------------------------------------------

setup_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    info "creating the pod bridge $BRIDGE with $HOST_ADDR"
    ip link add "$BRIDGE" type bridge || die "cannot create the bridge $BRIDGE (ip link add $BRIDGE type bridge)"
  fi
  [[ -n $(pod_host_addr) ]] || ip addr add "$HOST_ADDR/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pods reach services through the host, and traffic between pods on the bridge must pass the
  # service rules too (br_netfilter).
  sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
    die "/proc/sys/net/bridge is missing: the kernel lacks br_netfilter, which service traffic between pods needs"
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 >/dev/null
  mkdir -p "$CNI_CONF"
  cat >"$CNI_CONF/10-ordexa.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ordexa",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$HOME_DIR/cni-ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_ADDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ---- certificates ----------------------------------------------------------------------------

issue_certs() {
  issue apiserver "/CN=kube-apiserver" "$SERVER_EXT
subjectAltName=IP:$HOST_ADDR,IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue kubelet "/CN=$NODE_NAME" "$SERVER_EXT
subjectAltName=IP:$HOST_ADDR,DNS:$NODE_NAME"
  issue admin "/O=system:masters/CN=ordexa-cluster-admin" "$CLIENT_EXT"
  issue node "/O=system:nodes/CN=system:node:$NODE_NAME" "$CLIENT_EXT"
  issue kube-proxy "/CN=system:kube-proxy" "$CLIENT_EXT"
  issue kube-scheduler "/CN=system:kube-scheduler" "$CLIENT_EXT"
  issue coredns "/CN=ordexa-coredns" "$CLIENT_EXT"
}

# ---- control plane ---------------------------------------------------------------------------

healthy() { curl -sf --max-time 2 "$@" >/dev/null; }
admin_curl() { curl -sf --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }

start_apiserver() {
  ours "$(pidfile kube-apiserver)" kube-apiserver && return 0
  launch kube-apiserver "$(pidfile kube-apiserver)" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$HOST_ADDR" --advertise-address "$HOST_ADDR" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode Node,RBAC \
    --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 --allow-privileged=true \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --profiling=false --v=1
  wait_until "kube-apiserver on $HOST_ADDR:$API_PORT" "$START_TIMEOUT" "$LOGS/kube-apiserver.log" \
    "$(pidfile kube-apiserver)" admin_curl "https://$HOST_ADDR:$API_PORT/readyz"
}

start_controller_manager() {
  ours "$(pidfile kube-controller-manager)" kube-controller-manager && return 0
  write_kubeconfig "$HOME_DIR/controller-manager.kubeconfig" admin
  launch kube-controller-manager "$(pidfile kube-controller-manager)" \
    --kubeconfig "$HOME_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$HOME_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$HOME_DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$HOME_DIR/kcm-certs" \
    --leader-elect=false --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
    --use-service-account-credentials=true --controllers '*' --v=1
  wait_until "kube-controller-manager" "$START_TIMEOUT" "$LOGS/kube-controller-manager.log" \
    "$(pidfile kube-controller-manager)" curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
}

start_scheduler() {
  ours "$(pidfile kube-scheduler)" kube-scheduler && return 0
  write_kubeconfig "$HOME_DIR/scheduler.kubeconfig" kube-scheduler
  launch kube-scheduler "$(pidfile kube-scheduler)" \
    --kubeconfig "$HOME_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$HOME_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$HOME_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --v=1
  wait_until "kube-scheduler" "$START_TIMEOUT" "$LOGS/kube-scheduler.log" \
    "$(pidfile kube-scheduler)" curl -skf --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
}

# ---- node ------------------------------------------------------------------------------------

containerd_ours() {
  pid_alive "$(pidfile containerd)" &&
    tr '\0' ' ' <"/proc/$(head -n1 "$(pidfile containerd)")/cmdline" 2>/dev/null | grep -q "$HOME_DIR/containerd.toml"
}

ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

start_containerd() {
  containerd_ours && return 0
  mkdir -p "$CONTAINERD_RUN" "$CONTAINERD_ROOT"
  cat >"$HOME_DIR/containerd.toml" <<EOF
# Generated by infra/cluster.sh on every start.
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_RUN/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  # No registry is reachable: the sandbox image is built here (infra/k8s/pause) and imported.
  sandbox_image = "$PAUSE_IMAGE"
  # This machine withholds CAP_SYS_RESOURCE even from root, so the negative OOM scores the CRI
  # gives sandboxes and Guaranteed pods (-998, -997) cannot be set: runc fails with "failed to
  # update /proc/self/oom_score_adj: Permission denied". Clamp them to containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$CNI_CONF"
EOF
  setsid containerd --config "$HOME_DIR/containerd.toml" >>"$LOGS/containerd.log" 2>&1 </dev/null &
  echo $! >"$(pidfile containerd)"
  wait_until "containerd on $CONTAINERD_SOCK" "$START_TIMEOUT" "$LOGS/containerd.log" "$(pidfile containerd)" \
    ctr --address "$CONTAINERD_SOCK" version
}

# The pod sandbox image, from our own pause binary, imported under the name containerd's CRI
# configuration gives.
import_pause() {
  ctr_ images ls -q | grep -qx "$PAUSE_IMAGE" && return 0
  local tar=$ORDEXA_CACHE_DIR/images/ordexa-pause-dev.tar
  rm -f "$tar"
  ORDEXA_IMAGE_USER=65535 bash "$ORDEXA_ROOT/infra/images.sh" from-binary ordexa-pause:dev "$K8S_BIN/pause"
  [[ -f $tar ]] || die "infra/images.sh from-binary did not produce the pause image archive $tar"
  ctr_ images import --no-unpack "$tar" >/dev/null || die "importing $tar into containerd failed"
  ctr_ images ls -q | grep -qx "$PAUSE_IMAGE" || die "containerd does not list $PAUSE_IMAGE after importing $tar"
}

start_kubelet() {
  ours "$(pidfile kubelet)" kubelet && return 0
  mkdir -p "$KUBELET_ROOT"
  write_kubeconfig "$HOME_DIR/kubelet.kubeconfig" node
  # Pods resolve through cluster DNS only; the host's resolver is of no use to them here.
  printf 'search cluster.local\nnameserver %s\n' "$HOST_ADDR" >"$HOME_DIR/resolv.conf"
  cat >"$HOME_DIR/kubelet.yaml" <<EOF
# Generated by infra/cluster.sh on every start.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST_ADDR
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# This machine mounts cgroup v1 (with an empty v2 hierarchy beside it); since 1.35 the kubelet
# refuses v1 unless told otherwise. containerd 1.6 cannot report its cgroup driver, so it is set here.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$HOST_ADDR]
resolvConf: $HOME_DIR/resolv.conf
# Nothing can be pulled again once removed: never collect images, evict only when nearly full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "200Mi", nodefs.available: "3%", imagefs.available: "3%", nodefs.inodesFree: "3%"}
serializeImagePulls: false
maxPods: 60
podLogsDir: $HOME_DIR/pod-logs
EOF
  launch kubelet "$(pidfile kubelet)" --config "$HOME_DIR/kubelet.yaml" --kubeconfig "$HOME_DIR/kubelet.kubeconfig" \
    --root-dir "$KUBELET_ROOT" --hostname-override "$NODE_NAME" --node-ip "$HOST_ADDR" --v=1
  wait_until "kubelet" "$START_TIMEOUT" "$LOGS/kubelet.log" "$(pidfile kubelet)" \
    healthy "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

start_kube_proxy() {
  ours "$(pidfile kube-proxy)" kube-proxy && return 0
  write_kubeconfig "$HOME_DIR/kube-proxy.kubeconfig" kube-proxy
  cat >"$HOME_DIR/kube-proxy.yaml" <<EOF
# Generated by infra/cluster.sh on every start.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $HOME_DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $HOST_ADDR
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
nodePortAddresses: ["$HOST_ADDR/32", "127.0.0.1/32"]
# Leave the host's conntrack table sizes alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  launch kube-proxy "$(pidfile kube-proxy)" --config "$HOME_DIR/kube-proxy.yaml" --v=1
  wait_until "kube-proxy" "$START_TIMEOUT" "$LOGS/kube-proxy.log" "$(pidfile kube-proxy)" \
    healthy "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
}

start_coredns() {
  ours "$(pidfile coredns)" coredns && return 0
  write_kubeconfig "$HOME_DIR/coredns.kubeconfig" coredns
  cat >"$HOME_DIR/Corefile" <<EOF
# Generated by infra/cluster.sh on every start. Cluster names only: there is no upstream.
.:53 {
    bind $HOST_ADDR
    errors
    health 127.0.0.1:$DNS_HEALTH_PORT
    ready 127.0.0.1:$DNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $HOME_DIR/coredns.kubeconfig ordexa-cluster
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    loadbalance
}
EOF
  launch coredns "$(pidfile coredns)" -conf "$HOME_DIR/Corefile"
  wait_until "CoreDNS on $HOST_ADDR:53" "$START_TIMEOUT" "$LOGS/coredns.log" "$(pidfile coredns)" \
    healthy "http://127.0.0.1:$DNS_READY_PORT/ready"
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# Read access to what CoreDNS serves, for its own certificate's user.
apply_rbac() {
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ordexa:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ordexa:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ordexa:coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ordexa-coredns}
EOF
}

node_ready() {
  [[ $(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

cmd_up() {
  ensure_state_dir
  local start=$SECONDS
  cmd_install
  cmd_build
  mkdir -p "$HOME_DIR" "$LOGS"
  setup_network
  ensure_pki issue_certs
  write_kubeconfig "$KUBECONFIG_FILE" admin
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  apply_rbac
  start_containerd
  import_pause
  # The kubelet registers the node, which kube-proxy waits for before it reports healthy.
  start_kubelet
  start_kube_proxy
  start_coredns
  wait_until "node $NODE_NAME Ready" "$START_TIMEOUT" "$LOGS/kubelet.log" "$(pidfile kubelet)" node_ready
  info "up in $((SECONDS - start))s; configure a shell with: eval \"\$(make -s cluster-env)\""
}

# ---- images ----------------------------------------------------------------------------------

cmd_import_images() {
  containerd_ours || die "containerd of the cluster is not running; run make cluster-up first"
  bash "$ORDEXA_ROOT/infra/images.sh" import "$CONTAINERD_SOCK" k8s.io
}

# ---- stop ------------------------------------------------------------------------------------

# Every container of ours, then containerd; mounts the kubelet and containerd left behind.
stop_containers() {
  containerd_ours || return 0
  local task
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
  done
  sleep 1
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true
  done
}

unmount_under() {
  local dir=$1 mnt
  # Deepest first.
  awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
}

cmd_down() {
  stop_pid kubelet "$(pidfile kubelet)" 30
  stop_containers
  stop_pid coredns "$(pidfile coredns)" 10
  if ours "$(pidfile kube-proxy)" kube-proxy; then
    stop_pid kube-proxy "$(pidfile kube-proxy)" 10
  fi
  # kube-proxy's service rules go with it.
  if [[ -x $K8S_BIN/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  stop_pid containerd "$(pidfile containerd)" 30
  pkill -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
  stop_pid kube-scheduler "$(pidfile kube-scheduler)" 30
  stop_pid kube-controller-manager "$(pidfile kube-controller-manager)" 30
  stop_pid kube-apiserver "$(pidfile kube-apiserver)" 30
  stop_pid etcd "$(pidfile etcd)" 30
  unmount_under "$KUBELET_ROOT"
  unmount_under "$CONTAINERD_ROOT"
  unmount_under "$CONTAINERD_RUN"
}

cmd_status() {
  local name
  for name in "${COMPONENTS[@]}"; do
    if [[ $name == containerd ]] && containerd_ours || ours "$(pidfile "$name")" "$name"; then
      echo "$name: running (pid $(head -n1 "$(pidfile "$name")"))"
    else
      echo "$name: stopped"
    fi
  done
  echo "api server: https://$HOST_ADDR:$API_PORT, kubeconfig $KUBECONFIG_FILE"
  if ours "$(pidfile kube-apiserver)" kube-apiserver; then kubectl_ get nodes -o wide 2>/dev/null || true; fi
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export ORDEXA_KUBECTL=$K8S_BIN/kubectl"
  echo "export ORDEXA_HELM=$HELM"
  echo "export ORDEXA_CLUSTER_HOST_ADDR=$HOST_ADDR"
}

case ${1:-} in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
reset)
  cmd_down
  unmount_under "$HOME_DIR"
  rm -rf "$HOME_DIR" "$CONTAINERD_RUN"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    info "removing the pod bridge $BRIDGE (servers listening on $HOST_ADDR keep loopback only after their restart)"
    ip link del "$BRIDGE"
  fi
  ;;
status) cmd_status ;;
env) cmd_env ;;
import-images) cmd_import_images ;;
kubectl)
  shift
  exec "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"
  ;;
*) die "usage: $0 build|up|down|reset|status|env|import-images|kubectl ARGS..." ;;
esac
