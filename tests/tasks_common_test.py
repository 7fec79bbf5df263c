"""Properties of every task: determinism, lossless text, layout, loss mask, disjoint splits."""

import dataclasses
import hashlib
import json
import pathlib

import numpy as np
import pytest

from sleepnet.tasks import TASKS, Role, config_from_overrides, datasets, get_task, role_windows

ROOT = pathlib.Path(__file__).resolve().parent.parent

NAMES = list(TASKS)

# (window, seq_len) layouts per task that must validate, from tight to roomy.
LAYOUTS = {
  "rule110": [(17, 34), (32, 64), (24, 96), (64, 128)],
  "depo": [(64, 256), (32, 256), (48, 240), (160, 320)],
  "gsm_symbolic": [(64, 256), (32, 256), (50, 250), (160, 320)],
  "gsm_realistic": [(128, 512), (64, 512), (100, 500), (320, 640)],
}
# Layouts whose windows are too small for the default task.
TOO_SMALL = {
  "rule110": (16, 32),
  "depo": (128, 256),
  "gsm_symbolic": (128, 256),
  "gsm_realistic": (256, 512),
}

# A digest of examples 0..2 of seed 0, both splits, per task (default config), pinned so that a
# change of the generators, of numpy's streams or of the platform shows up. Update deliberately.
GOLDEN = {
  "rule110": "b856f07cd54ede65",
  "depo": "f27f1ebbbc5a7929",
  "gsm_symbolic": "6df1a753f052015e",
  "gsm_realistic": "08f6593ef046801f",
}


def _digest(name):
  spec = get_task(name)
  cfg = spec.default_config()
  h = hashlib.sha256()
  for i in range(3):
    for split in ("train", "test"):
      h.update(spec.generate(cfg, 0, i, split).tokens.tobytes())
  return h.hexdigest()[:16]


def _content_key(name, facts):
  """What identifies an example's content, computed from the exported facts."""
  if name == "rule110":
    return facts["initial"]
  if name == "depo":
    return frozenset(map(tuple, facts["edges"]))
  return (facts["query"], frozenset(facts["equations"]))


@pytest.mark.parametrize("name", NAMES)
def test_same_arguments_same_example_and_indices_differ(name):
  spec = get_task(name)
  cfg = spec.default_config()
  first = [spec.generate(cfg, 7, i) for i in range(20)]
  again = [spec.generate(cfg, 7, i) for i in range(20)]
  for a, b in zip(first, again, strict=True):
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.loss_mask, b.loss_mask)
    assert a.facts == b.facts and a.difficulty == b.difficulty
  assert len({e.tokens.tobytes() for e in first}) == 20
  other_seed = spec.generate(cfg, 8, 0)
  assert not np.array_equal(other_seed.tokens, first[0].tokens)


@pytest.mark.parametrize("name", NAMES)
def test_golden_digest(name):
  assert _digest(name) == GOLDEN[name]


@pytest.mark.parametrize("name", NAMES)
def test_example_invariants(name):
  spec = get_task(name)
  cfg = spec.default_config()
  for i in range(30):
    ex = spec.generate(cfg, 0, i)
    assert ex.tokens.shape == (cfg.seq_len,) and ex.tokens.dtype == np.int32
    assert ex.loss_mask.shape == (cfg.seq_len,) and ex.loss_mask.dtype == bool
    assert ex.tokens.min() >= 0 and ex.tokens.max() < spec.tokenizer.vocab_size
    np.testing.assert_array_equal(ex.loss_mask, ex.roles == Role.ANSWER)
    assert ex.loss_mask.any()
    # Loss never on PAD/FILL; PAD exactly where nothing is.
    assert not np.isin(ex.tokens[ex.loss_mask], [0, 1]).any()
    assert (ex.tokens[ex.roles == Role.PAD] == 0).all()
    assert (ex.tokens[ex.roles == Role.FILLER] == 0).all()  # default filler="pad"
    assert ex.tokens[0] == spec.tokenizer.id("<bos>") and ex.roles[0] == Role.FACT
    # The question starts at the configured window boundary; every answer follows a question.
    assert ex.roles[cfg.question_start] == Role.QUESTION
    assert isinstance(ex.facts["answer"], str) and isinstance(ex.difficulty, int)


