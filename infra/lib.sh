# shellcheck shell=bash
# Shared helpers for the local real servers (PostgreSQL, Kafka, Cassandra).
#
# Layout:
#   $ORDEXA_STATE_DIR  (default <checkout>/.state, git-ignored): data, logs, generated configs.
#   $ORDEXA_CACHE_DIR  (default ${XDG_CACHE_HOME:-~/.cache}/ordexa): downloads and build
#                      outputs (Maven repo, server classpaths, cargo target dir) that survive
#                      a fresh clone.
# Every port is overridable through its ORDEXA_*_PORT variable.

set -euo pipefail

ORDEXA_ROOT=${ORDEXA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ORDEXA_STATE_DIR=${ORDEXA_STATE_DIR:-$ORDEXA_ROOT/.state}
ORDEXA_CACHE_DIR=${ORDEXA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ordexa}
ORDEXA_BIND=127.0.0.1

ORDEXA_PG_PORT=${ORDEXA_PG_PORT:-55432}
ORDEXA_KAFKA_PORT=${ORDEXA_KAFKA_PORT:-19092}
ORDEXA_KAFKA_CONTROLLER_PORT=${ORDEXA_KAFKA_CONTROLLER_PORT:-19093}
ORDEXA_CASSANDRA_PORT=${ORDEXA_CASSANDRA_PORT:-19042}
ORDEXA_CASSANDRA_STORAGE_PORT=${ORDEXA_CASSANDRA_STORAGE_PORT:-17000}
ORDEXA_CASSANDRA_JMX_PORT=${ORDEXA_CASSANDRA_JMX_PORT:-17199}

# The single-node cluster (infra/cluster.sh) puts its pods on a bridge whose host side has this
# address. A server started while that address exists also listens on it, so pods can reach the
# host's PostgreSQL, Kafka and Cassandra; without the cluster, everything stays on loopback.
ORDEXA_CLUSTER_BRIDGE=${ORDEXA_CLUSTER_BRIDGE:-ordexa0}
ORDEXA_CLUSTER_HOST_ADDR=${ORDEXA_CLUSTER_HOST_ADDR:-10.244.0.1}
ORDEXA_CLUSTER_POD_CIDR=${ORDEXA_CLUSTER_POD_CIDR:-10.244.0.0/24}
ORDEXA_KAFKA_POD_PORT=${ORDEXA_KAFKA_POD_PORT:-19094}

# pod_host_addr: prints the cluster bridge's host address when it is configured, else nothing.
pod_host_addr() {
  if ip -4 -o addr show dev "$ORDEXA_CLUSTER_BRIDGE" 2>/dev/null | grep -q " $ORDEXA_CLUSTER_HOST_ADDR/"; then
    echo "$ORDEXA_CLUSTER_HOST_ADDR"
  fi
}

# Versions run locally; bumping one re-resolves into a new cache folder.
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}
PG_MAJOR=15

STATE_MARKER=.ordexa-state

info() { printf '[%s] %s\n' "${SERVER:-infra}" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "${SERVER:-infra}" "$*" >&2
  exit 1
}

# The state folder must be ours: refuse to write into (or wipe) a folder that holds something
# else, so a mistyped ORDEXA_STATE_DIR never destroys foreign data.
ensure_state_dir() {
  if [[ -d $ORDEXA_STATE_DIR && ! -f $ORDEXA_STATE_DIR/$STATE_MARKER ]]; then
    if [[ -n $(ls -A "$ORDEXA_STATE_DIR") ]]; then
      die "state folder $ORDEXA_STATE_DIR is not empty and was not created by Ordexa (no $STATE_MARKER); point ORDEXA_STATE_DIR elsewhere or empty it yourself"
    fi
  fi
  mkdir -p "$ORDEXA_STATE_DIR" "$ORDEXA_CACHE_DIR"
  [[ -f $ORDEXA_STATE_DIR/$STATE_MARKER ]] || echo "Ordexa local server state; make infra-reset wipes it" >"$ORDEXA_STATE_DIR/$STATE_MARKER"
}

port_in_use() { (exec 3<>"/dev/tcp/$ORDEXA_BIND/$1") 2>/dev/null; }

# Fail early, naming the server and the port, when something else listens where we want to.
require_port_free() {
  local port=$1 var=$2
  if port_in_use "$port"; then
    die "port $port is already in use by another process; stop it or choose another port with $var=<port>"
  fi
}

