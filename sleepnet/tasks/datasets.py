"""TFDS builders that write task examples to array_record files; no TensorFlow needed.

One builder per task (`Rule110Dataset`, `DepoDataset`, `GsmSymbolicDataset`,
`GsmRealisticDataset`). A builder config fixes the task config overrides, the seed and the split
sizes; record i of a split is ``generate(config, seed, i, split)``, stored in index order. Use
`prepare` to build one and `data_source` to read it back (random access; feed it to
`sleepnet.tasks.pipeline.make_dataset`)::

  builder = prepare("depo", {"k_max": "16"}, seed=0, num_train=100_000, num_test=2_000,
                    data_dir="/data/tfds")
  source = data_source(builder, "test")

Each record holds "tokens" int32 [T], "loss_mask" bool [T], "roles" int8 [T], "difficulty"
int32, "index" int64, and "text" and "facts" (JSON of the structured facts) as bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from sleepnet.tasks import base, registry


@dataclasses.dataclass(eq=False)
class TaskBuilderConfig(tfds.core.BuilderConfig):
  """What one prepared dataset holds.

  Attributes:
    overrides: task config overrides as sorted (key, value) string pairs.
    seed: the example stream.
    num_train: records in the train split.
    num_test: records in the test split.
  """

  overrides: tuple[tuple[str, str], ...] = ()
  seed: int = 0
  num_train: int = 10_000
  num_test: int = 1_000


def builder_config(
  task: str,
  overrides: Mapping[str, Any] | None = None,
  *,
  seed: int = 0,
  num_train: int = 10_000,
  num_test: int = 1_000,
  name: str | None = None,
) -> TaskBuilderConfig:
  """Returns a builder config; its name encodes every setting, so datasets never collide.

  Args:
    task: a registered task name.
    overrides: task config overrides (strings or values).
    seed: the example stream.
    num_train: records in the train split.
    num_test: records in the test split.
    name: a variant name for `BUILDER_CONFIGS`; None derives the name from the settings.

  Raises:
    ValueError: the overrides do not make a valid task config, or a count is negative.
  """
  pairs = tuple(sorted((str(k), str(v)) for k, v in (overrides or {}).items()))
  registry.config_from_overrides(task, dict(pairs))  # fail here, not halfway through a build
  if min(seed, num_train, num_test) < 0:
    raise ValueError(f"seed={seed}, num_train={num_train}, num_test={num_test} must be >= 0")
  if name is None:
    name = f"seed{seed}-train{num_train}-test{num_test}"
    if pairs:
      digest = hashlib.blake2b(json.dumps(pairs).encode(), digest_size=4).hexdigest()
      name += f"-{digest}"
  return TaskBuilderConfig(
    name=name,
    description=f"{task} with overrides {dict(pairs)}",
    overrides=pairs,
    seed=seed,
    num_train=num_train,
    num_test=num_test,
  )


def generator_fingerprint(task: str, *, seed: int = 0, count: int = 16) -> str:
  """A digest of the first `count` examples of both splits of `task`'s default config.

  Prepared datasets are cached under their builder's VERSION, so a generator whose output
  changes must come with a new VERSION; `tests/tasks_common_test.py` compares these digests with
  data/task_fingerprints.json (rewritten by `scripts/task_fingerprints.py --write`) to catch a
  change made without one.
  """
  spec = registry.get_task(task)
  config = spec.default_config()
  h = hashlib.sha256()
  for split in base.SPLITS:
    for i in range(count):
      ex = spec.generate(config, seed, i, split)
      for array in (ex.tokens, ex.loss_mask, ex.roles):
        h.update(np.ascontiguousarray(array).tobytes())
      h.update(json.dumps([ex.difficulty, ex.facts], sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


class TaskDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The shared builder; each task subclass sets TASK."""

  TASK: ClassVar[str]
  # Bump it with every change to what a generator outputs (see `generator_fingerprint`): the
  # version names the directory a prepared dataset is cached in.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First version."}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> None:
    # TFDS locates a builder's source file only to find download checksums; these builders
    # download nothing, and the lookup for a class inside a package needs the
    # `importlib_resources` backport, which is not a dependency.
    return None

  @property
  def task_config(self) -> base.TaskConfig:
    """The task config of this dataset."""
    return registry.config_from_overrides(self.TASK, dict(self.builder_config.overrides))

  def _info(self) -> tfds.core.DatasetInfo:
    T = self.task_config.seq_len
    return tfds.core.DatasetInfo(
      builder=self,
      description=f"sleepnet task {self.TASK}; see sleepnet/tasks/{self.TASK}.py",
      features=tfds.features.FeaturesDict(
        {
          "tokens": tfds.features.Tensor(shape=(T,), dtype=np.int32),
          "loss_mask": tfds.features.Tensor(shape=(T,), dtype=np.bool_),
          "roles": tfds.features.Tensor(shape=(T,), dtype=np.int8),
          "difficulty": tfds.features.Scalar(dtype=np.int32),
          "index": tfds.features.Scalar(dtype=np.int64),
          "text": tfds.features.Text(),
          "facts": tfds.features.Text(),
        }
      ),
      # Record i is example i: keep index order so a data source can be checked against the
      # generator and sliced reproducibly; grain shuffles at read time.
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[int, dict]]]:
    del dl_manager  # everything is generated
    cfg = self.builder_config
    return {
      "train": self._generate_examples("train", cfg.num_train),
      "test": self._generate_examples("test", cfg.num_test),
    }

  def _generate_examples(self, split: str, num: int) -> Iterator[tuple[int, dict]]:
    spec = registry.get_task(self.TASK)
    config = self.task_config
    seed = self.builder_config.seed
    for i in range(num):
      ex = spec.generate(config, seed, i, split)
      yield (
        i,
        {
          "tokens": ex.tokens,
          "loss_mask": ex.loss_mask,
          "roles": ex.roles,
          "difficulty": ex.difficulty,
          "index": i,
          "text": spec.text(ex),
          "facts": json.dumps(ex.facts),
        },
      )


