"""GSM tasks: equations parsed with `ast` and solved in dependency order; text parsed back."""

import ast
import collections
import graphlib
import re

import pytest

from sleepnet.tasks import config_from_overrides, gsm_realistic, gsm_symbolic
from sleepnet.tasks.gsm_realistic import GsmRealisticConfig
from sleepnet.tasks.gsm_symbolic import GsmSymbolicConfig

OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


def solve(equations, query, max_value):
  """Returns (value of query, ops of query, closure of query) from `NAME = EXPR` strings.

  Checks the EXPR grammar (non-negative integers, names, + - *, parentheses), that every name is
  defined once, the absence of cycles, and that every value, intermediate ones included, lies in
  0..max_value.
  """
  defs = {}
  for line in equations:
    (stmt,) = ast.parse(line).body
    assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, line
    (target,) = stmt.targets
    assert isinstance(target, ast.Name) and target.id.isidentifier(), line
    assert target.id not in defs, f"{target.id} defined twice"
    defs[target.id] = stmt.value
  deps = {}
  for name, node in defs.items():
    for sub in ast.walk(node):
      assert isinstance(sub, (ast.BinOp, ast.Constant, ast.Name, ast.Load, *OPS)), ast.dump(sub)
      if isinstance(sub, ast.Constant):
        assert type(sub.value) is int and sub.value >= 0
    deps[name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    assert deps[name] <= defs.keys(), f"{name} reads undefined {deps[name] - defs.keys()}"
  values = {}

  def ev(node):
    if isinstance(node, ast.Constant):
      out = node.value
    elif isinstance(node, ast.Name):
      out = values[node.id]
    else:
      out = OPS[type(node.op)](ev(node.left), ev(node.right))
    assert 0 <= out <= max_value, ast.unparse(node)
    return out

  for name in graphlib.TopologicalSorter(deps).static_order():  # raises CycleError on cycles
    values[name] = ev(defs[name])
  closure, stack = set(), [query]
  while stack:
    name = stack.pop()
    if name not in closure:
      closure.add(name)
      stack.extend(deps[name])
  ops = sum(not isinstance(defs[n], ast.Constant) for n in closure)
  return values[query], ops, closure


def _check_solution(ex, cfg):
  f = ex.facts
  value, ops, closure = solve(f["equations"], f["query"], cfg.max_value)
  assert f["answer"] == str(value)
  assert f["ops"] == ops == ex.difficulty
  assert cfg.ops_min <= ops <= cfg.ops_max
  return closure


def _question_text(tok, ex, cfg):
  return tok.decode(t for t in ex.tokens[cfg.question_start :] if t > 1)


def _facts_text(tok, ex, cfg):
  return tok.decode(t for t in ex.tokens[: cfg.question_start] if t > 1)


# --------------------------------------------------------------------------------------------------
# Symbolic


@pytest.mark.parametrize(
  "overrides",
  [{}, {"ops_min": 1, "ops_max": 12, "max_operands": 2, "max_value": 9, "max_constant": 9}],
)
def test_symbolic_answers_ops_and_tokens(overrides):
  cfg = GsmSymbolicConfig(**overrides)
  tok = gsm_symbolic.TOKENIZER
  seen_ops = collections.Counter()
  for i in range(150):
    ex = gsm_symbolic.generate(cfg, 0, i)
    f = ex.facts
    closure = _check_solution(ex, cfg)
    # Without distractors every equation is essential.
    assert closure == {eq.split(" = ")[0] for eq in f["equations"]}
    seen_ops[f["ops"]] += 1
    text = tok.decode(t for t in ex.tokens if t > 1)
    for eq in f["equations"]:
      assert eq + ";" in text
    # The fact windows hold exactly the equations, in order; the question asks for the query.
    assert _facts_text(tok, ex, cfg) == "<bos> " + " ".join(eq + ";" for eq in f["equations"])
    assert _question_text(tok, ex, cfg) == f"<query> {f['query']} = {f['answer']} <eos>"
    assert ex.loss_mask.sum() == len(f["answer"]) + 1
  assert set(seen_ops) == set(range(cfg.ops_min, cfg.ops_max + 1))


def test_symbolic_distractors():
  cfg = GsmSymbolicConfig(num_distractors=5, seq_len=512)
  for i in range(40):
    ex = gsm_symbolic.generate(cfg, 0, i)
    closure = _check_solution(ex, cfg)
    assert len(ex.facts["equations"]) == len(closure) + 5
  fill = GsmSymbolicConfig(filler="distractors")
  tok = gsm_symbolic.TOKENIZER
  for i in range(40):
    ex = gsm_symbolic.generate(fill, 0, i)
    closure = _check_solution(ex, fill)
    assert len(ex.facts["equations"]) > len(closure)
    n_fact_tokens = len(tok.encode(_facts_text(tok, ex, fill)))
    # Filled up to less than one equation short of the question window.
    assert fill.question_start - fill.max_equation_tokens() < n_fact_tokens <= fill.question_start


def test_symbolic_validation_errors():
  with pytest.raises(ValueError, match="window too small"):
    GsmSymbolicConfig(ops_max=40)
  with pytest.raises(ValueError, match="max_constant=200 is larger than allowed"):
    GsmSymbolicConfig(max_constant=200)
  with pytest.raises(ValueError, match="num_distractors=-1 must be >= 0"):
    GsmSymbolicConfig(num_distractors=-1)
  with pytest.raises(ValueError, match="only 520 names"):
    GsmSymbolicConfig(ops_max=200)
  with pytest.raises(ValueError, match="ops_min=0 must be >= 1"):
    config_from_overrides("gsm_symbolic", {"ops_min": "0"})


def test_symbolic_split_disjoint_on_essential_content():
  cfg = GsmSymbolicConfig(ops_min=1, ops_max=2, max_operands=2, num_distractors=3)

  def essential(ex):
    _, _, closure = solve(ex.facts["equations"], ex.facts["query"], cfg.max_value)
    eqs = [e for e in ex.facts["equations"] if e.split(" = ")[0] in closure]
    return ex.facts["query"], frozenset(eqs)

  train = {essential(gsm_symbolic.generate(cfg, 0, i, "train")) for i in range(150)}
  test = {essential(gsm_symbolic.generate(cfg, 0, i, "test")) for i in range(150)}
  assert not train & test


# --------------------------------------------------------------------------------------------------
# Realistic

_QTY = r"the number of [a-z ]+? (?:in|at) [A-Z][a-z]+(?: [A-Z][a-z]+)*"
_ATOM = rf"(?:{_QTY}|\d+)"
_FORMS = [
  (r"(?P<n>\d+)", "{n}"),
  (rf"(?P<n>\d+) more than (?P<a>{_QTY})", "{a} + {n}"),
  (rf"(?P<n>\d+) less than (?P<a>{_QTY})", "{a} - {n}"),
  (rf"(?P<n>\d+) times (?P<a>{_QTY})", "{n} * {a}"),
  (rf"the sum of (?P<a>{_ATOM}) and (?P<b>{_ATOM})", "{a} + {b}"),
  (rf"the difference of (?P<a>{_ATOM}) and (?P<b>{_ATOM})", "{a} - {b}"),
  (rf"the product of (?P<a>{_ATOM}) and (?P<b>{_ATOM})", "{a} * {b}"),
]


def _ident(phrase):
  """'the number of adult lions in Oakridge Zoo' -> 'adult_lions_oakridge_zoo'."""
  words = phrase.split()[3:]
  return "_".join(w.lower() for w in words if w not in ("in", "at"))


def _parse_sentence(sentence):
  m = re.fullmatch(r"(?P<lhs>The number of .+?) equals (?P<rhs>.+)\.", sentence)
  assert m, sentence
  lhs = _ident(m.group("lhs"))
  for pattern, template in _FORMS:
    r = re.fullmatch(pattern, m.group("rhs"))
    if r:
      parts = {k: v if v.isdigit() else _ident(v) for k, v in r.groupdict().items()}
      return f"{lhs} = {template.format(**parts)}"
  raise AssertionError(f"unparsed: {sentence}")


@pytest.mark.parametrize("template", ["any", "festival"])
def test_realistic_answers_ops_and_text(template):
  cfg = GsmRealisticConfig(template=template, ops_max=10, seq_len=1024)
  tok = gsm_realistic.TOKENIZER
  seen = collections.Counter()
  for i in range(120):
    ex = gsm_realistic.generate(cfg, 0, i)
    f = ex.facts
    _check_solution(ex, cfg)
    seen[f["template"]] += 1
    for ident, phrase in f["names"].items():
      assert _ident(phrase) == ident
    facts_text = _facts_text(tok, ex, cfg)
    assert facts_text.startswith("<bos> The number of ")
    sentences = re.split(r"(?<=\.) ", facts_text[len("<bos> ") :])
    assert [_parse_sentence(s) for s in sentences] == f["equations"]
    q = re.fullmatch(
      rf"Question: What is (?P<q>{_QTY})\? Answer: (?P<a>\d+) <eos>",
      _question_text(tok, ex, cfg),
    )
    assert q and _ident(q.group("q")) == f["query"] and q.group("a") == f["answer"]
  expected = set(gsm_realistic.TEMPLATES) if template == "any" else {template}
  assert set(seen) == expected


def test_realistic_fill_with_distractors():
  cfg = GsmRealisticConfig(filler="distractors", window=128, seq_len=1024)
  for i in range(30):
    ex = gsm_realistic.generate(cfg, 0, i)
    closure = _check_solution(ex, cfg)
    assert len(ex.facts["equations"]) > len(closure)


def test_realistic_vocabulary_is_the_word_list():
  tok = gsm_realistic.TOKENIZER
  for word in gsm_realistic.WORDS:
    assert tok.decode(tok.encode(word)) == word
  with pytest.raises(ValueError, match="unknown token 'giraffes'"):
    tok.encode("The number of giraffes")


def test_realistic_validation_errors():
  with pytest.raises(ValueError, match="template='farm'"):
    GsmRealisticConfig(template="farm")
  with pytest.raises(ValueError, match="window too small"):
    GsmRealisticConfig(window=256)
