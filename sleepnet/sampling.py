"""Sampling from a streaming model: greedy or temperature, seeded, stopping at an end token."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sleepnet.model import Model, ModelState


class Generation(NamedTuple):
  """What `generate` returns.

  Attributes:
    tokens: int32 [B, n] the new tokens (n <= max_new_tokens); after a row's end token, the row
      is filled with the end token.
    state: the streaming state after the prompt and every new token but the last one (whose
      logits nothing has asked for yet): to continue, feed `tokens[:, -1]` to `model.step`.
  """

  tokens: np.ndarray
  state: ModelState


def sample(logits: jax.Array, key: jax.Array, temperature: float) -> jax.Array:
  """Picks one token per row from logits [B, V]: argmax at temperature 0, else a softmax draw."""
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0, got {temperature}.")
  if temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def generate(
  model: Model,
  prompt: jax.Array,
  *,
  max_new_tokens: int,
  temperature: float = 0.0,
  seed: int = 0,
  end_token: int | None = None,
  state: ModelState | None = None,
  sleep_passes: int | None = None,
) -> Generation:
  """Continues `prompt` [B, T] (T >= 1) by up to `max_new_tokens` tokens.

  The model sleeps by itself whenever a window fills, in the prompt or in the continuation, so a
  generation may run far beyond one window. Sampling is reproducible: token i of the
  continuation uses `fold_in(key(seed), i)`.

  Args:
    model: the model.
    prompt: int32 [B, T] tokens to condition on.
    max_new_tokens: the length limit of the continuation.
    temperature: 0 for greedy decoding, > 0 to sample from softmax(logits / temperature).
    seed: the sampling seed.
    end_token: stop a row at this token; stop early when every row has produced it.
    state: continue from this streaming state instead of an empty one.
    sleep_passes: N for this call (the config's by default).
  """
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
  prompt = jnp.asarray(prompt)
  if state is None:
    state = model.init_state(prompt.shape[0])
  logits, state = model.prefill(prompt, state, sleep_passes=sleep_passes)
  last = logits[:, -1]
  key = jax.random.key(seed)
  done = np.zeros(prompt.shape[0], bool)
  out = []
  for i in range(max_new_tokens):
    token = np.asarray(sample(last, jax.random.fold_in(key, i), temperature))
    if end_token is not None:
      token = np.where(done, end_token, token)
      done |= token == end_token
    out.append(token)
    if i + 1 == max_new_tokens or done.all():
      break  # The last token is returned but not fed: nothing would read its logits.
    last, state = model.step(jnp.asarray(token), state, sleep_passes=sleep_passes)
  return Generation(np.stack(out, axis=1).astype(np.int32), state)
