"""Gradient accumulation: k microbatches make the same update as one step on the whole batch."""

import json

import jax
import numpy as np
import pytest
import tiny_run
from absl import flags

from sleepnet import run_config, sharding, train


def first_steps(config, batches):
  mesh = sharding.make_mesh(config.mesh)
  model_config, _ = run_config.resolve(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  step_fn = train.make_train_step(config, graphdef, tx, mesh, shardings)
  out = []
  for batch in batches:
    state, m = step_fn(state, sharding.put_batch(batch, mesh))
    out.append({k: float(v) for k, v in m.items()})
  return jax.device_get(state), out


def batches_of(config, n):
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  mesh = sharding.make_mesh(config.mesh)
  _, task = run_config.resolve(config)
  data = train.train_iterator(config, task, mesh)
  return [{k: b[k] for k in ("tokens", "loss_mask")} for b in (next(data) for _ in range(n))]


@pytest.mark.parametrize("k", [2, 4])
def test_accumulated_steps_equal_one_step_on_the_whole_batch(k):
  whole = tiny_run.config()  # batch 8
  batches = batches_of(whole, 2)
  state_1, metrics_1 = first_steps(whole, batches)
  state_k, metrics_k = first_steps(tiny_run.config(grad_accum_steps=k), batches)
  # Two updates, so the optimizer's moments are compared too (through the second update).
  leaves_k, leaves_1 = jax.tree.leaves(state_k["params"]), jax.tree.leaves(state_1["params"])
  for a, b in zip(leaves_k, leaves_1, strict=True):
    # Float32 summation order only: |Δ| within a few ulps of the parameters' scale.
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * max(1.0, float(np.abs(b).max())))
  for mk, m1 in zip(metrics_k, metrics_1, strict=True):
    assert mk["loss"] == pytest.approx(m1["loss"], rel=1e-6)
    assert mk["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-5)
    assert mk["accuracy"] == m1["accuracy"] and mk["exact_match"] == m1["exact_match"]


def test_an_accumulating_run_resumes_exactly(tmp_path):
  import shutil

  flags.FLAGS.mark_as_parsed()
  config = tiny_run.config(grad_accum_steps=2, num_steps=6, checkpoint_every=3)
  whole, resumed = tmp_path / "whole", tmp_path / "resumed"
  train.train_and_evaluate(config, str(whole))
  # The run as a crash after step 3's save would leave it: step 6's checkpoint never written.
  shutil.copytree(whole, resumed)
  shutil.rmtree(resumed / "checkpoints" / "6")
  train.train_and_evaluate(config, str(resumed))

  def losses(workdir):
    rows = (workdir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, rows)]

  assert [s for s, _ in losses(resumed)] == list(range(1, 7))
  assert losses(resumed) == losses(whole)


@pytest.mark.parametrize(
  ("changes", "message"),
  [
    (dict(grad_accum_steps=3), "batch_size=8 does not split into config.grad_accum_steps=3"),
    (dict(grad_accum_steps=0), "grad_accum_steps=0 must be an integer >= 1"),
  ],
)
def test_bad_accumulation_is_named(changes, message):
  with pytest.raises(run_config.ConfigError, match=message):
    run_config.resolve(tiny_run.config(**changes))
