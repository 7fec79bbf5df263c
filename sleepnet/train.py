"""Training: the optimizer, a sharded train state, one jitted step, and the loop.

`train_and_evaluate(config, workdir)` is what `python -m sleepnet.main` runs. Its sections:

  1. config   resolve the ConfigDict into a `ModelConfig` and a task config, checked together;
  2. mesh     ("data", "model") from config.mesh (sharding.make_mesh);
  3. workdir  refuse a workdir that holds another run (checkpoint.claim_workdir);
  4. state    {"params", "opt", "step"}: shapes from `jax.eval_shape`, shardings from the rules,
              then `jax.jit(init, out_shardings=...)`, so parameters are born sharded;
  5. data     a grain iterator over the task generator; its position is checkpointed;
  6. restore  this run's latest checkpoint, else `init_from`'s parameters, else scratch;
  7. loop     the jitted step (state donated), metrics every `log_every` steps, checkpoints
              every `checkpoint_every` steps, a non-finite loss stops the run before it is saved;
  8. eval     `evaluation.evaluate` on the final checkpoint if `config.eval.at_end`.

The step is functional NNX: the model is split once into a graph definition and a pure dict of
parameters; the jitted step merges them inside, so each call is a plain `jax.jit` call without
NNX's per-call graph traversal.

Loss convention (sleepnet.tasks.base): inputs = tokens[:, :-1], targets = tokens[:, 1:], loss on
the answer tokens only (loss_mask[:, 1:]). The loss is the mean cross-entropy over all answer
tokens of the batch.

Determinism: the step is a pure function of (state, batch), the batch of step i is always the
i-th batch of the example stream, and any randomness would come from fold_in(seed, step). XLA:CPU
runs a given program bit-identically, so a run killed and resumed from a checkpoint repeats the
uninterrupted run's losses exactly (tests/train_e2e_test.py checks this with SIGKILL).
"""

from __future__ import annotations

import contextlib
import pathlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from sleepnet import checkpoint, costs, evaluation, metrics, scoring, sharding, throughput
from sleepnet import config as model_config_lib
from sleepnet.model import Model
from sleepnet.run_config import (
  ConfigError,
  abstract_params,
  check_eval,
  make_mesh,
  resolve,
  split_model,
  with_shardings,
)
from sleepnet.tasks import base as task_base
from sleepnet.tasks import datasets, pipeline

State = dict[str, Any]  # {"params": pure dict, "opt": optax state, "step": int32 []}


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or gradient; the message names the step."""


class PreemptedError(RuntimeError):
  """SIGTERM stopped training; the step it reached was saved first (relaunch to resume)."""


@contextlib.contextmanager
def _sigterm_requests() -> Iterator[Callable[[], bool]]:
  """Yields `requested()`: whether SIGTERM has arrived since training began.

  Schedulers that preempt (Cloud TPU, SLURM, Kubernetes) and scripts/reproduce.py's deadline send
  SIGTERM before SIGKILL: saving at the next step keeps every step trained so far, where a kill
  would lose up to checkpoint_every of them. Only a single-process run in the main thread takes
  the signal over: with several processes, one host stopping alone would leave the others
  waiting in a collective, so there SIGTERM keeps its default (resume from the last checkpoint).
  """
  got = threading.Event()
  if threading.current_thread() is not threading.main_thread() or jax.process_count() > 1:
    yield got.is_set
    return
  previous = signal.signal(signal.SIGTERM, lambda *_: got.set())
  try:
    yield got.is_set
  finally:
    signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------------
# Config


# --------------------------------------------------------------------------------------------------
# Optimizer, state and step


def make_optimizer(
  config: ml_collections.ConfigDict,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with global-norm clipping and a warmup-cosine learning rate; returns (tx, schedule)."""
  o = config.optimizer
  schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=o.lr,
    warmup_steps=o.warmup_steps,
    decay_steps=config.num_steps,
    end_value=o.end_lr,
  )
  tx = optax.chain(
    optax.clip_by_global_norm(o.grad_clip),
    optax.adamw(schedule, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=_matrices),
  )
  return tx, schedule


