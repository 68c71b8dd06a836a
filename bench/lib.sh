# Shared by the benchmark scripts (bench/api.sh, bench/relay.sh): paths, logging, the release
# build, a fresh database on the local server, the facts a result file states, and where it goes.
# Source it, then call `bench_init NAME`.
# shellcheck shell=bash
# The variables set here are for the sourcing script.
# shellcheck disable=SC2034

# bench_init NAME: enters the checkout and sets ROOT, STATE_DIR, stamp (UTC, for names), started
# (for the report), WORK (~/.cache/ordexa/bench/NAME-<stamp>: raw results and logs).
bench_init() {
  BENCH_NAME=$1
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$ROOT" || return
  export ORDEXA_CACHE_DIR=${ORDEXA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ordexa}
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORDEXA_CACHE_DIR/target}
  STATE_DIR=${ORDEXA_STATE_DIR:-$ROOT/.state}
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  started=$(date -u '+%Y-%m-%d %H:%M UTC')
  WORK=$ORDEXA_CACHE_DIR/bench/$BENCH_NAME-$stamp
  mkdir -p "$WORK"
}

log() { printf '[bench-%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# bench_build: ordexa and ordexa-bench in release; sets ORDEXA and BENCH to the binaries.
bench_build() {
  log "building ordexa and ordexa-bench (release)"
  cargo build --release --locked -p ordexa -p ordexa-bench
  ORDEXA=$CARGO_TARGET_DIR/release/ordexa
  BENCH=$CARGO_TARGET_DIR/release/ordexa-bench
}

# bench_database DB [MIGRATE_ARGS...]: starts the local PostgreSQL if needed, creates the database
# DB afresh (dropped first if it exists) and runs `ordexa migrate MIGRATE_ARGS` on it. Sets
# admin_url and bench_url. bench_drop_database drops it again unless BENCH_KEEP_DB=1.
bench_database() {
  BENCH_DB=$1
  shift
  bash infra/infra.sh up postgres
  eval "$(bash infra/infra.sh env postgres)"
  admin_url=$ORDEXA_DATABASE_URL
  bench_url=${admin_url%/*}/$BENCH_DB
  psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $BENCH_DB" >/dev/null
  "$ORDEXA" migrate "$@" --database-url "$bench_url"
}

bench_drop_database() {
  if [[ -n ${admin_url:-} && -n ${BENCH_DB:-} && ${BENCH_KEEP_DB:-0} != 1 ]]; then
    psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}

sql() { psql -X -q -tA "$bench_url" -c "$1"; }

# bench_pg_facts: refuses to go on unless synchronous_commit is on; sets pg_version, pg_pid (the
# postmaster, empty if unknown) and appends the server's settings to the `settings` array as
# --setting arguments of the report.
bench_pg_facts() {
  local sync_commit name
  sync_commit=$(sql 'SHOW synchronous_commit')
  [[ $sync_commit == on ]] || die "synchronous_commit is '$sync_commit' on the server; this benchmark needs it on"
  pg_version=$(sql 'SELECT version()')
  for name in synchronous_commit fsync wal_sync_method full_page_writes shared_buffers max_wal_size commit_delay; do
    settings+=(--setting "PostgreSQL $name=$(sql "SHOW $name")")
  done
  settings+=(--setting "schema (migrations applied)=$(sql "SELECT string_agg(version || ' ' || description, ', ' ORDER BY version) FROM _sqlx_migrations")")
  pg_pid=$(head -n1 "$STATE_DIR/postgres/data/postmaster.pid" 2>/dev/null || true)
}

# bench_result KIND: sets commit, dirty (an array: --dirty or nothing) and out, the result file
# bench/results/KIND-<UTC date>-<short commit>.md (a rerun on the same day at the same commit
# replaces it).
bench_result() {
  commit=$(git rev-parse HEAD)
  dirty=()
  # Earlier results waiting to be committed do not make the measured code dirty.
  [[ -z $(git status --porcelain -- . ':!bench/results') ]] || dirty=(--dirty)
  out=bench/results/$1-$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD).md
}
