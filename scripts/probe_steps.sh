#!/usr/bin/env bash
# Is a cpu scale's result a matter of training steps? The Rule 110 cpu scale's deep end (t = 4..6,
# where every hybrid and sleep model was near 0) was: its learning curves were still rising at its
# 2400 steps. This probe trains the N = 1 hybrid and sleep N = 4 of STUDY (default rule110) with
# the cpu scale's exact commands (scripts/studies.py: the same task, model, batch and
# learning-rate schedule) except for the number of steps, STEPS (the cosine schedule stretches
# with it), for every seed of SEEDS, all side by side (one single-threaded process each), then
# evaluates each on the scale's test examples at N = 1 and at its own N. The tables give exact
# match by difficulty; compare them with the scale's results (results/<study>/README.md). What it
# showed is recorded in the scale's `probes` (rule110: its cpu_long scale, which this led to).
#
#   bash scripts/probe_steps.sh [STEPS [DIR]]     # default 7200 /tmp/probe-steps-<study>
#   STUDY=gsm_symbolic bash scripts/probe_steps.sh 4000
#   SEEDS=0 WARMUP=5 bash scripts/probe_steps.sh 30   # a quick check of the script
#
# Single-stage runs only: gsm_realistic's cpu scale starts with a curriculum stage and is refused.
# Rule 110 at the defaults (2 seeds, 7200 steps, three times its cpu scale's) took about 50
# minutes on the 2-core CPU; a step of the GSM or Depo cpu scales costs 2 to 3 times Rule 110's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/probe_common.sh
steps=${1:-7200}
study=${STUDY:-rule110}
dir=${2:-/tmp/probe-steps-$study}
read -r -a seeds <<<"${SEEDS:-0 1}"
read -r -a variants <<<"${VARIANTS:-hybrid sleep4}"
python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] && python=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"

# argv VARIANT SEED: the cpu scale's training arguments of that run, one per line, with its step
# count (and its only checkpoint) at STEPS, its workdir under DIR and, if WARMUP is set, that many
# warmup steps (the scale's 200 is for checking the script with a few steps); then PASSES=<N list>.
argv() {
  "$python" - "$study" "$1" "$2" "$steps" "$dir" "${WARMUP:-}" <<'EOF'
import pathlib, sys
sys.path.insert(0, "scripts")
import studies
study, variant, seed, steps, root, warmup = sys.argv[1:]
(run,) = studies.runs_of(study, "cpu", [variant], [int(seed)], pathlib.Path(root))
if len(run.stages) != 1:
  sys.exit(f"{variant}: a {len(run.stages)}-stage run; this probe trains single-stage variants")
replace = {"--config.num_steps": int(steps), "--config.checkpoint_every": int(steps)}
if warmup:
  replace["--config.optimizer.warmup_steps"] = int(warmup)
for arg in run.stages[0].argv:
  key = arg.split("=", 1)[0]
  print(f"{key}={replace[key]}" if key in replace else arg)
print(f"PASSES={','.join(map(str, sorted({1, studies.get_variant(variant).train_passes})))}")
EOF
}

train_and_evaluate() {
  local name=$1 variant=${1%-seed*} seed=${1##*-seed} text lines passes
  # A refused run (or a bad STUDY or VARIANTS) leaves its reason in its log, which the report prints.
  text=$(argv "$variant" "$seed" 2>&1) || { printf '%s\n' "$text" >"$dir/$name.log"; return 1; }
  mapfile -t lines <<<"$text"
  passes=${lines[-1]#PASSES=}
  unset 'lines[-1]'
  local workdir="$dir/$study/cpu/$variant/seed$seed"
  rm -rf "$workdir"
  {
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.main "${lines[@]}" &&
      XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "$python" -m sleepnet.evaluate \
        --workdir="$workdir" --sleep_passes="$passes"
  } >"$dir/$name.log" 2>&1
}

names=()
for variant in "${variants[@]}"; do
  for seed in "${seeds[@]}"; do names+=("$variant-seed$seed"); done
done
side_by_side train_and_evaluate "${names[@]}"
status=0
for name in "${names[@]}"; do
  echo "== $study $name, $steps steps (exact match by difficulty at each N; the last table)"
  print_table "$dir/$name.log" | awk '/^\| difficulty/ {n = 0} {table[n++] = $0} END {for (i = 0; i < n; i++) print table[i]}' || status=1
done
exit "$status"