def _matrices(params: Any) -> Any:
  # Weight decay on matrices only: norm scales, biases and the GDN's per-head gate constants keep
  # their scale (decaying an RMSNorm scale towards 0 only fights the model).
  return jax.tree.map(lambda x: x.ndim >= 2, params)


def create_train_state(
  config: ml_collections.ConfigDict,
  model_config: model_config_lib.ModelConfig,
  tx: optax.GradientTransformation,
  mesh: jax.sharding.Mesh,
  *,
  materialize: bool = True,
) -> tuple[nnx.GraphDef, State, Any]:
  """The model's graph definition, the train state and its shardings.

  Shapes come from `jax.eval_shape`, shardings from `config.sharding`, and the state is created by
  `jax.jit(init, out_shardings=...)`: every array is born where it lives.

  Args:
    config: the experiment config (seed, sharding rules).
    model_config: the model.
    tx: the optimizer.
    mesh: the device mesh.
    materialize: False returns the state as sharded ShapeDtypeStructs (to restore into).

  Returns:
    (graph definition, state, state shardings).
  """
  rules, min_size = config.sharding.rules, config.sharding.min_size
  graphdef, _ = abstract_params(model_config, mesh, rules, min_size)

  def init() -> State:
    _, params = split_model(Model(model_config, rngs=nnx.Rngs(config.seed)))
    return {"params": params, "opt": tx.init(params), "step": jnp.zeros((), jnp.int32)}

  abstract = jax.eval_shape(init)
  shardings = {
    "params": sharding.tree_shardings(abstract["params"], mesh, rules, min_size),
    "opt": sharding.tree_shardings(abstract["opt"], mesh, rules, min_size),
    "step": sharding.replicated(mesh),
  }
  if not materialize:
    return graphdef, with_shardings(abstract, shardings), shardings
  return graphdef, jax.jit(init, out_shardings=shardings)(), shardings


def train_passes(config: ml_collections.ConfigDict, step: int) -> int | None:
  """The sleep passes N of training step `step` (1-based).

  None (the model's own `config.model.sleep_passes`) unless `config.train_sleep_passes` lists N
  values; then one of them, drawn uniformly from a generator seeded by (seed, step) alone, so a
  resumed run draws the same N at every step.
  """
  mixture = tuple(config.train_sleep_passes)
  if not mixture:
    return None
  rng = np.random.default_rng([config.seed, step, 0x5EE9])
  return int(mixture[rng.integers(len(mixture))])


