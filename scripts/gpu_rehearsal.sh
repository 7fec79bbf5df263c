#!/usr/bin/env bash
# Rehearses on this CPU what a lent GPU machine will run, so that a scarce GPU command is not spent
# on a version mismatch: the device's Python (3.12), jax and numpy, the image's other packages,
# and the wheels of scripts/gpu_wheels.py installed the way scripts/gpu_slice.sh installs them.
#
#   bash scripts/gpu_rehearsal.sh PYTHON3.12 [--tests]
#   e.g. bash scripts/gpu_rehearsal.sh ~/.pyenv/versions/3.12.1/bin/python --tests
#
# 1. a venv at $REHEARSAL/venv (default /tmp/sleepnet-rehearsal) with jax and numpy at the
#    device's versions (gpu_wheels.DEVICE_JAX, DEVICE_NUMPY) and every package of the image
#    (gpu_wheels.DEVICE_HAS) at the index's newest version; made once;
# 2. .whl/ (from scripts/gpu_wheels.py, made here if missing) installed into a fresh
#    $REHEARSAL/site, as gpu_slice.sh does there;
# 3. `SCALE=ci bash scripts/gpu_slice.sh rule110 hybrid,sleep4 600` with that venv's python3
#    first on PATH: train, evaluate, slices and logs into $REHEARSAL/out; both slices must be ok;
# 4. the first GPU task's bench_study_steps.py command, at the ci scale, two processes;
# 5. with --tests, the whole test suite in that environment (about 15 minutes on 2 cores).
# Exit status: 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/gpu_rehearsal.sh PYTHON3.12 [--tests]" >&2
  exit 2
fi
python312=$1
tests=${2:-}
rehearsal=${REHEARSAL:-/tmp/sleepnet-rehearsal}
version=$("$python312" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$version" != 3.12 ]; then
  echo "$python312 is Python $version; the device runs 3.12" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "no .venv here: run bash scripts/test.sh (or pip install -e .) first" >&2
  exit 2
fi
read_wheels() {  # a gpu_wheels attribute, from this repository's venv
  .venv/bin/python -c "import sys; sys.path.insert(0, 'scripts'); import gpu_wheels as g; $1"
}

venv="$rehearsal/venv"
if [ ! -x "$venv/bin/python3" ]; then
  "$python312" -m venv "$venv"
  jax=$(read_wheels 'print(g.DEVICE_JAX)')
  numpy=$(read_wheels 'print(g.DEVICE_NUMPY)')
  # The image's packages, but not its CUDA plugin (this CPU cannot load it).
  image=$(read_wheels 'print(" ".join(sorted(
    n for n in g.DEVICE_HAS if n not in g.NEVER_CARRY and not n.startswith("jax-cuda"))))')
  pytest=$(grep -o 'pytest==[0-9.]*' setup.cfg)
  "$venv/bin/python3" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086  # $image is a list of names
  "$venv/bin/python3" -m pip install -q "jax==$jax" "jaxlib==$jax" "numpy==$numpy" $image "$pytest"
fi
[ -d .whl ] || .venv/bin/python scripts/gpu_wheels.py

site="$rehearsal/site"
out="$rehearsal/out"
rm -rf "$site" "$out" runs/rule110/ci runs/results-ci/rule110
mkdir -p "$out"
status=0
PATH="$venv/bin:$PATH" SITE="$site" OUT="$out" SCALE=ci JOBS=1 \
  bash scripts/gpu_slice.sh rule110 hybrid,sleep4 600 || status=$?
for variant in hybrid sleep4; do
  slice="$out/ci-$variant-seed0.json"
  if ! grep -q '"status": "ok"' "$slice" 2> /dev/null; then
    echo "rehearsal: $slice is missing or not ok" >&2
    status=1
  fi
done
if [ "$status" != 0 ]; then
  echo "rehearsal: the ci slice FAILED (status $status)" >&2
  exit 1
fi
echo "rehearsal: the ci slice ran with the device's versions"
# The first GPU task's measuring command (WORKSPACE.md), at the ci scale, two processes.
PATH="$venv/bin:$PATH" SITE="$site" bash -c "source scripts/gpu_env.sh && python3 \
  scripts/bench_study_steps.py --study rule110 --scale ci --only hybrid,sleep4 --steps 1 \
  --processes 2 --out $out/steps.json"
echo "rehearsal: bench_study_steps ran with the device's versions"

if [ "$tests" = --tests ]; then
  PYTHONPATH="$site:$PWD" "$venv/bin/python3" -m pytest -p no:cacheprovider tests
  echo "rehearsal: the test suite passed with the device's versions"
fi
