"""Held-out evaluation during training (`config.eval_every`): the fixed evaluation split at
every N, by difficulty, in metrics.jsonl and TensorBoard, equal to a separate evaluation."""

import json

import pytest
import tiny_run
from absl import flags
from train_e2e_test import tensorboard_tags

from sleepnet import evaluation, run_config, train


def records(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_heldout_curves_are_written_at_every_eval_step_and_match_a_final_evaluation(tmp_path):
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  config = tiny_run.config(num_steps=20, log_every=5, eval_every=10, checkpoint_every=20)
  config.eval.sleep_passes = (1, 2)
  train.train_and_evaluate(config, str(tmp_path))
  rows = {r["step"]: r for r in records(tmp_path)}
  assert sorted(rows) == [5, 10, 15, 20]
  for step in (5, 15):
    assert not any(k.startswith("heldout/") for k in rows[step])
  # The same parameters evaluated separately (step 20 is the final checkpoint).
  report = evaluation.evaluate(tmp_path, sleep_passes=(1, 2), config=config, log_table=False)
  for n in ("1", "2"):
    want = report["results"][n]
    assert rows[20][f"heldout/exact_match/N{n}"] == want["exact_match"]
    assert rows[20][f"heldout/token_accuracy/N{n}"] == want["token_accuracy"]
    for d, by_d in want["by_difficulty"].items():
      assert rows[20][f"heldout/exact_match/N{n}/d{d}"] == by_d["exact_match"]
  assert "heldout/exact_match/N1" in rows[10]
  assert {"heldout/exact_match/N2", "heldout/token_accuracy/N1/d1"} <= tensorboard_tags(
    tmp_path / "tensorboard"
  )


@pytest.mark.parametrize(
  ("changes", "message"),
  [
    (dict(eval_every=7, log_every=5), "eval_every=7 must be a multiple of config.log_every=5"),
    (dict(eval_every=-1), "eval_every=-1 must be 0"),
    (dict(eval_every=10, **{"eval.num_test": 0}), "the test split evaluated every"),
  ],
)
def test_bad_heldout_settings_are_named(changes, message):
  with pytest.raises(run_config.ConfigError, match=message):
    run_config.check_eval(tiny_run.config(**changes))
