"""A whole hybrid on binary tokens: the chunked delta rule against the per-token scan.

Binary tokens give every GDN layer only a handful of distinct keys, so the keys inside a chunk
are strongly correlated: the case where an inexact chunked inverse fails (see
tests/recurrence_adversarial_test.py). The final window is one token short of L (T = 2L − 1
or 3L − 1), as in every task whose sequences feed seq_len − 1 tokens, so its chunk has an odd
length. Both models share their parameters; only `gdn_impl` differs. The check runs at
initialisation and with the gates pushed where trained models put them: β = sigmoid(6) ≈ 0.998
and almost no decay (α ≈ 1 − 1e-4), when the delta rule overwrites nearly the whole key
direction at every token.
"""

import jax
import numpy as np
import pytest
from flax import nnx

import sleepnet
from sleepnet.gdn import GatedDeltaNet

TOL = 1e-4


pytestmark = pytest.mark.usefixtures("not_into_the_persistent_cache")


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def push_gates_to_trained_values(model: sleepnet.Model) -> None:
  for _, module in nnx.iter_modules(model):
    if isinstance(module, GatedDeltaNet):
      module.beta_proj.bias[...] = np.full(module.beta_proj.bias.shape, 6.0, np.float32)
      # softplus(−9) ≈ 1.2e-4, times exp(A_log) ≤ 16: g ≥ −2e-3, a decay of at least 0.998.
      module.dt_bias[...] = np.full(module.dt_bias.shape, -9.0, np.float32)
      module.A_log[...] = np.zeros(module.A_log.shape, np.float32)


@nnx.jit
def forward(model, tokens):
  return model.forward(tokens)


@pytest.mark.parametrize(
  "window,T,passes",
  [(64, 127, 1), (64, 127, 2), (32, 95, 4)],
  ids=["L64-N1", "L64-N2", "L32-N4"],
)
@pytest.mark.parametrize("gates", ["init", "trained"])
def test_hybrid_chunked_equals_reference_on_binary_tokens(window, T, passes, gates):
  config = sleepnet.preset(
    "hybrid", size="small", vocab_size=2, window=window, sleep_passes=passes
  ).replace(sleep_final_window=True)  # so that the odd final window also sleeps
  models = {}
  for impl in ("chunked", "reference"):
    models[impl] = sleepnet.Model(config.replace(gdn_impl=impl), rngs=nnx.Rngs(0))
    if gates == "trained":
      push_gates_to_trained_values(models[impl])
  tokens = jax.random.randint(jax.random.key(3), (2, T), 0, 2)
  logits, fast = forward(models["chunked"], tokens)
  logits_ref, fast_ref = forward(models["reference"], tokens)
  assert rel_err(logits, logits_ref) < TOL
  for S, S_ref in zip(fast, fast_ref, strict=True):
    if S_ref is not None:
      assert rel_err(S, S_ref) < TOL
