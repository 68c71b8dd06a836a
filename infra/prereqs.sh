#!/usr/bin/env bash
# Installs the Debian packages that building and testing Ordexa need and a fresh machine of
# our kind may lack: the C toolchain pieces rdkafka's bundled librdkafka builds with, Java and
# Maven for the Kafka and Cassandra servers, and the PostgreSQL server and client.
SERVER=prereqs
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# package -> why
declare -A wanted=(
  [cmake]="builds librdkafka (rdkafka's cmake-build)"
  [libcurl4-openssl-dev]="librdkafka includes curl/curl.h"
  [libssl-dev]="librdkafka's TLS"
  [pkg-config]="native library discovery"
  [g++]="librdkafka's C++ parts"
  [openjdk-17-jre-headless]="runs Kafka and Cassandra"
  [maven]="resolves Kafka and Cassandra from Maven Central"
  [postgresql-15]="the write-model server"
  [postgresql-client-15]="psql, pgbench"
  [acl]="lets the postgres account reach a closed state folder"
  [python3]="server readiness probes"
)

missing=()
for pkg in "${!wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# A JDK from elsewhere (e.g. /usr/lib/jvm/temurin) serves as well as Debian's.
if command -v java >/dev/null 2>&1; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vx openjdk-17-jre-headless || true)
fi
[[ ${#missing[@]} -eq 0 || -z ${missing[0]} ]] && exit 0

for pkg in "${missing[@]}"; do info "missing $pkg: ${wanted[$pkg]}"; done
[[ $(id -u) == 0 ]] || die "install them with: sudo apt-get install -y ${missing[*]}"
info "installing ${missing[*]} from Debian's packages"
apt-get update -q >/dev/null || die "apt-get update failed"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
