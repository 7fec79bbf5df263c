#!/usr/bin/env bash
# Is the gsm_realistic cpu scale's collapse (the hybrid and the sleep models stuck at a constant
# guess after 900 steps) a problem of getting learning started, which one-operation problems first
# would fix? The Depo counterpart is probe_depo_curriculum.sh. On the cpu scale's task and model
# (realistic sentences, values up to 19, constants up to 9, L = 64, T = 256, d_model 64, 4 heads,
# lr 1e-3, batch 16, seed 0) it trains in two stages:
#   A. the N = 1 hybrid on one-operation problems only (ops = 1), STEPS_A steps;
#   B. from A's parameters (fresh optimizer), ops in 1..OPS_MAX, STEPS_B steps, once with N = 1
#      and once with each N of PASSES (side by side, one single-threaded process each).
# Every model is evaluated at its own N on 512 test examples: exact match by number of operations
# (the cpu scale's question-only chance: 0.070 / 0.053 / 0.073 at ops = 1 / 2 / 3). Stage A's run
# is kept in DIR and reused by a later invocation with the same STEPS_A. What it showed is recorded
# in the gsm_realistic cpu scale's `probes` (scripts/studies.py).
#
#   bash scripts/probe_gsm_curriculum.sh [STEPS_A [STEPS_B [DIR]]]  # 1800 900 /tmp/probe-gsm-curriculum
#
# Environment: OPS_MAX (default 3), PASSES ("4"), WARMUP (200).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe_common.sh
steps_a=${1:-1800}
steps_b=${2:-900}
dir=${3:-/tmp/probe-gsm-curriculum}
ops_max=${OPS_MAX:-3}
passes_list=(${PASSES:-4})
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"
exp=experiments/gsm_infinite.py:variant=realistic
# The cpu scale's task and training settings; stage-specific keys come after.
common=(--config.seed=0 --config.batch_size=16 --config.optimizer.lr=0.001
  --config.optimizer.warmup_steps=${WARMUP:-200} --config.log_every=100
  --config.model.d_model=64 --config.model.num_heads=4 --config.model.window=64
  --config.task.window=64 --config.task.seq_len=256 --config.task.max_value=19
  --config.task.max_constant=9 --config.eval.num_test=512 --config.eval.batch_size=128)
lookup=$dir/ops1-a$steps_a
"$python" -m sleepnet.main --config="$exp,model=sleep,stage=1" "${common[@]}" \
  --workdir="$lookup" --config.num_steps="$steps_a" --config.checkpoint_every="$steps_a" \
  --config.task.ops_min=1 --config.task.ops_max=1 --config.eval.sleep_passes=1 \
  --config.data_dir="$dir/data-ops1" >"$lookup.log" 2>&1 || { tail -30 "$lookup.log"; exit 1; }
mixed() {
  local passes=$1
  local name=ops$ops_max-n$passes
  rm -rf "${dir:?}/$name"
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main \
    --config="$exp,model=sleep,passes=$passes,init_from=$lookup" "${common[@]}" \
    --workdir="$dir/$name" --config.num_steps="$steps_b" --config.checkpoint_every="$steps_b" \
    --config.task.ops_min=1 --config.task.ops_max="$ops_max" \
    --config.eval.sleep_passes="$passes" --config.data_dir="$dir/data-mixed" \
    >"$dir/$name.log" 2>&1
}
runs=(1 "${passes_list[@]}")
side_by_side mixed "${runs[@]}"  # a failed run prints its log below
print_stages "gsm_realistic curriculum, seed 0: A. ops = 1, $steps_a steps (N = 1)" \
  "$lookup.log" "B. from A: ops = 1..$ops_max, $steps_b steps" "$dir/ops$ops_max-n" "${runs[@]}"
