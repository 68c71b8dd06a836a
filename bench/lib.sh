# shellcheck shell=bash
# Shared by bench/*.sh. Source it, then `bench_init NAME`.
#
# BENCH_SMOKE=1 runs a benchmark in seconds with tiny sizes on the debug build (what `make test`
# does, so every `make bench-*` keeps working); its result goes to the work folder, not to
# bench/results/. Names of the run's own (database, topics, keyspaces) start with $PREFIX.
# The variables set here are for the sourcing script.
# shellcheck disable=SC2034

bench_init() {
  BENCH_NAME=$1
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$ROOT" || exit 1
  export ORDEXA_CACHE_DIR=${ORDEXA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ordexa}
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ORDEXA_CACHE_DIR/target}
  STATE_DIR=${ORDEXA_STATE_DIR:-$ROOT/.state}
  SMOKE=${BENCH_SMOKE:-0}
  local stamp
  stamp=$(date -u +%Y%m%d%H%M%S)
  PREFIX=bench_${BENCH_NAME}_$stamp
  WORK=$ORDEXA_CACHE_DIR/bench/$BENCH_NAME-$stamp
  mkdir -p "$WORK"
  if [[ $SMOKE == 1 ]]; then OUT=$WORK/$BENCH_NAME; else OUT=bench/results/$BENCH_NAME; fi
  log "work folder (logs, pgbench logs): $WORK"
}

log() { printf '[bench-%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# bench_build: sets ORDEXA (BENCH_ORDEXA: a binary to measure instead of building one) and BENCH.
# Smoke: the debug `ordexa` that `cargo test --workspace` builds (a no-op after make test's own
# run; building it with other features would rebuild the whole tree).
bench_build() {
  local profile=release
  [[ $SMOKE == 1 ]] && profile=debug
  if [[ -z ${BENCH_ORDEXA:-} && $SMOKE == 1 ]]; then
    cargo test --workspace --locked --no-run -q 2>/dev/null || cargo test --workspace --locked --no-run
  elif [[ -z ${BENCH_ORDEXA:-} ]]; then
    cargo build --release --locked -p ordexa
  fi
  if [[ $profile == release ]]; then
    cargo build --release --locked -q --manifest-path bench/Cargo.toml
  else
    cargo build --locked -q --manifest-path bench/Cargo.toml
  fi
  ORDEXA=${BENCH_ORDEXA:-$CARGO_TARGET_DIR/$profile/ordexa} BENCH=$CARGO_TARGET_DIR/$profile/ordexa-bench
}

# bench_database [MIGRATE_ARGS...]: a database $PREFIX on the shared local PostgreSQL, migrated;
# sets DB_URL. bench_drop_database removes it.
bench_database() {
  bash infra/infra.sh up postgres
  eval "$(bash infra/infra.sh env postgres)"
  ADMIN_URL=$ORDEXA_DATABASE_URL
  DB_URL=${ADMIN_URL%/*}/$PREFIX
  psql -X -q "$ADMIN_URL" -c "CREATE DATABASE $PREFIX" >/dev/null
  "$ORDEXA" migrate "$@" --database-url "$DB_URL" 2>/dev/null
}

bench_drop_database() {
  [[ -z ${ADMIN_URL:-} ]] || psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $PREFIX WITH (FORCE)" >/dev/null 2>&1 || true
}
