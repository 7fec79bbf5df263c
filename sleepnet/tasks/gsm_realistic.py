"""GSM-Infinite, realistic variant: templated word problems with the same `ops` control.

In the style of GSM-Infinite's medium subset: quantities are "the number of <items> in
<place>" drawn from one template (a zoo, schools or film festivals); each equation of the
computation graph (`gsm_graph`) is written as one English sentence, the sentences are shuffled
into the first windows, and after eviction a question asks for one quantity. Every operation
equation has exactly one operation (two operands), so `ops` is also the number of arithmetic
steps, as in GSM-Infinite. Sentences::

  The number of adult lions in Oakridge Zoo equals 7.
  The number of adult owls in Maple Zoo equals 3 more than the number of adult lions in
    Oakridge Zoo.
  … equals 3 less than <q> / 3 times <q> / the sum of <a> and <b> / the difference of <a> and <b>
    (always larger minus smaller) / the product of <a> and <b>.

Question and answer: ``Question: What is the number of adult owls in Maple Zoo? Answer: 10 <eos>``.

Facts: "template", "equations" (``NAME = EXPR`` over quantity identifiers such as
``adult_owls_maple_zoo``, in listed order), "names" (identifier -> phrase), "query", "answer"
(decimal string) and "ops" (also the difficulty). The loss covers the answer digits and <eos>.

Layout (default ops ∈ 2..6, L=128, T=512): the sentences fill the first windows, the question
starts the last window. The vocabulary is the fixed word list below (every word of the templates),
the digits, ``. ? :`` and <pad> <fill> <bos> <eos>.
"""

from __future__ import annotations

import dataclasses
import string

import numpy as np

from sleepnet.tasks import base, gsm_graph

NAME = "gsm_realistic"


@dataclasses.dataclass(frozen=True)
class Template:
  """A family of quantities: "the number of {item} {preposition} {container}"."""

  preposition: str
  items: tuple[str, ...]
  containers: tuple[str, ...]


TEMPLATES = {
  "zoo": Template(
    preposition="in",
    items=(
      "adult lions",
      "adult owls",
      "adult foxes",
      "adult bears",
      "adult wolves",
      "adult zebras",
      "adult otters",
      "adult eagles",
      "adult deer",
      "adult parrots",
    ),
    containers=(
      "Oakridge Zoo",
      "Maple Zoo",
      "Cedar Zoo",
      "Willow Zoo",
      "Harbor Zoo",
      "Summit Zoo",
      "Meadow Zoo",
      "Granite Zoo",
      "Lakeside Zoo",
      "Aspen Zoo",
    ),
  ),
  "school": Template(
    preposition="in",
    items=(
      "math teachers",
      "art teachers",
      "music teachers",
      "science teachers",
      "history teachers",
      "drama teachers",
      "chess coaches",
      "swim coaches",
      "dance teachers",
      "reading tutors",
    ),
    containers=(
      "Brookside School",
      "Hillcrest School",
      "Riverside School",
      "Oakwood School",
      "Pinecrest School",
      "Fairview School",
      "Northgate School",
      "Elmwood School",
      "Westfield School",
      "Sunnyvale School",
    ),
  ),
  "festival": Template(
    preposition="at",
    items=(
      "comedy movies",
      "drama movies",
      "horror movies",
      "action movies",
      "science fiction movies",
      "animated movies",
      "romance movies",
      "mystery movies",
      "documentary movies",
      "musical movies",
    ),
    containers=(
      "Golden Lens Festival",
      "Silver Screen Festival",
      "Northern Lights Festival",
      "Blue Harbor Festival",
      "Red Rock Festival",
      "Starlight Festival",
      "Evergreen Festival",
      "Crystal Lake Festival",
      "Sunset Festival",
      "Moonrise Festival",
    ),
  ),
}

