#!/usr/bin/env bash
# Can the Depo cpu scale's models learn even one-hop lookup? The probe behind the depo cpu page's
# diagnosis: the cpu scale's task and model (9..12-node single cycle, one-syllable names, L = 32,
# T = 96, d_model 64, 4 heads, lr 1e-3, batch 32), but every question asks for k = 1 only (by
# default), so a model needs nothing but an induction-style lookup of the evicted (hybrid) or
# visible (full attention) edge "q -> answer". Trains the models side by side (seed 0, one
# single-threaded process each), evaluates each at its own N on 512 test examples and prints the
# evaluation tables. With QUERIES > 1, every example asks QUERIES such questions (denser
# supervision), test examples too unless TEST_QUERIES says otherwise; exact match then needs all of
# them, and the token accuracy acc pools each one-token answer with its <eos>, so the share of
# questions answered right is at least 2 * acc - 1 (exactly that when every <eos> is right).
#
#   bash scripts/probe_depo_lookup.sh [STEPS [QUERIES [DIR]]]   # defaults: 2000 1 /tmp/probe-depo
#   K_MAX=2 TEST_QUERIES=1 MODELS="hybrid sleep4" bash scripts/probe_depo_lookup.sh 3000 6
#
# MODELS (default "transformer_full hybrid"): any of transformer_full, hybrid, sleep2, sleep4.
# About 9 minutes on the 2-core CPU at the defaults (2000 steps, the cpu scale's budget); a sleep
# model costs 2 to 3 times the hybrid per step.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe_common.sh
steps=${1:-2000}
queries=${2:-1}
dir=${3:-/tmp/probe-depo}
k_max=${K_MAX:-1}
test_queries=${TEST_QUERIES:-0}
models=(${MODELS:-transformer_full hybrid})
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"
train() {
  local name=$1
  local args=()
  case $name in
    transformer_full) args=(--config="experiments/depo.py:model=transformer_full") ;;
    hybrid) args=(--config="experiments/depo.py:model=hybrid" --config.model.window=32) ;;
    sleep[0-9]*)
      args=(--config="experiments/depo.py:model=sleep,passes=${name#sleep}" --config.model.window=32)
      ;;
    *) echo "unknown model $name (valid: transformer_full hybrid sleep2 sleep4)" >&2; return 2 ;;
  esac
  rm -rf "${dir:?}/$name"
  # A sleep model is evaluated at its own N (the wake pass included), the others at N = 1.
  local passes=1
  [[ $name == sleep* ]] && passes=${name#sleep}
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main "${args[@]}" \
    --workdir="$dir/$name" --config.seed=0 \
    --config.num_steps="$steps" --config.batch_size=32 --config.optimizer.lr=0.001 \
    --config.optimizer.warmup_steps=200 --config.log_every=100 --config.checkpoint_every="$steps" \
    --config.model.d_model=64 --config.model.num_heads=4 --config.task.window=32 \
    --config.task.seq_len=96 --config.task.n_min=9 --config.task.n_max=12 --config.task.k_min=1 \
    --config.task.k_max="$k_max" --config.task.syllables_min=1 --config.task.syllables_max=1 \
    --config.task.single_cycle=True --config.task.num_queries="$queries" \
    --config.task.test_num_queries="$test_queries" \
    --config.eval.num_test=512 --config.eval.batch_size=256 --config.eval.sleep_passes="$passes" \
    --config.data_dir="$dir/data-$name" >"$dir/$name.log" 2>&1
}
side_by_side train "${models[@]}"  # a failed run prints its log below
echo "Depo, k = 1..$k_max, $queries question(s) per training example" \
  "(test: ${test_queries/#0/the same}), $steps steps, seed 0"
for model in "${models[@]}"; do
  echo "== $model"
  print_table "$dir/$model.log" || exit 1
done
