"""Tests for sleepnet.recurrence.gated_delta_rule.

Three layers of checking:
* a float64 numpy loop, written straight from the equation, checks impl="reference";
* the reference checks impl="chunked": values, and gradients of a random scalar loss with
  respect to every input and the initial state;
* decode (T = 1 from a carried state) and split calls must equal one long call.

Shapes stay small (B=2, T ≤ 40, K=8 ≠ V=12) so the file runs in well under a minute on 2 CPU
cores. Inputs come from numpy and every JAX computation goes through two module-level jitted
functions, so nothing compiles op by op and equal shapes compile once.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sleepnet.recurrence import gated_delta_rule

B, K, V = 2, 8, 12
F32_TOL = 1e-4
GRAD_NAMES = ("q", "k", "v", "g", "beta", "initial_state")


def rel_err(a, b):
  """max|a − b| / max|b|: robust to entries of b near zero, unlike an elementwise relative error."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def make_inputs(T, H, *, seed=0, with_state=True, dtype=np.float32, strong_decay=True):
  """Realistic inputs: unit q and k, β = sigmoid(·) ∈ (0, 1), g = −softplus(·) ≤ 0."""
  rng = np.random.default_rng(seed)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
  q = unit(rng.standard_normal((B, T, H, K)))
  k = unit(rng.standard_normal((B, T, H, K)))
  v = rng.standard_normal((B, T, H, V))
  g = -np.logaddexp(0.0, 2.0 * rng.standard_normal((B, T, H)))  # −softplus
  if strong_decay:
    g[:, ::4] = -5.0  # α ≈ 0.007: near-resets stress the decay ratios
  beta = 1.0 / (1.0 + np.exp(-2.0 * rng.standard_normal((B, T, H))))
  S0 = rng.standard_normal((B, H, K, V)).astype(np.float32) if with_state else None
  q, k, v, g, beta = (jnp.asarray(x.astype(dtype)) for x in (q, k, v, g, beta))
  return q, k, v, g, beta, None if S0 is None else jnp.asarray(S0)


def cotangents(T, H, seed=7):
  rng = np.random.default_rng(seed)
  return (
    jnp.asarray(rng.standard_normal((B, T, H, V)), jnp.float32),
    jnp.asarray(rng.standard_normal((B, H, K, V)), jnp.float32),
  )


def numpy_oracle(q, k, v, g, beta, S0):
  """The equations of the module docstring, one token at a time, in float64."""
  q, k, v, g, beta = (np.asarray(x, np.float64) for x in (q, k, v, g, beta))
  Bn, T, H, Kn = k.shape
  S = np.zeros((Bn, H, Kn, v.shape[-1])) if S0 is None else np.array(S0, np.float64)
  o = np.zeros(v.shape)
  for b in range(Bn):
    for h in range(H):
      for t in range(T):
        kt, qt, vt = k[b, t, h], q[b, t, h], v[b, t, h]
        transition = np.exp(g[b, t, h]) * (np.eye(Kn) - beta[b, t, h] * np.outer(kt, kt))
        S[b, h] = transition @ S[b, h] + beta[b, t, h] * np.outer(kt, vt)
        o[b, t, h] = S[b, h].T @ qt
  return o, S


@functools.partial(jax.jit, static_argnames=("impl", "chunk_size"))
def run(inputs, impl, chunk_size=8):
  q, k, v, g, beta, S0 = inputs
  return gated_delta_rule(q, k, v, g, beta, initial_state=S0, impl=impl, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("impl", "chunk_size"))
def loss_grads(inputs, o_ct, s_ct, impl, chunk_size=8):
  """Gradients of Σ o·o_ct + Σ S·s_ct w.r.t. all six inputs, plus (o, S)."""

  def loss(*args):
    o, S = run(args, impl, chunk_size)
    return jnp.sum(o * o_ct) + jnp.sum(S * s_ct), (o, S)

  return jax.grad(loss, argnums=tuple(range(6)), has_aux=True)(*inputs)


