"""End to end, as a user runs it: `python -m sleepnet.main` in a subprocess, killed with SIGKILL
and relaunched, against an uninterrupted run; then the README's two commands."""

import json
import pathlib
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import tiny_run

from sleepnet import run_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = tiny_run.flags()


def start(module, *args, log):
  return subprocess.Popen(
    [sys.executable, "-m", module, *args],
    cwd=ROOT,
    env=tiny_run.subprocess_env(),
    stdout=log,
    stderr=subprocess.STDOUT,
    text=True,
  )


def run(module, *args, log, timeout=300):
  p = start(module, *args, log=log)
  assert p.wait(timeout=timeout) == 0, pathlib.Path(log.name).read_text()[-3000:]


def losses(workdir):
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["loss"] for r in records}


def saved_steps(workdir):
  directory = workdir / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_killed_run_resumes_exactly(tmp_path):
  reference, killed = tmp_path / "reference", tmp_path / "killed"
  with open(tmp_path / "reference.log", "w") as log:
    run("sleepnet.main", *TINY, f"--workdir={reference}", log=log)
  want = losses(reference)
  assert sorted(want) == list(range(1, 101))

  # Start the same run and SIGKILL it as soon as its first checkpoint is complete.
  with open(tmp_path / "killed.log", "w") as log:
    p = start("sleepnet.main", *TINY, f"--workdir={killed}", log=log)
    deadline = time.time() + 240
    while not ((killed / "checkpoints").exists() and saved_steps(killed)):
      assert p.poll() is None and time.time() < deadline, "the run ended before a checkpoint"
      time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
  assert p.returncode == -signal.SIGKILL
  resume_at = saved_steps(killed)[-1]
  before = losses(killed)
  assert 100 not in before, "the run finished before it was killed: the test proves nothing"

  with open(tmp_path / "resumed.log", "w") as log:
    run("sleepnet.main", *TINY, f"--workdir={killed}", log=log)
  text = (tmp_path / "resumed.log").read_text()
  assert f"resumed from step {resume_at} " in text
  got = losses(killed)
  assert sorted(got) == list(range(1, 101))  # one record per step, no duplicates
  # Same data position and the same state: every loss after the resume point is bit-identical.
  assert [got[s] for s in range(resume_at + 1, 101)] == [want[s] for s in range(resume_at + 1, 101)]
  assert [got[s] for s in range(1, resume_at + 1)] == [want[s] for s in range(1, resume_at + 1)]
  # The data position is checkpointed with the state: batch i is read by step i.
  for step in saved_steps(killed):
    data = json.loads((killed / "checkpoints" / str(step) / "data" / "metadata").read_text())
    assert data == {"next_index": step}


def test_sigterm_saves_the_step_reached_and_the_relaunch_resumes_there(trained, tmp_path):
  # Checkpoints only at the last step: without the SIGTERM save, every step would be lost.
  # Reports every 7 steps: the stop reports the steps since the last one as well.
  workdir = tmp_path / "run"
  args = [*TINY, "--config.checkpoint_every=100", "--config.log_every=7"]
  with open(tmp_path / "stopped.log", "w") as log:
    p = start("sleepnet.main", *args, f"--workdir={workdir}", log=log)
    deadline = time.time() + 240
    while not ((workdir / "metrics.jsonl").exists() and len(losses(workdir)) >= 2):
      assert p.poll() is None and time.time() < deadline, "the run ended before training"
      time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
  text = (tmp_path / "stopped.log").read_text()
  assert p.returncode == 128 + signal.SIGTERM, text[-3000:]
  (stopped_at,) = saved_steps(workdir)
  assert 14 <= stopped_at < 100, "the run finished before SIGTERM: the test proves nothing"
  assert f"preempted at step {stopped_at} of 100 (SIGTERM)" in text
  assert max(losses(workdir)) == stopped_at  # every step it trained is logged and saved

  with open(tmp_path / "resumed.log", "w") as log:
    run("sleepnet.main", *args, f"--workdir={workdir}", log=log)
  assert f"resumed from step {stopped_at} " in (tmp_path / "resumed.log").read_text()
  logged = sorted(losses(workdir))
  assert logged == sorted({*range(7, 101, 7), stopped_at, 100})
  assert saved_steps(workdir) == [stopped_at, 100]
  # The preempted-and-relaunched run ends where an uninterrupted one does (`trained` is the same
  # config trained straight through): the same parameters, bit for bit.
  got, want = (final_params(w) for w in (workdir, trained))
  assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def final_params(workdir):
  config = tiny_run.config()
  model_config, _ = run_config.resolve(config)
  _, _, params, step = run_config.restore_params(config, model_config, workdir)
  assert step == 100
  return jax.tree.leaves(jax.device_get(params))


def tensorboard_tags(directory):
  """Scalar tags in TensorBoard event files (TFRecord framing around Event protos)."""
  from tensorboardX.proto import event_pb2

  tags = set()
  for path in directory.glob("events.out.tfevents.*"):
    data, pos = path.read_bytes(), 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      tags |= {v.tag for v in event.summary.value}
      pos += 12 + length + 4
  return tags


def test_readme_commands(tmp_path):
  """The README's main command and its evaluation, exactly as written there."""
  workdir = tmp_path / "x"
  t0 = time.time()
  with open(tmp_path / "main.log", "w") as log:
    run(
      "sleepnet.main",
      "--config",
      "experiments/rule110.py:smoke",
      "--workdir",
      str(workdir),
      log=log,
    )
  t1 = time.time()
  with open(tmp_path / "eval.log", "w") as log:
    run("sleepnet.evaluate", "--workdir", str(workdir), "--sleep_passes", "1,4", log=log)
  t2 = time.time()
  print(f"main {t1 - t0:.1f}s, evaluate {t2 - t1:.1f}s")
  out = (tmp_path / "eval.log").read_text()
  assert "| difficulty | examples | N=1 exact | N=1 token acc | N=4 exact | N=4 token acc |" in out
  report = json.loads((workdir / "eval.json").read_text())
  assert report["step"] == 40 and report["train_sleep_passes"] == 4
  assert list(report["results"]) == ["1", "4"]
  assert sorted(report["results"]["4"]["by_difficulty"]) == ["1", "2"]
  main_log = (tmp_path / "main.log").read_text()
  assert "step 40/40 | loss" in main_log and "steps/s" in main_log and "ETA" in main_log
  assert {
    "loss",
    "accuracy",
    "exact_match",
    "learning_rate",
    "steps_per_sec",
    "tokens_per_sec",
  } <= (tensorboard_tags(workdir / "tensorboard"))
  assert saved_steps(workdir) == [20, 40]