require_java17() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH; install a JDK 17 (apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ ${v%%.*} -ge 17 ]] 2>/dev/null || die "java $v found; Kafka 4 and Cassandra 5 need Java 17 or newer"
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  [[ -f $1 ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null
}

# wait_until DESC TIMEOUT_S LOGFILE PIDFILE CMD...: poll CMD each second, printing progress,
# until it succeeds; on timeout or when the process dies, show the log tail and fail.
wait_until() {
  local desc=$1 timeout=$2 log=$3 pidfile=$4
  shift 4
  local start=$SECONDS
  info "waiting for $desc (up to ${timeout}s)"
  while ! "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      show_log_tail "$log"
      die "$desc: the process exited during start-up (log: $log)"
    fi
    if ((SECONDS - start >= timeout)); then
      show_log_tail "$log"
      die "$desc did not answer within ${timeout}s (log: $log)"
    fi
    if (((SECONDS - start) % 10 == 0 && SECONDS > start)); then info "... still waiting for $desc ($((SECONDS - start))s)"; fi
    sleep 1
  done
  info "$desc answered after $((SECONDS - start))s"
}

show_log_tail() {
  [[ -f $1 ]] || return 0
  printf -- '----- last lines of %s -----\n' "$1" >&2
  tail -n 40 "$1" >&2
  printf -- '-----\n' >&2
}

# kill_pid NAME PIDFILE: SIGKILL, as a crash would (chaos and failure tests), and wait until the
# kernel has reaped it so its ports are free for a restart. The pid file is left as a crash
# leaves it; `start` recognises it as stale.
kill_pid() {
  local name=$1 pidfile=$2 pid
  if ! pid_alive "$pidfile"; then
    info "$name is not running"
    return 0
  fi
  pid=$(head -n1 "$pidfile")
  kill -KILL "$pid" 2>/dev/null || true
  local reaped_by=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < reaped_by)); do sleep 0.1; done
  info "killed $name (pid $pid, SIGKILL)"
}

# stop_pid NAME PIDFILE [TIMEOUT]: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 timeout=${3:-60} pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(head -n1 "$pidfile")
  info "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= timeout)); then
      info "$name did not stop within ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      # Give the kernel a moment to reap it, so its ports are free for an immediate restart.
      local reaped_by=$((SECONDS + 5))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < reaped_by)); do sleep 0.2; done
      break
    fi
    sleep 0.5
  done
  rm -f "$pidfile"
}

# mvn_classpath GROUP:ARTIFACT:VERSION DEST: resolve an artifact and its runtime dependencies
# from Maven Central into the cache and write their jar paths (colon-separated) to DEST.
# Resolution runs in a staging folder that is renamed only when complete, so an interrupted
# download is redone rather than half-used.
mvn_classpath() {
  local coords=$1 dest=$2
  [[ -s $dest ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found; install Maven (apt-get install maven)"
  mkdir -p "$ORDEXA_CACHE_DIR" # an install may run before ensure_state_dir ever did
  local g a v
  IFS=: read -r g a v <<<"$coords"
  local work
  work=$(mktemp -d "$ORDEXA_CACHE_DIR/mvn-resolve.XXXXXX")
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.ordexa.local</groupId>
  <artifactId>resolve-$a</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>
  </dependencies>
</project>
POM
  info "resolving $coords and its dependencies from Maven Central (first run only)"
  if ! mvn -B -q -f "$work/pom.xml" -Dmaven.repo.local="$ORDEXA_CACHE_DIR/m2" \
    dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile="$work/cp.txt" >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "could not resolve $coords from Maven Central (log: $work/mvn.log); check the registry is reachable and re-run"
  fi
  local jar
  jar="$ORDEXA_CACHE_DIR/m2/${g//.//}/$a/$v/$a-$v.jar"
  [[ -f $jar ]] || die "resolution of $coords finished but $jar is missing; delete $ORDEXA_CACHE_DIR/m2/${g//.//}/$a and re-run"
  # The artifact first; build-classpath lists it too, so drop that second copy.
  { echo "$jar"; tr ':' '\n' <"$work/cp.txt"; } | awk 'NF && !seen[$0]++' | paste -sd: >"$dest.partial"
  mv "$dest.partial" "$dest"
  rm -rf "$work"
}
