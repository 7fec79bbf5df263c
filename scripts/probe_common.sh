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

# print_stages TITLE_A LOG_A TITLE_B LOG_PREFIX N...: a two-stage probe's report: stage A's tables
# (its log may lack them when stage A was reused), then stage B's for every N, read from
# LOG_PREFIX$N.log; fails on the first stage-B log without tables.
print_stages() {
  local title_a=$1 log_a=$2 title_b=$3 prefix=$4 passes
  shift 4
  echo "$title_a"
  print_table "$log_a" || true
  echo "$title_b"
  for passes in "$@"; do
    echo "== N = $passes"
    print_table "$prefix$passes.log" || return 1
  done
}
