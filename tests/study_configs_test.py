"""Every training command of the gpu study scale builds: config, task, model, train step.

The gpu scale runs for hours on an accelerator that CI does not have, and a run should not die
of a typo there: each command of scripts/studies.py is parsed exactly as `python -m sleepnet.main`
parses it, checked by `run_config.resolve`, and its train step (gradient through every sleep pass)
is traced with `jax.eval_shape` on a batch of the task's real example length. Nothing is
allocated or compiled (about 30 s a study). The cpu scale's commands ran for real (results/).
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

from sleepnet import run_config, train
from sleepnet.tasks import pipeline

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import studies  # noqa: E402


@pytest.mark.parametrize("study_name", list(studies.STUDIES))
def test_every_gpu_command_builds_and_its_train_step_traces(study_name, tmp_path, monkeypatch):
  scale_name = "gpu"
  monkeypatch.chdir(ROOT)  # the commands name experiments/*.py relative to the repository
  scale = studies.STUDIES[study_name].scales[scale_name]
  runs = studies.runs_of(study_name, scale_name, list(scale.variants), [0], tmp_path)
  assert {r.variant for r in runs} == set(scale.variants)
  for run in runs:
    for stage in run.stages:
      config = studies.parse_command(stage.argv)
      assert config.num_steps == stage.num_steps and config.seed == 0
      model_config, task = run_config.resolve(config)
      run_config.check_eval(config)
      example = pipeline.TaskSource(config.task_name, task, seed=0, split="train")[0]
      length = example["tokens"].shape[-1]
      assert length == example["loss_mask"].shape[-1] and example["loss_mask"].any()
      mesh = run_config.make_mesh(config)
      tx, _ = train.make_optimizer(config)
      graphdef, state, shardings = train.create_train_state(
        config, model_config, tx, mesh, materialize=False
      )
      step = train.make_train_step(config, graphdef, tx, mesh, shardings)
      batch = {
        "tokens": jax.ShapeDtypeStruct((config.batch_size, length), jnp.int32),
        "loss_mask": jax.ShapeDtypeStruct((config.batch_size, length), jnp.bool_),
      }
      new_state, metrics = jax.eval_shape(step, state, batch)
      where = f"{run.variant}/{stage.workdir.name}"
      assert metrics["loss"].shape == () and metrics["loss"].dtype == jnp.float32, where
      assert jax.tree.map(lambda x: x.shape, new_state) == jax.tree.map(lambda x: x.shape, state), (
        where
      )
