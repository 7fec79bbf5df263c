"""Runs a piece of code on fake CPU devices, in a subprocess so that other tests keep one device.

The child prints one line "RESULT <json>"; `run` returns that JSON.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The start of a child that trains: `config` is the Rule 110 smoke hybrid, to be narrowed.
SMOKE_CONFIG = textwrap.dedent(
  """
  import importlib.util, json, sys
  import jax, numpy as np
  from absl import flags
  from sleepnet import checkpoint, evaluation, run_config, sharding, train

  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  spec = importlib.util.spec_from_file_location("rule110", "experiments/rule110.py")
  rule110 = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(rule110)
  config = rule110.get_config("smoke,model=hybrid")
  """
)


def run(code: str, *args: str, devices: int = 8, timeout: int = 600) -> dict:
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    JAX_DEFAULT_MATMUL_PRECISION="highest",
    # The persistent compilation cache (conftest.py) for everything the child compiles.
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
  )
  r = subprocess.run(
    [sys.executable, "-c", code, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert r.returncode == 0, r.stderr[-4000:]
  line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
  return json.loads(line[len("RESULT ") :])
