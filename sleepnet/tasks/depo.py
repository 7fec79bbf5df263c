"""Depo: k-hop successor queries over a random permutation whose edge list was evicted.

After Allen-Zhu, "Physics of Language Models, Part 4.1" (the reasoning-depth task). n nodes get
unique multi-syllable names; a random permutation gives every node exactly one successor (a set of
cycles; `single_cycle` makes it one n-cycle); the edges are listed in shuffled order in the first
windows. After eviction each query ``<k_h> name ?`` asks for the h-th successor of a node, and the
model writes the answer name and <eos>. The hop count h is the depth knob.

Layout (default n ∈ 8..16, h ∈ 1..8, L=64, T=256)::

  windows 0..:  <bos> src -> dst ; src -> dst ; …      (n edges, shuffled)
  ...:          filler
  last:         <k_h> name ? answer <eos>  [ <k_h> name ? answer <eos> … ]   then PAD

Names are 1–4 syllables (default 2–3) from 70 consonant–vowel syllables, one token each, written
glued ("kalomi" = ka lo mi). Vocabulary: <pad> <fill> <bos> <eos> -> ; ? <k1> … <k16> + syllables.

Facts: "edges" ([src, dst] name pairs in listed order), "query", "hops" and "answer" of the first
query, and "queries" (every query as {"query", "hops", "answer"}). The difficulty is the largest
hop count. The loss covers the answer names and their <eos>. `test_num_queries` lets training
examples ask more questions than test examples (denser supervision, one-question difficulty).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sleepnet.tasks import base

NAME = "depo"
MAX_HOPS = 16  # the vocabulary has one hop token <k1> … <k16>
MAX_SYLLABLES = 4
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
SYLLABLES = tuple(c + v for c in CONSONANTS for v in VOWELS)

VOCAB = (
  base.PAD,
  base.FILL,
  base.BOS,
  base.EOS,
  "->",
  ";",
  "?",
  *(f"<k{k}>" for k in range(1, MAX_HOPS + 1)),
  *SYLLABLES,
)
TOKENIZER = base.Tokenizer(
  VOCAB,
  rf"<[a-z0-9_]+>|->|[;?]|[{CONSONANTS}][{VOWELS}]",
  glue=SYLLABLES,
  no_space_before=(";", "?"),
)
_BOS = TOKENIZER.id(base.BOS)
_EOS = TOKENIZER.id(base.EOS)
_ARROW = TOKENIZER.id("->")
_SEMI = TOKENIZER.id(";")
_QMARK = TOKENIZER.id("?")
_HOP0 = TOKENIZER.id("<k1>") - 1  # _HOP0 + h is the id of <k_h>
_SYL0 = TOKENIZER.id(SYLLABLES[0])


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepoConfig(base.TaskConfig):
  """Knobs of the Depo task.

  Attributes:
    window: L.
    seq_len: T, a multiple of L.
    filler: "pad" or "fill".
    n_min: smallest number of nodes (inclusive).
    n_max: largest number of nodes (inclusive).
    k_min: smallest hop count (inclusive, >= 1).
    k_max: largest hop count (inclusive, at most MAX_HOPS).
    syllables_min: shortest name, in syllable tokens.
    syllables_max: longest name, in syllable tokens (at most MAX_SYLLABLES).
    num_queries: queries per example, about distinct nodes, each with its own hop count.
    test_num_queries: queries per example of the test split (0: num_queries). Training on
      several questions per example multiplies the answer tokens per sequence (one question gives
      one supervised name per 100 tokens, too sparse for small models to learn even one-hop
      lookup; scripts/probe_depo_lookup.sh), while testing on one keeps the difficulty the hop
      count of that one question and exact match a per-question score.
    single_cycle: draw a single n-cycle instead of a uniform random permutation, so that hop
      counts below n never wrap around to the query node.
  """

  task = NAME

  window: int = 64
  seq_len: int = 256
  n_min: int = 8
  n_max: int = 16
  k_min: int = 1
  k_max: int = 8
  syllables_min: int = 2
  syllables_max: int = 3
  num_queries: int = 1
  test_num_queries: int = 0
  single_cycle: bool = False

  def validate(self) -> None:
    self._check_range("n_min", lo=2)
    self._check_range("n_max", lo=self.n_min)
    self._check_range("k_min", lo=1, hi=MAX_HOPS)
    self._check_range("k_max", lo=self.k_min, hi=MAX_HOPS)
    self._check_range("syllables_min", lo=1)
    self._check_range("syllables_max", lo=self.syllables_min, hi=MAX_SYLLABLES)
    self._check_range("num_queries", lo=1, hi=self.n_min)
    self._check_range("test_num_queries", lo=0, hi=self.n_min)
    names = sum(len(SYLLABLES) ** s for s in range(self.syllables_min, self.syllables_max + 1))
    # Unique names are drawn by rejection; keep collisions rare.
    if names < 4 * self.n_max:
      self._fail(
        f"only {names} names of {self.syllables_min}..{self.syllables_max} syllables for "
        f"n_max={self.n_max} nodes; allow longer names"
      )

  def max_fact_tokens(self) -> int:
    return 1 + self.n_max * (2 * self.syllables_max + 2)

  def max_question_tokens(self) -> int:
    return max(self.num_queries, self.test_num_queries) * (2 * self.syllables_max + 3)

  def test_shaped(self) -> DepoConfig:
    if not self.test_num_queries:
      return self
    return dataclasses.replace(self, num_queries=self.test_num_queries, test_num_queries=0)

  def queries_in(self, split: str) -> int:
    """How many questions an example of `split` asks."""
    if split == "test" and self.test_num_queries:
      return self.test_num_queries
    return self.num_queries


def _draw_graph(
  rng: np.random.Generator, config: DepoConfig
) -> tuple[list[tuple[int, ...]], np.ndarray]:
  """Returns unique names (as syllable-index tuples) and succ, the successor of every node."""
  n = int(rng.integers(config.n_min, config.n_max + 1))
  names: list[tuple[int, ...]] = []
  seen = set()
  while len(names) < n:
    length = int(rng.integers(config.syllables_min, config.syllables_max + 1))
    name = tuple(rng.integers(0, len(SYLLABLES), size=length).tolist())
    if name not in seen:
      seen.add(name)
      names.append(name)
  if config.single_cycle:
    order = rng.permutation(n)
    succ = np.empty(n, np.int64)
    succ[order] = np.roll(order, -1)
  else:
    succ = rng.permutation(n)
  return names, succ


def _word(name: tuple[int, ...]) -> str:
  return "".join(SYLLABLES[s] for s in name)


def _split_key(graph: tuple[list[tuple[int, ...]], np.ndarray]) -> str:
  # The graph identifies the example: a test graph is never asked about in train, by any query.
  names, succ = graph
  return ";".join(sorted(f"{_word(names[i])}>{_word(names[j])}" for i, j in enumerate(succ)))


def generate(config: DepoConfig, seed: int, index: int, split: str = "train") -> base.Example:
  """Returns example `index` of the stream `seed` in `split`."""
  (names, succ), rng = base.draw_in_split(
    NAME, seed, index, split, draw=lambda rng: _draw_graph(rng, config), key=_split_key
  )
  n = len(names)
  name_ids = [[_SYL0 + s for s in name] for name in names]
  order = rng.permutation(n)  # the edges are listed in shuffled order
  fact_ids = [_BOS]
  for i in order:
    fact_ids += [*name_ids[i], _ARROW, *name_ids[succ[i]], _SEMI]

  num_queries = config.queries_in(split)
  queries = rng.choice(n, size=num_queries, replace=False)
  hops = rng.integers(config.k_min, config.k_max + 1, size=num_queries)
  qa = []
  query_facts = []
  for node, h in zip(queries.tolist(), hops.tolist(), strict=True):
    target = node
    for _ in range(h):
      target = succ[target]
    qa.append(([_HOP0 + h, *name_ids[node], _QMARK], [*name_ids[target], _EOS]))
    query_facts.append({"query": _word(names[node]), "hops": h, "answer": _word(names[target])})

  facts = {
    "edges": [[_word(names[i]), _word(names[succ[i]])] for i in order.tolist()],
    **query_facts[0],
    "queries": query_facts,
  }
  return base.assemble(config, fact_ids, qa, difficulty=int(hops.max()), facts=facts)
