"""Computation graphs shared by the two GSM-Infinite-style tasks: sampling, values and rendering.

A problem is a list of equations ``NAME = EXPR`` over non-negative integers with ``+ - *``. The
query's equation and everything it depends on transitively are the *essential* equations; `ops`
counts those that are not a bare integer constant, as in GSM-Infinite's op count. Distractor
equations define further names that the query never depends on (they may read essential names).

Arithmetic is plain integer arithmetic, no modulus: generation keeps every value, intermediate
results inside one expression included, in 0..`max_value`. Bottom-up, each operator is drawn among
those that keep the result in range: ``a - b`` is always possible (the larger operand goes left),
``a + b`` and ``a * b`` when they do not exceed `max_value`. Constants and literals are drawn in
1..`max_constant`.

Graph shape. Operation nodes are created in dependency order; a node that nothing reads yet is
"dangling". Each new node reads a random number of dangling nodes (at least as many as needed so
that the remaining nodes can still absorb the rest, ending with the query as the only one), plus
operands that reuse earlier names, introduce new constants, or are literals. This gives trees and
DAGs of varying depth in which every operation node is essential, so `ops` is exact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import numpy as np

from sleepnet.tasks import base

PRECEDENCE = {"+": 1, "-": 1, "*": 2}
# Mix of the operand slots that do not read a dangling node (cumulative thresholds).
_P_REUSE = 0.35  # an earlier name (constant or already-read operation node)
_P_CONSTANT = 0.7  # a new constant equation ``c = 7``; the rest are literals
_P_DISTRACTOR_CONSTANT = 0.3  # a distractor is a constant equation with this probability
_P_DISTRACTOR_VAR = 0.6  # a distractor operand reads an earlier name with this probability


@dataclasses.dataclass(frozen=True)
class Lit:
  """An integer literal."""

  value: int


@dataclasses.dataclass(frozen=True)
class Var:
  """A reference to a defined name."""

  name: str


@dataclasses.dataclass(frozen=True)
class BinOp:
  """``left op right``."""

  op: str
  left: Expr
  right: Expr


Expr = Lit | Var | BinOp


@dataclasses.dataclass(frozen=True)
class Equation:
  """``name = expr``, whose value is `value`."""

  name: str
  expr: Expr
  value: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class GsmConfig(base.TaskConfig):
  """Knobs shared by the GSM tasks (see the subclasses for defaults).

  Attributes:
    ops_min: smallest number of operations of the query (inclusive, >= 1).
    ops_max: largest number of operations of the query (inclusive).
    max_value: every value, intermediate ones included, lies in 0..max_value.
    max_constant: constants and literals are drawn in 1..max_constant.
    num_distractors: distractor equations added to every example.
    filler: "pad", "fill", or "distractors": add distractor equations until the fact windows are
      full (the rest is PAD).
  """

  fillers: ClassVar[tuple[str, ...]] = ("pad", "fill", "distractors")

  ops_min: int = 2
  ops_max: int = 6
  max_value: int = 99
  max_constant: int = 20
  num_distractors: int = 0

  def validate(self) -> None:
    self._check_range("ops_min", lo=1)
    self._check_range("ops_max", lo=self.ops_min)
    self._check_range("max_value", lo=1)
    self._check_range("max_constant", lo=1, hi=self.max_value)
    self._check_range("num_distractors", lo=0)
    names = self.max_essential_equations() + self.num_distractors
    if names > self.name_pool_size():
      self._fail(
        f"up to {names} equations (ops_max={self.ops_max}, num_distractors="
        f"{self.num_distractors}) but only {self.name_pool_size()} names"
      )

  @property
  def value_digits(self) -> int:
    """Digits of the largest value."""
    return len(str(self.max_value))

  def operands_max(self) -> int:
    """The most operands an operation equation has."""
    raise NotImplementedError

  def name_pool_size(self) -> int:
    """How many distinct names one example can use."""
    raise NotImplementedError

  def max_essential_equations(self) -> int:
    """The most essential equations: operations plus constants (see `max_constants`)."""
    return self.ops_max + self.max_constants()

  def max_constants(self) -> int:
    """The most constant equations of a problem.

    The ops operation nodes have at most ops · operands_max operand slots, and ops - 1 of them
    read the other operation nodes (each is read once as a dangling node), so at most the rest
    introduce constants.
    """
    return self.ops_max * (self.operands_max() - 1) + 1

  def max_equation_tokens(self) -> int:
    """The most tokens of one operation equation, as written in the facts."""
    raise NotImplementedError

  def max_constant_tokens(self) -> int:
    """The most tokens of one constant equation, as written in the facts."""
    raise NotImplementedError

  def max_fact_tokens(self) -> int:
    return (
      1  # BOS
      + self.ops_max * self.max_equation_tokens()
      + self.max_constants() * self.max_constant_tokens()
      + self.num_distractors * max(self.max_equation_tokens(), self.max_constant_tokens())
    )


def apply(op: str, a: int, b: int) -> int:
  """Returns ``a op b``."""
  if op == "+":
    return a + b
  if op == "-":
    return a - b
  if op == "*":
    return a * b
  raise ValueError(f"unknown operator {op!r}")


def _value(expr: Expr, values: dict[str, int]) -> int:
  if isinstance(expr, Lit):
    return expr.value
  if isinstance(expr, Var):
    return values[expr.name]
  return apply(expr.op, _value(expr.left, values), _value(expr.right, values))


def _combine(
  rng: np.random.Generator, operands: Sequence[Expr], values: dict[str, int], max_value: int
) -> tuple[Expr, int]:
  """Joins operands into one expression, with operators that keep every value in range."""
  order = rng.permutation(len(operands)).tolist()
  expr = operands[order[0]]
  val = _value(expr, values)
  for j in order[1:]:
    other = operands[j]
    other_val = _value(other, values)
    ops = ["-"]
    if val + other_val <= max_value:
      ops.append("+")
    if val * other_val <= max_value:
      ops.append("*")
    op = ops[int(rng.integers(len(ops)))]
    if op == "-":
      swap = other_val > val or (other_val == val and rng.random() < 0.5)
    else:
      swap = rng.random() < 0.5
    left, right = (other, expr) if swap else (expr, other)
    expr = BinOp(op, left, right)
    val = _value(expr, values)
  return expr, val


def sample_problem(
  rng: np.random.Generator,
  *,
  ops: int,
  operands_max: int,
  max_value: int,
  max_constant: int,
  names: Iterator[str],
) -> list[Equation]:
  """Samples the essential equations of a problem with exactly `ops` operation equations.

  Args:
    rng: the random generator.
    ops: the number of operation equations (>= 1).
    operands_max: each operation equation has 2..operands_max operands.
    max_value: bound of every value.
    max_constant: bound of constants and literals.
    names: fresh names, consumed in order.

  Returns:
    The equations in dependency order; the last one defines the query.
  """
  values: dict[str, int] = {}
  equations: list[Equation] = []
  dangling: list[str] = []  # operation nodes nothing reads yet
  reusable: list[str] = []  # constants and operation nodes already read

  def new_constant() -> Var:
    name = next(names)
    value = int(rng.integers(1, max_constant + 1))
    equations.append(Equation(name, Lit(value), value))
    values[name] = value
    reusable.append(name)
    return Var(name)

  for i in range(ops):
    remaining = ops - 1 - i
    k = int(rng.integers(2, operands_max + 1))
    # Each later node can absorb at least one dangling node net, so leave at most remaining + 1;
    # the invariant keeps this lower bound <= 2 <= k.
    lo = max(0, len(dangling) - remaining)
    take = int(rng.integers(lo, min(len(dangling), k) + 1))
    picked = sorted(rng.choice(len(dangling), size=take, replace=False).tolist(), reverse=True)
    operands: list[Expr] = []
    for j in picked:
      name = dangling.pop(j)
      reusable.append(name)
      operands.append(Var(name))
    for _ in range(k - take):
      u = rng.random()
      # Reuse a name not yet in this expression: "x + x" reads oddly as English.
      fresh = [n for n in reusable if Var(n) not in operands] if u < _P_REUSE else []
      if fresh:
        operands.append(Var(fresh[int(rng.integers(len(fresh)))]))
      elif u < _P_CONSTANT:
        operands.append(new_constant())
      else:
        operands.append(Lit(int(rng.integers(1, max_constant + 1))))
    expr, value = _combine(rng, operands, values, max_value)
    name = next(names)
    equations.append(Equation(name, expr, value))
    values[name] = value
    dangling.append(name)
  assert len(dangling) == 1 and dangling[0] == equations[-1].name
  return equations


def sample_distractor(
  rng: np.random.Generator,
  *,
  name: str,
  values: dict[str, int],
  operands_max: int,
  max_value: int,
  max_constant: int,
) -> Equation:
  """Samples one distractor equation for `name`, reading only names defined in `values`."""
  if not values or rng.random() < _P_DISTRACTOR_CONSTANT:
    value = int(rng.integers(1, max_constant + 1))
    return Equation(name, Lit(value), value)
  defined = list(values)
  k = int(rng.integers(2, operands_max + 1))
  operands: list[Expr] = []
  for _ in range(k):
    var = Var(defined[int(rng.integers(len(defined)))])
    # A name already in this expression becomes a literal: "x + x" reads oddly as English.
    if var not in operands and rng.random() < _P_DISTRACTOR_VAR:
      operands.append(var)
    else:
      operands.append(Lit(int(rng.integers(1, max_constant + 1))))
  expr, value = _combine(rng, operands, values, max_value)
  return Equation(name, expr, value)


def expr_pieces(expr: Expr) -> list[str]:
  """Returns `expr` as pieces (names, whole numbers, operators, parentheses).

  Parentheses appear only where needed for the usual reading (precedence, left to right) to give
  back exactly this tree.
  """
  if isinstance(expr, Lit):
    return [str(expr.value)]
  if isinstance(expr, Var):
    return [expr.name]
  prec = PRECEDENCE[expr.op]
  left = expr_pieces(expr.left)
  right = expr_pieces(expr.right)
  if isinstance(expr.left, BinOp) and PRECEDENCE[expr.left.op] < prec:
    left = ["(", *left, ")"]
  # Operators associate to the left, so a right operand of equal precedence keeps its
  # parentheses too: "a + (b - c)" is the same value as "a + b - c" but not the same steps, and
  # "a + b" alone may leave 0..max_value. The text then parses back to exactly this tree.
  if isinstance(expr.right, BinOp) and PRECEDENCE[expr.right.op] <= prec:
    right = ["(", *right, ")"]
  return [*left, expr.op, *right]


def format_pieces(pieces: Sequence[str]) -> str:
  """Joins expression pieces the way a person writes them: ``(b1 + 12) * c4``."""
  out: list[str] = []
  for i, piece in enumerate(pieces):
    if i and pieces[i - 1] != "(" and piece != ")":
      out.append(" ")
    out.append(piece)
  return "".join(out)


def format_equation(eq: Equation) -> str:
  """Returns ``NAME = EXPR``."""
  return format_pieces([eq.name, "=", *expr_pieces(eq.expr)])


def split_key(prefix: str, essential: Sequence[Equation]) -> str:
  """The split key of a problem: its essential equations (order-free) and query name."""
  return "|".join([prefix, essential[-1].name, *sorted(format_equation(e) for e in essential)])


def count_ops(essential: Sequence[Equation]) -> int:
  """The number of equations that are not a bare constant."""
  return sum(not isinstance(e.expr, Lit) for e in essential)


def sample_problem_in_split(
  config: GsmConfig,
  task: str,
  seed: int,
  index: int,
  split: str,
  choose_pool: Callable[[np.random.Generator], tuple[str, Sequence[str]]],
) -> tuple[str, list[Equation], list[str], np.random.Generator]:
  """Draws the essential equations of an example in `split`.

  Args:
    config: the GSM config.
    task: the task name (seeds the generator).
    seed: the stream.
    index: the example.
    split: "train" or "test".
    choose_pool: draws (a label that is part of the split key, the names to use), e.g. a
      template and its quantities.

  Returns:
    The label, the essential equations (query last), the unused names of the pool in random
    order, and the generator to go on drawing with.
  """

  def draw(rng: np.random.Generator) -> tuple[str, list[Equation], list[str]]:
    label, pool = choose_pool(rng)
    ops = int(rng.integers(config.ops_min, config.ops_max + 1))
    names = [pool[i] for i in rng.permutation(len(pool)).tolist()]
    supply = iter(names)
    essential = sample_problem(
      rng,
      ops=ops,
      operands_max=config.operands_max(),
      max_value=config.max_value,
      max_constant=config.max_constant,
      names=supply,
    )
    return label, essential, list(supply)

  (label, essential, unused), rng = base.draw_in_split(
    task, seed, index, split, draw=draw, key=lambda c: split_key(c[0], c[1])
  )
  return label, essential, unused, rng


def add_distractors(
  rng: np.random.Generator,
  config: GsmConfig,
  essential: list[Equation],
  unused: list[str],
  budget: int,
  size: Callable[[Equation], int],
) -> list[Equation]:
  """Returns `config.num_distractors` distractors, then more while they fit when filling.

  Args:
    rng: the random generator.
    config: the GSM config.
    essential: the essential equations (distractors may read them).
    unused: fresh names, consumed in order.
    budget: fact tokens still free after the essential equations.
    size: the number of tokens an equation takes in the text.
  """
  values = {eq.name: eq.value for eq in essential}
  out: list[Equation] = []
  names = iter(unused)
  want = config.num_distractors if config.filler != "distractors" else math.inf
  while len(out) < want:
    name = next(names, None)
    if name is None:
      break
    eq = sample_distractor(
      rng,
      name=name,
      values=values,
      operands_max=config.operands_max(),
      max_value=config.max_value,
      max_constant=config.max_constant,
    )
    cost = size(eq)
    # The fixed distractors always fit (validated worst case); filling stops at the first misfit.
    if len(out) >= config.num_distractors and cost > budget:
      break
    budget -= cost
    out.append(eq)
    values[eq.name] = eq.value
  return out
