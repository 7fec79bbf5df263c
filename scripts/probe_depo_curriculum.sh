#!/usr/bin/env bash
# Does a hop curriculum let the Depo cpu scale's models learn multi-hop lookup, and does sleep
# help once they can? `probe_depo_lookup.sh` found that with six questions per training example
# the N = 1 hybrid learns one-hop lookup within 4000 steps, but that with mixed hop counts from the
# start nothing is learned within 3000 steps. This probe trains in two stages on the cpu scale's
# task and model (9..12-node single cycle, one-syllable names, L = 32, T = 96, d_model 64, 4 heads,
# lr 1e-3, batch 32, seed 0):
#   A. the N = 1 hybrid, every question k = 1, QUERIES questions per training example, STEPS_A;
#   B. from A's parameters (fresh optimizer), k in 1..K_MAX, QUERIES questions per training
#      example and one per test example, STEPS_B steps, once with N = 1 and once with each N of
#      PASSES (side by side, one single-threaded process each).
# Each stage-B model is evaluated at its own N on 512 test examples; the tables give exact match
# by hop count k (the no-hop guess, a random node of 9..12, is about 0.1). Stage A's run is kept
# in DIR and reused by a later invocation with the same STEPS_A and QUERIES, so stage B can be
# varied at its own cost. What it showed is recorded in the depo cpu scale's `probes`.
#
#   bash scripts/probe_depo_curriculum.sh [STEPS_A [STEPS_B [DIR]]]  # 4000 2500 /tmp/probe-curriculum
#   K_MAX=2 PASSES="2 4" bash scripts/probe_depo_curriculum.sh 4000 2500   # stage B only, reused A
#
# Environment: K_MAX (default 4), QUERIES (6), PASSES (the N > 1 models of stage B, "4"), WARMUP
# (warmup steps, 200; lower it for a quick check with a few steps). At the defaults, on the 2-core
# CPU: stage A about 15 minutes, stage B about 22 (the N = 4 model, at about 2 steps/s).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe_common.sh
steps_a=${1:-4000}
steps_b=${2:-2500}
dir=${3:-/tmp/probe-curriculum}
k_max=${K_MAX:-4}
queries=${QUERIES:-6}
passes_list=(${PASSES:-4})
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"
# The cpu scale's Depo task and training settings; stage-specific keys come after.
common=(--config.seed=0 --config.batch_size=32 --config.optimizer.lr=0.001
  --config.optimizer.warmup_steps=${WARMUP:-200} --config.log_every=100
  --config.model.d_model=64 --config.model.num_heads=4 --config.model.window=32
  --config.task.window=32 --config.task.seq_len=96 --config.task.n_min=9 --config.task.n_max=12
  --config.task.syllables_min=1 --config.task.syllables_max=1 --config.task.single_cycle=True
  --config.task.num_queries="$queries" --config.eval.num_test=512 --config.eval.batch_size=256)
# Stage A: one-hop lookup, N = 1 (a "sleep" model at N = 1 is the hybrid, with the same
# parameters as every N, so stage B can continue it at any N).
# Kept between invocations: a rerun with the same STEPS_A and QUERIES finds the finished run and
# only re-evaluates it, so stage B can be varied (K_MAX, PASSES, STEPS_B) at its own cost.
lookup=$dir/lookup-a$steps_a-q$queries
"$python" -m sleepnet.main --config="experiments/depo.py:model=sleep,stage=1" "${common[@]}" \
  --workdir="$lookup" --config.num_steps="$steps_a" --config.checkpoint_every="$steps_a" \
  --config.task.k_min=1 --config.task.k_max=1 --config.eval.sleep_passes=1 \
  --config.data_dir="$dir/data-lookup" >"$lookup.log" 2>&1 || { tail -30 "$lookup.log"; exit 1; }
hops() {
  local passes=$1
  local name=hops-k$k_max-n$passes
  rm -rf "${dir:?}/$name"
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main \
    --config="experiments/depo.py:model=sleep,passes=$passes,init_from=$lookup" \
    "${common[@]}" --workdir="$dir/$name" --config.num_steps="$steps_b" \
    --config.checkpoint_every="$steps_b" --config.task.k_min=1 --config.task.k_max="$k_max" \
    --config.task.test_num_queries=1 --config.eval.sleep_passes="$passes" \
    --config.data_dir="$dir/data-hops" >"$dir/$name.log" 2>&1
}
runs=(1 "${passes_list[@]}")
side_by_side hops "${runs[@]}"  # a failed run prints its log below
print_stages "Depo hop curriculum, seed 0: A. k = 1, $queries questions, $steps_a steps (N = 1)" \
  "$lookup.log" \
  "B. from A: k = 1..$k_max, $queries training questions, 1 test question, $steps_b steps" \
  "$dir/hops-k$k_max-n" "${runs[@]}"
