"""The chunked gated delta rule on the inputs trained models produce, against a float64 loop.

Random Gaussian keys are nearly orthogonal, and then almost any chunked form looks right. What
breaks a chunked form is the opposite: keys inside a chunk that point the same way (a small
vocabulary, a trained model's keys), write strengths β near 1 and little decay. Then the
chunk's triangular system I + A has entries near 1 below the diagonal, A's powers grow like
binomial coefficients, and any series or product expansion of (I + A)⁻¹ cancels to nothing in
float32, while the true inverse, and the recurrence, stay small. An earlier product-form inverse
was off by 1e10 (relative) at T = 63 on exactly these inputs, and by 3e-4 even at T = 64.

Every case here compares `impl="chunked"` (float32) with a per-token scan in float64: outputs,
final state, and the gradients of a random scalar loss with respect to all six inputs, within
1e-4 relative (max |error| / max |oracle|). Each batch row is one adversarial family, so each
length compiles once:

  row 0  near-parallel keys (one shared direction + 5% noise), β ∈ [0.95, 1), no decay
  row 1  the same keys, β ∈ [0.95, 1), mild decay (α ∈ [0.95, 1])
  row 2  keys from a 3-token vocabulary of correlated embeddings, β ∈ [0.95, 1), no decay but
         a strong one (α = e⁻⁵) every 7th token
  row 3  keys from a 2-token vocabulary (exact repeats), β ∈ [0.95, 1), decay from none to
         strong (g ∈ [−3, 0])

Lengths cover 1 to 130 at every chunk size the package and its tests use: each side of every
multiple of the 16-row inversion block and of the chunk size, the odd lengths that windows of
L − 1 tokens give (33, 63, 127), and three-chunk inputs. A property-based test then draws
lengths, chunk sizes and family parameters at random.
"""

import functools

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxpr_tools import dot_generals

from sleepnet import recurrence
from sleepnet.recurrence import gated_delta_rule

H, K, V = 2, 8, 3
TOL = 1e-4
NAMES = ("o", "final_state", "dq", "dk", "dv", "dg", "dbeta", "dS0")


pytestmark = pytest.mark.usefixtures("not_into_the_persistent_cache")


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def adversarial_inputs(T, *, seed=0, noise=0.05, beta_min=0.95, decay=1.0):
  """One batch row per family (module docstring), float64 numpy: (q, k, v, g, beta, S0)."""
  rng = np.random.default_rng(seed)
  shared = rng.standard_normal((H, K))  # one direction per head
  near_parallel = _unit(shared + noise * np.linalg.norm(shared) * rng.standard_normal((T, H, K)))
  vocab3 = _unit(shared + 0.3 * rng.standard_normal((3, H, K)))
  vocab2 = _unit(rng.standard_normal((2, H, K)))
  keys = np.stack(
    [
      near_parallel,
      near_parallel,
      vocab3[rng.integers(0, 3, (T, 1)), np.arange(H)[None, :]],
      vocab2[rng.integers(0, 2, (T, 1)), np.arange(H)[None, :]],
    ]
  )
  # Queries from the same families: q·k is then near 1 everywhere, the worst case for P = QKᵀ.
  queries = _unit(keys + 0.1 * rng.standard_normal(keys.shape))
  b = keys.shape[0]
  g = np.zeros((b, T, H))
  g[1] = -decay * rng.uniform(0.0, 0.05, (T, H))
  g[2, ::7] = -5.0 * decay
  g[3] = -decay * rng.uniform(0.0, 3.0, (T, H))
  beta = rng.uniform(beta_min, 1.0, (b, T, H))
  v = rng.standard_normal((b, T, H, V))
  S0 = 0.5 * rng.standard_normal((b, H, K, V))
  return queries, keys, v, g, beta, S0


def cotangents(shape_o, shape_s, seed=1):
  rng = np.random.default_rng(seed)
  return rng.standard_normal(shape_o), rng.standard_normal(shape_s)


def _loss(o, S, o_ct, s_ct):
  return jnp.sum(o * o_ct) + jnp.sum(S * s_ct)


@jax.jit
def _oracle64(inputs, o_ct, s_ct):
  """The per-token recurrence, literally, and its gradients; traced under x64 (float64)."""

  def run(q, k, v, g, beta, S):
    def step(S, x):
      qt, kt, vt, gt, bt = x
      kS = jnp.einsum("bhk,bhkv->bhv", kt, S)
      S = jnp.exp(gt)[..., None, None] * (
        S - bt[..., None, None] * kt[..., :, None] * kS[..., None, :]
      )
      S = S + bt[..., None, None] * kt[..., :, None] * vt[..., None, :]
      return S, jnp.einsum("bhk,bhkv->bhv", qt, S)

    xs = tuple(jnp.moveaxis(x, 1, 0) for x in (q, k, v, g, beta))
    S, o = jax.lax.scan(step, S, xs)
    o = jnp.moveaxis(o, 0, 1)
    return _loss(o, S, o_ct, s_ct), (o, S)

  return jax.grad(run, argnums=tuple(range(6)), has_aux=True)(*inputs)


