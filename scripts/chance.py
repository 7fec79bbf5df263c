"""Chance level of a task: the exact match of the best guess that sees only the question.

Every question in these tasks is about facts that were evicted before it. A model that cannot use
the evicted facts at all (the windowed transformer) can still do better than uniform guessing: it
sees the question (the depth t, the hop count k and the query name, the queried variable) and knows
the answer distribution. Chance is therefore defined, per difficulty d, as the better of these
question-only predictors, fitted on training examples (asking what a test example asks) and scored
on the evaluation set:

  * majority: the most frequent answer among `num_fit` training examples of difficulty d (the
    Bayes-optimal question-only guess when the question holds nothing but d, as in Rule 110,
    whose question is just <t_k>; for Rule 110 the uniform floor is 2^-W);
  * copy-query (Depo only): answer the query node itself, which is right when the node lies on a
    cycle whose length divides k (a question-only model can learn this).

The evaluation set is regenerated from the run's config (record i of the test split is
`generate(task, config.eval.seed, i, "test")`, exactly as `sleepnet.evaluation` builds it), so the
chance level can be computed wherever the results are merged, without the runs.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

DEFINITION = (
  "chance(d) = the exact match on the evaluation set at difficulty d of the best question-only "
  "predictor: max(majority answer among {num_fit} training examples at d, and for Depo 'answer = "
  "the query node')"
)
FIT_SEED = 987_654  # the training stream the majority answers are counted on (not a run's seed)


def _answers(facts: Mapping[str, Any]) -> tuple[str, ...]:
  """The full answer of an example (every query's answer, for multi-query Depo)."""
  if "queries" in facts:
    return tuple(q["answer"] for q in facts["queries"])
  return (str(facts["answer"]),)


def _copy_query(facts: Mapping[str, Any]) -> tuple[str, ...] | None:
  if "queries" in facts:
    return tuple(q["query"] for q in facts["queries"])
  return None


@functools.lru_cache(maxsize=8)
def _evaluation_set(
  task_name: str, task_json: str, eval_seed: int, num_test: int
) -> tuple[Any, Any, tuple[Any, ...]]:
  """(task spec, task config, the evaluation examples), regenerated once per task config."""
  from sleepnet.tasks import config_from_overrides, get_task  # lazy: pulls in numpy/jax

  spec = get_task(task_name)
  config = config_from_overrides(task_name, json.loads(task_json))
  return spec, config, tuple(spec.generate(config, eval_seed, i, "test") for i in range(num_test))


def evaluation_set(
  task_name: str, task: Mapping[str, Any], *, eval_seed: int, num_test: int
) -> tuple[Any, Any, tuple[Any, ...]]:
  """The evaluation set of a run's config: record i is `generate(task, eval_seed, i, "test")`."""
  return _evaluation_set(task_name, json.dumps(dict(task), sort_keys=True), eval_seed, num_test)


def question_only_baseline(
  task_name: str,
  task: Mapping[str, Any],
  *,
  eval_seed: int,
  num_test: int,
  num_fit: int = 4096,
) -> dict[str, Any]:
  """Chance exact match per difficulty (see the module docstring).

  Args:
    task_name: the registered task.
    task: the task config fields (config.task of a run).
    eval_seed: config.eval.seed of the runs (the evaluation set).
    num_test: config.eval.num_test (the evaluation set's size).
    num_fit: training examples the majority answers are counted on.

  Returns:
    {"definition", "by_difficulty": {str(d): {"exact_match", "strategy", "num_examples"}},
    "exact_match": over all evaluation examples}.
  """
  spec, config, examples = evaluation_set(task_name, task, eval_seed=eval_seed, num_test=num_test)
  # Training examples shaped as the test ones (a Depo scale may train on more questions).
  fit = config.test_shaped()
  counts: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
  overall: collections.Counter = collections.Counter()
  for i in range(num_fit):
    ex = spec.generate(fit, FIT_SEED, i, "train")
    counts[ex.difficulty][_answers(ex.facts)] += 1
    overall[_answers(ex.facts)] += 1
  fallback = overall.most_common(1)[0][0]
  majority = {d: c.most_common(1)[0][0] for d, c in counts.items()}

  strategies: dict[str, Callable[[Mapping[str, Any], int], tuple[str, ...] | None]] = {
    "majority": lambda facts, d: majority.get(d, fallback),
    "copy-query": lambda facts, d: _copy_query(facts),
  }
  right: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
  total: collections.Counter = collections.Counter()
  for ex in examples:
    truth = _answers(ex.facts)
    total[ex.difficulty] += 1
    for name, guess in strategies.items():
      right[ex.difficulty][name] += int(guess(ex.facts, ex.difficulty) == truth)
  by_difficulty = {}
  for d in sorted(total):
    name, hits = max(right[d].items(), key=lambda kv: (kv[1], kv[0] == "majority"))
    by_difficulty[str(d)] = {
      "exact_match": hits / total[d],
      "strategy": name,
      "num_examples": total[d],
    }
  n = sum(total.values())
  return {
    "definition": DEFINITION.format(num_fit=num_fit),
    "by_difficulty": by_difficulty,
    "exact_match": sum(r["exact_match"] * r["num_examples"] for r in by_difficulty.values()) / n,
  }


NO_HOP_DEFINITION = (
  "no-hop guess(d) = the expected exact match at difficulty d of a uniform guess among the names "
  "of the example's (evicted) edge list, the query itself left out where the question rules it "
  "out (one cycle longer than k): what a model scores that knows which names the graph holds but "
  "follows none of its edges"
)


def no_hop_baseline(
  task_name: str, task: Mapping[str, Any], *, eval_seed: int, num_test: int
) -> dict[str, Any] | None:
  """Depo's second reference level, the no-hop guess (see NO_HOP_DEFINITION); None elsewhere.

  A model that beats the question-only chance has used the evicted facts, but on Depo it may
  have used only the set of names: with one cycle of n names, guessing any of the n - 1 that are
  not the query scores 1/(n - 1) (about 0.1 at n = 9..12) without following a single edge.
  Beating the question-only chance therefore does not show multi-hop retrieval; beating this
  level does. Computed exactly, per evaluation example (a product over its queries), on the
  evaluation set `question_only_baseline` scores on.
  """
  if task_name != "depo":
    return None
  _, config, examples = evaluation_set(task_name, task, eval_seed=eval_seed, num_test=num_test)
  expected: collections.Counter = collections.Counter()
  total: collections.Counter = collections.Counter()
  for ex in examples:
    n = len({name for edge in ex.facts["edges"] for name in edge})
    p = 1.0
    for q in ex.facts["queries"]:
      # On one cycle of n nodes, k hops return to the query only when n divides k.
      p /= n - 1 if config.single_cycle and q["hops"] % n else n
    expected[ex.difficulty] += p
    total[ex.difficulty] += 1
  by_difficulty = {
    str(d): {"exact_match": expected[d] / total[d], "num_examples": total[d]} for d in sorted(total)
  }
  return {
    "definition": NO_HOP_DEFINITION,
    "by_difficulty": by_difficulty,
    "exact_match": sum(expected.values()) / sum(total.values()),
  }
