"""A run's config, resolved: model and task configs checked together, the mesh, and the
parameters of a run's latest checkpoint restored straight into their shardings.

Training (`sleepnet.train`), evaluation (`sleepnet.evaluation`) and loading a run for predictions
(`sleepnet.trained`) all start here, so none of them imports another for these pieces.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
from flax import nnx

from sleepnet import checkpoint, sharding
from sleepnet import config as model_config_lib
from sleepnet.model import Model
from sleepnet.tasks import base as task_base
from sleepnet.tasks import config_from_overrides as task_config_from_overrides
from sleepnet.tasks import get_task


class ConfigError(ValueError):
  """An experiment config that cannot run; the message names the key."""


def resolve(
  config: ml_collections.ConfigDict,
) -> tuple[model_config_lib.ModelConfig, task_base.TaskConfig]:
  """The model and task configs of an experiment config, checked against each other.

  Raises:
    ConfigError: an unknown task, a bad task or model field, or a model that does not fit the
      task (window, vocabulary); the message names the key.
  """
  try:
    spec = get_task(config.task_name)
  except ValueError as e:
    raise ConfigError(f"config.task_name: {e}") from None
  try:
    task = task_config_from_overrides(config.task_name, config.task.to_dict())
  except ValueError as e:
    raise ConfigError(f"config.task: {e}") from None
  try:
    model = model_config_lib.from_dict(config.model.to_dict())
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.model: {e}") from None
  if model.window is not None and model.window != task.window:
    raise ConfigError(
      f"config.model.window={model.window} does not match config.task.window={task.window} "
      f"(seq_len={task.seq_len}): the task puts facts and question in different windows of "
      "its window size, so the model must evict at the same boundaries"
    )
  if model.vocab_size < spec.tokenizer.vocab_size:
    raise ConfigError(
      f"config.model.vocab_size={model.vocab_size} is smaller than the {config.task_name} "
      f"tokenizer's {spec.tokenizer.vocab_size} tokens"
    )
  for key in ("num_steps", "batch_size", "log_every", "checkpoint_every", "grad_accum_steps"):
    if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 1:
      raise ConfigError(f"config.{key}={config[key]!r} must be an integer >= 1")
  if config.batch_size % config.grad_accum_steps:
    raise ConfigError(
      f"config.batch_size={config.batch_size} does not split into "
      f"config.grad_accum_steps={config.grad_accum_steps} equal microbatches"
    )
  if not 0 <= config.optimizer.warmup_steps < config.num_steps:
    raise ConfigError(
      f"config.optimizer.warmup_steps={config.optimizer.warmup_steps} must be in "
      f"0..num_steps-1={config.num_steps - 1}"
    )
  mixture = tuple(config.train_sleep_passes)
  if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in mixture):
    raise ConfigError(
      f"config.train_sleep_passes={mixture} must be positive ints (N values drawn per step), "
      "or () to always train at config.model.sleep_passes"
    )
  if config.stage == 2 and not config.init_from:
    raise ConfigError("config.stage=2 continues a stage-1 run: set init_from=<stage-1 workdir>")
  return model, task


def check_eval(config: ml_collections.ConfigDict) -> None:
  """Checks `config.eval` before training, so a bad value is not found only after the last step.

  Raises:
    ConfigError: a bad split, N, batch size or set size; the message names the key.
  """
  e = config.eval
  if e.split not in task_base.SPLITS:
    raise ConfigError(f"config.eval.split={e.split!r} is not one of {list(task_base.SPLITS)}")
  passes = tuple(e.sleep_passes)
  if not passes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in passes):
    raise ConfigError(f"config.eval.sleep_passes={passes} must be one or more positive ints")
  if e.batch_size < 1:
    raise ConfigError(f"config.eval.batch_size={e.batch_size} must be >= 1")
  for split in task_base.SPLITS:
    if e[f"num_{split}"] < 0:
      raise ConfigError(f"config.eval.num_{split}={e[f'num_{split}']} must be >= 0")
  if e.at_end and e[f"num_{e.split}"] < 1:
    raise ConfigError(
      f"config.eval.num_{e.split}=0: the {e.split} split evaluated when training ends is empty "
      "(set config.eval.at_end=False to train without evaluating)"
    )
  every = config.eval_every
  if isinstance(every, bool) or not isinstance(every, int) or every < 0:
    raise ConfigError(f"config.eval_every={every!r} must be 0 (off) or a number of steps")
  if every and every % config.log_every:
    raise ConfigError(
      f"config.eval_every={every} must be a multiple of config.log_every={config.log_every}: "
      "held-out results are written into that step's metrics record"
    )
  if every and e[f"num_{e.split}"] < 1:
    raise ConfigError(
      f"config.eval.num_{e.split}=0: the {e.split} split evaluated every "
      f"config.eval_every={every} steps is empty"
    )


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The mesh of `config.mesh`, checked against the batch sizes.

  Raises:
    ConfigError: a mesh that does not fit the devices, or a batch that does not split over it.
  """
  try:
    mesh = sharding.make_mesh(config.mesh)
    sharding.check_batch_size(config.batch_size, mesh, "config.batch_size")
    if config.grad_accum_steps > 1:
      sharding.check_batch_size(
        config.batch_size // config.grad_accum_steps,
        mesh,
        f"config.batch_size / config.grad_accum_steps ({config.grad_accum_steps})",
      )
    sharding.check_batch_size(config.eval.batch_size, mesh, "config.eval.batch_size")
  except ValueError as e:
    raise ConfigError(f"config.mesh: {e}") from None
  return mesh


def split_model(model: Model) -> tuple[nnx.GraphDef, dict[str, Any]]:
  """(graph definition, parameters as a pure dict): the static and the array half of a model.

  Merge them back with `nnx.merge(graphdef, params)` (inside jitted functions).

  Raises:
    NotImplementedError: the model has non-parameter variables (RNG streams, statistics), which
      this trainer does not carry.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  if jax.tree.leaves(rest):
    raise NotImplementedError(f"the trainer carries parameters only; the model also has {rest}")
  return graphdef, nnx.to_pure_dict(params)


def abstract_params(
  config: model_config_lib.ModelConfig, mesh: jax.sharding.Mesh, rules: Any, min_size: int
) -> tuple[nnx.GraphDef, Any]:
  """The graph definition and the parameters as sharded ShapeDtypeStructs (nothing allocated).

  Used to restore a checkpoint straight into its shardings (evaluation, `init_from`).
  """
  graphdef, params = split_model(nnx.eval_shape(lambda: Model(config, rngs=nnx.Rngs(0))))
  shardings = sharding.tree_shardings(params, mesh, rules, min_size)
  return graphdef, with_shardings(params, shardings)


def restore_params(
  config: ml_collections.ConfigDict,
  model_config: model_config_lib.ModelConfig,
  workdir: str | os.PathLike,
) -> tuple[jax.sharding.Mesh, nnx.GraphDef, Any, int]:
  """(mesh, graph definition, parameters, step) of the latest checkpoint in `workdir`.

  The parameters are restored straight into their shardings on the run's own mesh
  (`config.mesh`); evaluation and `sleepnet.load_run` both start here.

  Raises:
    checkpoint.CheckpointError: no readable checkpoint in `workdir`.
  """
  mesh = make_mesh(config)
  graphdef, abstract = abstract_params(
    model_config, mesh, config.sharding.rules, config.sharding.min_size
  )
  params, step = checkpoint.load_params(workdir, abstract)
  return mesh, graphdef, params, step


def with_shardings(tree: Any, shardings: Any) -> Any:
  return jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
  )
