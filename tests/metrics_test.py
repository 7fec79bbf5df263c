"""Training-progress numbers: throughput, ETA and CPU seconds per wall second."""

import json
import time
import types

import pytest

from sleepnet import metrics


class _Clocks:
  """Wall and process-CPU clocks the test advances by hand, so the numbers do not depend on
  how busy the machine is (a real busy loop gets almost no CPU beside a running study)."""

  def __init__(self) -> None:
    self.wall, self.cpu = 100.0, 5.0

  def perf_counter(self) -> float:
    return self.wall

  def process_time(self) -> float:
    return self.cpu


def test_progress_rates_eta_and_cpu_per_wall(monkeypatch):
  clocks = _Clocks()
  monkeypatch.setattr(
    metrics,
    "time",
    types.SimpleNamespace(perf_counter=clocks.perf_counter, process_time=clocks.process_time),
  )
  progress = metrics.Progress(start_step=10, num_steps=110, tokens_per_step=8)
  clocks.wall += 2.0  # 10 steps in 2 s of waiting: no CPU
  idle = progress.update(20)
  assert idle == pytest.approx(
    {"steps_per_sec": 5.0, "tokens_per_sec": 40.0, "eta_sec": 18.0, "cpu_per_wall": 0.0}
  )
  clocks.wall += 4.0  # 10 more steps in 4 s, 6 CPU-seconds: one and a half cores busy
  clocks.cpu += 6.0
  busy = progress.update(30)
  assert busy == pytest.approx(
    {"steps_per_sec": 2.5, "tokens_per_sec": 20.0, "eta_sec": 32.0, "cpu_per_wall": 1.5}
  )


def test_progress_reads_the_real_clocks():
  # Only what holds however loaded the machine is: time moves forward and waiting costs no CPU.
  progress = metrics.Progress(start_step=0, num_steps=10, tokens_per_step=1)
  time.sleep(0.05)
  m = progress.update(1)
  assert 0 < m["steps_per_sec"] <= 1 / 0.05 + 1e-6
  assert 0 <= m["cpu_per_wall"] < 0.5


def _steps(workdir):
  return [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_metric_writer_drops_records_after_the_resume_step(tmp_path):
  writer = metrics.MetricWriter(tmp_path, resume_step=0)
  for step in (10, 20, 30):
    writer.write(step, {"loss": 1.0 / step})
  writer.close()
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"step": 40, "lo')  # a record half-written by a kill
  # Resumed from the checkpoint at step 20: the records of steps the run will redo are dropped,
  # the file is replaced whole (no temporary left), and new records follow the kept ones.
  writer = metrics.MetricWriter(tmp_path, resume_step=20)
  writer.write(30, {"loss": 0.5})
  writer.close()
  assert _steps(tmp_path) == [10, 20, 30]
  assert not list(tmp_path.glob("*.tmp"))
  # Restarted from scratch (no checkpoint): nothing of the earlier attempt is kept.
  metrics.MetricWriter(tmp_path, resume_step=0).close()
  assert (tmp_path / "metrics.jsonl").read_text() == ""
