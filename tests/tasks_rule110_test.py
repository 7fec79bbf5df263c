"""Rule 110: answers checked by an independent bit-parallel solver; tokens parsed back to facts."""

import collections
import re

import numpy as np
import pytest

from sleepnet.tasks import Role, config_from_overrides, rule110
from sleepnet.tasks.rule110 import Rule110Config, generate


def solve(initial: str, steps: int) -> str:
  """Rule 110 on a W-bit integer (cell i = bit i), periodic: next = (C | R) & ~(L & C & R)."""
  W = len(initial)
  mask = (1 << W) - 1
  x = sum(int(b) << i for i, b in enumerate(initial))
  for _ in range(steps):
    left = ((x << 1) | (x >> (W - 1))) & mask  # bit i holds cell i - 1
    right = ((x >> 1) | ((x & 1) << (W - 1))) & mask  # bit i holds cell i + 1
    x = (x | right) & ~(left & x & right) & mask
  return "".join(str((x >> i) & 1) for i in range(W))


def test_independent_solver_matches_the_rule_table():
  # Every neighbourhood pattern n = 4·left + 2·centre + right maps to bit n of 110.
  for n in range(8):
    left, centre, right = (n >> 2) & 1, (n >> 1) & 1, n & 1
    state = f"{centre}{right}000{left}"  # cell 0 with its periodic neighbours
    assert solve(state, 1)[0] == str((110 >> n) & 1)


def _parse(tokens, cfg):
  """Returns (initial, steps shown before eviction or None, steps in the question, answer)."""
  tok = rule110.TOKENIZER
  facts_text = tok.decode(t for t in tokens[: cfg.question_start] if t > 1)
  m = re.fullmatch(r"<bos>(?: <t(\d+)>)? ([01]+)", facts_text)
  assert m, facts_text
  question = tok.decode(t for t in tokens[cfg.question_start :] if t > 1)
  q = re.fullmatch(r"<t(\d+)> ([01]+)", question)
  assert q, question
  shown = int(m.group(1)) if m.group(1) else None
  return m.group(2), shown, int(q.group(1)), q.group(2)


@pytest.mark.parametrize("show", [False, True])
def test_answers_and_tokens_encode_the_facts(show):
  cfg = Rule110Config(width=12, t_min=0, t_max=20, show_steps_before_eviction=show)
  seen_t = collections.Counter()
  for i in range(200):
    ex = generate(cfg, 0, i)
    f = ex.facts
    assert re.fullmatch(r"[01]{12}", f["initial"])
    assert f["answer"] == solve(f["initial"], f["steps"])
    assert ex.difficulty == f["steps"] and 0 <= f["steps"] <= 20
    initial, shown, steps, answer = _parse(ex.tokens, cfg)
    assert (initial, steps, answer) == (f["initial"], f["steps"], f["answer"])
    assert shown == (f["steps"] if show else None)
    # Loss exactly on the W answer bits, right after the step token.
    q0 = cfg.question_start
    assert ex.loss_mask.sum() == 12
    assert ex.loss_mask[q0 + 1 : q0 + 13].all() and ex.roles[q0] == Role.QUESTION
    seen_t[f["steps"]] += 1
  assert set(seen_t) == set(range(21))


def test_generator_rollout_matches_solver_on_wide_states():
  rng = np.random.default_rng(0)
  for _ in range(50):
    x = rng.integers(0, 2, size=37, dtype=np.uint8)
    t = int(rng.integers(0, 40))
    bits = "".join(map(str, x))
    assert "".join(map(str, rule110.rollout(x, t))) == solve(bits, t)


def test_prototype_layout_fits_exactly():
  # The prototype layout: L = W + 1, two windows: [BOS] x⁰ | [QUERY_t] x^t.
  cfg = Rule110Config(width=16, window=17, seq_len=34)
  ex = generate(cfg, 0, 0)
  assert (ex.roles[:17] == Role.FACT).all()
  assert ex.roles[17] == Role.QUESTION and (ex.roles[18:] == Role.ANSWER).all()


def test_validation_errors():
  with pytest.raises(ValueError, match="t_max=65 is larger than allowed"):
    Rule110Config(t_max=65)
  with pytest.raises(ValueError, match="t_max=0 must be >= 1"):
    Rule110Config(t_min=1, t_max=0)
  with pytest.raises(ValueError, match="window too small"):
    config_from_overrides("rule110", {"width": "40"})
  with pytest.raises(ValueError, match="width=0 must be >= 1"):
    Rule110Config(width=0)
