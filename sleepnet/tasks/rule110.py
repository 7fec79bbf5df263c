"""Rule 110: predict the state of a cellular automaton t steps after a state that was evicted.

A random state x⁰ of `width` cells is shown in the first window; after eviction the question gives
the rollout depth t and the model writes x^t, the state after t applications of Rule 110 with a
periodic boundary, one bit token at a time. The stored information (W bits) is constant while the
required computation grows with t, which makes t the depth knob.

Layout (default W=16, L=32, T=64)::

  window 0:  <bos> x⁰ (W bits)                 [or <bos> <t_k> x⁰ with show_steps_before_eviction]
  ...:       filler
  last:      <t_k> x^t (W bits, the answer)     then PAD

Rule 110: the next value of cell i is f(x[i-1], x[i], x[i+1]) where the neighbourhood, read as a
3-bit number 4·left + 2·centre + right, selects that bit of the number 110 (0b01101110).

Vocabulary: <pad> <fill> <bos> 0 1 <t0> … <t64>. Text form: ``<bos> 0110… <t3> 1011…``.

Facts: "initial" and "answer" (0/1 strings of width W, cell 0 first) and "steps" (t, also the
difficulty). The loss covers the W answer bits.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sleepnet.tasks import base

NAME = "rule110"
MAX_STEPS = 64  # the vocabulary has one step token <t0> … <t64>
RULE = 110
# _RULE_TABLE[4 * left + 2 * centre + right] = next value of the centre cell.
_RULE_TABLE = np.array([(RULE >> i) & 1 for i in range(8)], np.uint8)

VOCAB = (base.PAD, base.FILL, base.BOS, "0", "1", *(f"<t{t}>" for t in range(MAX_STEPS + 1)))
TOKENIZER = base.Tokenizer(VOCAB, r"<[a-z0-9_]+>|[01]", glue=("0", "1"))
_BOS = TOKENIZER.id(base.BOS)
_BIT0 = TOKENIZER.id("0")
_STEP0 = TOKENIZER.id("<t0>")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule110Config(base.TaskConfig):
  """Knobs of the Rule 110 task.

  Attributes:
    window: L.
    seq_len: T, a multiple of L.
    filler: "pad" or "fill".
    width: W, the number of cells (periodic boundary).
    t_min: smallest rollout depth t (inclusive).
    t_max: largest rollout depth t (inclusive, at most MAX_STEPS).
    show_steps_before_eviction: also show t next to x⁰ (so sleep can pre-compute the rollout);
      by default t is revealed only in the question, after eviction.
  """

  task = NAME

  window: int = 32
  seq_len: int = 64
  width: int = 16
  t_min: int = 1
  t_max: int = 8
  show_steps_before_eviction: bool = False

  def validate(self) -> None:
    self._check_range("width", lo=1)
    self._check_range("t_min", lo=0, hi=MAX_STEPS)
    self._check_range("t_max", lo=self.t_min, hi=MAX_STEPS)

  def max_fact_tokens(self) -> int:
    return 1 + int(self.show_steps_before_eviction) + self.width

  def max_question_tokens(self) -> int:
    return 1 + self.width


def step(state: np.ndarray) -> np.ndarray:
  """Applies Rule 110 once to a uint8 [W] state with a periodic boundary."""
  left = np.roll(state, 1)  # left[i] = state[i - 1]
  right = np.roll(state, -1)  # right[i] = state[i + 1]
  return _RULE_TABLE[(left << 2) | (state << 1) | right]


def rollout(state: np.ndarray, steps: int) -> np.ndarray:
  """Returns the state after `steps` applications of Rule 110."""
  for _ in range(steps):
    state = step(state)
  return state


def _bits(state: np.ndarray) -> str:
  return "".join("1" if b else "0" for b in state)


def generate(config: Rule110Config, seed: int, index: int, split: str = "train") -> base.Example:
  """Returns example `index` of the stream `seed` in `split`.

  The split key is the initial state: a test initial state never appears in train, at any t.
  """
  W = config.width
  initial, rng = base.draw_in_split(
    NAME,
    seed,
    index,
    split,
    draw=lambda rng: rng.integers(0, 2, size=W, dtype=np.uint8),
    key=lambda x: f"{W}:{_bits(x)}",
  )
  t = int(rng.integers(config.t_min, config.t_max + 1))
  final = rollout(initial, t)
  step_id = _STEP0 + t
  bit_ids = (initial + _BIT0).tolist()
  fact_ids = [_BOS, step_id, *bit_ids] if config.show_steps_before_eviction else [_BOS, *bit_ids]
  answer_ids = (final + _BIT0).tolist()
  facts = {"initial": _bits(initial), "steps": t, "answer": _bits(final)}
  return base.assemble(config, fact_ids, [([step_id], answer_ids)], difficulty=t, facts=facts)
