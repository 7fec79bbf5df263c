"""The shell scripts under scripts/: they parse, and the probe that derives its commands from the
study table still runs end to end (the other probes spell their settings out and cost minutes)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHELL_SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def test_there_are_shell_scripts():
  assert len(SHELL_SCRIPTS) >= 5, SHELL_SCRIPTS


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_parses(script):
  result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr


def run_probe_steps(out_dir, **env):
  """`bash scripts/probe_steps.sh 3 OUT_DIR` with `env` added: 3 steps, seed 0, this Python."""
  env = dict(os.environ, SEEDS="0", PYTHON=sys.executable, **env)
  env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
  return subprocess.run(
    ["bash", str(ROOT / "scripts/probe_steps.sh"), "3", str(out_dir)],
    capture_output=True,
    text=True,
    env=env,
    timeout=600,
  )


def test_probe_steps_runs_the_cpu_scale_commands_with_its_step_count(tmp_path):
  result = run_probe_steps(tmp_path, VARIANTS="sleep4", WARMUP="1")
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  out = result.stdout
  assert "== rule110 sleep4-seed0, 3 steps" in out
  # The evaluation table: t = 1..6 and "all", at N = 1 and at the variant's own N = 4.
  assert "| difficulty | examples | N=1 exact | N=1 token acc | N=4 exact | N=4 token acc |" in out
  rows = re.findall(r"^\| (\d+|all) \| (\d+) \|", out, flags=re.M)
  assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6", "all"]
  assert rows[-1][1] == "1536"  # the cpu scale's evaluation set
  # The run trained with the cpu scale's command, only its step count (and warmup) replaced.
  log = (tmp_path / "sleep4-seed0.log").read_text()
  assert "step 3/3" in log
  config = (tmp_path / "rule110/cpu/sleep4/seed0/config.json").read_text()
  assert '"num_steps": 3' in config


def test_probe_steps_refuses_a_multi_stage_scale_by_name(tmp_path):
  # gsm_realistic's cpu scale starts with a curriculum stage: the probe says so before training.
  result = run_probe_steps(tmp_path, STUDY="gsm_realistic", VARIANTS="hybrid")
  assert result.returncode != 0
  assert "hybrid: a 2-stage run; this probe trains single-stage variants" in (
    result.stdout + result.stderr
  )
  assert not (tmp_path / "gsm_realistic").exists()