# The words of the sentence frames; with the template words below they make the word list.
FRAME_WORDS = (
  "The",
  "the",
  "number",
  "of",
  "equals",
  "sum",
  "difference",
  "product",
  "and",
  "more",
  "less",
  "than",
  "times",
  "Question",
  "What",
  "is",
  "Answer",
)
PUNCTUATION = (".", "?", ":")
DIGITS = tuple(string.digits)


def _template_words() -> list[str]:
  words: list[str] = []
  for t in TEMPLATES.values():
    for phrase in (t.preposition, *t.items, *t.containers):
      words += phrase.split()
  return words


WORDS = tuple(dict.fromkeys([*FRAME_WORDS, *_template_words()]))  # ordered, deduplicated
VOCAB = (base.PAD, base.FILL, base.BOS, base.EOS, *DIGITS, *PUNCTUATION, *WORDS)
TOKENIZER = base.Tokenizer(
  VOCAB,
  r"<[a-z0-9_]+>|[A-Za-z]+|[0-9]|[.?:]",
  glue=DIGITS,
  no_space_before=PUNCTUATION,
)
_BOS = TOKENIZER.id(base.BOS)
_EOS = TOKENIZER.id(base.EOS)


@dataclasses.dataclass(frozen=True)
class Quantity:
  """One quantity of a template: its identifier and token ids."""

  ident: str
  phrase: str  # "the number of adult lions in Oakridge Zoo"
  ids: tuple[int, ...]  # ids of `phrase`
  subject_ids: tuple[int, ...]  # ids of the capitalised phrase, "The number of …"


def _quantities(template: Template) -> dict[str, Quantity]:
  out = {}
  for container in template.containers:
    for item in template.items:
      ident = "_".join(f"{item} {container}".lower().split())
      words = ["number", "of", *item.split(), template.preposition, *container.split()]
      out[ident] = Quantity(
        ident=ident,
        phrase=" ".join(["the", *words]),
        ids=tuple(TOKENIZER.ids(["the", *words])),
        subject_ids=tuple(TOKENIZER.ids(["The", *words])),
      )
  return out


QUANTITIES = {name: _quantities(t) for name, t in TEMPLATES.items()}
_POOLS = {name: tuple(q) for name, q in QUANTITIES.items()}
_TEMPLATE_NAMES = tuple(TEMPLATES)
_MAX_QUANTITY_TOKENS = max(len(q.ids) for qs in QUANTITIES.values() for q in qs.values())


@dataclasses.dataclass(frozen=True, kw_only=True)
class GsmRealisticConfig(gsm_graph.GsmConfig):
  """Knobs of the realistic GSM task (shared ones documented in `gsm_graph.GsmConfig`).

  Attributes:
    template: "any" (drawn per example) or one of TEMPLATES ("zoo", "school", "festival").
  """

  task = NAME

  window: int = 128
  seq_len: int = 512
  template: str = "any"

  def validate(self) -> None:
    if self.template != "any" and self.template not in TEMPLATES:
      self._fail(f"template={self.template!r} is not 'any' or one of {list(TEMPLATES)}")
    super().validate()

  def operands_max(self) -> int:
    return 2  # one operation per sentence, so English stays unambiguous

  def name_pool_size(self) -> int:
    return min(len(p) for p in _POOLS.values())

  def max_equation_tokens(self) -> int:
    """The longest sentence: a quantity equals the sum of two quantities."""
    operand = max(_MAX_QUANTITY_TOKENS, self.value_digits)
    return _MAX_QUANTITY_TOKENS + 1 + (3 + operand + 1 + operand) + 1

  def max_constant_tokens(self) -> int:
    """A quantity equals a number."""
    return _MAX_QUANTITY_TOKENS + 1 + len(str(self.max_constant)) + 1

  def max_question_tokens(self) -> int:
    return 4 + _MAX_QUANTITY_TOKENS + 3 + self.value_digits + 1


