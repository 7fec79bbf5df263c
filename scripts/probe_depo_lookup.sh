#!/usr/bin/env bash
# Can the Depo cpu scale's models learn even one-hop lookup? The probe behind the depo cpu page's
# diagnosis: the cpu scale's task and model (9..12-node single cycle, one-syllable names, L = 32,
# T = 96, d_model 64, 4 heads, lr 1e-3, batch 32), but every question asks for k = 1 only, so a
# model needs nothing but an induction-style lookup of the evicted (hybrid) or visible (full
# attention) edge "q -> answer". Trains the full-attention transformer and the N = 1 hybrid side by
# side (seed 0, one single-threaded process each), evaluates each at N = 1 on 512 test examples
# and prints both evaluation tables. With QUERIES > 1, every example asks QUERIES such questions
# (denser supervision; test examples too); exact match then needs all of them, and the token
# accuracy acc pools each one-token answer with its <eos>, so the share of questions answered
# right is at least 2 * acc - 1 (exactly that when every <eos> is right).
#
#   bash scripts/probe_depo_lookup.sh [STEPS [QUERIES [DIR]]]   # defaults: 2000 1 /tmp/probe-depo
#
# About 9 minutes on the 2-core CPU at the defaults (2000 steps, the cpu scale's budget).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}
queries=${2:-1}
dir=${3:-/tmp/probe-depo}
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
rm -rf "$dir/transformer_full" "$dir/hybrid"
mkdir -p "$dir"
train() {
  local model=$1
  shift
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main \
    --config="experiments/depo.py:model=$model" --workdir="$dir/$model" --config.seed=0 \
    --config.num_steps="$steps" --config.batch_size=32 --config.optimizer.lr=0.001 \
    --config.optimizer.warmup_steps=200 --config.log_every=100 --config.checkpoint_every="$steps" \
    --config.model.d_model=64 --config.model.num_heads=4 --config.task.window=32 \
    --config.task.seq_len=96 --config.task.n_min=9 --config.task.n_max=12 --config.task.k_min=1 \
    --config.task.k_max=1 --config.task.syllables_min=1 --config.task.syllables_max=1 \
    --config.task.single_cycle=True --config.task.num_queries="$queries" \
    --config.eval.num_test=512 --config.eval.batch_size=256 --config.eval.sleep_passes=1 \
    --config.data_dir="$dir/data-$model" "$@" >"$dir/$model.log" 2>&1
}
train transformer_full &
first=$!
train hybrid --config.model.window=32  # the windowed model's L, as scripts/studies.py passes it
wait "$first"
echo "Depo, k = 1 only, $queries question(s) per example, $steps steps, seed 0"
for model in transformer_full hybrid; do
  echo "== $model"
  grep -v '^[IWE][0-9]' "$dir/$model.log" | grep '^|' || { tail -20 "$dir/$model.log"; exit 1; }
done
