"""Multi-host training for real: two processes on this machine, joined by `jax.distributed`
(a localhost coordinator; CPU collectives through gloo), each reading its own half of every
batch, train like one process, and save and resume a checkpoint together. It is the path a
multi-host TPU pod or GPU cluster takes, with one CPU device per process."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import tiny_run

STEPS = 6
ARGS = [
  *tiny_run.flags(),
  f"--config.num_steps={STEPS}",
  "--config.checkpoint_every=3",
  "--config.log_every=1",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, processes, log_dir):
  """Runs the tiny training run as `processes` processes; returns their logs."""
  port = _free_port()
  procs, logs = [], []
  for i in range(processes):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if processes > 1:
      env.update(
        JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
        JAX_NUM_PROCESSES=str(processes),
        JAX_PROCESS_ID=str(i),
      )
    log = log_dir / f"{workdir.name}-{processes}-{i}.log"
    logs.append(log)
    with open(log, "a") as f:
      cmd = [sys.executable, "-m", "sleepnet.main", *ARGS, f"--workdir={workdir}"]
      procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env))
  try:
    for p, log in zip(procs, logs, strict=True):
      p.wait(timeout=600)
      assert p.returncode == 0, log.read_text()[-3000:]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return [log.read_text() for log in logs]


def _losses(workdir) -> dict[int, float]:
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("multihost")
  one, two = root / "one", root / "two"
  _launch(one, 1, root)
  first = _launch(two, 2, root)
  losses = _losses(two)
  # Back to the step-3 checkpoint, as after losing both hosts before step 6 was saved; the
  # relaunched pair restores it together and trains steps 4 to 6 again.
  shutil.rmtree(two / "checkpoints" / str(STEPS))
  again = _launch(two, 2, root)
  return dict(one=_losses(one), two=losses, resumed=_losses(two), first=first, again=again)


def test_two_processes_ran_as_one_job(runs):
  for i, log in enumerate(runs["first"]):
    assert f"process {i} of 2; 1 local / 2 global devices" in log


def test_two_processes_train_like_one(runs):
  assert sorted(runs["two"]) == list(range(1, STEPS + 1))
  for step, loss in runs["one"].items():
    assert runs["two"][step] == pytest.approx(loss, rel=1e-5), step


def test_two_processes_save_and_resume_together(runs):
  for log in runs["again"]:
    assert "resumed from step 3 " in log
  for step in range(4, STEPS + 1):
    assert runs["resumed"][step] == pytest.approx(runs["two"][step], rel=1e-6), step