def _number(value: int) -> list[int]:
  return TOKENIZER.ids(base.digits(value))


def _operand(expr: gsm_graph.Expr, quantities: dict[str, Quantity]) -> list[int]:
  if isinstance(expr, gsm_graph.Lit):
    return _number(expr.value)
  assert isinstance(expr, gsm_graph.Var)
  return list(quantities[expr.name].ids)


_PHRASES = {"+": "the sum of", "-": "the difference of", "*": "the product of"}


def _sentence_ids(eq: gsm_graph.Equation, quantities: dict[str, Quantity]) -> list[int]:
  """``The number of … equals <rhs>.`` (see the module docstring for the forms of <rhs>)."""
  ids = [*quantities[eq.name].subject_ids, TOKENIZER.id("equals")]
  expr = eq.expr
  Lit, Var = gsm_graph.Lit, gsm_graph.Var
  if isinstance(expr, Lit):
    ids += _number(expr.value)
  else:
    assert isinstance(expr, gsm_graph.BinOp)
    left = _operand(expr.left, quantities)
    right = _operand(expr.right, quantities)
    # The short forms read "N more than X": the literal comes first in English but is the right
    # operand of + and -, and the left operand of *, so each form maps back to one tree.
    if expr.op == "+" and isinstance(expr.left, Var) and isinstance(expr.right, Lit):
      ids += [*right, *TOKENIZER.ids(["more", "than"]), *left]
    elif expr.op == "-" and isinstance(expr.left, Var) and isinstance(expr.right, Lit):
      ids += [*right, *TOKENIZER.ids(["less", "than"]), *left]
    elif expr.op == "*" and isinstance(expr.left, Lit) and isinstance(expr.right, Var):
      ids += [*left, TOKENIZER.id("times"), *right]
    else:
      ids += [*TOKENIZER.ids(_PHRASES[expr.op].split()), *left, TOKENIZER.id("and"), *right]
  ids.append(TOKENIZER.id("."))
  return ids


def generate(
  config: GsmRealisticConfig, seed: int, index: int, split: str = "train"
) -> base.Example:
  """Returns example `index` of the stream `seed` in `split`.

  The split key is the template, the set of essential equations and the query.
  """

  def choose_pool(rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    if config.template == "any":
      name = _TEMPLATE_NAMES[int(rng.integers(len(_TEMPLATE_NAMES)))]
    else:
      name = config.template
    return name, _POOLS[name]

  template, essential, unused, rng = gsm_graph.sample_problem_in_split(
    config, NAME, seed, index, split, choose_pool
  )
  quantities = QUANTITIES[template]
  encoded = {eq.name: _sentence_ids(eq, quantities) for eq in essential}
  budget = config.question_start - 1 - sum(len(ids) for ids in encoded.values())

  def size(eq: gsm_graph.Equation) -> int:
    encoded[eq.name] = _sentence_ids(eq, quantities)
    return len(encoded[eq.name])

  distractors = gsm_graph.add_distractors(rng, config, essential, unused, budget, size=size)
  equations = essential + distractors
  equations = [equations[i] for i in rng.permutation(len(equations)).tolist()]
  fact_ids = [_BOS]
  for eq in equations:
    fact_ids += encoded[eq.name]

  query = essential[-1]
  question = [
    *TOKENIZER.ids(["Question", ":", "What", "is"]),
    *quantities[query.name].ids,
    *TOKENIZER.ids(["?", "Answer", ":"]),
  ]
  answer = [*_number(query.value), _EOS]
  ops = gsm_graph.count_ops(essential)
  facts = {
    "template": template,
    "equations": [gsm_graph.format_equation(eq) for eq in equations],
    "names": {eq.name: quantities[eq.name].phrase for eq in equations},
    "query": query.name,
    "answer": str(query.value),
    "ops": ops,
  }
  return base.assemble(config, fact_ids, [(question, answer)], difficulty=ops, facts=facts)