def assert_grads_close(grads, grads_ref, tol=F32_TOL):
  for name, a, b in zip(GRAD_NAMES, grads, grads_ref, strict=True):
    assert np.all(np.isfinite(a)), name
    assert rel_err(a, b) < tol, (name, rel_err(a, b))


@pytest.mark.parametrize("T", [1, 7, 19])
@pytest.mark.parametrize("with_state", [False, True])
def test_reference_matches_numpy_oracle(T, with_state):
  inputs = make_inputs(T, H=2, seed=T, with_state=with_state)
  o, S = run(inputs, "reference")
  o_np, S_np = numpy_oracle(*inputs)
  assert o.shape == (B, T, 2, V) and S.shape == (B, 2, K, V)
  # float32 against float64 over ≤ 19 steps: the errors are a few float32 ulps.
  assert rel_err(o, o_np) < 1e-5
  assert rel_err(S, S_np) < 1e-5


# (T, chunk_size, H, with_state). T is 1, below, equal to, a multiple of, and not a multiple
# of the chunk size. T = 37 with C = 16 gives 3 balanced chunks of 13 plus 2 padding steps.
CHUNK_CASES = [
  (1, 8, 2, True),
  (5, 8, 1, False),
  (8, 8, 2, True),
  (24, 8, 1, True),
  (21, 8, 2, False),
  (11, 16, 2, True),
  (16, 16, 1, False),
  (32, 16, 3, True),
  (37, 16, 2, True),
]


@pytest.mark.parametrize("T,chunk_size,H,with_state", CHUNK_CASES)
def test_chunked_matches_reference_values_and_grads(T, chunk_size, H, with_state):
  inputs = make_inputs(T, H, seed=100 + T, with_state=with_state)
  if not with_state:  # still differentiate with respect to the (zero) initial state
    inputs = (*inputs[:5], jnp.zeros((B, H, K, V)))
  o_ct, s_ct = cotangents(T, H)
  grads_ref, (o_ref, S_ref) = loss_grads(inputs, o_ct, s_ct, "reference", chunk_size)
  grads, (o, S) = loss_grads(inputs, o_ct, s_ct, "chunked", chunk_size)
  assert rel_err(o, o_ref) < F32_TOL
  assert rel_err(S, S_ref) < F32_TOL
  assert_grads_close(grads, grads_ref)


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_bfloat16_inputs(impl):
  inputs = make_inputs(21, H=2, seed=3, dtype=jnp.bfloat16)
  o, S = run(inputs, impl)
  assert o.dtype == jnp.bfloat16 and S.dtype == jnp.float32
  # The oracle is the float32 reference on the same bf16-rounded inputs, upcast. Both sides
  # compute in float32, so the states agree to float32 accuracy. o differs only by its final
  # rounding to bf16: 8 significand bits, at most 2⁻⁸ ≈ 0.4% of |o|. Hence the 1e-2.
  upcast = tuple(None if x is None else x.astype(jnp.float32) for x in inputs)
  o32, S32 = run(upcast, "reference")
  assert rel_err(o.astype(jnp.float32), o32) < 1e-2
  assert rel_err(S, S32) < F32_TOL


def _time_slice(inputs, start, stop, state):
  return (*(x[:, start:stop] for x in inputs[:5]), state)


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_decode_step_equals_last_step_of_long_call(impl):
  T = 13
  inputs = make_inputs(T, H=2, seed=5)
  o_all, S_all = run(inputs, impl)
  _, S_head = run(_time_slice(inputs, 0, T - 1, inputs[5]), impl)
  o_last, S_last = run(_time_slice(inputs, T - 1, T, S_head), impl)
  assert o_last.shape == (B, 1, 2, V)
  assert rel_err(o_last[:, 0], o_all[:, -1]) < F32_TOL
  assert rel_err(S_last, S_all) < F32_TOL


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_split_calls_equal_one_call(impl):
  T, cut = 13, 5  # chunk_size 8: one call is 2 chunks of 7; the parts are 1 chunk each
  inputs = make_inputs(T, H=2, seed=6)
  o_all, S_all = run(inputs, impl)
  o1, S1 = run(_time_slice(inputs, 0, cut, inputs[5]), impl)
  o2, S2 = run(_time_slice(inputs, cut, T, S1), impl)
  assert rel_err(jnp.concatenate([o1, o2], axis=1), o_all) < F32_TOL
  assert rel_err(S2, S_all) < F32_TOL


