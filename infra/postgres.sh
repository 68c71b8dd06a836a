#!/usr/bin/env bash
# PostgreSQL 15 from Debian's packages, run as Ordexa's own cluster (initdb/pg_ctl) on
# 127.0.0.1:$ORDEXA_PG_PORT with its data under $ORDEXA_STATE_DIR/postgres — never the
# system service.
SERVER=postgres
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_DIR=$ORDEXA_STATE_DIR/postgres
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/log/postgres.log
PG_PIDFILE=$PG_DATA/postmaster.pid
PG_USER=ordexa
PG_PASSWORD=ordexa
PG_DB=ordexa
DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$ORDEXA_PG_PORT/$PG_DB"

# PostgreSQL refuses to run as root, so as root the cluster belongs to Debian's `postgres`
# account; as anyone else it belongs to that user.
if [[ $(id -u) == 0 ]]; then RUN_AS=postgres; else RUN_AS=; fi

as_owner() {
  if [[ -n $RUN_AS ]]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

apt_install() {
  [[ $(id -u) == 0 ]] || die "$* missing; install it with: sudo apt-get install -y $*"
  info "installing $* from Debian's packages"
  # The package scripts create and start Debian's own cluster on port 5432; Ordexa does not use it.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}

cmd_install() {
  [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || apt_install "postgresql-$PG_MAJOR"
  command -v psql >/dev/null 2>&1 || apt_install "postgresql-client-$PG_MAJOR"
  [[ -z $RUN_AS ]] || command -v setfacl >/dev/null 2>&1 || apt_install acl
}

# The postgres account must be able to reach the state folder. A checkout under /root or a
# mktemp folder is closed to it, so grant that one account search (x) permission on each
# closed ancestor — no read, no write, nobody else.
grant_traversal() {
  [[ -n $RUN_AS ]] || return 0
  # Top-down, so each test sees only its own permission, not a closed ancestor's.
  local dir=/ part
  local -a parts
  IFS=/ read -ra parts <<<"${PG_DIR#/}"
  for part in "${parts[@]}"; do
    dir=${dir%/}/$part
    [[ -d $dir ]] || break
    if ! runuser -u "$RUN_AS" -- test -x "$dir"; then
      info "granting the $RUN_AS account search permission on $dir"
      setfacl -m "u:$RUN_AS:x" "$dir"
    fi
  done
}

check_data_dir() {
  [[ -d $PG_DATA ]] || return 0
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    die "$PG_DATA exists but holds no PostgreSQL cluster (no PG_VERSION); it is corrupt or foreign — run 'make infra-reset' to wipe the local servers' data"
  fi
  local v
  v=$(cat "$PG_DATA/PG_VERSION")
  [[ $v == "$PG_MAJOR" ]] || die "$PG_DATA was made by PostgreSQL $v, this runs $PG_MAJOR — run 'make infra-reset' to wipe it"
}

init_cluster() {
  [[ -d $PG_DATA ]] && return 0
  info "creating the cluster in $PG_DATA"
  local partial=$PG_DIR/data.partial
  rm -rf "$partial"
  mkdir -p "$partial" "$PG_DIR/log"
  [[ -z $RUN_AS ]] || chown -R "$RUN_AS:" "$PG_DIR"
  local pwfile=$PG_DIR/.pw
  printf '%s\n' "$PG_PASSWORD" >"$pwfile"
  [[ -z $RUN_AS ]] || chown "$RUN_AS:" "$pwfile"
  as_owner "$PG_BIN/initdb" -D "$partial" -U "$PG_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$PG_DIR/log/initdb.log" 2>&1 ||
    { rm -f "$pwfile"; show_log_tail "$PG_DIR/log/initdb.log"; die "initdb failed (log: $PG_DIR/log/initdb.log)"; }
  rm -f "$pwfile"
  # Listen on loopback TCP only: no unix socket, whose path length limit a deep state folder
  # would exceed. The port is passed at start so it can change without re-initialising.
  cat >>"$partial/postgresql.conf" <<CONF

# --- Ordexa local development settings ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
synchronous_commit = on
log_min_duration_statement = -1
log_line_prefix = '%m [%p] %q%u@%d '
CONF
  mv "$partial" "$PG_DATA"
}

ready() { PGPASSWORD=$PG_PASSWORD psql -X -q -h 127.0.0.1 -p "$ORDEXA_PG_PORT" -U "$PG_USER" -d postgres -tAc 'select 1' >/dev/null 2>&1; }

server_version() { PGPASSWORD=$PG_PASSWORD psql -X -h 127.0.0.1 -p "$ORDEXA_PG_PORT" -U "$PG_USER" -d "$PG_DB" -tAc 'show server_version' 2>/dev/null; }

cmd_start() {
  cmd_install
  ensure_state_dir
  check_data_dir
  if pid_alive "$PG_PIDFILE" && ready; then
    info "already running on 127.0.0.1:$ORDEXA_PG_PORT"
    return 0
  fi
  require_port_free "$ORDEXA_PG_PORT" ORDEXA_PG_PORT
  grant_traversal
  init_cluster
  local start=$SECONDS
  # -W: don't let pg_ctl wait; wait_until below shows progress and the log on failure.
  local listen=127.0.0.1 pod_addr
  pod_addr=$(pod_host_addr)
  if [[ -n $pod_addr ]]; then
    # The cluster's pods connect from their own addresses, with the same password.
    listen+=",$pod_addr"
    grep -q "^host all all $ORDEXA_CLUSTER_POD_CIDR " "$PG_DATA/pg_hba.conf" ||
      echo "host all all $ORDEXA_CLUSTER_POD_CIDR scram-sha-256" >>"$PG_DATA/pg_hba.conf"
    info "also listening on $pod_addr:$ORDEXA_PG_PORT for the cluster's pods"
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $ORDEXA_PG_PORT -c listen_addresses=$listen" -W start >/dev/null ||
    { show_log_tail "$PG_LOG"; die "pg_ctl start failed (log: $PG_LOG)"; }
  sleep 0.2
  wait_until "PostgreSQL on 127.0.0.1:$ORDEXA_PG_PORT" 60 "$PG_LOG" "$PG_PIDFILE" ready
  if ! PGPASSWORD=$PG_PASSWORD psql -X -q -h 127.0.0.1 -p "$ORDEXA_PG_PORT" -U "$PG_USER" -d postgres -tAc \
    "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
    PGPASSWORD=$PG_PASSWORD psql -X -q -h 127.0.0.1 -p "$ORDEXA_PG_PORT" -U "$PG_USER" -d postgres -c "create database $PG_DB" >/dev/null
  fi
  info "ready in $((SECONDS - start))s: $DATABASE_URL"
}

cmd_stop() {
  if pid_alive "$PG_PIDFILE"; then
    info "stopping"
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed (log: $PG_LOG)"
  fi
}

cmd_status() {
  if pid_alive "$PG_PIDFILE"; then
    echo "postgres: running, pid $(head -n1 "$PG_PIDFILE"), 127.0.0.1:$ORDEXA_PG_PORT, PostgreSQL $(server_version || echo '(not answering)')"
  else
    echo "postgres: stopped, 127.0.0.1:$ORDEXA_PG_PORT, PostgreSQL $PG_MAJOR"
  fi
}

cmd_env() { printf 'export ORDEXA_DATABASE_URL=%q\n' "$DATABASE_URL"; }

cmd_reset() {
  cmd_stop
  rm -rf "$PG_DIR"
  info "data removed"
}

case ${1:-} in
install | start | stop | status | env | reset) "cmd_$1" ;;
kill) kill_pid PostgreSQL "$PG_PIDFILE" ;;
*) die "usage: $0 install|start|stop|kill|status|env|reset" ;;
esac
