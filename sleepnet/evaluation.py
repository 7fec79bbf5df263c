"""Evaluation of a trained run on its task's fixed evaluation set, at several N.

`evaluate(workdir, sleep_passes=(1, 4), split="test")` loads the run's config (DIR/config.json)
and latest parameters, and measures under teacher forcing:

  * exact match: the fraction of examples whose answer tokens are *all* predicted right (the
    argmax at every answer position is the target, so greedy decoding of the answer would be
    exactly right);
  * token accuracy: the fraction of answer tokens predicted right,

broken down by the task's difficulty (Rule 110: t; Depo: k; GSM: ops) and by the number of sleep
passes N used at test time (which may differ from training: the weights do not depend on N). It
writes DIR/eval.json and logs a markdown table.

The evaluation set is fixed and versioned: `sleepnet.tasks.datasets.prepare` writes it once as
TFDS array_record files under `config.data_dir` (default DIR/data), in a directory named by the
task, a digest of the task config, the seed and the split sizes, and the builder version
(e.g. DIR/data/rule110_dataset/seed1234-train32-test64-1a2b3c4d/1.0.0). Record i of a split is
always `generate(task config, config.eval.seed, i, split)`, so two runs with the same task config
are evaluated on exactly the same examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import platform
import time
from collections.abc import Sequence
from typing import Any

import flax
import jax
import ml_collections
from absl import logging

from sleepnet import checkpoint, run_config, scoring
from sleepnet.tasks import base as task_base
from sleepnet.tasks import datasets

EVAL_FILE = "eval.json"
SPLITS = task_base.SPLITS


def host_cpu() -> str:
  """The host's CPU model (from /proc/cpuinfo on Linux), for reports of CPU-only runs."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.partition(":")[2].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or "unknown"


def device_record() -> dict[str, Any]:
  """Where a report's numbers were computed: the first device, its count and the software."""
  device = jax.devices()[0]
  return {
    "platform": device.platform,
    "device_kind": device.device_kind,
    "count": jax.device_count(),
    "jax": jax.__version__,
    "flax": flax.__version__,
    "host_cpu": host_cpu(),
    "host_cores": os.cpu_count(),
  }


def config_digest(config: ml_collections.ConfigDict) -> str:
  """The SHA-256 of a config's canonical JSON (sorted keys): equal configs, equal digests."""
  text = json.dumps(json.loads(config.to_json()), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def evaluate(
  workdir: str | os.PathLike,
  *,
  sleep_passes: Sequence[int] | None = None,
  split: str | None = None,
  config: ml_collections.ConfigDict | None = None,
  log_table: bool = True,
) -> dict[str, Any]:
  """Evaluates the latest checkpoint of the run in `workdir`; writes DIR/eval.json.

  Args:
    workdir: the run's workdir.
    sleep_passes: the N values to evaluate at; None means `config.eval.sleep_passes`.
    split: "test" or "train" split of the evaluation set; None means `config.eval.split`.
    config: the run's config; None reads DIR/config.json.
    log_table: also log the results as a markdown table (the command line prints it instead).

  Returns:
    The report written to eval.json: {"step", "task", "model_kind", "train_sleep_passes",
    "train_sleep_passes_mixture", "split",
    "eval_set": {"dir", "num_examples"}, "sleep_passes", "results": {str(N): {"exact_match",
    "token_accuracy", "num_examples", "by_difficulty": {str(d): {...}}}}, "device": {"platform",
    "device_kind", "count", "jax", "flax", "host_cpu", "host_cores"}, "wall_time_s",
    "config_sha256"};
    config_sha256 identifies the evaluated run's config (`config_digest`), so reports can be
    matched to their runs.

  Raises:
    run_config.ConfigError: a bad split, N or evaluation batch size, an empty split, or a saved
      config that cannot run.
    checkpoint.CheckpointError: no readable config or checkpoint in `workdir`.
  """
  started = time.perf_counter()
  workdir = pathlib.Path(workdir)
  config = config if config is not None else checkpoint.load_config(workdir)
  model_config, _ = run_config.resolve(config)
  sleep_passes = tuple(int(n) for n in (sleep_passes or config.eval.sleep_passes))
  split = split or config.eval.split
  if split not in SPLITS:
    raise run_config.ConfigError(f"split={split!r} is not one of {list(SPLITS)}")
  if not sleep_passes or min(sleep_passes) < 1:
    raise run_config.ConfigError(f"sleep_passes={list(sleep_passes)} must be positive integers")
  if config.eval.batch_size < 1:
    raise run_config.ConfigError(f"config.eval.batch_size={config.eval.batch_size} must be >= 1")
  mesh, graphdef, params, step = run_config.restore_params(config, model_config, workdir)
  builder = scoring.eval_dataset(config, workdir)
  source = datasets.data_source(builder, split)
  if not len(source):
    raise run_config.ConfigError(
      f"config.eval.num_{split}=0: the {split} split to evaluate is empty"
    )
  results = scoring.evaluate_params(
    graphdef,
    params,
    source,
    sleep_passes=sleep_passes,
    batch_size=config.eval.batch_size,
    mesh=mesh,
  )
  report = {
    "step": step,
    "task": config.task_name,
    "model_kind": config.model_kind,
    "train_sleep_passes": model_config.sleep_passes,
    "train_sleep_passes_mixture": list(config.train_sleep_passes),  # []: trained at that N only
    "split": split,
    "eval_set": {"dir": str(builder.data_dir), "num_examples": len(source)},
    "sleep_passes": list(sleep_passes),
    "results": results,
    # Where and how long: results are compared across machines, so each report names its own.
    "device": device_record(),
    "wall_time_s": time.perf_counter() - started,
    "config_sha256": config_digest(config),
  }
  if jax.process_index() == 0:
    # Write-then-rename: a reader (or a killed evaluation) never sees half a report.
    tmp = workdir / f".{EVAL_FILE}.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, workdir / EVAL_FILE)
  logging.info(
    "evaluation of %s at step %d (%s split, %d examples)%s",
    workdir,
    step,
    split,
    len(source),
    ":\n" + scoring.markdown_table(report) if log_table else "",
  )
  return report