@pytest.mark.parametrize("name", NAMES)
def test_text_round_trips(name):
  spec = get_task(name)
  tok = spec.tokenizer
  cfg = spec.default_config()
  for i in range(20):
    ex = spec.generate(cfg, 1, i)
    full = tok.decode(ex.tokens)
    assert tok.encode(full) == ex.tokens.tolist()
    assert tok.decode(tok.encode(full)) == full
    text = spec.text(ex)
    assert tok.decode(tok.encode(text)) == text
    content = ex.tokens[(ex.tokens != 0) & (ex.tokens != 1)]
    assert tok.encode(text) == content.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_facts_lie_in_earlier_windows_than_the_question(name):
  spec = get_task(name)
  for window, seq_len in LAYOUTS[name]:
    cfg = config_from_overrides(name, {"window": window, "seq_len": seq_len, "filler": "fill"})
    for i in range(10):
      ex = spec.generate(cfg, 2, i)
      w = role_windows(ex, window)
      assert w.facts.size and w.question.size and w.answer.size
      assert w.facts.max() < w.question.min(), (window, seq_len)
      assert w.question.min() <= w.answer.min()
      assert w.answer.max() < seq_len // window
      # Independently of the roles: nothing but filler between the facts and the question
      # window, and the question window starts the last windows.
      q0 = cfg.question_start
      assert q0 % window == 0 and q0 >= window
      n_facts = w.facts.size
      assert (ex.tokens[n_facts:q0] == 1).all()  # filler="fill"
      assert (ex.tokens[:n_facts] > 1).all()


@pytest.mark.parametrize("name", NAMES)
def test_too_small_windows_are_rejected(name):
  window, seq_len = TOO_SMALL[name]
  with pytest.raises(ValueError, match="window too small"):
    config_from_overrides(name, {"window": window, "seq_len": seq_len})


@pytest.mark.parametrize("name", NAMES)
def test_train_and_test_are_disjoint(name):
  spec = get_task(name)
  # Small content spaces make accidental overlap likely without the split rule.
  small = {
    "rule110": {"width": 8},
    "depo": {"n_min": 3, "n_max": 3, "syllables_min": 1, "syllables_max": 1},
    "gsm_symbolic": {"ops_min": 1, "ops_max": 1, "max_operands": 2, "max_constant": 3},
    "gsm_realistic": {"ops_min": 1, "ops_max": 1, "max_constant": 3, "template": "zoo"},
  }[name]
  cfg = config_from_overrides(name, small)
  n = 300 if name == "rule110" else 150
  train = [spec.generate(cfg, 0, i, "train") for i in range(n)]
  test = [spec.generate(cfg, 0, i, "test") for i in range(n)]
  train_keys = {_content_key(name, e.facts) for e in train}
  test_keys = {_content_key(name, e.facts) for e in test}
  assert not train_keys & test_keys
  assert not {e.tokens.tobytes() for e in train} & {e.tokens.tobytes() for e in test}
  # The same seed and index give different examples in the two splits.
  assert all(not np.array_equal(a.tokens, b.tokens) for a, b in zip(train, test, strict=True))


def test_generators_match_their_recorded_fingerprints():
  # A failure means a generator's output changed. If that is intended, bump
  # TaskDatasetBuilder.VERSION (prepared evaluation sets are cached under it) and run
  # `python scripts/task_fingerprints.py --write`; results made with the old task are outdated.
  recorded = json.loads((ROOT / "data" / "task_fingerprints.json").read_text())
  assert recorded["version"] == str(datasets.TaskDatasetBuilder.VERSION), (
    "the builders' VERSION changed: rerun scripts/task_fingerprints.py --write"
  )
  assert set(recorded["digests"]) == set(TASKS)
  for name in NAMES:
    assert datasets.generator_fingerprint(name) == recorded["digests"][name], name


def test_the_fingerprint_sees_a_change_to_one_example(monkeypatch):
  spec = get_task("rule110")
  before = datasets.generator_fingerprint("rule110")
  real = spec.generate

  def changed(config, seed, index, split="train"):
    ex = real(config, seed, index, split)
    if index == 5 and split == "test":
      ex.tokens[-1] += 1  # one token of one example
    return ex

  altered = dataclasses.replace(spec, generate=changed)
  monkeypatch.setattr(datasets.registry, "get_task", lambda name: altered)
  assert datasets.generator_fingerprint("rule110") != before


def test_the_fingerprint_script_checks_and_writes(tmp_path, monkeypatch, capsys):
  import sys

  sys.path.insert(0, str(ROOT / "scripts"))
  try:
    import task_fingerprints
  finally:
    sys.path.remove(str(ROOT / "scripts"))
  assert task_fingerprints.main([]) == 0  # the committed file matches the generators
  assert "matches" in capsys.readouterr().out
  monkeypatch.setattr(task_fingerprints, "FILE", tmp_path / "f.json")
  assert task_fingerprints.main([]) == 1  # nothing recorded there yet
  assert task_fingerprints.main(["--write"]) == 0
  assert json.loads((tmp_path / "f.json").read_text()) == task_fingerprints.current()
  assert task_fingerprints.main([]) == 0
