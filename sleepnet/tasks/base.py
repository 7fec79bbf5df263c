"""The interface shared by the synthetic tasks: configs, examples, tokenizers, layout and seeding.

A task is a pure function ``generate(config, seed, index, split) -> Example``: the same arguments
give the same example on any machine, because all randomness comes from one numpy generator
seeded from (task name, seed, index, split, attempt) through `np.random.SeedSequence` (never
Python's `hash()`, which is salted per process).

Layout, the same for every task. The T = `seq_len` tokens are cut into T / L windows of L =
`window` tokens; the model keeps only the current window and consolidates ("sleeps" on) each
evicted one.

  * The facts (what must survive eviction) start at position 0 with BOS and fill the earliest
    windows.
  * The question and its answer start at the first token of the last `question_windows` windows,
    so every fact token lies in a strictly earlier window than the question: the answer is
    reachable only through the fast weights.
  * The gap between them holds filler (`filler`: "pad" = PAD id 0, "fill" = a dedicated FILL token,
    or task-specific distractors); the tail after the answer is PAD.

`question_windows` is fixed per config (from the longest possible question + answer), so the
question of every example of a config starts at the same position, `question_start`.

Loss convention. ``loss_mask[i]`` is True exactly where ``tokens[i]`` is an answer token, i.e. a
token the model must predict from the tokens before it. A trainer uses ``inputs = tokens[:-1]``,
``targets = tokens[1:]`` and ``mask = loss_mask[1:]``. PAD and FILL positions never carry loss.

Train/test split. Each task names the structured content that identifies an example (its
"split key", e.g. the Rule 110 initial state); a hash of that key decides the split it belongs to
(`split_of`), and generation rejection-samples until the content lands in the requested split.
Train and test therefore never share content, whatever the seeds, on top of drawing from different
seed streams.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import re
import typing
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np

PAD = "<pad>"
FILL = "<fill>"
BOS = "<bos>"
EOS = "<eos>"
PAD_ID = 0
FILL_ID = 1

SPLITS = ("train", "test")
# One split key in SPLIT_MODULUS lands in test. 8 keeps test rejection sampling cheap (about 8
# draws per test example) while leaving test sets of thousands of distinct contents.
SPLIT_MODULUS = 8
# A config whose content space is too small to reach the requested split fails after this many
# draws instead of looping forever.
MAX_SPLIT_ATTEMPTS = 2000


class Role(enum.IntEnum):
  """What each position of an example holds (`Example.roles`)."""

  PAD = 0  # trailing padding after the answer
  FILLER = 1  # the gap between the facts and the question (PAD or FILL tokens)
  FACT = 2  # BOS and the fact tokens (distractors included), in the earliest windows
  QUESTION = 3  # the question, after eviction
  ANSWER = 4  # the answer tokens: the only positions with loss


@dataclasses.dataclass(frozen=True)
class Example:
  """One generated example.

  Attributes:
    tokens: int32 [T] token ids; PAD (0) where there is nothing.
    loss_mask: bool [T]; True where `tokens` holds an answer token to be predicted from the
      tokens before it. Train with inputs = tokens[:-1], targets = tokens[1:],
      mask = loss_mask[1:].
    roles: int8 [T]; the `Role` of every position (the layout, for checks and analysis).
    difficulty: the task's depth knob: the rollout depth t (Rule 110), the largest hop count k
      (Depo), the number of operations (GSM).
    facts: the structured content, JSON-serialisable, as written by the export (always includes
      "answer" as a string).
  """

  tokens: np.ndarray
  loss_mask: np.ndarray
  roles: np.ndarray
  difficulty: int
  facts: dict[str, Any]


class RoleWindows(NamedTuple):
  """Window index (position // L) of every token of one role, in position order."""

  facts: np.ndarray
  question: np.ndarray
  answer: np.ndarray


def role_windows(example: Example, window: int) -> RoleWindows:
  """Returns the window of every fact, question and answer token of `example` for window L."""
  positions = np.arange(example.roles.shape[0])
  return RoleWindows(
    facts=positions[example.roles == Role.FACT] // window,
    question=positions[example.roles == Role.QUESTION] // window,
    answer=positions[example.roles == Role.ANSWER] // window,
  )


def collate(examples: Sequence[Example]) -> dict[str, np.ndarray]:
  """Stacks examples of one config into a batch of numpy arrays.

  Returns:
    A dict with "tokens" int32 [B, T], "loss_mask" bool [B, T], "roles" int8 [B, T] and
    "difficulty" int32 [B].
  """
  return {
    "tokens": np.stack([e.tokens for e in examples]),
    "loss_mask": np.stack([e.loss_mask for e in examples]),
    "roles": np.stack([e.roles for e in examples]),
    "difficulty": np.asarray([e.difficulty for e in examples], np.int32),
  }


# --------------------------------------------------------------------------------------------------
# Tokenizer


class Tokenizer:
  """A fixed-vocabulary tokenizer whose decode output encodes back to the same ids.

  `encode` cuts text into pieces with `pattern` (whitespace between pieces is ignored) and looks
  each piece up; any piece or character outside the vocabulary raises ValueError. `decode` joins
  tokens with single spaces except where the spacing rules say otherwise, so a glued run such as
  the digits of "42" or the syllables of a name reads naturally and still splits back into the
  same tokens. For every id list x, ``encode(decode(x)) == x``; for every text produced by
  `decode`, ``decode(encode(text)) == text``.

  Attributes:
    vocab: the token strings; the id of a token is its index. Id 0 is PAD, id 1 is FILL.
    vocab_size: len(vocab).
    pad_id: 0.
    fill_id: 1.
  """

  def __init__(
    self,
    vocab: Sequence[str],
    pattern: str,
    *,
    glue: Collection[str] = (),
    no_space_before: Collection[str] = (),
    no_space_after: Collection[str] = (),
  ) -> None:
    """Builds the tokenizer.

    Args:
      vocab: token strings; must start with PAD, FILL and have no duplicates.
      pattern: a regex matching exactly one token at a time (alternatives, longest first).
      glue: tokens written without a space between two consecutive members (digits, bits,
        syllables).
      no_space_before: tokens attached to the previous token (punctuation).
      no_space_after: tokens attached to the next token (an opening parenthesis).
    """
    if tuple(vocab[:2]) != (PAD, FILL):
      raise ValueError(f"vocab must start with {PAD!r}, {FILL!r}; got {list(vocab[:2])}")
    if len(set(vocab)) != len(vocab):
      raise ValueError("vocab has duplicate tokens")
    self.vocab = tuple(vocab)
    self.vocab_size = len(self.vocab)
    self.pad_id = PAD_ID
    self.fill_id = FILL_ID
    self._ids = {tok: i for i, tok in enumerate(self.vocab)}
    self._regex = re.compile(rf"(?P<tok>{pattern})|(?P<ws>\s+)|(?P<bad>.)", re.DOTALL)
    self._glue = frozenset(glue)
    self._no_space_before = frozenset(no_space_before)
    self._no_space_after = frozenset(no_space_after)
    for tok in self.vocab:
      pieces = [m.group("tok") for m in self._regex.finditer(tok)]
      if pieces != [tok]:
        raise ValueError(f"pattern does not match token {tok!r} as one piece")

  def id(self, token: str) -> int:
    """Returns the id of one token string."""
    try:
      return self._ids[token]
    except KeyError:
      raise ValueError(f"unknown token {token!r}") from None

  def ids(self, tokens: Iterable[str]) -> list[int]:
    """Returns the ids of token strings (no splitting)."""
    return [self.id(t) for t in tokens]

  def encode(self, text: str) -> list[int]:
    """Splits `text` into tokens and returns their ids.

    Raises:
      ValueError: a piece of `text` is not in the vocabulary.
    """
    out = []
    for m in self._regex.finditer(text):
      if m.lastgroup == "tok":
        tok = m.group("tok")
        if tok not in self._ids:
          raise ValueError(f"unknown token {tok!r} at offset {m.start()}")
        out.append(self._ids[tok])
      elif m.lastgroup == "bad":
        raise ValueError(f"cannot tokenize {text[m.start() : m.start() + 10]!r} at {m.start()}")
    return out

  def decode(self, ids: Iterable[int]) -> str:
    """Returns the text of token ids (PAD and FILL included; strip them first if unwanted)."""
    parts: list[str] = []
    prev = None
    for i in ids:
      i = int(i)
      if not 0 <= i < self.vocab_size:
        raise ValueError(f"token id {i} outside the vocabulary of {self.vocab_size}")
      tok = self.vocab[i]
      if prev is not None and self._spaced(prev, tok):
        parts.append(" ")
      parts.append(tok)
      prev = tok
    return "".join(parts)

  def _spaced(self, prev: str, tok: str) -> bool:
    return not (
      prev in self._no_space_after
      or tok in self._no_space_before
      or (prev in self._glue and tok in self._glue)
    )


def digits(value: int) -> list[str]:
  """Returns the decimal digits of a non-negative integer as one token string each."""
  return list(str(value))


# --------------------------------------------------------------------------------------------------
# Configs


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskConfig:
  """Fields and layout shared by every task config; subclasses add the task's knobs.

  Subclasses implement `validate` (task-specific checks), `max_fact_tokens` and
  `max_question_tokens` (worst cases, so that a config that validates can never produce an example
  that does not fit). Construction validates everything and raises ValueError naming the problem.

  Attributes:
    window: L, the number of tokens per window.
    seq_len: T, the total number of tokens per example; a multiple of `window`.
    filler: what fills the gap between the facts and the question: "pad" (PAD, id 0) or "fill"
      (a FILL token); some tasks add "distractors".
  """

  task: ClassVar[str] = "task"
  fillers: ClassVar[tuple[str, ...]] = ("pad", "fill")

  window: int = 32
  seq_len: int = 64
  filler: str = "pad"

  def __post_init__(self) -> None:
    self._check_types()
    if self.window < 1:
      self._fail(f"window={self.window} must be >= 1")
    if self.seq_len < 2 * self.window or self.seq_len % self.window:
      self._fail(
        f"seq_len={self.seq_len} must be a multiple of window={self.window} with at least two "
        "windows (facts before eviction, question after)"
      )
    if self.filler not in self.fillers:
      self._fail(f"filler={self.filler!r} is not one of {list(self.fillers)}")
    self.validate()
    need_q = self.max_question_tokens()
    if self.question_windows >= self.num_windows:
      self._fail(
        f"window too small: the question and answer need up to {need_q} tokens = "
        f"{self.question_windows} windows of {self.window}, leaving no window for the facts in "
        f"seq_len={self.seq_len}"
      )
    need_f = self.max_fact_tokens()
    if need_f > self.question_start:
      self._fail(
        f"window too small: the facts need up to {need_f} tokens but only {self.question_start} "
        f"fit in the {self.fact_windows} window(s) of {self.window} before the question "
        f"(seq_len={self.seq_len}); raise window or seq_len, or shrink the task"
      )

  def validate(self) -> None:
    """Task-specific checks; raise ValueError (via `_fail`) naming the offending field."""

  def max_fact_tokens(self) -> int:
    """The largest number of fact tokens (BOS included) an example of this config can have."""
    raise NotImplementedError

  def max_question_tokens(self) -> int:
    """The largest number of question + answer tokens an example of this config can have."""
    raise NotImplementedError

  def test_shaped(self) -> TaskConfig:
    """The config whose training examples ask what a test example of this one asks.

    The same config, unless a task's test split asks differently (Depo's `test_num_queries`);
    question-only baselines fit their guesses on these training examples.
    """
    return self

  @property
  def num_windows(self) -> int:
    """T / L."""
    return self.seq_len // self.window

  @property
  def question_windows(self) -> int:
    """How many windows at the end of the sequence hold the question and answer."""
    return math.ceil(self.max_question_tokens() / self.window)

  @property
  def fact_windows(self) -> int:
    """How many windows before the question may hold facts."""
    return self.num_windows - self.question_windows

  @property
  def question_start(self) -> int:
    """The position of the first question token (the start of a window)."""
    return self.fact_windows * self.window

  def _fail(self, message: str) -> typing.NoReturn:
    raise ValueError(f"{self.task}: {message}")

  def _check_range(self, name: str, lo: int | None = None, hi: int | None = None) -> None:
    value = getattr(self, name)
    if lo is not None and value < lo:
      self._fail(f"{name}={value} must be >= {lo}")
    if hi is not None and value > hi:
      self._fail(f"{name}={value} is larger than allowed (at most {hi})")

  def _check_types(self) -> None:
    hints = typing.get_type_hints(type(self))
    for f in dataclasses.fields(self):
      want = hints[f.name]
      value = getattr(self, f.name)
      # bool is an int subclass: reject True where an int is meant, and vice versa.
      ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
      if want is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
      if not ok:
        self._fail(f"{f.name}={value!r} must be of type {want.__name__}")


ConfigT = TypeVar("ConfigT", bound=TaskConfig)


def config_fields(cls: type[TaskConfig]) -> dict[str, type]:
  """Returns the name and type of every field of a config class, in declaration order."""
  hints = typing.get_type_hints(cls)
  return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_config(cls: type[ConfigT], overrides: Mapping[str, Any]) -> ConfigT:
  """Builds a config from defaults plus `overrides`, parsing string values to the field types.

  Args:
    cls: the config class.
    overrides: field name -> value; strings are parsed ("8", "0.5", "true", "fill"), other values
      are used as they are.

  Raises:
    ValueError: an unknown key (the message names it and lists the valid keys), a value that does
      not parse, or a config that fails validation.
  """
  fields = config_fields(cls)
  unknown = sorted(set(overrides) - set(fields))
  if unknown:
    raise ValueError(
      f"{cls.task}: unknown config key(s) {unknown}; valid keys: {', '.join(fields)}"
    )
  kwargs = {}
  for key, value in overrides.items():
    kwargs[key] = (
      _parse_value(cls.task, key, fields[key], value) if isinstance(value, str) else value
    )
  return cls(**kwargs)


def _parse_value(task: str, key: str, want: type, text: str) -> Any:
  if want is str:
    return text
  if want is bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
      return True
    if lowered in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"{task}: {key}={text!r} is not a boolean (true/false)")
  try:
    return want(text)
  except ValueError:
    raise ValueError(f"{task}: {key}={text!r} is not a valid {want.__name__}") from None


