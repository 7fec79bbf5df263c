"""Shared test setup: float32 numerics and a persistent compilation cache.

The cache lives under the repository (ignored by git) so that repeated local runs and the several
processes that the end-to-end tests start reuse compiled programs; on a fresh CI clone it only
helps within the run.
"""

import os
import pathlib

import jax
import pytest

_CACHE = pathlib.Path(__file__).resolve().parent.parent / ".jax_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Oracles are compared in float32: keep XLA:CPU from using lower-precision matmul passes.
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
  """Drops every compiled program after each test module.

  XLA:CPU maps each compiled executable's code into memory pages of its own, and JAX keeps
  every executable alive in its jit caches. Over the whole suite in one process those mappings
  passed the kernel's limit (vm.max_map_count, 65530 by default): the next compilation then
  crashed inside XLA (a segfault compiling, an abort serializing for the persistent cache).
  Clearing the caches between modules keeps the count to one module's programs; programs are
  still read back from the persistent cache, so little is compiled twice.
  """
  yield
  jax.clear_caches()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
  """A workdir holding the finished tiny run of tests/tiny_run.py, trained once for all tests.

  Tests may read it and evaluate it; a test that changes a run copies it first.
  """
  import tiny_run
  from absl import flags

  from sleepnet import train

  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  workdir = tmp_path_factory.mktemp("trained")
  train.train_and_evaluate(tiny_run.config(), str(workdir))
  return workdir


@pytest.fixture(scope="module")
def not_into_the_persistent_cache():
  """Writes none of a module's programs to the persistent compilation cache.

  A fresh-clone CI run aborted inside XLA:CPU's executable serialization while writing one of
  the numerics tests' programs to the cache (jax 0.10.2). Those programs compile once per run
  anyway; the threshold is read at every write, so raising it skips the writes.
  """
  key = "jax_persistent_cache_min_compile_time_secs"
  before = getattr(jax.config, key)
  jax.config.update(key, 1e9)
  yield
  jax.config.update(key, before)
