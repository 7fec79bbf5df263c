# Shell functions shared by the scripts/probe_*.sh scripts (sourced, not run).

# side_by_side FN ARG...: runs `FN ARG` for every ARG at once, one background job each, and waits
# for all of them. A failed job does not stop the others; its log shows it (print_table).
side_by_side() {
  local fn=$1 arg pid
  shift
  local pids=()
  for arg in "$@"; do
    "$fn" "$arg" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
}

# print_table LOG: the evaluation tables a `python -m sleepnet.main` log printed; without them,
# the log's tail and a failure.
print_table() {
  grep -v '^[IWE][0-9]' "$1" | grep '^|' || { tail -20 "$1"; return 1; }
}
