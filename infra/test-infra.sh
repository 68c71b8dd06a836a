#!/usr/bin/env bash
# Checks that the server scripts refuse bad situations with a message naming the server and
# what to do — without touching the running servers (own state folders, unused ports).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
passed=0
failed=0
scratch=$(mktemp -d)
blocker_pid=
cleanup() {
  [[ -z $blocker_pid ]] || kill "$blocker_pid" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT

# expect_failure NAME PATTERN CMD...: CMD must fail and print PATTERN.
expect_failure() {
  local name=$1 pattern=$2 out
  shift 2
  if out=$("$@" 2>&1); then
    echo "FAIL $name: succeeded but should have failed"
    failed=$((failed + 1))
  elif ! grep -qE "$pattern" <<<"$out"; then
    echo "FAIL $name: output lacks /$pattern/:"
    sed 's/^/    /' <<<"$out" | tail -5
    failed=$((failed + 1))
  else
    echo "ok   $name"
    passed=$((passed + 1))
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A folder with someone else's files is never used (nor wiped).
mkdir -p "$scratch/foreign" && echo "precious" >"$scratch/foreign/notes.txt"
for server in postgres kafka cassandra; do
  expect_failure "$server refuses a foreign state folder" "\[$server\] ERROR: state folder .* not created by Ordexa" \
    env ORDEXA_STATE_DIR="$scratch/foreign" ORDEXA_PG_PORT="$(free_port)" ORDEXA_KAFKA_PORT="$(free_port)" \
    ORDEXA_KAFKA_CONTROLLER_PORT="$(free_port)" ORDEXA_CASSANDRA_PORT="$(free_port)" \
    ORDEXA_CASSANDRA_STORAGE_PORT="$(free_port)" ORDEXA_CASSANDRA_JMX_PORT="$(free_port)" bash "$here/$server.sh" start
done
mkdir -p "$scratch/foreign/kafka" && echo "precious" >"$scratch/foreign/kafka/notes.txt"
expect_failure "reset leaves a foreign folder alone" "not Ordexa's|not created by Ordexa" \
  env ORDEXA_STATE_DIR="$scratch/foreign" bash "$here/kafka.sh" reset
[[ -f $scratch/foreign/kafka/notes.txt ]] || { echo "FAIL the foreign file was deleted"; failed=$((failed + 1)); }

# A port someone else listens on is named, with the variable that moves it.
busy=$(free_port)
python3 -m http.server "$busy" --bind 127.0.0.1 >/dev/null 2>&1 &
blocker_pid=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$busy") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$scratch/ports"
expect_failure "kafka names a busy port" "\[kafka\] ERROR: port $busy is already in use.*ORDEXA_KAFKA_PORT" \
  env ORDEXA_STATE_DIR="$scratch/ports" ORDEXA_KAFKA_PORT="$busy" ORDEXA_KAFKA_CONTROLLER_PORT="$(free_port)" \
  bash "$here/kafka.sh" start
expect_failure "cassandra names a busy port" "\[cassandra\] ERROR: port $busy is already in use.*ORDEXA_CASSANDRA_PORT" \
  env ORDEXA_STATE_DIR="$scratch/ports" ORDEXA_CASSANDRA_PORT="$busy" ORDEXA_CASSANDRA_STORAGE_PORT="$(free_port)" \
  ORDEXA_CASSANDRA_JMX_PORT="$(free_port)" bash "$here/cassandra.sh" start
expect_failure "postgres names a busy port" "\[postgres\] ERROR: port $busy is already in use.*ORDEXA_PG_PORT" \
  env ORDEXA_STATE_DIR="$scratch/ports" ORDEXA_PG_PORT="$busy" bash "$here/postgres.sh" start

# A data folder that is not what it should be points at infra-reset.
mkdir -p "$scratch/corrupt/kafka/data" "$scratch/corrupt/postgres/data"
cp "$here/../.gitignore" "$scratch/corrupt/.ordexa-state" 2>/dev/null || echo marker >"$scratch/corrupt/.ordexa-state"
echo junk >"$scratch/corrupt/kafka/data/junk"
echo junk >"$scratch/corrupt/postgres/data/junk"
expect_failure "kafka refuses a corrupt data folder" "\[kafka\] ERROR: .*infra-reset" \
  env ORDEXA_STATE_DIR="$scratch/corrupt" ORDEXA_KAFKA_PORT="$(free_port)" ORDEXA_KAFKA_CONTROLLER_PORT="$(free_port)" \
  bash "$here/kafka.sh" start
expect_failure "postgres refuses a corrupt data folder" "\[postgres\] ERROR: .*infra-reset" \
  env ORDEXA_STATE_DIR="$scratch/corrupt" ORDEXA_PG_PORT="$(free_port)" bash "$here/postgres.sh" start

# Java missing: the message says what to install.
mkdir -p "$scratch/bin"
for path in /usr/local/bin/* /usr/bin/* /bin/*; do
  name=${path##*/}
  [[ $name == java || -e $scratch/bin/$name ]] || ln -s "$path" "$scratch/bin/$name"
done
expect_failure "kafka says java is missing" "\[kafka\] ERROR: java not found" \
  env PATH="$scratch/bin" ORDEXA_STATE_DIR="$scratch/nojava" ORDEXA_KAFKA_PORT="$(free_port)" \
  ORDEXA_KAFKA_CONTROLLER_PORT="$(free_port)" bash "$here/kafka.sh" start

echo "infra: $passed passed, $failed failed"
((failed == 0))
