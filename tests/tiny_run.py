"""The tiny training run that the trainer tests share.

One set of overrides, in-process (`config()`) and as command-line flags (`flags()`), so every
test compiles the same train step and the persistent compilation cache serves them all.
"""

import importlib.util
import os
import pathlib

import ml_collections

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENT_ARG = "smoke,model=hybrid"
OVERRIDES = {
  "model.blocks": ("gdn", "attn"),
  "num_steps": 100,
  "batch_size": 8,
  "log_every": 1,
  "checkpoint_every": 10,
  "eval.at_end": False,
  "eval.num_test": 16,
  "eval.num_train": 8,
  "eval.batch_size": 8,
}


def experiment(name: str):
  """Imports experiments/<name>.py as a module."""
  spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config(**changes) -> ml_collections.ConfigDict:
  """The tiny run's config, with `changes` ({"a.b": value}) applied on top."""
  cfg = experiment("rule110").get_config(EXPERIMENT_ARG)
  for key, value in {**OVERRIDES, **changes}.items():
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
      node = node[p]
    node[leaf] = value
  return cfg


def flags() -> list[str]:
  """The same run as `python -m sleepnet.main` flags."""

  def text(value: object) -> str:
    if isinstance(value, tuple):
      return "(" + ",".join(repr(v) for v in value) + ")"
    return str(value)

  return [
    f"--config=experiments/rule110.py:{EXPERIMENT_ARG}",
    *(f"--config.{key}={text(value)}" for key, value in OVERRIDES.items()),
  ]


def subprocess_env() -> dict[str, str]:
  """The environment of a `python -m sleepnet...` subprocess in the tests.

  It shares the persistent compilation cache of tests/conftest.py (its directory is in the
  environment) for every program, and the matmul precision of the in-process tests.
  """
  return dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    JAX_DEFAULT_MATMUL_PRECISION="highest",
  )
