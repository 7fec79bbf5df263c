"""A trained run, loaded outside the trainer: for notebooks, scripts and looking at predictions.

    run = sleepnet.load_run("runs/r110_n4")          # the latest checkpoint of a workdir
    example = run.spec.generate(run.task, 0, 7, "test")
    pred = sleepnet.predict(run, example, sleep_passes=4)
    print(run.spec.text(example), "->", pred.predicted, pred.correct)

`predict` streams the example through the model up to its answer (the model sleeps as windows
fill) and decodes the answer greedily. A greedy answer is correct exactly when every answer token
is the argmax given the true tokens before it, so `correct` agrees with the exact match that
`sleepnet.evaluate` computes with one teacher-forced forward pass.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import ml_collections
import numpy as np
from flax import nnx

from sleepnet import checkpoint, run_config
from sleepnet.model import Model
from sleepnet.sampling import generate
from sleepnet.tasks import base as task_base
from sleepnet.tasks.registry import TaskSpec, get_task


class TrainedRun(NamedTuple):
  """A run's model at its latest checkpoint, with the config and task it was trained on.

  Attributes:
    model: the model with the checkpoint's parameters (trained N is its config's sleep_passes;
      any N can be passed at call time).
    config: the run's experiment config (its config.json).
    spec: the task's registry entry (generator, tokenizer, text).
    task: the task config the run trained on.
    step: the training step of the checkpoint.
  """

  model: Model
  config: ml_collections.ConfigDict
  spec: TaskSpec
  task: task_base.TaskConfig
  step: int


class Prediction(NamedTuple):
  """The greedy answer to one example's question.

  Attributes:
    predicted: the decoded answer tokens.
    truth: the decoded true answer tokens.
    correct: every answer token right (the example's exact match).
  """

  predicted: str
  truth: str
  correct: bool


def load_run(workdir: str | os.PathLike) -> TrainedRun:
  """Loads the latest checkpoint of the run in `workdir` as a model.

  The parameters are placed on the run's own mesh (`config.mesh`), as evaluation places them.

  Raises:
    checkpoint.CheckpointError: no readable config or checkpoint in `workdir`.
    run_config.ConfigError: the saved config cannot run with this version of sleepnet.
  """
  config = checkpoint.load_config(workdir)
  model_config, task = run_config.resolve(config)
  _, graphdef, params, step = run_config.restore_params(config, model_config, workdir)
  model = nnx.merge(graphdef, params)
  return TrainedRun(model, config, get_task(config.task_name), task, step)


def predict(
  run: TrainedRun, example: task_base.Example, *, sleep_passes: int | None = None
) -> Prediction:
  """Answers `example`'s question greedily, at `sleep_passes` (the run's trained N by default).

  Raises:
    ValueError: the example's answer tokens are not one contiguous span (an example that asks
      several questions: its later questions would have to be fed between the answers).
  """
  positions = np.flatnonzero(example.loss_mask)
  if positions.size == 0 or positions[-1] - positions[0] + 1 != positions.size:
    raise ValueError(
      f"predict needs one contiguous answer span; this example's answer positions are "
      f"{positions.tolist()} (does it ask several questions? set the task's num_queries=1)"
    )
  prompt = example.tokens[None, : positions[0]].astype(np.int32)
  out = generate(
    run.model, prompt, max_new_tokens=positions.size, temperature=0.0, sleep_passes=sleep_passes
  )
  predicted = np.asarray(out.tokens)[0]
  truth = example.tokens[positions]
  decode = run.spec.tokenizer.decode
  return Prediction(decode(predicted), decode(truth), bool(np.array_equal(predicted, truth)))
