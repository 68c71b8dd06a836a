# shellcheck shell=bash
# Shared by infra/k8s.sh (the operator's test control plane) and infra/cluster.sh (the
# single-node cluster): the Kubernetes binaries built from our Go modules, certificates, and
# starting those binaries as background processes. Source after lib.sh; the caller sets PKI
# (certificate folder) and LOGS (log folder).

MODULES=$ORDEXA_ROOT/infra/k8s
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$MODULES/kube/go.mod")
[[ -n $K8S_VERSION ]] || die "no k8s.io/kubernetes version in $MODULES/kube/go.mod"
K8S_BIN=$ORDEXA_CACHE_DIR/k8s-bin/$K8S_VERSION
HELM=$K8S_BIN/helm
export GOMODCACHE=${GOMODCACHE:-$ORDEXA_CACHE_DIR/go/mod}
export GOCACHE=${GOCACHE:-$ORDEXA_CACHE_DIR/go/build}
# No VCS stamping: the binaries do not depend on this checkout's git state.
export GOFLAGS=${GOFLAGS:--mod=readonly -buildvcs=false}

# build_one NAME MODULE_DIR PACKAGE: go build into the cache unless the binary is there and was
# built from the same go.mod/go.sum (a stamp next to it records their hash).
build_one() {
  local name=$1 dir=$2 pkg=$3 stamp want ldflags=-s
  # The Kubernetes binaries report the version their module requires (not v0.0.0-master), as
  # kubectl, the node's status and Helm's kubeVersion checks read it.
  if [[ $dir == "$MODULES/kube" ]]; then
    local v=${K8S_VERSION#v} pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version) p
    for p in "${pkgs[@]}"; do
      ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$v")"
      ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
  fi
  stamp=$K8S_BIN/.$name.stamp
  want=$( (cat "$dir/go.mod" "$dir/go.sum" && echo "$ldflags") | sha256sum | cut -c1-16)
  if [[ -x $K8S_BIN/$name && -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  command -v go >/dev/null 2>&1 || die "go not found on PATH; the control plane is built from Go modules"
  info "building $name from $(basename "$dir")/go.mod (first run only; several minutes on 2 cores)"
  local start=$SECONDS
  mkdir -p "$K8S_BIN"
  (cd "$dir" && go build -trimpath -ldflags="$ldflags" -o "$K8S_BIN/$name.partial" "$pkg") ||
    die "building $name failed; the Go module proxy must be reachable on the first run"
  mv "$K8S_BIN/$name.partial" "$K8S_BIN/$name"
  echo "$want" >"$stamp"
  info "built $name in $((SECONDS - start))s"
}

# issue NAME SUBJECT EXTENSIONS: a key and a certificate signed by our CA.
issue() {
  local name=$1 subject=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

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

