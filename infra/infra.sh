#!/usr/bin/env bash
# Entry point behind `make infra-*`: runs one action over the local real servers.
#   infra.sh up|down|reset|status|env [postgres] [kafka] [cassandra]
# With no server named, the action applies to all three.
SERVER=infra
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(dirname "${BASH_SOURCE[0]}")
action=${1:-}
shift || true
servers=("$@")
[[ ${#servers[@]} -gt 0 ]] || servers=(postgres kafka cassandra)
for s in "${servers[@]}"; do
  [[ -f $here/$s.sh ]] || die "unknown server '$s'; known: postgres kafka cassandra"
done

each() {
  local s
  for s in "${servers[@]}"; do bash "$here/$s.sh" "$1"; done
}

case $action in
up)
  ensure_state_dir
  start=$SECONDS
  # Downloads run one after another (Maven's local repository is shared); the servers then
  # start side by side, since most of their start-up is waiting.
  each install
  pids=()
  for s in "${servers[@]}"; do
    bash "$here/$s.sh" start &
    pids+=($!)
  done
  failed=0
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { failed=1; info "${servers[$i]} failed to start (see above)"; }
  done
  ((failed == 0)) || die "not every server started; 'make infra-status' shows what runs"
  info "all up in $((SECONDS - start))s; configure a shell with: eval \"\$(make -s infra-env)\""
  ;;
down) each stop ;;
reset)
  each reset
  # Remove the folder itself only once nothing of ours is left in it.
  if [[ -f $ORDEXA_STATE_DIR/$STATE_MARKER && -z $(ls "$ORDEXA_STATE_DIR") ]]; then rm -rf "$ORDEXA_STATE_DIR"; fi
  ;;
status) each status ;;
env) each env ;;
*) die "usage: $0 up|down|reset|status|env [postgres|kafka|cassandra ...]" ;;
esac
