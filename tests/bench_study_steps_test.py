"""scripts/bench_study_steps.py: every selected variant is compiled, timed and reported."""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import bench_study_steps  # noqa: E402


def test_times_each_variant_and_writes_every_number(tmp_path, capsys):
  out = tmp_path / "steps.json"
  argv = ["--study", "rule110", "--scale", "ci", "--only", "hybrid,sleep4", "--steps", "2"]
  assert bench_study_steps.main([*argv, "--out", str(out)]) == 0
  report = json.loads(out.read_text())
  rows = report["rows"]
  assert [(r["study"], r["variant"], r["sleep_passes"]) for r in rows] == [
    ("rule110", "hybrid", 1),
    ("rule110", "sleep4", 4),
  ]
  for r in rows:
    assert r["s_per_step"] > 0 and r["s_per_step_min"] <= r["s_per_step"]
    assert r["projected_train_s"] == pytest.approx(r["s_per_step"] * r["num_steps"], abs=0.1)
    assert r["timed_steps"] == 2 and r["tokens"] > 0 and r["data_s_per_batch"] > 0
    assert r["loss"] == r["loss"]  # finite, not NaN
  assert report["device"]["jax"] and report["scale"] == "ci"
  table = capsys.readouterr().out
  assert "| rule110 | sleep4 | 0 | 4 |" in table
  page = out.with_suffix(".md").read_text()
  assert "| rule110 | sleep4 | 0 | 4 |" in page and f"jax {report['device']['jax']}" in page
  assert report["git"]["commit"][:12] in page


def test_processes_time_each_variant_together_one_seed_each(tmp_path):
  out = tmp_path / "steps.json"
  argv = ["--study", "rule110", "--scale", "ci", "--only", "hybrid", "--steps", "1"]
  assert bench_study_steps.main([*argv, "--processes", "2", "--out", str(out)]) == 0
  report = json.loads(out.read_text())
  assert report["processes"] == 2
  assert sorted((r["variant"], r["seed"]) for r in report["rows"]) == [
    ("hybrid", 0),
    ("hybrid", 1),
  ]
  assert all(r["processes"] == 2 and r["s_per_step"] > 0 for r in report["rows"])
  assert "2 processes side by side (seeds 0..1)" in out.with_suffix(".md").read_text()


def test_names_a_variant_no_study_has():
  with pytest.raises(SystemExit):
    bench_study_steps.main(["--study", "depo", "--scale", "ci", "--only", "sleep4_tokens"])


def test_a_curriculum_stage_counts_in_the_projected_steps(tmp_path):
  # depo's ci scale trains 2 of its 4 steps on one-hop questions first: the same model at the
  # same N on sequences as long, so the projection covers all 4 steps.
  out = tmp_path / "steps.json"
  argv = ["--study", "depo", "--scale", "ci", "--only", "hybrid", "--steps", "1"]
  assert bench_study_steps.main([*argv, "--out", str(out)]) == 0
  (row,) = json.loads(out.read_text())["rows"]
  assert (row["stage"], row["num_steps"]) == ("main", 4)
  assert row["projected_train_s"] == pytest.approx(row["s_per_step"] * 4, abs=0.1)
