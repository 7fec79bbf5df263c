# Sourced on a lent GPU machine (`source scripts/gpu_env.sh`, from the repository root): installs
# the carried wheels of scripts/gpu_wheels.py into $SITE (default /tmp/site; once per machine),
# puts them and the repository on PYTHONPATH, and prints the GPU and the jax and flax versions.
# Returns non-zero if the wheels do not install or jax/flax do not import.
site=${SITE:-/tmp/site}
if [ -d .whl ] && [ ! -e "$site/.sleepnet-wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || return 1
  touch "$site/.sleepnet-wheels"
fi
if [ -d "$site" ]; then
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi > /dev/null && nvidia-smi -L
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" \
  || return 1