# --------------------------------------------------------------------------------------------------
# Seeding and splits


def example_rng(
  task: str, seed: int, index: int, split: str, attempt: int = 0
) -> np.random.Generator:
  """Returns the generator for one draw of one example.

  The entropy is (crc32 of the task name, seed, index, split id, attempt), mixed by
  `np.random.SeedSequence`; all of it is platform-independent. (numpy keeps bit generators stable
  across versions; `Generator` methods could in principle change between numpy releases.)
  """
  if seed < 0 or index < 0:
    raise ValueError(f"seed={seed} and index={index} must be >= 0")
  if split not in SPLITS:
    raise ValueError(f"split={split!r} is not one of {list(SPLITS)}")
  entropy = [zlib.crc32(task.encode()), seed, index, SPLITS.index(split), attempt]
  return np.random.default_rng(np.random.SeedSequence(entropy))


def split_of(key: str) -> str:
  """Returns the split ("train" or "test") that content with this split key belongs to."""
  digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
  return "test" if int.from_bytes(digest, "little") % SPLIT_MODULUS == 0 else "train"


T = TypeVar("T")


def draw_in_split(
  task: str,
  seed: int,
  index: int,
  split: str,
  draw: Callable[[np.random.Generator], T],
  key: Callable[[T], str],
) -> tuple[T, np.random.Generator]:
  """Draws content with `draw` until its split key belongs to `split`.

  Returns:
    The content and the generator it was drawn from (to go on drawing the question with).

  Raises:
    RuntimeError: no draw landed in `split` within MAX_SPLIT_ATTEMPTS (content space too small).
  """
  for attempt in range(MAX_SPLIT_ATTEMPTS):
    rng = example_rng(task, seed, index, split, attempt)
    content = draw(rng)
    if split_of(key(content)) == split:
      return content, rng
  raise RuntimeError(
    f"{task}: no {split} example after {MAX_SPLIT_ATTEMPTS} draws; the config's content space "
    "is too small to split"
  )


