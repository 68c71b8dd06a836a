#!/usr/bin/env bash
# The operator and workload images, built without a Docker engine: each image is one layer
# assembled from scratch out of files on this machine — the release binary, exactly the shared
# libraries `ldd` lists for it (and the dynamic loader), /etc/passwd and /etc/group with root
# and nonroot (65532), /tmp, and for `ordexa` the built frontend. No shell, no package manager.
# umoci makes an OCI image of it, skopeo exports it as an archive `ctr images import` (and
# `docker load`, `kind load image-archive`) accepts.
#
#   images.sh build [ordexa|operator|all]              ordexa:dev and ordexa-operator:dev (default all)
#   images.sh from-binary NAME:TAG BINARY [ARGS...]    a one-binary image: /usr/local/bin/<binary's
#                                                      name>, entrypoint that binary and ARGS
#   images.sh import ADDRESS [NAMESPACE]               every archive into the containerd at ADDRESS
#   images.sh list                                     the archives and their sizes
#   images.sh check                                    run both images in a throwaway containerd
#
# When a Docker engine answers (`docker info`), `build` uses workloads/Dockerfile and
# operator/Dockerfile instead and saves the same archives; both paths give the same paths,
# user, entrypoint, command and environment.
#
# Output: $ORDEXA_CACHE_DIR/images/<name>-<tag>.tar (e.g. ordexa-dev.tar), named
# docker.io/library/<name>:<tag> inside, which is how containerd and the kubelet name <name>:<tag>;
# the OCI layout they are exported from is $ORDEXA_CACHE_DIR/images/oci (tag <name>:<tag>).
# ORDEXA_IMAGE_TAG (default dev) sets the tag of `build`; ORDEXA_IMAGE_USER=0 makes
# `from-binary` run as root. Layers are sorted tars with every mtime, and the image's creation
# time, set to SOURCE_DATE_EPOCH (default: the time of the checkout's last commit).
SERVER=images
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGES_DIR=$ORDEXA_CACHE_DIR/images
LAYOUT=$IMAGES_DIR/oci
TAG=${ORDEXA_IMAGE_TAG:-dev}
NONROOT=65532
# The same target folder as the Makefile and bench/lib.sh, so release builds are shared.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORDEXA_CACHE_DIR/target}

# What the Dockerfiles say; `check` compares the images against it.
ORDEXA_ENV=(ORDEXA_WEB_ASSETS=/usr/share/ordexa/web ORDEXA_HTTP_ADDR=0.0.0.0:8080 ORDEXA_LOG_FORMAT=json)
WEB_DIR=/usr/share/ordexa/web

# ---- helpers -------------------------------------------------------------------------------

