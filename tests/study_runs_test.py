"""How scripts/study_runs.py stops its subprocesses: SIGTERM at the deadline (a trainer saves),
SIGKILL after the grace period, and never a child left running when reproduce.py is killed."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import study_runs  # noqa: E402

# A stand-in for a trainer: it says it started, then waits; on SIGTERM it writes `saved` and
# exits with 143 as sleepnet.main does (or, with IGNORE set, ignores SIGTERM).
CHILD = textwrap.dedent(
  """
  import os, pathlib, signal, sys, time
  out = pathlib.Path(os.environ["CHILD_OUT"])
  def on_term(*_):
    (out / "saved").write_text("yes")
    sys.exit(143)
  signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE") else on_term)
  (out / "pid").write_text(str(os.getpid()))
  time.sleep(120)
  """
)


@pytest.fixture
def child(tmp_path):
  (tmp_path / "fake_trainer.py").write_text(CHILD)
  return {"PYTHONPATH": str(tmp_path), "CHILD_OUT": str(tmp_path)}


def _ctx(tmp_path, seconds):
  return study_runs.Context(
    runs_dir=tmp_path, slices_dir=tmp_path, deadline=time.monotonic() + seconds
  )


def _wait_for(path, timeout=60):
  end = time.time() + timeout
  while not path.exists():
    assert time.time() < end, f"{path} never appeared"
    time.sleep(0.05)


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  return True


def test_the_deadline_sends_sigterm_so_a_trainer_can_save(tmp_path, child):
  log = tmp_path / "train.log"
  code, seconds = study_runs._run_subprocess(["fake_trainer"], log, _ctx(tmp_path, 3), child)
  assert code is None  # stopped at the deadline: the run is interrupted, not failed
  assert (tmp_path / "saved").read_text() == "yes"
  assert seconds < 3 + study_runs.STOP_GRACE_S
  assert "stopped (SIGTERM) at the --deadline_s" in log.read_text()


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
  tmp_path, child, monkeypatch
):
  monkeypatch.setattr(study_runs, "STOP_GRACE_S", 1.0)
  log = tmp_path / "train.log"
  code, _ = study_runs._run_subprocess(
    ["fake_trainer"], log, _ctx(tmp_path, 3), {**child, "IGNORE": "1"}
  )
  assert code is None and not (tmp_path / "saved").exists()
  assert "killed (no exit 1 s after SIGTERM)" in log.read_text()
  assert not _alive(int((tmp_path / "pid").read_text()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_killed_reproduce(tmp_path, child):
  # A parent that starts a child as study_runs does and is then SIGKILLed (a job killed at a
  # scheduler's limit): the child, in a session of its own, must not outlive it.
  parent = textwrap.dedent(
    f"""
    import subprocess, sys, time
    sys.path.insert(0, {str(ROOT / "scripts")!r})
    import study_runs
    subprocess.Popen(study_runs._launch_argv(["fake_trainer"]), start_new_session=True)
    time.sleep(120)
    """
  )
  p = subprocess.Popen([sys.executable, "-c", parent], env={**os.environ, **child})
  _wait_for(tmp_path / "pid")
  pid = int((tmp_path / "pid").read_text())
  assert _alive(pid)
  p.send_signal(signal.SIGKILL)
  p.wait()
  end = time.time() + 10
  while _alive(pid) and time.time() < end:
    time.sleep(0.05)
  assert not _alive(pid), "the child outlived its killed parent"
