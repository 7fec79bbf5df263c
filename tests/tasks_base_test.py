"""Tests of the shared task interface: tokenizer, configs, overrides, registry, seeding, splits."""

import dataclasses

import numpy as np
import pytest

from sleepnet.tasks import TASKS, base, config_from_overrides, get_task
from sleepnet.tasks.rule110 import Rule110Config


def _toy_tokenizer():
  return base.Tokenizer(
    [base.PAD, base.FILL, "<bos>", "(", ")", "+", *"0123456789", "x"],
    r"<[a-z]+>|[()+x0-9]",
    glue=tuple("0123456789"),
    no_space_before=(")",),
    no_space_after=("(",),
  )


def test_tokenizer_round_trips_and_spacing():
  tok = _toy_tokenizer()
  ids = tok.encode("<bos> (x + 12)+3")
  assert tok.vocab[ids[0]] == "<bos>"
  assert [tok.vocab[i] for i in ids[1:]] == ["(", "x", "+", "1", "2", ")", "+", "3"]
  text = tok.decode(ids)
  assert text == "<bos> (x + 12) + 3"
  assert tok.encode(text) == ids
  assert tok.decode(tok.encode(text)) == text
  assert tok.vocab_size == len(tok.vocab) and tok.pad_id == 0 and tok.fill_id == 1


def test_tokenizer_rejects_unknown_input():
  tok = _toy_tokenizer()
  with pytest.raises(ValueError, match="unknown token '<eos>'"):
    tok.encode("<eos>")
  with pytest.raises(ValueError, match="cannot tokenize"):
    tok.encode("x - 1")
  with pytest.raises(ValueError, match="outside the vocabulary"):
    tok.decode([tok.vocab_size])
  with pytest.raises(ValueError, match="must start with"):
    base.Tokenizer(["a", base.PAD, base.FILL], "a")


def test_every_task_tokenizer_is_lossless_on_its_whole_vocabulary():
  for spec in TASKS.values():
    tok = spec.tokenizer
    ids = list(range(tok.vocab_size))
    assert tok.encode(tok.decode(ids)) == ids, spec.name
    assert tok.vocab[0] == base.PAD and tok.pad_id == 0


def test_config_validation_names_the_problem():
  with pytest.raises(ValueError, match="seq_len=50 must be a multiple of window=32"):
    Rule110Config(seq_len=50)
  with pytest.raises(ValueError, match="filler='noise'"):
    Rule110Config(filler="noise")
  with pytest.raises(ValueError, match=r"width=1\.5 must be of type int"):
    Rule110Config(width=1.5)
  with pytest.raises(ValueError, match="must be of type bool"):
    Rule110Config(show_steps_before_eviction=1)
  with pytest.raises(ValueError, match="window too small: the question and answer need up to 17"):
    Rule110Config(window=8, seq_len=16)
  # Facts and question may span several windows each, as long as they fit.
  assert Rule110Config(window=8, seq_len=64).question_windows == 3
  with pytest.raises(dataclasses.FrozenInstanceError):
    Rule110Config().width = 3  # type: ignore[misc]


def test_config_layout_properties():
  cfg = Rule110Config(window=16, seq_len=96, width=12)
  assert cfg.num_windows == 6
  assert cfg.question_windows == 1  # <t_k> + 12 bits = 13 tokens
  assert cfg.fact_windows == 5
  assert cfg.question_start == 80


def test_config_from_overrides_parses_types():
  cfg = config_from_overrides(
    "rule110", {"width": "8", "show_steps_before_eviction": "true", "filler": "fill"}
  )
  assert cfg == Rule110Config(width=8, show_steps_before_eviction=True, filler="fill")
  assert config_from_overrides("rule110", {"width": 8}).width == 8
  assert config_from_overrides("gsm_symbolic", {}) == get_task("gsm_symbolic").default_config()


def test_config_from_overrides_errors():
  with pytest.raises(ValueError, match=r"unknown config key\(s\) \['bogus'\]; valid keys: window"):
    config_from_overrides("rule110", {"bogus": "1"})
  with pytest.raises(ValueError, match="width='x' is not a valid int"):
    config_from_overrides("rule110", {"width": "x"})
  with pytest.raises(ValueError, match="is not a boolean"):
    config_from_overrides("rule110", {"show_steps_before_eviction": "maybe"})


def test_registry():
  assert set(TASKS) == {"rule110", "depo", "gsm_symbolic", "gsm_realistic"}
  for name, spec in TASKS.items():
    assert get_task(name) is spec and spec.name == name
    assert spec.config_cls.task == name
  with pytest.raises(ValueError, match="unknown task 'nope'; valid tasks: rule110, depo"):
    get_task("nope")


def test_example_rng_is_deterministic_and_keyed():
  a = base.example_rng("rule110", 3, 5, "train").integers(0, 2**31, size=4)
  b = base.example_rng("rule110", 3, 5, "train").integers(0, 2**31, size=4)
  np.testing.assert_array_equal(a, b)
  for other in [("depo", 3, 5, "train"), ("rule110", 4, 5, "train"), ("rule110", 3, 6, "train")]:
    c = base.example_rng(*other).integers(0, 2**31, size=4)
    assert not np.array_equal(a, c)
  c = base.example_rng("rule110", 3, 5, "test").integers(0, 2**31, size=4)
  assert not np.array_equal(a, c)
  with pytest.raises(ValueError, match="seed=-1"):
    base.example_rng("rule110", -1, 0, "train")
  with pytest.raises(ValueError, match="split='dev'"):
    base.example_rng("rule110", 0, 0, "dev")


def test_split_of_is_stable_and_about_one_in_eight_test():
  keys = [f"key{i}" for i in range(4000)]
  splits = [base.split_of(k) for k in keys]
  assert splits == [base.split_of(k) for k in keys]
  frac = splits.count("test") / len(splits)
  assert abs(frac - 1 / base.SPLIT_MODULUS) < 0.02


def test_draw_in_split_fails_cleanly_on_a_tiny_content_space():
  # Only one possible content: it belongs to one split, so the other one is unreachable.
  only = base.split_of("same")
  other = "train" if only == "test" else "test"
  content, _ = base.draw_in_split("t", 0, 0, only, draw=lambda rng: "same", key=lambda c: c)
  assert content == "same"
  with pytest.raises(RuntimeError, match="content space is too small"):
    base.draw_in_split("t", 0, 0, other, draw=lambda rng: "same", key=lambda c: c)


def test_collate():
  spec = get_task("rule110")
  cfg = spec.default_config()
  batch = base.collate([spec.generate(cfg, 0, i) for i in range(3)])
  assert batch["tokens"].shape == (3, cfg.seq_len) and batch["tokens"].dtype == np.int32
  assert batch["loss_mask"].dtype == bool and batch["loss_mask"].sum() == 3 * cfg.width
  assert batch["difficulty"].shape == (3,)