# need COMMAND:PACKAGE...: install the Debian packages of the commands that are missing (as
# root, like infra/prereqs.sh), or fail naming them.
need() {
  local pair missing=() named=()
  for pair in "$@"; do
    if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
      missing+=("${pair#*:}")
      named+=("${pair%%:*} (Debian package ${pair#*:})")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "not found: ${named[*]}; install with: sudo apt-get install -y ${missing[*]}"
  info "installing ${missing[*]} from Debian's packages"
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# NAME:TAG as the OCI layout's tag: what was given, without docker.io/(library/).
short_ref() {
  local ref=${1#docker.io/}
  [[ $ref == library/* && ${ref#library/} != */* ]] && ref=${ref#library/}
  echo "$ref"
}

# NAME:TAG as containerd and the kubelet name it: ordexa:dev -> docker.io/library/ordexa:dev.
full_ref() {
  local ref first
  ref=$(short_ref "$1")
  first=${ref%%/*}
  if [[ $ref != */* ]]; then
    echo "docker.io/library/$ref"
  elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then
    echo "$ref"
  else
    echo "docker.io/$ref"
  fi
}

archive_for() {
  local name
  name=$(short_ref "$1")
  name=${name//\//_}
  echo "$IMAGES_DIR/${name//:/-}.tar"
}

human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }

# The compressed size (config and layers) of a tag in the OCI layout, or "-".
compressed_size() {
  local digest
  [[ -f $LAYOUT/index.json ]] || {
    echo -
    return
  }
  digest=$(jq -r --arg t "$1" 'first(.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest) // empty' "$LAYOUT/index.json")
  if [[ -z $digest ]]; then
    echo -
    return
  fi
  human "$(jq '[.config.size, .layers[].size] | add' "$LAYOUT/blobs/sha256/${digest#sha256:}")"
}

# Serialises builds: they share the OCI layout.
lock_images_dir() {
  mkdir -p "$IMAGES_DIR"
  exec {images_lock}>"$IMAGES_DIR/.lock"
  flock "$images_lock"
}

# ---- building the binaries and the frontend ------------------------------------------------

cargo_release() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH; install Rust (rustup) to build the images"
  info "cargo build --release --locked -p $1 (target folder $CARGO_TARGET_DIR)"
  (cd "$ORDEXA_ROOT" && cargo build --release --locked -p "$1") || die "cargo build --release -p $1 failed"
}

# The built SPA in frontend/dist, rebuilt with `make frontend` when missing or older than any
# of its sources.
ensure_frontend() {
  local fe=$ORDEXA_ROOT/frontend stamp=$ORDEXA_ROOT/frontend/dist/index.html newer=
  if [[ -f $stamp ]]; then
    local sources=() s
    for s in src public index.html package.json package-lock.json vite.config.ts tsconfig.json; do
      [[ -e $fe/$s ]] && sources+=("$fe/$s")
    done
    newer=$(find "${sources[@]}" -type f -newer "$stamp" -print -quit)
    [[ -z $newer ]] && return 0
    info "frontend/dist is older than ${newer#"$ORDEXA_ROOT"/}; rebuilding it"
  else
    info "frontend/dist is missing; building it"
  fi
  command -v npm >/dev/null 2>&1 || die "npm not found on PATH; the ordexa image serves the built frontend (install Node.js 20.19 or newer)"
  command -v make >/dev/null 2>&1 || die "make not found; apt-get install make"
  make -C "$ORDEXA_ROOT" --no-print-directory frontend >&2 || die "make frontend failed"
  [[ -f $stamp ]] || die "make frontend finished but $stamp is missing"
}

# ---- assembling a root filesystem ----------------------------------------------------------

# The absolute paths ldd lists for BINARY (libraries and loader); nothing for a static binary.
ldd_paths() {
  local out
  out=$(ldd "$1" 2>&1) || true
  grep -qE 'not a dynamic executable|statically linked' <<<"$out" && return 0
  if grep -q 'not found' <<<"$out"; then
    die "$1 needs shared libraries this machine lacks: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out"
  grep -qE '^[[:space:]]*/' <<<"$out" || die "ldd found no dynamic loader for $1: $out"
}

# new_rootfs DIR BINARY: DIR holds BINARY at /usr/local/bin/<name>, its libraries at the paths
# ldd shows (regular files, symlinks resolved), passwd/group, /home/nonroot and /tmp.
new_rootfs() {
  local root=$1 bin=$2 lib libs
  libs=$(ldd_paths "$bin") # not in a process substitution, so its die stops the build
  rm -rf "$root"
  install -d -m 0755 "$root" "$root/etc" "$root/usr/local/bin" "$root/home" "$root/home/nonroot"
  install -d -m 1777 "$root/tmp"
  install -m 0755 "$bin" "$root/usr/local/bin/$(basename "$bin")"
  while read -r lib; do
    [[ -n $lib ]] || continue
    install -D -m "$(stat -L -c %a "$lib")" "$lib" "$root$lib"
  done <<<"$libs"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    "nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin" >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' "nonroot:x:$NONROOT:" >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
}

# write_layer DIR TAR: DIR as a sorted tar with fixed mtimes, owned by root except /home/nonroot
# (nonroot's own, appended last). Owners come from the flags, not from the files, so the
# build needs no root.
write_layer() {
  local root=$1 out=$2 entries
  mapfile -t entries < <(find "$root" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
  local common=(--format=gnu --sort=name --numeric-owner --mtime="@$EPOCH" -C "$root")
  rm -f "$out"
  tar --create --file "$out" "${common[@]}" --owner=0 --group=0 --anchored --exclude=home/nonroot "${entries[@]}"
  tar --append --file "$out" "${common[@]}" --owner="$NONROOT" --group="$NONROOT" home/nonroot
}

# pack_image NAME:TAG DIR UMOCI_CONFIG_ARGS...: DIR as the one layer of NAME:TAG in the OCI
# layout, configured with the arguments, exported to its archive.
pack_image() {
  local ref=$1 root=$2
  shift 2
  local short full archive layer created
  short=$(short_ref "$ref")
  full=$(full_ref "$ref")
  archive=$(archive_for "$ref")
  layer=$root.layer.tar
  created=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  write_layer "$root" "$layer"
  [[ -f $LAYOUT/index.json ]] || umoci init --layout "$LAYOUT"
  if umoci ls --layout "$LAYOUT" | grep -qxF "$short"; then umoci rm --image "$LAYOUT:$short"; fi
  umoci new --image "$LAYOUT:$short"
  umoci raw add-layer --image "$LAYOUT:$short" --history.created "$created" \
    --history.created_by "infra/images.sh" "$layer"
  umoci config --image "$LAYOUT:$short" --no-history --created "$created" "$@"
  umoci gc --layout "$LAYOUT"
  rm -f "$layer" "$archive.partial"
  mkdir -p "$IMAGES_DIR/tmp"
  skopeo copy --quiet --tmpdir "$IMAGES_DIR/tmp" "oci:$LAYOUT:$short" "docker-archive:$archive.partial:$full" ||
    die "skopeo could not export $short from $LAYOUT"
  mv "$archive.partial" "$archive"
  rm -rf "$root"
  info "$full: $archive ($(human "$(stat -c %s "$archive")"), $(compressed_size "$short") compressed)"
}

build_prereqs() {
  need umoci:umoci skopeo:skopeo jq:jq ldd:libc-bin tar:tar numfmt:coreutils
  [[ $ORDEXA_CACHE_DIR != *:* ]] || die "ORDEXA_CACHE_DIR ($ORDEXA_CACHE_DIR) contains ':', which oci: and docker-archive: references cannot hold"
  EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ORDEXA_ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
}

pack_ordexa() {
  local root=$IMAGES_DIR/work/ordexa
  new_rootfs "$root" "$CARGO_TARGET_DIR/release/ordexa"
  install -d -m 0755 "$root/usr/share/ordexa"
  cp -R "$ORDEXA_ROOT/frontend/dist" "$root$WEB_DIR"
  chmod -R u=rwX,go=rX "$root$WEB_DIR"
  local env=() e
  for e in "${ORDEXA_ENV[@]}"; do env+=(--config.env "$e"); done
  pack_image "ordexa:$TAG" "$root" --config.user "$NONROOT:$NONROOT" "${env[@]}" \
    --config.exposedports 8080/tcp --config.entrypoint /usr/local/bin/ordexa --config.cmd api
}

pack_operator() {
  local root=$IMAGES_DIR/work/ordexa-operator
  new_rootfs "$root" "$CARGO_TARGET_DIR/release/ordexa-operator"
  pack_image "ordexa-operator:$TAG" "$root" --config.user "$NONROOT:$NONROOT" \
    --config.entrypoint /usr/local/bin/ordexa-operator --config.cmd run
}

# ---- subcommands ---------------------------------------------------------------------------

cmd_build() {
  local which=${1:-all} want_ordexa=0 want_operator=0
  case $which in
  ordexa) want_ordexa=1 ;;
  operator) want_operator=1 ;;
  all) want_ordexa=1 want_operator=1 ;;
  *) die "usage: $0 build [ordexa|operator|all]" ;;
  esac
  lock_images_dir

  if docker_engine; then
    info "a Docker engine answers: building with the Dockerfiles"
    local image file
    for image in ordexa ordexa-operator; do
      [[ $image == ordexa && $want_ordexa == 1 ]] || [[ $image == ordexa-operator && $want_operator == 1 ]] || continue
      file=workloads/Dockerfile
      [[ $image == ordexa-operator ]] && file=operator/Dockerfile
      docker build -f "$ORDEXA_ROOT/$file" -t "$image:$TAG" "$ORDEXA_ROOT"
      docker save -o "$(archive_for "$image:$TAG")" "$image:$TAG"
    done
    cmd_list
    return
  fi

  build_prereqs
  if ((want_ordexa)); then
    cargo_release ordexa
    ensure_frontend
  fi
  ((want_operator)) && cargo_release ordexa-operator
  ((want_ordexa)) && pack_ordexa
  ((want_operator)) && pack_operator
  rm -rf "$IMAGES_DIR/work" "$IMAGES_DIR/tmp"
  cmd_list
}

