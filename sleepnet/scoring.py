"""Scoring answers: per-example answer statistics under teacher forcing, their summary by
difficulty, and the evaluation of a set of parameters on a task's fixed evaluation set at
several N.

Used by training (the held-out curves of `config.eval_every`) and by `sleepnet.evaluation` (the
final report, eval.json) alike.
"""

from __future__ import annotations

import functools
import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow_datasets as tfds
from flax import nnx
from jax.experimental import multihost_utils

from sleepnet import sharding
from sleepnet.tasks import datasets


def answer_stats(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Per-example answer statistics under teacher forcing.

  Args:
    logits: float [B, T, V], the predictions for `targets`.
    targets: int [B, T], the next tokens.
    mask: bool [B, T], True on answer tokens.

  Returns:
    A dict of [B] arrays: "ce" (summed cross-entropy over answer tokens), "correct" (answer tokens
    whose argmax is right), "count" (answer tokens) and "exact" (1.0 where every answer token is
    right, i.e. greedy decoding of the answer would be exactly right; 0.0 for no answer).
  """
  mask = mask.astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  right = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32) * mask
  count = mask.sum(axis=1)
  correct = right.sum(axis=1)
  return {
    "ce": (ce * mask).sum(axis=1),
    "correct": correct,
    "count": count,
    "exact": ((correct == count) & (count > 0)).astype(jnp.float32),
  }


def eval_dataset(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Any:
  """Prepares (once) and returns the TFDS builder of the run's fixed evaluation set."""
  data_dir = config.data_dir or str(pathlib.Path(workdir) / "data")
  tfds.disable_progress_bar()

  def prepare() -> Any:
    return datasets.prepare(
      config.task_name,
      config.task.to_dict(),
      seed=config.eval.seed,
      num_train=config.eval.num_train,
      num_test=config.eval.num_test,
      data_dir=data_dir,
    )

  if jax.process_count() > 1:
    # One writer: process 0 builds, the others then find it built.
    if jax.process_index() == 0:
      prepare()
    multihost_utils.sync_global_devices("sleepnet-eval-data")
  return prepare()


def summarize(stats: Mapping[str, np.ndarray], difficulty: np.ndarray) -> dict[str, Any]:
  """Aggregates per-example answer statistics (see `answer_stats`).

  Args:
    stats: [E] arrays "correct", "count" and "exact" for E examples.
    difficulty: int [E], each example's difficulty.

  Returns:
    {"exact_match", "token_accuracy", "num_examples", "by_difficulty": {d: the same three}};
    token accuracy pools the answer tokens of all examples.
  """

  def pooled(sel: np.ndarray) -> dict[str, Any]:
    count = float(stats["count"][sel].sum())
    return {
      "exact_match": float(stats["exact"][sel].mean()) if sel.any() else 0.0,
      "token_accuracy": float(stats["correct"][sel].sum()) / count if count else 0.0,
      "num_examples": int(sel.sum()),
    }

  out = pooled(np.ones(difficulty.shape, bool))
  out["by_difficulty"] = {str(d): pooled(difficulty == d) for d in sorted(set(difficulty.tolist()))}
  return out


def markdown_table(report: Mapping[str, Any]) -> str:
  """The results as a markdown table: one row per difficulty (and "all"), two columns per N."""
  results = report["results"]
  ns = list(results)
  first = results[ns[0]]
  head = ["difficulty", "examples"]
  for n in ns:
    head += [f"N={n} exact", f"N={n} token acc"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for d, label in [*((d, d) for d in first["by_difficulty"]), (None, "all")]:
    row = [label, str((first["by_difficulty"][d] if d else first)["num_examples"])]
    for n in ns:
      r = results[n]["by_difficulty"][d] if d else results[n]
      row += [f"{r['exact_match']:.3f}", f"{r['token_accuracy']:.3f}"]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _batches(
  source: Any, batch_size: int, mesh: jax.sharding.Mesh
) -> Iterator[tuple[dict[str, jax.Array], int, np.ndarray]]:
  """(global batch arrays, number of real rows, difficulty) over the whole split, padded.

  The last batch is padded with copies of the first record (masked out: no answer tokens), so
  every batch has one shape and the step compiles once.
  """
  local = sharding.check_batch_size(batch_size, mesh, "eval.batch_size")
  p = jax.process_index()
  for start in range(0, len(source), batch_size):
    idx = list(range(start, min(start + batch_size, len(source))))
    records = [source[i] for i in idx]
    real = len(records)
    records += [records[0]] * (batch_size - real)
    tokens = np.stack([np.asarray(r["tokens"], np.int32) for r in records])
    mask = np.stack([np.asarray(r["loss_mask"], bool) for r in records])
    mask[real:] = False
    difficulty = np.asarray([int(r["difficulty"]) for r in records[:real]], np.int32)
    rows = slice(p * local, (p + 1) * local)  # this process's share of the global batch
    batch = sharding.put_batch({"tokens": tokens[rows], "loss_mask": mask[rows]}, mesh)
    yield batch, real, difficulty


@functools.lru_cache(maxsize=8)
def _stats_step(graphdef: nnx.GraphDef, mesh: jax.sharding.Mesh) -> Any:
  """The jitted per-batch statistics of a model graph, built once per (graph, mesh): training
  evaluates the held-out split many times and must not recompile each time."""

  def stats_fn(params: Any, batch: Mapping[str, jax.Array], passes: int) -> dict[str, jax.Array]:
    model = nnx.merge(graphdef, params)
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1], sleep_passes=passes)
    return answer_stats(logits, tokens[:, 1:], batch["loss_mask"][:, 1:])

  # Replicated outputs: every process can read all per-example results.
  return jax.jit(stats_fn, static_argnames="passes", out_shardings=sharding.replicated(mesh))


def evaluate_params(
  graphdef: nnx.GraphDef,
  params: Any,
  source: Any,
  *,
  sleep_passes: Sequence[int],
  batch_size: int,
  mesh: jax.sharding.Mesh,
) -> dict[str, Any]:
  """Evaluates parameters on a random-access source of task records, at every N.

  Returns:
    {str(N): summarize(...)} in the order of `sleep_passes`.
  """

  step = _stats_step(graphdef, mesh)
  parts: dict[int, list[dict[str, np.ndarray]]] = {n: [] for n in sleep_passes}
  difficulty = []
  for batch, real, diff in _batches(source, batch_size, mesh):
    difficulty.append(diff)
    for n in sleep_passes:
      out = jax.device_get(step(params, batch, passes=n))
      parts[n].append({k: v[:real] for k, v in out.items()})
  difficulty = np.concatenate(difficulty)
  return {
    str(n): summarize(
      {k: np.concatenate([p[k] for p in parts[n]]) for k in parts[n][0]}, difficulty
    )
    for n in sleep_passes
  }


def heldout_scalars(results: Mapping[str, Any], prefix: str = "heldout") -> dict[str, float]:
  """`evaluate_params` results as flat metric names, for metrics.jsonl and TensorBoard:
  PREFIX/exact_match/N4, PREFIX/token_accuracy/N4, and per difficulty d, .../N4/d3."""
  out = {}
  for n, r in results.items():
    for metric in ("exact_match", "token_accuracy"):
      out[f"{prefix}/{metric}/N{n}"] = r[metric]
      for d, rd in r["by_difficulty"].items():
        out[f"{prefix}/{metric}/N{n}/d{d}"] = rd[metric]
  return out
