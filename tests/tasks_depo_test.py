"""Depo: answers checked by walking the exported edge list; tokens parsed back to the facts."""

import collections
import re

import pytest

from sleepnet.tasks import config_from_overrides, depo
from sleepnet.tasks.depo import DepoConfig, generate

NAME_RE = re.compile(rf"(?:[{depo.CONSONANTS}][{depo.VOWELS}])+")


def walk(edges, start, hops):
  succ = dict(map(tuple, edges))
  node = start
  for _ in range(hops):
    node = succ[node]
  return node


def _parse(tokens, cfg):
  tok = depo.TOKENIZER
  facts_text = tok.decode(t for t in tokens[: cfg.question_start] if t > 1)
  assert facts_text.startswith("<bos> ")
  edges = re.findall(r"([a-z]+) -> ([a-z]+);", facts_text)
  assert " ".join(f"{a} -> {b};" for a, b in edges) == facts_text[len("<bos> ") :]
  question_text = tok.decode(t for t in tokens[cfg.question_start :] if t > 1)
  queries = re.findall(r"<k(\d+)> ([a-z]+)\? ([a-z]+) <eos>", question_text)
  assert " ".join(f"<k{k}> {q}? {a} <eos>" for k, q, a in queries) == question_text
  return [list(e) for e in edges], [(q, int(k), a) for k, q, a in queries]


@pytest.mark.parametrize("num_queries", [1, 3])
def test_answers_structure_and_tokens(num_queries):
  cfg = DepoConfig(num_queries=num_queries, k_max=16, window=64, seq_len=320)
  hop_counts = collections.Counter()
  for i in range(150):
    ex = generate(cfg, 0, i)
    f = ex.facts
    edges = f["edges"]
    sources = [a for a, _ in edges]
    targets = [b for _, b in edges]
    # A permutation: every node exactly one successor and one predecessor; names unique.
    assert len(set(sources)) == len(sources) and sorted(sources) == sorted(targets)
    assert cfg.n_min <= len(sources) <= cfg.n_max
    for name in sources:
      assert NAME_RE.fullmatch(name)
      assert cfg.syllables_min <= len(name) // 2 <= cfg.syllables_max
    assert len(f["queries"]) == num_queries
    assert len({q["query"] for q in f["queries"]}) == num_queries
    for q in f["queries"]:
      assert q["answer"] == walk(edges, q["query"], q["hops"])
      hop_counts[q["hops"]] += 1
    assert (f["query"], f["hops"], f["answer"]) == tuple(f["queries"][0].values())
    assert ex.difficulty == max(q["hops"] for q in f["queries"])
    parsed_edges, parsed_queries = _parse(ex.tokens, cfg)
    assert parsed_edges == edges
    assert parsed_queries == [(q["query"], q["hops"], q["answer"]) for q in f["queries"]]
    # Loss on the answer names and their <eos>.
    tok = depo.TOKENIZER
    answer_tokens = sum(len(q["answer"]) // 2 + 1 for q in f["queries"])
    assert ex.loss_mask.sum() == answer_tokens
    assert (ex.tokens[ex.loss_mask] == tok.id("<eos>")).sum() == num_queries
  assert set(hop_counts) == set(range(1, 17))


def test_test_split_can_ask_fewer_questions_than_training():
  cfg = DepoConfig(num_queries=6, test_num_queries=1, k_max=8, window=64, seq_len=320)
  for i in range(40):
    train, test = generate(cfg, 0, i, "train"), generate(cfg, 0, i, "test")
    assert len(train.facts["queries"]) == 6 and len(test.facts["queries"]) == 1
    # The test example's difficulty is the hop count of its one question.
    assert test.difficulty == test.facts["hops"]
    assert test.facts["answer"] == walk(
      test.facts["edges"], test.facts["query"], test.facts["hops"]
    )
    assert _parse(test.tokens, cfg)[1] == [
      (test.facts["query"], test.facts["hops"], test.facts["answer"])
    ]
  # 0 (the default) asks the training count in both splits; the question budget covers the larger.
  same = DepoConfig(num_queries=3, window=64, seq_len=320)
  assert len(generate(same, 0, 0, "test").facts["queries"]) == 3
  assert DepoConfig(num_queries=1, test_num_queries=4).max_question_tokens() == 4 * (2 * 3 + 3)
  # Test-shaped training examples (what question-only baselines fit on) ask as the test split.
  shaped = cfg.test_shaped()
  assert (shaped.num_queries, shaped.test_num_queries) == (1, 0) and same.test_shaped() is same
  assert len(generate(shaped, 0, 3, "train").facts["queries"]) == 1


def test_single_cycle_visits_every_node():
  cfg = DepoConfig(single_cycle=True)
  for i in range(50):
    edges = generate(cfg, 0, i).facts["edges"]
    start = edges[0][0]
    seen = {walk(edges, start, h) for h in range(len(edges))}
    assert len(seen) == len(edges)


def test_validation_errors():
  with pytest.raises(ValueError, match="k_max=17 is larger than allowed"):
    DepoConfig(k_max=17)
  with pytest.raises(ValueError, match="k_min=0 must be >= 1"):
    DepoConfig(k_min=0)
  with pytest.raises(ValueError, match="num_queries=9 is larger than allowed"):
    DepoConfig(num_queries=9)
  with pytest.raises(ValueError, match="test_num_queries=9 is larger than allowed"):
    DepoConfig(test_num_queries=9)
  with pytest.raises(ValueError, match="test_num_queries=-1 must be >= 0"):
    DepoConfig(test_num_queries=-1)
  with pytest.raises(ValueError, match="only 70 names"):
    DepoConfig(syllables_min=1, syllables_max=1, n_min=20, n_max=20)
  with pytest.raises(ValueError, match="window too small: the facts need up to 257 tokens"):
    config_from_overrides("depo", {"n_max": "32"})
