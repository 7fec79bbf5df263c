"""Every bad input stops with a message that names it: config keys and values, tasks, windows,
workdirs, checkpoints, init_from; and a non-finite loss stops training before it is saved."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
import tiny_run

from sleepnet import checkpoint, evaluation, run_config, sharding, train
from sleepnet.tasks import get_task

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tiny_config(**changes):
  return tiny_run.config(**changes)


def run_main(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
    [sys.executable, "-m", "sleepnet.main", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )


def test_misspelled_config_key_is_named_by_the_flag_parser(tmp_path):
  r = run_main(
    "--config", "experiments/rule110.py:smoke", "--workdir", str(tmp_path),
    "--config.model.sleep_pases=4",
  )  # fmt: skip
  assert r.returncode != 0
  assert "sleep_pases" in r.stderr and 'Did you mean "sleep_passes"' in r.stderr
  assert "override names a key the config does not have: 'sleep_pases'" in r.stderr
  assert "Traceback" not in r.stderr  # a typo, not a crash
  assert not (tmp_path / "config.json").exists()
  # A key with no near miss, and one under a missing sub-config, are named the same way.
  for override, key in (("--config.bogus=1", "bogus"), ("--config.model.nope.x=1", "nope")):
    r = run_main(
      "--config", "experiments/rule110.py:smoke", "--workdir", str(tmp_path), override
    )  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"override names a key the config does not have: '{key}'" in r.stderr


def test_bad_value_in_the_config_argument_lists_the_valid_ones(tmp_path):
  r = run_main("--config", "experiments/rule110.py:model=foo", "--workdir", str(tmp_path))
  assert r.returncode != 0
  assert "unknown model kind 'foo'" in r.stderr
  assert "valid model kinds: transformer, transformer_full, hybrid, sleep, deep" in r.stderr


def test_unknown_task(tmp_path):
  with pytest.raises(
    run_config.ConfigError, match=r"task_name: unknown task 'nope'; valid tasks: rule110"
  ):
    train.train_and_evaluate(tiny_config(task_name="nope"), str(tmp_path))


def test_model_window_must_match_the_task_window(tmp_path):
  with pytest.raises(
    run_config.ConfigError, match=r"model.window=16 does not match config.task.window=9"
  ):
    # The experiments tie model.window to task.window; a config built otherwise can differ.
    config = tiny_config()
    config.model = ml_collections.ConfigDict(config.model.to_dict())
    config.model.window = 16
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()  # refused before touching the workdir


def test_train_sleep_passes_must_be_positive_ints(tmp_path):
  for bad in ((0, 2), (1, "2"), (True,)):
    with pytest.raises(run_config.ConfigError, match=r"config.train_sleep_passes=.* positive ints"):
      train.train_and_evaluate(tiny_config(train_sleep_passes=bad), str(tmp_path))


def test_train_passes_are_drawn_per_step_from_seed_and_step():
  config = tiny_config(train_sleep_passes=(1, 2, 4))
  draws = [train.train_passes(config, step) for step in range(1, 301)]
  assert draws == [train.train_passes(config, step) for step in range(1, 301)]  # resumable
  assert {1: 100, 2: 100, 4: 100}.keys() == set(draws)
  assert all(60 < draws.count(n) < 140 for n in (1, 2, 4))  # uniform: 100 +- 4 sd
  other = [
    train.train_passes(tiny_config(seed=1, train_sleep_passes=(1, 2, 4)), s) for s in range(1, 301)
  ]
  assert other != draws
  assert train.train_passes(tiny_config(), 7) is None  # (): the model's own N


def test_a_mixture_run_trains_each_step_at_its_drawn_n(tmp_path):
  config = tiny_config(
    train_sleep_passes=(1, 2), num_steps=8, checkpoint_every=8, **{"optimizer.warmup_steps": 1}
  )
  train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  logged = {r["step"]: r["sleep_passes"] for r in records}
  assert logged == {s: train.train_passes(config, s) for s in range(1, 9)}
  assert set(logged.values()) == {1, 2}


def test_window_larger_than_the_sequence(tmp_path):
  config = tiny_config(**{"model.window": 32, "task.window": 32})
  with pytest.raises(run_config.ConfigError, match=r"seq_len=18 must be a multiple of window=32"):
    train.train_and_evaluate(config, str(tmp_path))


def test_bad_model_field_and_batch_split(tmp_path):
  with pytest.raises(run_config.ConfigError, match=r"config.model: .*sleep_input must be one of"):
    run_config.resolve(tiny_config(**{"model.sleep_input": "dreams"}))
  axes = r"mesh .* must name the axes \('data', 'fsdp', 'model'\) once each"
  with pytest.raises(ValueError, match=axes):
    sharding.make_mesh((("batch", -1), ("model", 1)))
  with pytest.raises(ValueError, match=axes):
    sharding.make_mesh((("data", -1), ("model", 1), ("data", 1)))
  mesh = sharding.make_mesh((("data", -1), ("model", 1)))
  assert sharding.check_batch_size(8, mesh) == 8


def test_workdir_with_a_different_config_is_refused(trained, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)  # the relaunch below rewrites config.json
  before = (workdir / "config.json").read_text()
  other = tiny_config(**{"optimizer.lr": 0.1, "model.sleep_passes": 2})
  with pytest.raises(checkpoint.CheckpointError) as e:
    train.train_and_evaluate(other, str(workdir))
  message = str(e.value)
  assert str(workdir) in message and "different config" in message
  assert "model.sleep_passes: 1 -> 2" in message and "optimizer.lr: 0.003 -> 0.1" in message
  assert (workdir / "config.json").read_text() == before  # not overwritten
  # Keys that do not change the trajectory may change on relaunch (here: nothing to train).
  changed = {"log_every": 7, "data_threads": 1, "data_prefetch": 3}
  out = train.train_and_evaluate(tiny_config(**changed), str(workdir))
  assert out["step"] == 100


def test_deleting_config_json_does_not_let_another_config_take_a_run_over(trained, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  (workdir / "config.json").unlink()
  other = tiny_config(**{"optimizer.lr": 0.1})
  # The latest checkpoint's own copy of the config is compared instead, and named.
  with pytest.raises(checkpoint.CheckpointError) as e:
    checkpoint.claim_workdir(workdir, other)
  assert f"({workdir / 'checkpoints' / '100'})" in str(e.value)
  assert "optimizer.lr: 0.003 -> 0.1" in str(e.value)
  assert not (workdir / "config.json").exists()
  # The run's own config still resumes (nothing left to train) and restores config.json.
  assert train.train_and_evaluate(tiny_config(), str(workdir))["step"] == 100
  assert checkpoint.load_config(workdir).optimizer.lr == 0.003


def test_a_run_saved_before_a_config_key_existed_still_resumes_and_evaluates(trained, tmp_path):
  old = tmp_path / "old_run"
  shutil.copytree(trained, old)
  data = json.loads((old / "config.json").read_text())
  for key in checkpoint.ADDED_KEYS:
    del data[key]  # as a run saved before the key was added
  (old / "config.json").write_text(json.dumps(data))
  assert checkpoint.load_config(old).train_sleep_passes == []
  report = evaluation.evaluate(old, sleep_passes=(1,))
  assert report["train_sleep_passes_mixture"] == []
  out = train.train_and_evaluate(tiny_config(), str(old))  # not refused as another run
  assert out["step"] == 100
  # The upgrade adds what is missing and never changes a saved value.
  assert checkpoint.upgrade_config({"train_sleep_passes": [1, 2]})["train_sleep_passes"] == [1, 2]


def test_a_workdir_without_checkpoints_takes_a_new_config(tmp_path):
  checkpoint.claim_workdir(tmp_path, tiny_config())  # a run stopped before its first save
  checkpoint.claim_workdir(tmp_path, tiny_config(**{"optimizer.lr": 0.1}))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["optimizer"]["lr"] == 0.1


def test_an_interrupted_save_is_ignored_and_cleaned_up(trained, tmp_path):
  """orbax writes <step>.orbax-checkpoint-tmp and renames it when complete: a run killed while
  saving leaves only that tmp dir, which the relaunch ignores (resuming from the last complete
  step) and deletes."""
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  partial = workdir / "checkpoints" / "110.orbax-checkpoint-tmp"
  shutil.copytree(workdir / "checkpoints" / "100", partial)
  for f in (partial / "params").rglob("*"):
    if f.is_file():
      f.write_bytes(b"half")
  assert checkpoint.saved_steps(workdir) == [80, 90, 100]
  out = train.train_and_evaluate(tiny_config(), str(workdir))
  assert out["step"] == 100 and not partial.exists()


def test_corrupt_checkpoint_names_its_path(trained, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  latest = workdir / "checkpoints" / "100"
  # Truncate every array file of the parameters and overwrite the metadata with garbage.
  for f in (latest / "params").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\x00garbage" if f.name.startswith("_") else f.read_bytes()[:7])
  with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {latest} cannot be read"):
    train.train_and_evaluate(tiny_config(), str(workdir))
  with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {latest} cannot be read"):
    evaluation.evaluate(workdir)


def test_missing_checkpoint_and_missing_workdir(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match=f"{tmp_path}/config.json does not exist"):
    evaluation.evaluate(tmp_path)
  checkpoint.claim_workdir(tmp_path, tiny_config())  # a run that never saved
  with pytest.raises(checkpoint.CheckpointError, match=f"no checkpoint in {tmp_path}/checkpoints"):
    evaluation.evaluate(tmp_path)
  (tmp_path / "config.json").write_text("{ not json")
  with pytest.raises(checkpoint.CheckpointError, match=r"config\.json is unreadable"):
    evaluation.evaluate(tmp_path)


def test_init_from_without_checkpoints(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  config = tiny_config(init_from=str(empty))
  with pytest.raises(checkpoint.CheckpointError, match=f"no checkpoint in {empty}/checkpoints"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_init_from_starts_from_the_other_runs_parameters(trained, tmp_path):
  """Stage 2 of two-stage training: parameters from `init_from`, fresh optimizer, step 0."""
  config = tiny_config(init_from=str(trained), stage=2)
  train.train_and_evaluate(config, str(tmp_path))
  # The first step's loss is the loss of the trained parameters on the first batch.
  mesh = sharding.make_mesh(config.mesh)
  model_config, task = run_config.resolve(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  state["params"], step = checkpoint.load_params(trained, jax.tree.map(_abstract, state["params"]))
  assert step == 100
  batch = next(train.train_iterator(config, task, mesh))
  step_fn = train.make_train_step(config, graphdef, tx, mesh, shardings)
  _, m = step_fn(state, sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh))
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert records[0]["step"] == 1 and records[0]["loss"] == float(m["loss"])
  first_scratch = json.loads((trained / "metrics.jsonl").read_text().splitlines()[0])
  assert records[0]["loss"] < first_scratch["loss"]


def _abstract(x):
  return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)


class Poisoned:
  """A training iterator whose batches from the `at`-th on hold an out-of-vocabulary token, which
  embeds as NaN (jnp.take fills out-of-range rows), so the loss of step `at` is not finite."""

  def __init__(self, iterator, at):
    self.iterator, self.at, self.calls = iterator, at, 0

  def __next__(self):
    batch = dict(next(self.iterator))
    self.calls += 1
    if self.calls >= self.at:
      batch["tokens"] = batch["tokens"].copy()
      batch["tokens"][:, 0] = 1_000_000
    return batch

  def get_state(self):
    return self.iterator.get_state()

  def set_state(self, state):
    self.iterator.set_state(state)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  real = train.train_iterator
  monkeypatch.setattr(train, "train_iterator", lambda *a: Poisoned(real(*a), at=3))
  with pytest.raises(train.NonFiniteLossError) as e:
    train.train_and_evaluate(tiny_config(checkpoint_every=1), str(tmp_path))
  message = str(e.value)
  assert message.startswith("non-finite loss at step 3 (loss=nan")
  assert f"last good checkpoint: {tmp_path}/checkpoints/2" in message
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [1, 2]
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [1, 2] and all(np.isfinite(r["loss"]) for r in records)


def test_bad_task_field(tmp_path):
  with pytest.raises(run_config.ConfigError, match=r"config.task: rule110: t_max=99"):
    run_config.resolve(tiny_config(**{"task.t_max": 99}))
  assert get_task("rule110").tokenizer.vocab_size == tiny_config().model.vocab_size


@pytest.mark.parametrize(
  "key, value, message",
  [
    ("eval.split", "dev", r"config.eval.split='dev' is not one of \['train', 'test'\]"),
    ("eval.sleep_passes", (1, 0), r"config.eval.sleep_passes=\(1, 0\) must be one or more"),
    ("eval.sleep_passes", (), r"config.eval.sleep_passes=\(\) must be one or more"),
    ("eval.batch_size", 0, r"config.eval.batch_size=0 must be >= 1"),
    ("eval.num_train", -1, r"config.eval.num_train=-1 must be >= 0"),
    ("eval.num_test", 0, r"config.eval.num_test=0: the test split evaluated when training ends"),
  ],
)
def test_bad_eval_settings_stop_before_training(tmp_path, key, value, message):
  with pytest.raises(run_config.ConfigError, match=message):
    train.train_and_evaluate(tiny_config(**{key: value, "eval.at_end": True}), str(tmp_path))
  assert not (tmp_path / "config.json").exists()  # refused before the workdir was claimed


def test_an_empty_test_split_is_fine_when_training_does_not_evaluate(tmp_path):
  run_config.check_eval(tiny_config(**{"eval.num_test": 0, "eval.at_end": False}))