def _uniform_strong_decay(shape):
  # Chunks of 14 tokens: span log-decays reach −30·13 = −390. Without masking before exp, the
  # upper triangle's exp(+390) = inf would turn the gradients NaN.
  return np.full(shape, -30.0, np.float32)


def _huge_then_mild_decay(shape):
  # One huge decay at each sequence start, then mild ones. Differences of the running sum G
  # lose ~|G|·2⁻²⁴ ≈ 6e-5 here. Segment sums keep float32 accuracy, which the oracle checks.
  g = np.full(shape, -0.01, np.float32)
  g[:, 0] = -1000.0
  return g


@pytest.mark.parametrize("make_g", [_uniform_strong_decay, _huge_then_mild_decay])
def test_extreme_decays(make_g):
  T, H = 40, 1
  q, k, v, _, beta, S0 = make_inputs(T, H, seed=8)
  inputs = (q, k, v, jnp.asarray(make_g(beta.shape)), beta, S0)
  o_ct, s_ct = cotangents(T, H)
  grads_ref, _ = loss_grads(inputs, o_ct, s_ct, "reference", 16)
  grads, (o, S) = loss_grads(inputs, o_ct, s_ct, "chunked", 16)
  o_np, S_np = numpy_oracle(*inputs)
  assert rel_err(o, o_np) < 1e-5
  assert rel_err(S, S_np) < 1e-5
  assert_grads_close(grads, grads_ref)


def test_empty_sequence_returns_initial_state():
  q, k, v, g, beta = (x[:, :0] for x in make_inputs(3, H=1, seed=9)[:5])
  S0 = jnp.ones((B, 1, K, V))
  o, S = gated_delta_rule(q, k, v, g, beta, initial_state=S0, impl="chunked")
  assert o.shape == (B, 0, 1, V)
  np.testing.assert_array_equal(S, S0)


def _args(**changes):
  """Valid float32 arguments [B=2, T=5, H=3, K=4, V=6], with some replaced."""
  args = dict(
    q=np.zeros((2, 5, 3, 4)),
    k=np.zeros((2, 5, 3, 4)),
    v=np.zeros((2, 5, 3, 6)),
    g=np.zeros((2, 5, 3)),
    beta=np.zeros((2, 5, 3)),
  )
  args.update(changes)
  return args


@pytest.mark.parametrize(
  "args,kwargs,match",
  [
    (_args(q=np.zeros((2, 5, 4))), {}, r"q must have rank 4, got rank 3.*q\(2, 5, 4\)"),
    (_args(k=np.zeros((2, 5, 3, 5))), {}, r"q and k must have the same shape.*k\(2, 5, 3, 5\)"),
    (_args(v=np.zeros((2, 4, 3, 6))), {}, r"v must be \[B, T, H, V\].*v\(2, 4, 3, 6\)"),
    (_args(g=np.zeros((2, 5, 2))), {}, r"g and beta must be \[B, T, H\].*g\(2, 5, 2\)"),
    (_args(beta=np.zeros((2, 5, 3, 1))), {}, r"beta must have rank 3, got rank 4"),
    (_args(), {"initial_state": np.zeros((2, 3, 6, 4))}, r"initial_state must be.*\(2, 3, 4, 6\)"),
    (_args(), {"impl": "pallas"}, r"unknown impl 'pallas'"),
    (_args(), {"impl": "chunked", "chunk_size": 0}, r"chunk_size must be a positive int, got 0"),
    (_args(), {"chunk_size": 8.0}, r"chunk_size must be a positive int, got 8.0"),
  ],
)
def test_bad_inputs_raise(args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    gated_delta_rule(**args, **kwargs)
