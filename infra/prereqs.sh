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
  [chromium]="the browser the frontend's end-to-end tests drive (playwright-core)"
  [chromium-driver]="WebDriver for that Chromium"
)

missing=()
for pkg in "${!wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# A JDK from elsewhere (e.g. /usr/lib/jvm/temurin) serves as well as Debian's.
if command -v java >/dev/null 2>&1; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vx openjdk-17-jre-headless || true)
fi
if [[ ${#missing[@]} -gt 0 && -n ${missing[0]} ]]; then
  for pkg in "${missing[@]}"; do info "missing $pkg: ${wanted[$pkg]}"; done
  [[ $(id -u) == 0 ]] || die "install them with: sudo apt-get install -y ${missing[*]}"
  info "installing ${missing[*]} from Debian's packages"
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# Python tools the tests call, in a virtualenv kept in the cache: an independent OpenAPI 3.1
# validator for the API's generated document, and schemathesis, which tests the API against
# that document (workloads/api/schemathesis/run.sh). schemathesis is pinned: a new release may
# bring new checks, which should arrive by a change here, not by surprise in `make test`.
SCHEMATHESIS_VERSION=4.32.5
venv=$ORDEXA_CACHE_DIR/venv
if [[ ! -x $venv/bin/openapi-spec-validator ]]; then
  info "installing openapi-spec-validator from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed; install Debian's python3-venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openapi-spec-validator>=0.7' || die "pip install openapi-spec-validator failed"
fi
if [[ $("$venv/bin/schemathesis" --version 2>/dev/null || true) != *" $SCHEMATHESIS_VERSION" ]]; then
  info "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
fi
