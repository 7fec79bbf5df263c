"""GSM-Infinite, symbolic variant: evaluate a variable of a shuffled system of equations.

The facts are equations ``a3 = (b1 + 12) * c4;`` over names of one letter and one digit (520
names), listed in random order in the first windows, so a name may be read before it is defined.
After eviction the question ``<query> NAME =`` asks for the value of one name; the model writes
its decimal digits and <eos>. `ops` (the number of non-constant equations the query depends on,
itself included) is the depth knob; see `gsm_graph` for the sampler and the value bounds
(plain integer arithmetic, every value in 0..max_value).

Layout (default ops ∈ 2..6, L=64, T=256)::

  windows 0..:  <bos> a3 = (b1 + 12) * c4; c4 = 7; …   (essential + distractor equations, shuffled)
  ...:          filler (or more distractor equations, with filler="distractors")
  last:         <query> a3 = 42 <eos>   then PAD

Vocabulary: <pad> <fill> <bos> <eos> <query>, the digits, ``+ - * ( ) = ;`` and the 520 names.

Facts: "equations" (``NAME = EXPR`` strings in listed order; each appears verbatim in the text,
followed by ";"), "query", "answer" (decimal string) and "ops" (also the difficulty). The loss
covers the answer digits and <eos>.
"""

from __future__ import annotations

import dataclasses
import string

from sleepnet.tasks import base, gsm_graph

NAME = "gsm_symbolic"
NAMES = tuple(c + d for c in string.ascii_lowercase + string.ascii_uppercase for d in string.digits)
DIGITS = tuple(string.digits)
OPERATORS = ("+", "-", "*", "(", ")", "=", ";")

VOCAB = (base.PAD, base.FILL, base.BOS, base.EOS, "<query>", *DIGITS, *OPERATORS, *NAMES)
TOKENIZER = base.Tokenizer(
  VOCAB,
  r"<[a-z0-9_]+>|[A-Za-z][0-9]|[0-9]|[-+*()=;]",
  glue=DIGITS,
  no_space_before=(")", ";"),
  no_space_after=("(",),
)
_BOS = TOKENIZER.id(base.BOS)
_EOS = TOKENIZER.id(base.EOS)
_QUERY = TOKENIZER.id("<query>")
_EQ = TOKENIZER.id("=")
_SEMI = TOKENIZER.id(";")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GsmSymbolicConfig(gsm_graph.GsmConfig):
  """Knobs of the symbolic GSM task (shared ones documented in `gsm_graph.GsmConfig`).

  Attributes:
    max_operands: each operation equation has 2..max_operands operands (2 or 3 recommended).
  """

  task = NAME

  window: int = 64
  seq_len: int = 256
  max_operands: int = 3

  def validate(self) -> None:
    self._check_range("max_operands", lo=2, hi=8)
    super().validate()

  def operands_max(self) -> int:
    return self.max_operands

  def name_pool_size(self) -> int:
    return len(NAMES)

  def max_equation_tokens(self) -> int:
    """NAME = e1 op e2 op e3 ; with every operand a full-width number and nested parentheses."""
    k = self.max_operands
    return 2 + k * self.value_digits + (k - 1) + 2 * (k - 2) + 1

  def max_constant_tokens(self) -> int:
    """NAME = digits ;"""
    return 3 + len(str(self.max_constant))

  def max_question_tokens(self) -> int:
    return 3 + self.value_digits + 1


def _equation_ids(eq: gsm_graph.Equation) -> list[int]:
  ids = [TOKENIZER.id(eq.name), _EQ]
  for piece in gsm_graph.expr_pieces(eq.expr):
    # Numbers are one token per digit; everything else is one token.
    ids += TOKENIZER.ids(piece) if piece.isdigit() else [TOKENIZER.id(piece)]
  ids.append(_SEMI)
  return ids


def generate(
  config: GsmSymbolicConfig, seed: int, index: int, split: str = "train"
) -> base.Example:
  """Returns example `index` of the stream `seed` in `split`.

  The split key is the set of essential equations and the query name.
  """
  _, essential, unused, rng = gsm_graph.sample_problem_in_split(
    config, NAME, seed, index, split, choose_pool=lambda rng: ("", NAMES)
  )
  encoded = {eq.name: _equation_ids(eq) for eq in essential}
  budget = config.question_start - 1 - sum(len(ids) for ids in encoded.values())

  def size(eq: gsm_graph.Equation) -> int:
    encoded[eq.name] = _equation_ids(eq)  # kept: a distractor that fits is written as is
    return len(encoded[eq.name])

  distractors = gsm_graph.add_distractors(rng, config, essential, unused, budget, size=size)
  equations = essential + distractors
  equations = [equations[i] for i in rng.permutation(len(equations)).tolist()]
  fact_ids = [_BOS]
  for eq in equations:
    fact_ids += encoded[eq.name]

  query = essential[-1]
  question = [_QUERY, TOKENIZER.id(query.name), _EQ]
  answer = [*TOKENIZER.ids(base.digits(query.value)), _EOS]
  ops = gsm_graph.count_ops(essential)
  facts = {
    "equations": [gsm_graph.format_equation(eq) for eq in equations],
    "query": query.name,
    "answer": str(query.value),
    "ops": ops,
  }
  return base.assemble(config, fact_ids, [(question, answer)], difficulty=ops, facts=facts)
