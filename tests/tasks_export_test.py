"""The export CLI, run as a separate process: JSON lines, fields, reproducibility, errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import sleepnet.tasks
from sleepnet.tasks import config_from_overrides, get_task

# Run the package the tests imported, from its own root (the repository in a normal checkout).
_ROOT = pathlib.Path(sleepnet.tasks.__file__).absolute().parent.parent.parent

FIELDS = {
  "rule110": {"initial": str, "steps": int},
  "depo": {"edges": list, "query": str, "hops": int},
  "gsm_symbolic": {"equations": list, "query": str, "ops": int},
  "gsm_realistic": {"equations": list, "query": str, "ops": int},
}


def _run(*args):
  env = dict(os.environ, PYTHONPATH=str(_ROOT))
  return subprocess.run(
    [sys.executable, "-m", "sleepnet.tasks.export", *args],
    cwd=_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=60,
  )


@pytest.mark.parametrize("name", list(FIELDS))
def test_export_lines_match_in_process_generation(name, tmp_path):
  out_file = tmp_path / "out.jsonl"
  overrides = {"filler": "fill"}
  proc = _run(
    name, "--num", "3", "--seed", "5", "--split", "test", "--start", "2",
    "--set", "filler=fill", "--tokens", "--out", str(out_file),
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr
  assert out_file.read_text() == proc.stdout
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r["index"] for r in lines] == [2, 3, 4]
  spec = get_task(name)
  cfg = config_from_overrides(name, overrides)
  for r in lines:
    assert r["id"] == f"{name}/test/5/{r['index']}"
    assert r["task"] == name and r["split"] == "test"
    assert isinstance(r["text"], str) and isinstance(r["answer"], str) and r["answer"]
    for field, kind in FIELDS[name].items():
      assert isinstance(r[field], kind), field
    ex = spec.generate(cfg, 5, r["index"], "test")  # this process, fresh seeding: same example
    np.testing.assert_array_equal(r["tokens"], ex.tokens)
    np.testing.assert_array_equal(r["loss_mask"], ex.loss_mask.astype(int))
    assert r["text"] == spec.text(ex) and r["difficulty"] == ex.difficulty
    assert {k: r[k] for k in ex.facts} == ex.facts


@pytest.mark.parametrize(
  ("args", "message"),
  [
    (["nosuchtask", "--num", "1"], "unknown task 'nosuchtask'; valid tasks: rule110"),
    (["depo", "--num", "1", "--set", "colour=red"], "unknown config key(s) ['colour']"),
    (["rule110", "--num", "1", "--set", "window=16", "--set", "seq_len=32"], "window too small"),
    (["depo", "--num", "1", "--set", "k_max=40"], "k_max=40 is larger than allowed"),
    (["gsm_symbolic", "--num", "-3"], "--num=-3 must be >= 0"),
    (["gsm_realistic", "--num", "1", "--set", "ops_max"], "expected KEY=VALUE"),
  ],
)
def test_export_errors_name_the_problem(args, message):
  proc = _run(*args)
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr
  assert proc.stdout == ""
