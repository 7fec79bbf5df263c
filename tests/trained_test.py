"""Loading a trained run and answering examples with it (sleepnet.trained)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sleepnet
from sleepnet import checkpoint, scoring
from sleepnet.tasks import registry

# The whole-sequence forward, compiled once per (shape, N) for every check below.
_forward = nnx.jit(
  lambda model, tokens, passes: model(tokens, sleep_passes=passes), static_argnums=2
)


def _greedy_by_full_forward(model, prompt: np.ndarray, n: int, passes: int) -> np.ndarray:
  """The oracle: re-run the whole-sequence forward on the growing prefix, take each argmax.

  The prefix is padded to one fixed length so that one compiled forward serves every step: the
  model is causal (sleep after a window only reaches later windows), so the padding cannot change
  the logits at the prefix's last position.
  """
  tokens = np.zeros((1, len(prompt) + n), np.int32)
  tokens[0, : len(prompt)] = prompt
  for i in range(len(prompt), len(prompt) + n):
    logits = _forward(model, jnp.asarray(tokens), passes)
    tokens[0, i] = int(jnp.argmax(logits[0, i - 1]))
  return tokens[0, len(prompt) :]


def test_load_run_restores_the_latest_checkpoint(trained):
  run = sleepnet.load_run(trained)
  assert run.step == 100
  assert run.config.task_name == "rule110" and run.spec.name == "rule110"
  assert run.task.width == 8 and run.model.config.blocks == ("gdn", "attn")


def _check_prediction(run, example, passes: int) -> np.ndarray:
  """Asserts what `predict` says of `example`; returns the oracle's greedy answer tokens."""
  answer = np.flatnonzero(example.loss_mask)
  pred = sleepnet.predict(run, example, sleep_passes=passes)
  # Streaming (prefill, sleep, step) against the full forward on every prefix.
  oracle = _greedy_by_full_forward(run.model, example.tokens[: answer[0]], answer.size, passes)
  assert pred.predicted == run.spec.tokenizer.decode(oracle)
  assert pred.truth == run.spec.tokenizer.decode(example.tokens[answer])
  # Greedy decoding is right iff every teacher-forced argmax is: the evaluator's exact match.
  tokens = jnp.asarray(example.tokens[None])
  stats = scoring.answer_stats(
    _forward(run.model, tokens[:, :-1], passes),
    tokens[:, 1:],
    jnp.asarray(example.loss_mask[None, 1:]),
  )
  exact = bool(stats["exact"][0] == 1.0)
  assert pred.correct == exact == np.array_equal(oracle, example.tokens[answer])
  return oracle


def test_predict_is_greedy_decoding_of_the_whole_sequence_forward(trained):
  loaded = sleepnet.load_run(trained)
  # The tiny run gives nearly every question one answer whatever N; fresh weights answer
  # differently at different N, so they show that predict runs at the N it is given.
  fresh = loaded._replace(model=sleepnet.Model(loaded.model.config, rngs=nnx.Rngs(3)))
  answers = {}
  for name, run in (("trained", loaded), ("fresh", fresh)):
    for passes in (1, 2):
      for index in range(2):
        example = run.spec.generate(run.task, 5, index, "test")
        oracle = _check_prediction(run, example, passes)
        answers[name, passes, index] = oracle.tolist()
      # The tiny run gets real answers wrong, so also ask a question with the model's own answer
      # as the truth: _check_prediction then requires both paths to count it as correct.
      agreeing = example.tokens.copy()
      agreeing[example.loss_mask] = oracle
      _check_prediction(run, dataclasses.replace(example, tokens=agreeing), passes)
  assert any(answers["fresh", 1, i] != answers["fresh", 2, i] for i in range(2))


def test_predict_refuses_examples_with_several_questions(trained):
  run = sleepnet.load_run(trained)
  depo = registry.get_task("depo")
  example = depo.generate(registry.config_from_overrides("depo", {"num_queries": "3"}), 0, 0)
  with pytest.raises(ValueError, match="one contiguous answer span"):
    sleepnet.predict(run, example)


def test_load_run_of_an_empty_directory_names_it(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match=str(tmp_path)):
    sleepnet.load_run(tmp_path)
