#!/usr/bin/env bash
# Runs one slice of a study's gpu scale on a lent GPU machine (the `device` tool), as one command.
#
#   here:  .venv/bin/python scripts/gpu_wheels.py        # .whl/: the packages the image lacks
#   there: bash scripts/gpu_slice.sh STUDY VARIANTS [LIMIT_S]     (device run, carry [".whl"])
#   e.g.   SLEEPNET_GIT_COMMIT=<sha> bash scripts/gpu_slice.sh rule110 hybrid 580
#
# LIMIT_S (default 580) is the time the device tool gives the command: its timeout_s, or the
# device time left when that is less (`status`' budget_left_s, less a minute or two if the
# machine must start). Training stops STOP_MARGIN_S (default 60) before it, counted from this
# script's start: the trainers save on SIGTERM (up to 20 s) and the runs are packed for $OUT, which
# a command killed at its limit would never fill. SLEEPNET_GIT_COMMIT names the commit the slices
# record, since the device's copy of the tree has no .git (`reproduce.py --todo` prints it).
#
# It installs the carried wheels into /tmp/site (once per machine), prints the device, runs
# `scripts/reproduce.py --study STUDY --scale $SCALE --only VARIANTS --jobs $JOBS --deadline_s
# LIMIT_S-STOP_MARGIN_S` (the scale's seeds side by side on the one GPU), and copies the slice files it
# wrote, plus a tarball of the runs' logs, to $OUT, where the device tool brings them back.
# Copy the slices into results/STUDY/slices/, run `reproduce.py --study STUDY --merge`, commit.
# A run the deadline stopped resumes from its last checkpoint if the same command is sent again
# while the machine is still warm (runs/ stays between calls on one machine, not across them).
# For a later machine, each stopped run's directory (its commands, logs and latest checkpoint)
# also comes back as $OUT/run-STUDY-SCALE-VARIANT-seedK.tgz when it fits the device tool's 16 MiB
# per file: keep it with `bash scripts/gpu_runs.sh keep FILE` (a side branch: sessions end),
# restore it with `bash scripts/gpu_runs.sh restore STUDY` before the next task's call, and name
# runs/STUDY/SCALE in that call's carry; the run goes on from that checkpoint.
#
# Environment: SCALE (default gpu), SEEDS (default: the scale's), JOBS (default 3, one process
# per seed), OUT (set by the device tool; default runs/gpu_out), SITE (where the wheels are
# installed; default /tmp/site).
# Exit status: reproduce.py's (0 all finished, 3 stopped at the deadline: send it again).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/gpu_slice.sh STUDY VARIANTS [LIMIT_S]" >&2
  exit 2
fi
study=$1
only=$2
limit=${3:-580}
scale=${SCALE:-gpu}
out=${OUT:-runs/gpu_out}
mkdir -p "$out" runs

# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh || exit 1

# The time left after the wheel install and jax's start-up, less what stopping and packing take.
deadline=$((limit - SECONDS - ${STOP_MARGIN_S:-60}))
if [ "$deadline" -lt 60 ]; then
  echo "only ${deadline} s would be left to train within LIMIT_S=$limit; not starting" >&2
  exit 2
fi
echo "training for at most $deadline s (LIMIT_S=$limit, $SECONDS s spent setting up)"
marker=$(mktemp)
args=(--study "$study" --scale "$scale" --only "$only" --jobs "${JOBS:-3}" --deadline_s "$deadline")
if [ -n "${SEEDS:-}" ]; then
  args+=(--seeds "$SEEDS")
fi
python3 scripts/reproduce.py "${args[@]}"
rc=$?

# The slices this command wrote (the device tool brings back at most 8 files of 16 MiB, 64 MiB in
# all: one variant's 3 slices, the logs and its 3 stopped runs fit; two variants may not).
slices="results/$study/slices"
if [ "$scale" = ci ]; then
  slices="runs/results-ci/$study/slices"  # where reproduce.py keeps ci results
fi
find "$slices" -name "$scale-*.json" -newer "$marker" -exec cp {} "$out"/ \; 2> /dev/null
tar -czf "$out/logs-$study-$scale.tgz" --exclude='checkpoints' \
  $(find "runs/$study/$scale" \( -name '*.log' -o -name 'reproduce.json' -o -name 'eval.json' \) \
    2> /dev/null) 2> /dev/null || true
rm -f "$marker"

# Runs the deadline stopped: their directories, for a later machine (see the top). A run with a
# slice file written by this command finished (or failed) and stays behind. Any non-zero status:
# one seed failing (exit 1) must not keep the others' stopped runs from coming back.
if [ "$rc" != 0 ]; then
  for variant in ${only//,/ }; do
    for dir in "runs/$study/$scale/$variant"/seed*; do
      [ -d "$dir" ] || continue
      seed=${dir##*/}
      [ -e "$out/$scale-$variant-$seed.json" ] && continue
      file="$out/run-$study-$scale-$variant-$seed.tgz"
      # Only the newest complete checkpoint: a save cut short leaves an orbax tmp directory, and
      # one finished just before the stop may leave the previous step beside it.
      # (Per checkpoints/ directory: a finished earlier stage keeps its last step.)
      exclude=(--exclude='*.orbax-checkpoint-tmp*')
      while IFS= read -r checkpoints; do
        for step in $(find "$checkpoints" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' |
          sort -n | head -n -1); do
          exclude+=(--exclude="$checkpoints/$step")
        done
      done < <(find "$dir" -type d -name checkpoints)
      tar -czf "$file" "${exclude[@]}" "$dir"
      size=$(stat -c %s "$file")
      if [ "$size" -gt $((16 * 1024 * 1024)) ]; then
        rm -f "$file"
        echo "$dir: $((size / 1024 / 1024)) MiB packed, over the 16 MiB a file may come back;" \
          "it resumes only on this machine while it stays warm"
      fi
    done
  done
fi
ls -la "$out"
echo "reproduce.py exit status: $rc"
exit $rc
