"""Grain pipelines over generator sources and TFDS array_record datasets of the tasks."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepnet.tasks import config_from_overrides, datasets, get_task, pipeline


def _expected(task, cfg, seed, index, split):
  return pipeline.to_record(get_task(task).generate(cfg, seed, index, split))


def test_task_source_is_the_generator():
  cfg = config_from_overrides("depo", {"num_queries": "2"})
  src = pipeline.TaskSource("depo", cfg, seed=3, split="test", size=10)
  assert len(src) == 10
  for i in (0, 9):
    got, want = src[i], _expected("depo", cfg, 3, i, "test")
    assert got.keys() == want.keys()
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
  with pytest.raises(IndexError):
    src[10]
  assert "seed=3" in repr(src) and "split='test'" in repr(src)
  with pytest.raises(TypeError, match="needs a DepoConfig"):
    pipeline.TaskSource("depo", config_from_overrides("rule110", {}))


def test_make_dataset_batches_shuffles_and_shards():
  src = pipeline.TaskSource("rule110", size=20)
  cfg = src.config
  ordered = pipeline.make_dataset(src, batch_size=4)
  assert len(ordered) == 5
  batch = ordered[1]
  assert batch["tokens"].shape == (4, cfg.seq_len) and batch["tokens"].dtype == np.int32
  assert batch["loss_mask"].dtype == bool and batch["roles"].dtype == np.int8
  assert batch["difficulty"].shape == (4,)
  np.testing.assert_array_equal(
    batch["tokens"][0], _expected("rule110", cfg, 0, 4, "train")["tokens"]
  )

  def all_tokens(ds):
    return np.concatenate([b["tokens"] for b in ds])

  shuffled = pipeline.make_dataset(src, batch_size=4, shuffle_seed=1)
  again = pipeline.make_dataset(src, batch_size=4, shuffle_seed=1)
  np.testing.assert_array_equal(all_tokens(shuffled), all_tokens(again))
  assert not np.array_equal(all_tokens(shuffled), all_tokens(ordered))
  # A shuffle is a permutation of the same records.
  assert sorted(map(bytes, all_tokens(shuffled))) == sorted(map(bytes, all_tokens(ordered)))

  shards = [pipeline.make_dataset(src, batch_size=2, shard_index=i, shard_count=2) for i in (0, 1)]
  a, b = (set(map(bytes, all_tokens(s))) for s in shards)
  assert len(a) == len(b) == 10 and not a & b

  two_epochs = pipeline.make_dataset(src, batch_size=4, shuffle_seed=0, num_epochs=2)
  assert len(two_epochs) == 10
  with pytest.raises(ValueError, match="shard_index=2"):
    pipeline.make_dataset(src, batch_size=2, shard_index=2, shard_count=2)


def test_endless_stream_iterator_resumes_from_its_state():
  src = pipeline.TaskSource("gsm_symbolic")  # 2**31 - 1 records, generated on access
  ds = pipeline.make_dataset(src, batch_size=3, shuffle_seed=7, num_epochs=None)
  it = iter(ds.to_iter_dataset())
  next(it)
  state = it.get_state()
  expected = [next(it)["tokens"] for _ in range(2)]
  resumed = iter(ds.to_iter_dataset())
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["tokens"], want)


def test_tfds_array_record_round_trip(tmp_path):
  tfds.display_progress_bar(False)
  overrides = {"width": "8", "t_max": "4"}
  builder = datasets.prepare(
    "rule110", overrides, seed=2, num_train=10, num_test=4, data_dir=str(tmp_path)
  )
  cfg = config_from_overrides("rule110", overrides)
  spec = get_task("rule110")
  for split, n in (("train", 10), ("test", 4)):
    source = datasets.data_source(builder, split)
    assert len(source) == n
    for i in range(n):
      rec = source[i]
      ex = spec.generate(cfg, 2, i, split)
      assert rec["index"] == i and rec["difficulty"] == ex.difficulty
      np.testing.assert_array_equal(rec["tokens"], ex.tokens)
      np.testing.assert_array_equal(rec["loss_mask"], ex.loss_mask)
      np.testing.assert_array_equal(rec["roles"], ex.roles)
      assert rec["text"].decode() == spec.text(ex)
      assert json.loads(rec["facts"]) == ex.facts
  batches = list(pipeline.make_dataset(datasets.data_source(builder, "test"), batch_size=2))
  np.testing.assert_array_equal(batches[1]["tokens"][1], spec.generate(cfg, 2, 3, "test").tokens)
  # Preparing the same settings again reuses the files.
  again = datasets.prepare(
    "rule110", overrides, seed=2, num_train=10, num_test=4, data_dir=str(tmp_path)
  )
  assert again.data_dir == builder.data_dir


def test_builder_config_names_and_errors():
  a = datasets.builder_config("depo", {"k_max": 16}, num_train=5, num_test=5)
  b = datasets.builder_config("depo", {"k_max": "16"}, num_train=5, num_test=5)
  c = datasets.builder_config("depo", {"k_max": "12"}, num_train=5, num_test=5)
  assert a.name == b.name != c.name
  assert datasets.builder_config("depo").name == "seed0-train10000-test1000"
  with pytest.raises(ValueError, match="unknown config key"):
    datasets.builder_config("depo", {"kmax": "3"})
  with pytest.raises(ValueError, match="num_test=-1"):
    datasets.builder_config("depo", num_test=-1)
  assert set(datasets.BUILDERS) == {"rule110", "depo", "gsm_symbolic", "gsm_realistic"}


def test_every_builder_has_named_variants(tmp_path):
  for task, builder_cls in datasets.BUILDERS.items():
    names = [c.name for c in builder_cls.BUILDER_CONFIGS]
    assert len(names) >= 2 and len(set(names)) == len(names), task
    for name, overrides in datasets.VARIANTS[task].items():
      builder = builder_cls(config=name, data_dir=str(tmp_path))
      config = builder.task_config
      for key, value in overrides.items():
        assert str(getattr(config, key)) == value, (task, name, key)
  steps = datasets.Rule110Dataset(config="steps_before_eviction", data_dir=str(tmp_path))
  assert steps.task_config.show_steps_before_eviction


def test_concurrent_prepares_wait_for_one_builder(tmp_path):
  """Evaluations running side by side share data_dir: a prepare waits while another process
  holds the build lock, and several at once all end with the same readable dataset."""
  import fcntl
  import threading

  tfds.display_progress_bar(False)
  kwargs = dict(seed=3, num_train=6, num_test=3, data_dir=str(tmp_path))
  overrides = {"width": "8", "t_max": "3"}
  results, errors = [], []

  def prepare():
    try:
      results.append(datasets.prepare("rule110", overrides, **kwargs).data_dir)
    except Exception as e:  # reported by the assertion below
      errors.append(e)

  with open(tmp_path / ".prepare-rule110.lock", "w") as held:
    fcntl.flock(held, fcntl.LOCK_EX)  # as if another evaluation were building
    waiting = threading.Thread(target=prepare)
    waiting.start()
    waiting.join(timeout=1.0)
    assert waiting.is_alive() and not results  # blocked on the lock
    fcntl.flock(held, fcntl.LOCK_UN)
  waiting.join(timeout=120)
  threads = [threading.Thread(target=prepare) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=120)
  assert not errors and len(results) == 4 and len(set(results)) == 1
  source = datasets.data_source(datasets.prepare("rule110", overrides, **kwargs), "test")
  cfg = config_from_overrides("rule110", overrides)
  np.testing.assert_array_equal(
    source[2]["tokens"], get_task("rule110").generate(cfg, 3, 2, "test").tokens
  )
