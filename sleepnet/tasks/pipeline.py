"""Grain input pipelines over the task generators, or over TFDS array_record data sources.

Training can stream straight from a generator (`TaskSource`: record i is example i, computed on
access, so any index is reachable at once and the order is reproducible) or read a prepared
dataset (`sleepnet.tasks.datasets`). Either source goes through `make_dataset`, which shards,
shuffles, repeats and batches with grain's random-access `MapDataset`, whose iterators can be
checkpointed. For worker processes, continue with
``make_dataset(...).to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=n))``
(grain then needs absl flags parsed).

Batches are dicts of numpy arrays: "tokens" int32 [B, T], "loss_mask" bool [B, T], "roles" int8
[B, T], "difficulty" int32 [B]; see `sleepnet.tasks.base` for the loss convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsIndex

import grain
import numpy as np

from sleepnet.tasks import base, registry

FEATURES = ("tokens", "loss_mask", "roles", "difficulty")
# A source of this size never runs out in practice and keeps every index a valid int32 seed.
STREAM_SIZE = 2**31 - 1


def to_record(example: base.Example) -> dict[str, np.ndarray]:
  """Returns the array features of an example (the structured facts stay out of batches)."""
  return {
    "tokens": example.tokens,
    "loss_mask": example.loss_mask,
    "roles": example.roles,
    "difficulty": np.int32(example.difficulty),
  }


class TaskSource:
  """A grain random-access data source whose record i is ``generate(config, seed, i, split)``.

  Attributes:
    task: the task name.
    config: the task config.
    seed: the example stream.
    split: "train" or "test".
  """

  def __init__(
    self,
    task: str,
    config: base.TaskConfig | None = None,
    *,
    seed: int = 0,
    split: str = "train",
    size: int = STREAM_SIZE,
  ) -> None:
    """Creates the source.

    Args:
      task: a registered task name.
      config: the task config; None means the defaults.
      seed: the example stream.
      split: "train" or "test".
      size: the number of records (indices 0..size-1).
    """
    self._spec = registry.get_task(task)
    self.task = task
    self.config = config if config is not None else self._spec.default_config()
    if not isinstance(self.config, self._spec.config_cls):
      raise TypeError(f"{task} needs a {self._spec.config_cls.__name__}, got {self.config!r}")
    if split not in base.SPLITS:
      raise ValueError(f"split={split!r} is not one of {list(base.SPLITS)}")
    if size < 0 or seed < 0:
      raise ValueError(f"size={size} and seed={seed} must be >= 0")
    self.seed = seed
    self.split = split
    self._size = size

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: SupportsIndex) -> dict[str, np.ndarray]:
    i = index.__index__()
    if not 0 <= i < self._size:
      raise IndexError(f"index {i} outside 0..{self._size - 1}")
    return to_record(self._spec.generate(self.config, self.seed, i, self.split))

  def __repr__(self) -> str:
    # grain logs and checkpoints identify sources by repr: make it name the whole stream.
    return (
      f"TaskSource(task={self.task!r}, config={self.config!r}, seed={self.seed}, "
      f"split={self.split!r}, size={self._size})"
    )


def _select(record: Mapping[str, Any]) -> dict[str, np.ndarray]:
  # TFDS records also carry "index", "text" and "facts"; batches keep only the arrays.
  return {k: np.asarray(record[k]) for k in FEATURES}


def make_dataset(
  source: Any,
  *,
  batch_size: int,
  shuffle_seed: int | None = None,
  num_epochs: int | None = 1,
  shard_index: int = 0,
  shard_count: int = 1,
  drop_remainder: bool = True,
) -> grain.MapDataset:
  """Returns a grain dataset of batches from a random-access source.

  Args:
    source: a `TaskSource` or any random-access source of task records (e.g. a TFDS data source
      from `sleepnet.tasks.datasets`).
    batch_size: examples per batch (per process when sharding).
    shuffle_seed: shuffle the records with this seed (reshuffled every epoch); None keeps index
      order.
    num_epochs: passes over the source; None repeats forever.
    shard_index: this process's shard (records shard_index, shard_index + shard_count, …).
    shard_count: the number of shards, e.g. `jax.process_count()`.
    drop_remainder: drop a last, smaller batch so every batch has the same shape.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1")
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index={shard_index} must be in 0..shard_count-1={shard_count - 1}")
  ds = grain.MapDataset.source(source)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  if shuffle_seed is not None:
    ds = ds.shuffle(seed=shuffle_seed)
  if num_epochs != 1:
    ds = ds.repeat(num_epochs)
  return ds.map(_select).batch(batch_size, drop_remainder=drop_remainder)