def make_train_step(
  config: ml_collections.ConfigDict,
  graphdef: nnx.GraphDef,
  tx: optax.GradientTransformation,
  mesh: jax.sharding.Mesh,
  state_shardings: Any,
) -> Callable[..., tuple[State, dict[str, jax.Array]]]:
  """The jitted train step `(state, batch, passes=None) -> (state, metrics)`; `state` is donated.

  `batch` holds "tokens" int32 [B, T] and "loss_mask" bool [B, T], split over "data". `passes`
  (static: one compiled program per value) overrides the model's N for this step (see
  `train_passes`). Metrics are replicated scalars: loss, accuracy (answer tokens), exact_match
  (examples), grad_norm, sleep_passes (the N this step trained with).
  """
  default_passes = config.model.sleep_passes
  accum = config.grad_accum_steps

  def loss_fn(params: Any, batch: Mapping[str, jax.Array], passes: int, count: jax.Array) -> Any:
    """(this (micro)batch's summed answer cross-entropy / `count`, per-example statistics)."""
    model = nnx.merge(graphdef, params)
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1], sleep_passes=passes)
    stats = scoring.answer_stats(logits, tokens[:, 1:], batch["loss_mask"][:, 1:])
    return stats["ce"].sum() / count, stats

  def loss_and_grads(params: Any, batch: Mapping[str, jax.Array], passes: int) -> Any:
    """The loss (mean cross-entropy over the batch's answer tokens), its gradient, statistics.

    With `grad_accum_steps = k` the batch runs as k microbatches in a `lax.scan`, one at a
    time (the activation memory of B/k examples). Each microbatch's cross-entropy is divided by
    the whole batch's answer-token count, so the gradients add up to those of one pass over the
    batch, up to float32 summation order.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    count = jnp.maximum(batch["loss_mask"][:, 1:].sum().astype(jnp.float32), 1.0)
    if accum == 1:
      (loss, stats), grads = grad_fn(params, batch, passes, count)
      return loss, grads, stats
    # Microbatch i takes rows i, i + k, ...: the row axis stays split over "data" evenly.
    micro = jax.tree.map(
      lambda x: x.reshape(x.shape[0] // accum, accum, *x.shape[1:]).swapaxes(0, 1), batch
    )

    def one(acc: Any, mb: Mapping[str, jax.Array]) -> tuple[Any, Any]:
      (part, st), g = grad_fn(params, mb, passes, count)
      loss, grads = acc
      return (loss + part, jax.tree.map(jnp.add, grads, g)), st

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (loss, grads), stats = jax.lax.scan(one, zeros, micro)
    stats = jax.tree.map(lambda x: x.swapaxes(0, 1).reshape(-1), stats)  # back to row order
    return loss, grads, stats

  def step(
    state: State, batch: Mapping[str, jax.Array], passes: int | None = None
  ) -> tuple[State, dict[str, jax.Array]]:
    passes = default_passes if passes is None else passes
    # The model has no dropout. A stochastic layer would draw from a key that is a function of
    # (seed, step) only, such as fold_in(key(config.seed), state["step"]), so that a resumed
    # run repeats it exactly.
    loss, grads, stats = loss_and_grads(state["params"], batch, passes)
    updates, opt = tx.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    has_answer = (stats["count"] > 0).astype(jnp.float32)
    out = {
      "loss": loss,
      "accuracy": stats["correct"].sum() / jnp.maximum(stats["count"].sum(), 1.0),
      "exact_match": stats["exact"].sum() / jnp.maximum(has_answer.sum(), 1.0),
      "grad_norm": optax.tree.norm(grads),
      "sleep_passes": jnp.float32(passes),
    }
    return {"params": params, "opt": opt, "step": state["step"] + 1}, out

  return jax.jit(
    step,
    donate_argnums=0,
    static_argnames="passes",
    out_shardings=(state_shardings, sharding.replicated(mesh)),
  )


# --------------------------------------------------------------------------------------------------
# Data


def train_iterator(
  config: ml_collections.ConfigDict, task: task_base.TaskConfig, mesh: jax.sharding.Mesh
) -> grain.DatasetIterator:
  """This process's iterator over training batches (checkpointable: get_state/set_state).

  Record i of the stream is `generate(task, config.seed, i, "train")`: examples are i.i.d. draws
  already, so there is no shuffle. Process p reads records p, p + P, ... .
  """
  local_batch = sharding.check_batch_size(config.batch_size, mesh)
  source = pipeline.TaskSource(config.task_name, task, seed=config.seed, split="train")
  ds = pipeline.make_dataset(
    source,
    batch_size=local_batch,
    num_epochs=None,
    shard_index=jax.process_index(),
    shard_count=jax.process_count(),
  )
  options = grain.ReadOptions(
    num_threads=config.data_threads, prefetch_buffer_size=config.data_prefetch
  )
  return iter(ds.to_iter_dataset(options))


# --------------------------------------------------------------------------------------------------
# The loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes) the run of `config` in `workdir`, then evaluates it if configured.

  Args:
    config: the experiment config (see sleepnet/experiment.py).
    workdir: the run directory (checkpoints, metrics, config.json, eval.json).

  Returns:
    {"step": the final step, "metrics": the last report (or {}), "eval": eval results or None}.

  Raises:
    ConfigError: the config cannot run.
    checkpoint.CheckpointError: the workdir holds another run, or a checkpoint is unreadable.
    NonFiniteLossError: the loss or the gradient became non-finite (nothing after it is saved).
    PreemptedError: SIGTERM arrived (single-process runs); the step it reached is saved.
  """
  model_config, task = resolve(config)
  check_eval(config)
  workdir = pathlib.Path(workdir)
  if config.init_from and pathlib.Path(config.init_from).resolve() == workdir.resolve():
    raise ConfigError(f"config.init_from={config.init_from} is this run's own workdir")
  mesh = make_mesh(config)
  checkpoint.claim_workdir(workdir, config)  # only once the config is known to be runnable
  tx, schedule = make_optimizer(config)
  graphdef, abstract, shardings = create_train_state(
    config, model_config, tx, mesh, materialize=False
  )
  data = train_iterator(config, task, mesh)
  heldout = _heldout_source(config, workdir)
  mngr = checkpoint.manager(workdir, max_to_keep=config.max_to_keep)

  # Initialisation order: this run's latest checkpoint, else init_from, else scratch.
  restored = checkpoint.restore_latest(mngr, abstract)
  if restored is not None:
    state, data_state, start = restored
    data.set_state(data_state)
    logging.info("resumed from step %d (%s)", start, mngr.directory)
  else:
    start = 0
    _, state, _ = create_train_state(config, model_config, tx, mesh)
    if config.init_from:
      state["params"], from_step = checkpoint.load_params(config.init_from, abstract["params"])
      logging.info(
        "initialised parameters from %s (step %d); fresh optimizer", config.init_from, from_step
      )
  logging.info(
    "%s on %s, model %s (%s, N=%s), %d parameters; %s",
    config.task_name,
    dict(mesh.shape),
    config.model_kind,
    "/".join(model_config.blocks),
    (
      f"drawn per step from {tuple(config.train_sleep_passes)}"
      if config.train_sleep_passes
      else model_config.sleep_passes
    ),
    sum(x.size for x in jax.tree.leaves(state["params"])),
    sharding.describe(state["params"]),
  )

  if config.checkpoint_every % config.log_every:
    logging.warning(
      "checkpoint_every=%d is not a multiple of log_every=%d: after a resume, the first report "
      "averages only the steps since the checkpoint, so metrics.jsonl can differ from an "
      "uninterrupted run's there (the losses of every step do not)",
      config.checkpoint_every,
      config.log_every,
    )
  train_step = make_train_step(config, graphdef, tx, mesh, shardings)
  writer = metrics.MetricWriter(workdir, resume_step=start)
  tokens_per_step = config.batch_size * (task.seq_len - 1)
  progress = metrics.Progress(start, config.num_steps, tokens_per_step)
  flops_of = _flops_per_step(config, model_config, task)
  peak = _peak_tflops()
  pending: list[tuple[int, dict[str, jax.Array]]] = []  # dispatched, not yet fetched
  window: list[dict[str, float]] = []  # fetched since the last report
  last: dict[str, float] = {}
  stopped_at = None
  try:
    with _sigterm_requests() as stop_requested:
      for step in range(start + 1, config.num_steps + 1):
        batch = next(data)
        batch = sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh)
        passes = train_passes(config, step)
        state, step_metrics = train_step(state, batch, passes=passes)
        pending.append((step, {**step_metrics, "flops_per_step": flops_of(passes)}))
        final = step == config.num_steps
        stop = stop_requested() and not final
        # A stop reports too, so no trained step's metrics go unlogged.
        report = step % config.log_every == 0 or final or stop
        save = step % config.checkpoint_every == 0 or final or stop
        if not (report or save):
          continue  # keep dispatching: metrics are fetched in bulk, off the critical path
        window += _fetch_checked(pending, mngr)
        pending = []
        if report:
          last = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
          last["learning_rate"] = float(schedule(step - 1))  # the rate of this step's update
          last.update(progress.update(step))
          if peak is not None:
            last.update(
              throughput.utilisation(
                last["flops_per_step"], last["steps_per_sec"], peak, jax.device_count()
              )
            )
          else:
            last["tflops_per_sec"] = last["flops_per_step"] * last["steps_per_sec"] / 1e12
          if heldout is not None and (step % config.eval_every == 0 or final):
            last.update(_evaluate_heldout(config, model_config, graphdef, state, heldout, mesh))
            progress.restart_clock()
          writer.write(step, last)
          metrics.log(step, config.num_steps, last)
          window = []
        if save:
          checkpoint.save(mngr, step, state, data.get_state(), config)
        if stop:
          stopped_at = step
          break
    if start >= config.num_steps:
      logging.info("nothing to train: the run is at step %d of %d", start, config.num_steps)
  finally:
    mngr.wait_until_finished()  # never exit with a save half-written
    mngr.close()
    writer.close()
  if stopped_at is not None:
    raise PreemptedError(
      f"preempted at step {stopped_at} of {config.num_steps} (SIGTERM); that step is saved in "
      f"{mngr.directory}: relaunch the same command to resume"
    )

  results = None
  if config.eval.at_end:
    results = evaluation.evaluate(workdir, config=config)
  return {"step": max(start, config.num_steps), "metrics": last, "eval": results}


