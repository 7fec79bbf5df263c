"""Metric writers: one call writes the same scalars to the log, to JSON lines and to TensorBoard.

  * absl logging: one human-readable line per report, with throughput and an ETA;
  * DIR/metrics.jsonl: one JSON object per report ({"step": S, "loss": ..., ...}), the record that
    tests and notebooks read (floats are written exactly: `json` uses repr);
  * DIR/tensorboard/: TensorBoard event files (tensorboardX, so no TensorFlow is needed).

Only process 0 writes files. A resumed run first cuts metrics.jsonl back to its checkpoint step and
tells TensorBoard to purge later events, so each file holds one trajectory with no duplicates.
"""

from __future__ import annotations

import json
import logging as py_logging
import os
import pathlib
import time
from collections.abc import Mapping

import jax
from absl import logging
from tensorboardX import SummaryWriter

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricWriter:
  """Writes scalar metrics to the log, DIR/metrics.jsonl and DIR/tensorboard.

  Example:
    writer = MetricWriter(workdir, resume_step=0)
    writer.write(100, {"loss": 0.5, "accuracy": 0.9})
    writer.close()
  """

  def __init__(self, workdir: str | os.PathLike, *, resume_step: int = 0) -> None:
    """Opens the writers.

    Args:
      workdir: the run's workdir.
      resume_step: the step the run starts from; records after it (from a run that was killed
        after its last checkpoint) are dropped.
    """
    self._enabled = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self._enabled:
      return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / METRICS_FILE
    if path.exists():
      kept = [line for line in path.read_text().splitlines() if _step(line) <= resume_step]
      # Write then rename: a kill during the rewrite must not lose the learning curve so far.
      tmp = path.with_suffix(".tmp")
      tmp.write_text("".join(line + "\n" for line in kept))
      os.replace(tmp, path)
    self._jsonl = path.open("a")
    # purge_step makes TensorBoard drop events at or after it from earlier (killed) sessions,
    # including those of a run restarted from scratch (resume_step 0), as metrics.jsonl does.
    self._tb = SummaryWriter(str(workdir / TENSORBOARD_DIR), purge_step=resume_step + 1)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """Writes one record of scalars at `step` to the JSON lines and TensorBoard files."""
    if not self._enabled:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the files."""
    if self._jsonl is not None:
      self._jsonl.close()
      self._tb.close()
      self._jsonl = self._tb = None


def _step(line: str) -> int:
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return 1 << 62  # an unreadable (half-written) line is dropped with the later ones


class Progress:
  """Throughput and ETA between reports: steps/s, tokens/s, the time left, and CPU per wall.

  `cpu_per_wall` is the CPU time of this process (all its threads) per wall second since the
  previous report. A run's speed is only comparable with another's when both had the machine to
  themselves; on a CPU, a single-threaded run that had its core scores about 1, and one that
  shared it with other work scores less, so timings that other work inflated can be told apart.
  """

  def __init__(self, start_step: int, num_steps: int, tokens_per_step: int) -> None:
    self._num_steps = num_steps
    self._tokens = tokens_per_step
    self._last_step = start_step
    self._last_time = time.perf_counter()
    self._last_cpu = time.process_time()

  def restart_clock(self) -> None:
    """Starts the current interval now: work between steps (held-out evaluation) is not
    counted as training time."""
    self._last_time, self._last_cpu = time.perf_counter(), time.process_time()

  def update(self, step: int) -> dict[str, float]:
    """Rates since the previous call (the first includes compilation)."""
    now, cpu = time.perf_counter(), time.process_time()
    wall = max(now - self._last_time, 1e-9)
    rate = (step - self._last_step) / wall
    cpu_per_wall = (cpu - self._last_cpu) / wall
    self._last_step, self._last_time, self._last_cpu = step, now, cpu
    return {
      "steps_per_sec": rate,
      "tokens_per_sec": rate * self._tokens,
      "eta_sec": (self._num_steps - step) / max(rate, 1e-9),
      "cpu_per_wall": cpu_per_wall,
    }


def format_line(step: int, num_steps: int, m: Mapping[str, float]) -> str:
  """The log line of one report."""
  return (
    f"step {step}/{num_steps} | loss {m['loss']:.4f} | acc {m['accuracy']:.3f} | "
    f"exact {m['exact_match']:.3f} | lr {m['learning_rate']:.2e} | "
    f"{m['steps_per_sec']:.2f} steps/s | {m['tokens_per_sec']:,.0f} tok/s | "
    + (f"{m['tflops_per_sec']:.3g} TFLOP/s | " if "tflops_per_sec" in m else "")
    + (f"MFU {m['mfu']:.1%} | " if "mfu" in m else "")
    + f"ETA {_duration(m['eta_sec'])}"
  )


def _duration(seconds: float) -> str:
  seconds = round(seconds)
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def quiet_library_logs() -> None:
  """Keeps the run's log readable: drops orbax's INFO records (dozens per checkpoint).

  Entry points call this; warnings and errors of every library still show.
  """
  absl_handler = logging.get_absl_handler()
  absl_handler.addFilter(
    lambda r: r.levelno >= py_logging.WARNING or f"{os.sep}orbax{os.sep}" not in r.pathname
  )


def log(step: int, num_steps: int, scalars: Mapping[str, float]) -> None:
  """Logs one report line with absl logging."""
  logging.info("%s", format_line(step, num_steps, scalars))