cmd_from_binary() {
  [[ $# -ge 2 ]] || die "usage: $0 from-binary NAME:TAG BINARY [ENTRYPOINT_ARGS...]"
  local ref=$1 bin=$2
  shift 2
  [[ ${ref##*/} == *:* ]] || die "from-binary: '$ref' is not NAME:TAG"
  [[ -f $bin && -x $bin ]] || die "from-binary: $bin is not an executable file"
  local user=${ORDEXA_IMAGE_USER:-$NONROOT}
  [[ $user == *:* ]] || user=$user:$user
  lock_images_dir
  build_prereqs
  local name root args=() a
  name=$(basename "$bin")
  root=$IMAGES_DIR/work/from-binary-$name
  new_rootfs "$root" "$bin"
  args=(--config.entrypoint "/usr/local/bin/$name")
  for a in "$@"; do args+=(--config.entrypoint "$a"); done
  pack_image "$ref" "$root" --config.user "$user" "${args[@]}"
  rm -rf "$IMAGES_DIR/work" "$IMAGES_DIR/tmp"
}

cmd_import() {
  [[ $# -ge 1 ]] || die "usage: $0 import ADDRESS [NAMESPACE]"
  local address=$1 namespace=${2:-k8s.io} archive
  need ctr:containerd
  [[ -S $address ]] || die "no containerd socket at $address"
  shopt -s nullglob
  local archives=("$IMAGES_DIR"/*.tar)
  ((${#archives[@]})) || die "no image archives in $IMAGES_DIR; run: bash infra/images.sh build"
  for archive in "${archives[@]}"; do
    info "importing $(basename "$archive") into $address (namespace $namespace)"
    ctr --address "$address" -n "$namespace" images import "$archive" >&2 || die "ctr images import $archive failed"
  done
}

cmd_list() {
  shopt -s nullglob
  local archives=("$IMAGES_DIR"/*.tar) archive ref
  if ((${#archives[@]} == 0)); then
    info "no image archives in $IMAGES_DIR; run: bash infra/images.sh build"
    return 0
  fi
  printf '%-44s %10s %11s  %s\n' IMAGE ARCHIVE COMPRESSED FILE
  for archive in "${archives[@]}"; do
    ref=$(tar -xOf "$archive" manifest.json | jq -r '.[0].RepoTags[0] // "-"')
    printf '%-44s %10s %11s  %s\n' "$(full_ref "$ref")" "$(human "$(stat -c %s "$archive")")" \
      "$(compressed_size "$(short_ref "$ref")")" "$archive"
  done
}

# ---- check: both images in a throwaway containerd ------------------------------------------

CTR_TMP=
CREATED_RUN_CONTAINERD=0
BLACKHOLE_PID=

ctr_() { ctr --address "$CTR_TMP/containerd.sock" -n k8s.io "$@"; }
ctr_run() { ctr_ run --runc-root "$CTR_TMP/runc" --fifo-dir "$CTR_TMP/fifo" "$@"; }

start_containerd() {
  [[ -d /run/containerd ]] || CREATED_RUN_CONTAINERD=1
  CTR_TMP=$(mktemp -d /tmp/ordexa-ctr.XXXXXX)
  trap stop_containerd EXIT
  cat >"$CTR_TMP/config.toml" <<EOF
# A throwaway containerd for infra/images.sh check; everything it keeps is below this folder.
version = 2
root = "$CTR_TMP/root"
state = "$CTR_TMP/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_TMP/containerd.sock"
[ttrpc]
  address = "$CTR_TMP/containerd.sock.ttrpc"
[debug]
  address = "$CTR_TMP/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTR_TMP/opt"
EOF
  setsid containerd --config "$CTR_TMP/config.toml" >"$CTR_TMP/containerd.log" 2>&1 </dev/null &
  echo $! >"$CTR_TMP/containerd.pid"
  wait_until "throwaway containerd ($CTR_TMP)" 30 "$CTR_TMP/containerd.log" "$CTR_TMP/containerd.pid" \
    ctr --address "$CTR_TMP/containerd.sock" version
}

# Removes the check's containers, containerd, its mounts and folder; containerd 1.6 keeps shim
# sockets in /run/containerd/s whatever its state folder, so that goes too when we made it.
stop_containerd() {
  local id mnt
  [[ -n $BLACKHOLE_PID ]] && kill "$BLACKHOLE_PID" 2>/dev/null
  [[ -n $CTR_TMP && -d $CTR_TMP ]] || return 0
  if pid_alive "$CTR_TMP/containerd.pid"; then
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
    stop_pid containerd "$CTR_TMP/containerd.pid" 30
  fi
  while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done < <(awk -v d="$CTR_TMP/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
  rm -rf "$CTR_TMP"
  if ((CREATED_RUN_CONTAINERD)) && [[ -d /run/containerd ]]; then
    find /run/containerd -depth -type d -empty -delete 2>/dev/null || true
  fi
  CTR_TMP=
}

ok() { printf '  ok: %s\n' "$*" >&2; }
fail() { die "check failed: $*"; }

# check_archive NAME:TAG ENTRYPOINT CMD [ENV...]: the archive's config and its files.
check_archive() {
  local ref=$1 entrypoint=$2 cmd=$3
  shift 3
  local archive config files e
  archive=$(archive_for "$ref")
  config=$(tar -xOf "$archive" "$(tar -xOf "$archive" manifest.json | jq -r '.[0].Config')" | jq -c .config)
  info "$ref: $archive, config $config"
  [[ $(jq -c .Entrypoint <<<"$config") == "[\"$entrypoint\"]" ]] || fail "$ref: Entrypoint is not [\"$entrypoint\"]"
  [[ $(jq -c .Cmd <<<"$config") == "[\"$cmd\"]" ]] || fail "$ref: Cmd is not [\"$cmd\"]"
  for e in "$@"; do
    jq -e --arg e "$e" '.Env | index($e)' <<<"$config" >/dev/null || fail "$ref: Env lacks $e"
  done
  ok "entrypoint [$entrypoint], cmd [$cmd]${*:+, env $*}, user $(jq -r .User <<<"$config")"
  files=$CTR_TMP/$(basename "$archive" .tar).files
  local layer
  for layer in $(tar -xOf "$archive" manifest.json | jq -r '.[0].Layers[]'); do
    tar -xOf "$archive" "$layer" >"$CTR_TMP/layer.tar"
    tar -tvf "$CTR_TMP/layer.tar" >>"$files"
  done
  rm -f "$CTR_TMP/layer.tar"
  printf '    %s\n' "files in the image:" >&2
  sed 's/^/    /' "$files" >&2
  if grep -qE '(^|/)(sh|bash|dash|ash|busybox|apt|apt-get|dpkg|rpm|apk)( |$)' <(awk '{print $6}' "$files"); then
    fail "$ref contains a shell or package manager"
  fi
  ok "no shell, no package manager in the layers"
}

# check_run NAME:TAG BINARY: the binary runs from the image; /bin/sh does not.
check_run() {
  local ref=$1 bin=$2 out id
  id=check-$(basename "$bin")-$$
  out=$(ctr_run --rm "$(full_ref "$ref")" "$id-help" "$bin" --help 2>&1) || fail "$bin --help in $ref: $out"
  ok "ctr run --rm $(full_ref "$ref") $id-help $bin --help -> $(head -n1 <<<"$out")"
  if out=$(ctr_run --rm "$(full_ref "$ref")" "$id-sh" /bin/sh -c true 2>&1); then
    fail "/bin/sh ran in $ref"
  fi
  ctr_ containers delete "$id-sh" >/dev/null 2>&1 || true
  grep -q 'no such file or directory' <<<"$out" || fail "/bin/sh in $ref failed for another reason: $out"
  ok "ctr run --rm $(full_ref "$ref") $id-sh /bin/sh -c true -> ${out##*runc create failed: }"
}

# check_uid ID PIDFILE: the running task's process has uid and gid 65532 (read by the host).
check_uid() {
  local id=$1 pidfile=$2 pid ids
  for _ in $(seq 50); do
    if [[ -s $pidfile ]]; then break; fi
    sleep 0.1
  done
  pid=$(cat "$pidfile")
  ids=$(awk '/^(Uid|Gid):/ {printf "%s %s %s %s %s; ", $1, $2, $3, $4, $5}' "/proc/$pid/status" 2>/dev/null) ||
    fail "$id exited at once (log: $(cat "$CTR_TMP/$id.log"))"
  [[ $ids == "Uid: $NONROOT $NONROOT $NONROOT $NONROOT; Gid: $NONROOT $NONROOT $NONROOT $NONROOT; " ]] ||
    fail "$id (pid $pid) runs with ${ids:-unknown ids}"
  ok "$id: host pid $pid, /proc/$pid/status $ids"
}

check_ordexa() {
  local ref=ordexa:$TAG id=check-ordexa-web-$$ out code pid
  check_archive "$ref" /usr/local/bin/ordexa api "${ORDEXA_ENV[@]}"
  check_run "$ref" /usr/local/bin/ordexa
  out=$(ctr_run --rm "$(full_ref "$ref")" "$id-token" /usr/local/bin/ordexa token --help 2>&1) || fail "ordexa token --help: $out"
  ok "ordexa token --help -> $(head -n1 <<<"$out")"
  # `ordexa web` keeps running on the image's ORDEXA_HTTP_ADDR and ORDEXA_WEB_ASSETS.
  ctr_run -d --pid-file "$CTR_TMP/$id.pid" --log-uri "file://$CTR_TMP/$id.log" "$(full_ref "$ref")" "$id" /usr/local/bin/ordexa web >/dev/null
  check_uid "$id" "$CTR_TMP/$id.pid"
  pid=$(cat "$CTR_TMP/$id.pid")
  for _ in $(seq 50); do
    code=$(nsenter --target "$pid" --net curl -s -o "$CTR_TMP/index.html" -w '%{http_code}' http://127.0.0.1:8080/ 2>/dev/null) && [[ $code == 200 ]] && break
    sleep 0.2
  done
  if [[ ${code:-} != 200 ]] || ! grep -q '<div id="root">' "$CTR_TMP/index.html"; then
    fail "ordexa web in $ref did not serve the frontend on 0.0.0.0:8080 (HTTP ${code:-none}; log: $(cat "$CTR_TMP/$id.log"))"
  fi
  ok "ordexa web serves $WEB_DIR/index.html on :8080 in the container's network namespace ($(grep -o '<title>[^<]*</title>' "$CTR_TMP/index.html"))"
  ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
  ctr_ containers delete "$id" >/dev/null
}

check_operator() {
  local ref=ordexa-operator:$TAG id=check-operator-run-$$ out port
  check_archive "$ref" /usr/local/bin/ordexa-operator run
  check_run "$ref" /usr/local/bin/ordexa-operator
  out=$(ctr_run --rm "$(full_ref "$ref")" "$id-crd" /usr/local/bin/ordexa-operator crd 2>&1) || fail "ordexa-operator crd: $out"
  grep -q '^kind: CustomResourceDefinition' <<<"$out" || fail "ordexa-operator crd printed no CRD: $(head -n3 <<<"$out")"
  ok "ordexa-operator crd -> $(grep -m1 '^  name:' <<<"$out" | sed 's/^ *//')"
  # `run` waits for its first answer from the API server; an address that accepts connections
  # and never answers keeps it waiting long enough to look at the process.
  python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True); time.sleep(120)' >"$CTR_TMP/blackhole.port" &
  BLACKHOLE_PID=$!
  for _ in $(seq 50); do
    if [[ -s $CTR_TMP/blackhole.port ]]; then break; fi
    sleep 0.1
  done
  port=$(cat "$CTR_TMP/blackhole.port")
  [[ -n $port ]] || fail "could not open a local port for the operator to wait on"
  # A cluster CA as in a pod (the image has no system CA bundle to fall back on).
  openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=ordexa-images-check -days 1 \
    -keyout "$CTR_TMP/ca.key" -out "$CTR_TMP/ca.crt" 2>/dev/null || fail "openssl could not make a CA certificate"
  cat >"$CTR_TMP/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: silent, cluster: {server: "http://127.0.0.1:$port", certificate-authority-data: $(base64 -w0 "$CTR_TMP/ca.crt")}}]
users: [{name: nobody, user: {}}]
contexts: [{name: silent, context: {cluster: silent, user: nobody}}]
current-context: silent
EOF
  chmod 0644 "$CTR_TMP/kubeconfig"
  ctr_run -d --net-host --pid-file "$CTR_TMP/$id.pid" --log-uri "file://$CTR_TMP/$id.log" \
    --mount "type=bind,src=$CTR_TMP/kubeconfig,dst=/tmp/kubeconfig,options=rbind:ro" --env KUBECONFIG=/tmp/kubeconfig \
    "$(full_ref "$ref")" "$id" /usr/local/bin/ordexa-operator run --metrics-addr 127.0.0.1:0 >/dev/null
  check_uid "$id" "$CTR_TMP/$id.pid"
  ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
  ctr_ containers delete "$id" >/dev/null
  kill "$BLACKHOLE_PID" 2>/dev/null || true
  BLACKHOLE_PID=
}

cmd_check() {
  [[ $(id -u) == 0 ]] || die "check runs a throwaway containerd, which needs root"
  need containerd:containerd ctr:containerd runc:runc jq:jq curl:curl nsenter:util-linux python3:python3 openssl:openssl numfmt:coreutils
  local ref
  for ref in "ordexa:$TAG" "ordexa-operator:$TAG"; do
    [[ -f $(archive_for "$ref") ]] || die "$(archive_for "$ref") is missing; run: bash infra/images.sh build"
  done
  start_containerd
  cmd_import "$CTR_TMP/containerd.sock" k8s.io
  ctr_ images ls >&2
  check_ordexa
  check_operator
  stop_containerd
  info "both images passed"
  cmd_list
}

case ${1:-} in
build) cmd_build "${@:2}" ;;
from-binary) cmd_from_binary "${@:2}" ;;
import) cmd_import "${@:2}" ;;
list) cmd_list ;;
check) cmd_check ;;
*) die "usage: $0 build [ordexa|operator|all] | from-binary NAME:TAG BINARY [ARGS...] | import ADDRESS [NAMESPACE] | list | check" ;;
esac