def _flops_per_step(
  config: ml_collections.ConfigDict,
  model_config: model_config_lib.ModelConfig,
  task: task_base.TaskConfig,
) -> Callable[[int | None], float]:
  """Model FLOPs of one training step at a given N (None: the model's), memoised per N."""
  cache: dict[int | None, float] = {}

  def flops(passes: int | None) -> float:
    if passes not in cache:
      cache[passes] = costs.train_flops_per_step(
        model_config, batch_size=config.batch_size, seq_len=task.seq_len - 1, sleep_passes=passes
      )
    return cache[passes]

  return flops


def _peak_tflops() -> float | None:
  """The device's peak for MFU, or None (logged) for an accelerator the table lacks."""
  try:
    return throughput.peak_tflops()
  except KeyError as e:
    logging.warning("%s: logging TFLOP/s without MFU", e)
    return None


def _heldout_source(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> Any:
  """The evaluation split that `config.eval_every` evaluates during training, or None."""
  if not config.eval_every:
    return None
  return datasets.data_source(scoring.eval_dataset(config, workdir), config.eval.split)


def _evaluate_heldout(
  config: ml_collections.ConfigDict,
  model_config: model_config_lib.ModelConfig,
  graphdef: nnx.GraphDef,
  state: State,
  source: Any,
  mesh: jax.sharding.Mesh,
) -> dict[str, float]:
  """Exact match and token accuracy on the fixed evaluation split, by N and by difficulty.

  At the trained N and every N of `config.eval.sleep_passes`, from the current parameters (no
  checkpoint needed), under the names of `scoring.heldout_scalars`.
  """
  passes = sorted({model_config.sleep_passes, *config.eval.sleep_passes})
  results = scoring.evaluate_params(
    graphdef,
    state["params"],
    source,
    sleep_passes=passes,
    batch_size=config.eval.batch_size,
    mesh=mesh,
  )
  logging.info(
    "held-out %s split (%d examples): %s",
    config.eval.split,
    len(source),
    " | ".join(f"N={n} exact {r['exact_match']:.3f}" for n, r in results.items()),
  )
  return scoring.heldout_scalars(results)


def _fetch_checked(
  pending: list[tuple[int, dict[str, jax.Array]]], mngr: Any
) -> list[dict[str, float]]:
  """Fetches dispatched step metrics; raises at the first non-finite loss or gradient."""
  fetched = jax.device_get([m for _, m in pending])
  for (step, _), m in zip(pending, fetched, strict=True):
    if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
      good = mngr.latest_step()
      kept = f"{mngr.directory}/{good}" if good is not None else "none (nothing was saved)"
      raise NonFiniteLossError(
        f"non-finite loss at step {step} (loss={m['loss']}, grad_norm={m['grad_norm']}): "
        f"training stopped and the state after it was not saved; last good checkpoint: {kept}"
      )
  return [{k: float(v) for k, v in m.items()} for m in fetched]
