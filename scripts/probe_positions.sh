#!/usr/bin/env bash
# Does Rule 110 need position embeddings? The probe behind the rule110 cpu scale's
# `position_embedding="window"` (scripts/studies.py, its `tried` entry): the N = 1 hybrid at the
# cpu scale's settings, seed 0, 1200 steps, trained twice side by side (without, then with learned
# in-window position embeddings) and evaluated at N = 1 on 768 test examples. About 2.5 minutes on
# the 2-core CPU; prints both evaluation tables.
#
#   bash scripts/probe_positions.sh [DIR]     # DIR: where the two runs go (default /tmp/probe-positions)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/probe-positions}
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
rm -rf "$dir/none" "$dir/window"
mkdir -p "$dir"
train() {
  local name=$1
  shift
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main \
    --config=experiments/rule110.py:model=hybrid --workdir="$dir/$name" --config.seed=0 \
    --config.num_steps=1200 --config.batch_size=32 --config.log_every=100 \
    --config.checkpoint_every=1200 --config.model.d_model=64 --config.model.num_heads=4 \
    --config.task.window=17 --config.task.seq_len=34 --config.task.width=16 --config.task.t_min=1 \
    --config.task.t_max=6 --config.eval.num_test=768 --config.eval.sleep_passes=1 \
    --config.data_dir="$dir/data-$name" "$@" >"$dir/$name.log" 2>&1
}
train none &
first=$!
train window --config.model.position_embedding=window
wait "$first"
for name in none window; do
  echo "== position_embedding=$name"
  grep -v '^[IWE][0-9]' "$dir/$name.log" | grep '^|' || { tail -20 "$dir/$name.log"; exit 1; }
done