# Named variants of each task, at the default sizes and seed (`tfds` `config=` names). Any other
# setting is still available through `prepare`, which names its config after the settings.
VARIANTS: dict[str, dict[str, dict[str, str]]] = {
  "rule110": {
    "steps_after_eviction": {},  # t is revealed only in the question (the default)
    "steps_before_eviction": {"show_steps_before_eviction": "True"},  # t shown next to x0
    "wide": {"width": "32", "t_max": "16", "window": "64", "seq_len": "128"},  # harder to memorise
  },
  "depo": {
    "permutation": {},  # a uniform random permutation (cycles of every length)
    "single_cycle": {"single_cycle": "True"},  # one cycle: no hop count wraps around early
    "deep": {"k_max": "16", "single_cycle": "True"},  # hop counts up to 16
  },
  "gsm_symbolic": {
    "plain": {},  # only the equations the query needs (plus padding)
    # Unrelated equations too, over twice as many windows.
    "distractors": {"num_distractors": "8", "filler": "distractors", "seq_len": "512"},
  },
  "gsm_realistic": {
    "plain": {},
    "distractors": {"num_distractors": "8", "filler": "distractors", "seq_len": "1024"},
  },
}


def _variants(task: str) -> list[TaskBuilderConfig]:
  return [builder_config(task, overrides, name=name) for name, overrides in VARIANTS[task].items()]


class Rule110Dataset(TaskDatasetBuilder):
  """Rule 110 examples (`sleepnet.tasks.rule110`)."""

  TASK = "rule110"
  BUILDER_CONFIGS: ClassVar[list[TaskBuilderConfig]] = _variants("rule110")


class DepoDataset(TaskDatasetBuilder):
  """Depo examples (`sleepnet.tasks.depo`)."""

  TASK = "depo"
  BUILDER_CONFIGS: ClassVar[list[TaskBuilderConfig]] = _variants("depo")


class GsmSymbolicDataset(TaskDatasetBuilder):
  """Symbolic GSM examples (`sleepnet.tasks.gsm_symbolic`)."""

  TASK = "gsm_symbolic"
  BUILDER_CONFIGS: ClassVar[list[TaskBuilderConfig]] = _variants("gsm_symbolic")


class GsmRealisticDataset(TaskDatasetBuilder):
  """Realistic GSM examples (`sleepnet.tasks.gsm_realistic`)."""

  TASK = "gsm_realistic"
  BUILDER_CONFIGS: ClassVar[list[TaskBuilderConfig]] = _variants("gsm_realistic")


BUILDERS: dict[str, type[TaskDatasetBuilder]] = {
  b.TASK: b for b in (Rule110Dataset, DepoDataset, GsmSymbolicDataset, GsmRealisticDataset)
}


@contextlib.contextmanager
def _prepare_lock(data_dir: str, task: str) -> Iterator[None]:
  """An exclusive lock on a local data_dir while a dataset is built (remote paths: no lock).

  Concurrent evaluations on one machine share data_dir: one process builds a dataset while the
  others wait and then find it built (TFDS alone races on the rename of its temporary directory).
  """
  if "://" in data_dir:  # e.g. gs://: no flock there; multi-host runs build on process 0 only
    yield
    return
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f".prepare-{task}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(
  task: str,
  overrides: Mapping[str, Any] | None = None,
  *,
  seed: int = 0,
  num_train: int = 10_000,
  num_test: int = 1_000,
  data_dir: str,
) -> TaskDatasetBuilder:
  """Builds (or finds already built) a task dataset under `data_dir` and returns its builder."""
  registry.get_task(task)  # a clear error for unknown names
  config = builder_config(task, overrides, seed=seed, num_train=num_train, num_test=num_test)
  with _prepare_lock(data_dir, task):
    builder = BUILDERS[task](config=config, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
  return builder


def data_source(builder: TaskDatasetBuilder, split: str) -> Any:
  """Returns the random-access data source of a prepared split (record i is example i)."""
  return builder.as_data_source(split)