# --------------------------------------------------------------------------------------------------
# Layout


def assemble(
  config: TaskConfig,
  fact_ids: Sequence[int],
  qa: Sequence[tuple[Sequence[int], Sequence[int]]],
  difficulty: int,
  facts: dict[str, Any],
) -> Example:
  """Lays facts, filler, questions and answers out into one example of length T.

  Args:
    config: the task config (window, seq_len, filler and the question position).
    fact_ids: the fact tokens, BOS first; they start at position 0.
    qa: (question ids, answer ids) pairs, written in order from `config.question_start`.
    difficulty: stored in the example.
    facts: stored in the example.

  Returns:
    The example; loss only on the answer ids.
  """
  T = config.seq_len
  q0 = config.question_start
  n_qa = sum(len(q) + len(a) for q, a in qa)
  # The configs validate worst cases, so these only fire on a generator bug.
  if len(fact_ids) > q0:
    raise AssertionError(f"{len(fact_ids)} fact tokens overflow the {q0} fact positions")
  if q0 + n_qa > T:
    raise AssertionError(f"{n_qa} question tokens overflow the {T - q0} question positions")
  tokens = np.full(T, PAD_ID, np.int32)
  roles = np.full(T, Role.PAD, np.int8)
  tokens[: len(fact_ids)] = fact_ids
  roles[: len(fact_ids)] = Role.FACT
  if config.filler == "fill":
    tokens[len(fact_ids) : q0] = FILL_ID
  roles[len(fact_ids) : q0] = Role.FILLER
  pos = q0
  for question, answer in qa:
    tokens[pos : pos + len(question)] = question
    roles[pos : pos + len(question)] = Role.QUESTION
    pos += len(question)
    tokens[pos : pos + len(answer)] = answer
    roles[pos : pos + len(answer)] = Role.ANSWER
    pos += len(answer)
  return Example(
    tokens=tokens,
    loss_mask=roles == Role.ANSWER,
    roles=roles,
    difficulty=int(difficulty),
    facts=facts,
  )


def render_text(example: Example, tokenizer: Tokenizer) -> str:
  """Returns the example as a person reads it: all tokens except PAD and FILL, decoded."""
  keep = (example.tokens != PAD_ID) & (example.tokens != FILL_ID)
  return tokenizer.decode(example.tokens[keep])
