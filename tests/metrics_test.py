"""Training-progress numbers: throughput, ETA and CPU seconds per wall second."""

import time

import pytest

from sleepnet import metrics


def test_progress_rates_and_cpu_per_wall():
  progress = metrics.Progress(start_step=10, num_steps=110, tokens_per_step=8)
  time.sleep(0.3)  # waiting costs no CPU
  idle = progress.update(20)
  assert idle["steps_per_sec"] == pytest.approx(10 / 0.3, rel=0.3)
  assert idle["tokens_per_sec"] == pytest.approx(8 * idle["steps_per_sec"])
  assert idle["eta_sec"] == pytest.approx(90 / idle["steps_per_sec"])
  assert idle["cpu_per_wall"] < 0.2
  end = time.perf_counter() + 0.3
  while time.perf_counter() < end:  # computing costs about a core
    pass
  busy = progress.update(30)
  assert busy["cpu_per_wall"] > 0.5 and busy["cpu_per_wall"] > idle["cpu_per_wall"]