def oracle(inputs, o_ct, s_ct):
  with jax.enable_x64(True):
    grads, (o, S) = _oracle64(
      tuple(jnp.asarray(x, jnp.float64) for x in inputs),
      jnp.asarray(o_ct, jnp.float64),
      jnp.asarray(s_ct, jnp.float64),
    )
    return [np.asarray(x) for x in (o, S, *grads)]


@functools.partial(jax.jit, static_argnames=("impl", "chunk_size"))
def _float32(inputs, o_ct, s_ct, impl, chunk_size):
  def run(q, k, v, g, beta, S0):
    o, S = gated_delta_rule(q, k, v, g, beta, initial_state=S0, impl=impl, chunk_size=chunk_size)
    return _loss(o, S, o_ct, s_ct), (o, S)

  return jax.grad(run, argnums=tuple(range(6)), has_aux=True)(*inputs)


def float32_run(inputs, o_ct, s_ct, impl, chunk_size):
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  grads, (o, S) = _float32(tuple(map(f32, inputs)), f32(o_ct), f32(s_ct), impl, chunk_size)
  return [np.asarray(x) for x in (o, S, *grads)]


def errors(T, chunk_size, impl="chunked", **family):
  inputs = adversarial_inputs(T, **family)
  o_ct, s_ct = cotangents(inputs[2].shape, inputs[5].shape)
  got = float32_run(inputs, o_ct, s_ct, impl, chunk_size)
  want = oracle(inputs, o_ct, s_ct)
  return {name: rel_err(a, b) for name, a, b in zip(NAMES, got, want, strict=True)}


def assert_close(errs, context):
  bad = {name: f"{e:.1e}" for name, e in errs.items() if not e < TOL}
  assert not bad, f"{context}: relative error above {TOL:g}: {bad}"


# (T, chunk_size). 64 is the models' default chunk; 8, 16 and 32 appear in tests and benches.
EDGE_CASES = [
  *((T, 64) for T in (1, 2, 3, 15, 16, 17, 31, 33, 47, 50, 63, 64, 65, 97, 127, 128, 129, 130)),
  *((T, 8) for T in (7, 9, 63, 130)),
  *((T, 16) for T in (17, 33, 63, 130)),
  *((T, 32) for T in (33, 63, 95, 130)),
]


@pytest.mark.parametrize("T,chunk_size", EDGE_CASES)
def test_chunked_matches_float64_loop_on_adversarial_inputs(T, chunk_size):
  assert_close(errors(T, chunk_size), f"T={T} chunk_size={chunk_size}")


def test_reference_scan_is_itself_accurate_on_adversarial_inputs():
  # The float32 per-token scan is the other oracle of the package (model tests compare against
  # it), so it must pass the same bar on the same inputs.
  assert_close(errors(63, 64, impl="reference"), "reference T=63")


@hypothesis.settings(max_examples=12, deadline=None, derandomize=True, database=None)
@hypothesis.given(
  T=st.integers(1, 130),
  chunk_size=st.sampled_from([8, 16, 32, 64]),
  seed=st.integers(0, 2**16),
  noise=st.floats(0.0, 0.2),
  beta_min=st.floats(0.9, 0.999),
  decay=st.floats(0.0, 2.0),
)
def test_chunked_matches_float64_loop_property(T, chunk_size, seed, noise, beta_min, decay):
  errs = errors(T, chunk_size, seed=seed, noise=noise, beta_min=beta_min, decay=decay)
  assert_close(errs, f"T={T} chunk_size={chunk_size} seed={seed}")


@pytest.mark.parametrize("c", [1, 5, 16, 17, 40, 63, 64, 100])
def test_unit_lower_inverse_against_numpy(c):
  # The hardest triangular system of the chunked form: every entry below the diagonal is 0.999
  # (parallel keys, β = 0.999, no decay). A's powers reach C(c, c/2) ≈ 1e29 at c = 100; the
  # inverse itself stays within [−1, 1].
  A = np.tril(np.full((c, c), 0.999), -1)
  want = np.linalg.inv(np.eye(c) + A)
  got = np.asarray(recurrence._unit_lower_inverse(jnp.asarray(A, jnp.float32)[None]))[0]
  assert rel_err(got, want) < 1e-5


def test_every_product_asks_for_float32_exact_precision():
  # On GPU/TPU the default matmul precision may be TF32 or bf16, which cancels in the same way
  # as the old series inverse. The recurrence asks for HIGHEST on every dot_general itself;
  # on CPU the setting is visible in the traced program even though CPU ignores it.
  x = adversarial_inputs(20)

  def fwd_bwd(*args):
    def loss(*a):
      o, S = gated_delta_rule(*a[:5], initial_state=a[5], impl="chunked", chunk_size=8)
      return jnp.sum(o) + jnp.sum(S)

    return jax.grad(loss, argnums=tuple(range(6)))(*args)

  with jax.default_matmul_precision("bfloat16"):  # what a fast-matmul caller might set
    precisions = [p for _, p in dot_generals(fwd_bwd, *(jnp.asarray(a, jnp.float32) for a in x))]
  assert len(precisions) > 10  # the forward and backward products of a chunk, inside the scan
  highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
  assert all(p == highest for p in precisions), set(precisions)
