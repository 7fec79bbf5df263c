"""Evaluation: exact match and token accuracy against hand-built oracles, the breakdown by
difficulty and by N in eval.json, the fixed versioned evaluation set, and the CLI."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_run
from flax import nnx

from sleepnet import checkpoint, evaluation, run_config, scoring, sharding
from sleepnet.tasks import config_from_overrides, datasets, get_task

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tiny_config():
  return tiny_run.config()


def one_hot_logits(predictions, vocab=5):
  """Logits whose argmax is `predictions` [B, T]."""
  return jax.nn.one_hot(jnp.asarray(predictions), vocab) * 10.0


def test_answer_stats_on_a_hand_built_batch():
  targets = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]])
  predictions = np.array(
    [
      [0, 2, 3, 0],  # both answer tokens right (positions 1, 2) -> exact
      [1, 2, 0, 4],  # one of two answer tokens wrong -> not exact
      [1, 1, 1, 1],  # answer token (position 3) wrong
      [0, 0, 0, 0],  # no answer tokens: never exact
    ]
  )
  mask = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
  stats = jax.device_get(scoring.answer_stats(one_hot_logits(predictions), targets, mask))
  np.testing.assert_array_equal(stats["correct"], [2, 1, 0, 0])
  np.testing.assert_array_equal(stats["count"], [2, 2, 1, 0])
  np.testing.assert_array_equal(stats["exact"], [1, 0, 0, 0])
  # Cross-entropy only over answer tokens: a confident right answer costs almost nothing.
  assert stats["ce"][0] < 1e-3 and stats["ce"][1] > 9 and stats["ce"][3] == 0


def test_summarize_breaks_down_by_difficulty():
  stats = {
    "correct": np.array([2, 1, 3, 0]),
    "count": np.array([2, 2, 3, 4]),
    "exact": np.array([1.0, 0.0, 1.0, 0.0]),
  }
  out = scoring.summarize(stats, np.array([1, 1, 2, 3]))
  assert out["exact_match"] == 0.5 and out["token_accuracy"] == 6 / 11
  assert out["num_examples"] == 4
  assert out["by_difficulty"] == {
    "1": {"exact_match": 0.5, "token_accuracy": 0.75, "num_examples": 2},
    "2": {"exact_match": 1.0, "token_accuracy": 1.0, "num_examples": 1},
    "3": {"exact_match": 0.0, "token_accuracy": 0.0, "num_examples": 1},
  }


def test_eval_json_has_the_breakdown_by_difficulty_and_n(trained):
  report = evaluation.evaluate(trained, sleep_passes=(1, 2), split="test")
  assert json.loads((trained / "eval.json").read_text()) == report
  assert report["step"] == 100 and report["split"] == "test" and report["task"] == "rule110"
  assert report["sleep_passes"] == [1, 2] and list(report["results"]) == ["1", "2"]
  assert report["device"]["platform"] == "cpu" and report["wall_time_s"] > 0
  assert report["device"]["host_cores"] == os.cpu_count() and report["device"]["host_cpu"]
  config = checkpoint.load_config(trained)
  assert report["config_sha256"] == evaluation.config_digest(config)
  config.num_steps += 1
  assert evaluation.config_digest(config) != report["config_sha256"]
  for n in ("1", "2"):
    r = report["results"][n]
    assert r["num_examples"] == 16
    assert sorted(r["by_difficulty"]) == ["1", "2"]  # t in 1..2 in the smoke task
    assert sum(d["num_examples"] for d in r["by_difficulty"].values()) == 16
    for d in [r, *r["by_difficulty"].values()]:
      assert 0.0 <= d["exact_match"] <= 1.0 and 0.0 <= d["token_accuracy"] <= 1.0
  table = scoring.markdown_table(report)
  assert table.splitlines()[0] == (
    "| difficulty | examples | N=1 exact | N=1 token acc | N=2 exact | N=2 token acc |"
  )
  assert table.splitlines()[-1].startswith("| all | 16 |")


def test_eval_set_is_fixed_and_versioned(trained):
  first = evaluation.evaluate(trained, sleep_passes=(1,), split="train")
  data_dir = pathlib.Path(first["eval_set"]["dir"])
  # <data_dir>/rule110_dataset/seed<S>-train<n>-test<n>-<digest of the task config>/<version>
  assert data_dir.parent.parent == trained / "data" / "rule110_dataset"
  assert data_dir.parent.name.startswith("seed1234-train8-test16-") and data_dir.name == "1.0.0"
  stamp = {p: p.stat().st_mtime_ns for p in data_dir.iterdir()}
  again = evaluation.evaluate(trained, sleep_passes=(1,), split="train")
  assert again["results"] == first["results"]  # same examples, same numbers
  assert again["eval_set"] == first["eval_set"]
  assert {p: p.stat().st_mtime_ns for p in data_dir.iterdir()} == stamp  # not rebuilt
  # Record i is example i of the task generator.
  builder = scoring.eval_dataset(tiny_config(), trained)
  record = datasets.data_source(builder, "train")[3]
  cfg = config_from_overrides("rule110", tiny_config().task.to_dict())
  np.testing.assert_array_equal(
    record["tokens"], get_task("rule110").generate(cfg, 1234, 3, "train").tokens
  )


def test_evaluate_matches_an_independent_oracle(trained):
  """Batching, padding (16 examples in batches of 6) and pooling agree with a plain loop."""
  config = tiny_config()
  config.eval.batch_size = 6
  report = evaluation.evaluate(trained, sleep_passes=(2,), split="test", config=config)
  model_config, _ = run_config.resolve(config)
  mesh = sharding.make_mesh(config.mesh)
  graphdef, abstract = run_config.abstract_params(model_config, mesh, (), 0)
  params, _ = checkpoint.load_params(trained, abstract)
  forward = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t, sleep_passes=2))
  source = datasets.data_source(scoring.eval_dataset(config, trained), "test")
  tokens = np.stack([source[i]["tokens"] for i in range(len(source))])
  mask = np.stack([source[i]["loss_mask"] for i in range(len(source))])
  predictions = np.asarray(jnp.argmax(forward(params, tokens[:, :-1]), -1))
  exact, right, total = [], 0, 0
  for i in range(len(source)):
    answer = mask[i, 1:]
    ok = predictions[i][answer] == tokens[i, 1:][answer]
    exact.append(bool(ok.all()))
    right, total = right + int(ok.sum()), total + int(answer.sum())
  got = report["results"]["2"]
  assert got["exact_match"] == pytest.approx(np.mean(exact), abs=1e-9)
  assert got["token_accuracy"] == pytest.approx(right / total, abs=1e-9)


def test_cli_errors_name_the_problem(tmp_path):
  r = subprocess.run(
    [sys.executable, "-m", "sleepnet.evaluate", "--workdir", str(tmp_path / "nowhere")],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert r.returncode != 0
  assert f"error: {tmp_path}/nowhere/config.json does not exist" in r.stderr
