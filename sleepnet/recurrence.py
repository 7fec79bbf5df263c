r"""The gated delta rule: the fast-weight recurrence of a GDN block (PAPER.md §2.3).

Legend: b batch, t time, h heads, k key dim, v value dim, c chunk length, n number of chunks.
Per batch row and head the state is a matrix S ∈ R^{K×V} (PAPER.md writes its transpose, V×K):

  S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,      o_t = S_tᵀ q_t,      α_t = exp(g_t) ≤ 1.

Nothing is normalised or scaled here: callers L2-normalise q and k.

Two implementations share one entry point, `gated_delta_rule`:

* ``"reference"``: a per-token `lax.scan` of the equation above. It is the oracle and stays as plain as
  possible.
* ``"chunked"``: the chunkwise WY / UT-transform form, where almost all of the work is matrix products.

Derivation of the chunked form. Write the update as a decay plus a rank-one write,

  S_t = α_t S_{t−1} + k_t u_tᵀ,     u_t = β_t (v_t − α_t S_{t−1}ᵀ k_t)                          (1)

(u_t is the regression residual that the delta rule writes). Take one chunk of C tokens, numbered
i = 1..C, that starts from state S_0. Let G_i = g_1 + … + g_i be the cumulative log-decay inside the chunk
and γ_i = exp(G_i). Unrolling (1) gives

  S_i = γ_i S_0 + Σ_{j≤i} exp(G_i − G_j) k_j u_jᵀ.                                             (2)

Substituting (2) for S_{i−1} in the definition of u_i (note α_i γ_{i−1} = γ_i) gives

  u_i + Σ_{j<i} β_i exp(G_i − G_j) (k_iᵀ k_j) u_j = β_i v_i − β_i γ_i S_0ᵀ k_i.

In matrix form, with rows of U, V, K indexed by i and A strictly lower triangular,

  (I + A) U = diag(β) V − diag(βγ) K S_0,       A_ij = β_i exp(G_i − G_j) k_iᵀ k_j   for j < i.

So, with the UT transform T = (I + A)⁻¹, the residuals are U = Ũ − W S_0 with the WY factors

  Ũ = T diag(β) V,      W = T diag(βγ) K,

which do not depend on S_0. From (2), the chunk's outputs and its final state are

  O   = diag(γ) Q S_0 + (Q Kᵀ ⊙ D) U,                  D_ij = exp(G_i − G_j) for j ≤ i, else 0,
  S_C = γ_C S_0 + (diag(exp(G_C − G)) K)ᵀ U.

A `lax.scan` over chunks carries S between chunks. Each step costs a few [C, K]·[K, V] products instead
of C dependent rank-one updates.

Numerics. Every exponent is a difference G_i − G_j with j ≤ i, or G_i itself, so it is ≤ 0 when g ≤ 0. The
differences are masked to 0 above the diagonal *before* `exp`. Otherwise exp(G_i − G_j) for j > i could
overflow to inf, and inf · 0 = NaN would leak into the gradients. T is unit lower triangular and comes from
matrix products only (see `_unit_lower_inverse`), so the solve runs on matmul units.

Chunks are balanced: a length-T input uses n = ⌈T / chunk_size⌉ chunks of ⌈T / n⌉ tokens. The few
(< n) padding steps at the end use g = 0, β = 0 and k = q = v = 0, which are identity steps: they leave S
unchanged and their outputs are dropped.
"""

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_IMPLS = ("reference", "chunked")

# Below this size the unit-lower-triangular inverse uses the nilpotent product directly. Above it, the
# recursive block split is cheaper: O(C³) once instead of O(C³ log C).
_INVERSE_LEAF = 16


def _validate(q, k, v, g, beta, initial_state, impl, chunk_size) -> None:
  """Raises ValueError naming the offending argument and all shapes."""
  shapes = (
    f"q{tuple(q.shape)}, k{tuple(k.shape)}, v{tuple(v.shape)}, g{tuple(g.shape)}, "
    f"beta{tuple(beta.shape)}, initial_state"
    f"{None if initial_state is None else tuple(initial_state.shape)}"
  )
  if impl not in _IMPLS:
    raise ValueError(f"unknown impl {impl!r}; expected one of {_IMPLS}")
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size <= 0:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  for name, x, rank in (("q", q, 4), ("k", k, 4), ("v", v, 4), ("g", g, 3), ("beta", beta, 3)):
    if x.ndim != rank:
      raise ValueError(f"{name} must have rank {rank}, got rank {x.ndim}; shapes: {shapes}")
  if q.shape != k.shape:
    raise ValueError(f"q and k must have the same shape [B, T, H, K]; shapes: {shapes}")
  B, T, H, K = k.shape
  if v.shape[:3] != (B, T, H):
    raise ValueError(f"v must be [B, T, H, V] with [B, T, H] = {(B, T, H)}; shapes: {shapes}")
  if g.shape != (B, T, H) or beta.shape != (B, T, H):
    raise ValueError(f"g and beta must be [B, T, H] = {(B, T, H)}; shapes: {shapes}")
  if initial_state is not None and initial_state.shape != (B, H, K, v.shape[-1]):
    raise ValueError(
      f"initial_state must be [B, H, K, V] = {(B, H, K, v.shape[-1])}; shapes: {shapes}"
    )


def _step(S, q, k, v, g, beta):
  """One token of the recurrence, literally. S [b,h,k,v]; q, k [b,h,k]; v [b,h,v]; g, beta [b,h]."""
  beta = beta[..., None, None]
  kS = jnp.einsum("bhk,bhkv->bhv", k, S)  # k_tᵀ S_{t−1}
  S = jnp.exp(g)[..., None, None] * (S - beta * k[..., :, None] * kS[..., None, :])
  S = S + beta * k[..., :, None] * v[..., None, :]
  return S, jnp.einsum("bhk,bhkv->bhv", q, S)


def _reference(q, k, v, g, beta, S0):
  """Per-token scan; the oracle. Inputs f32 in the public layout, returns (o [b,t,h,v], S)."""
  xs = tuple(jnp.moveaxis(x, 1, 0) for x in (q, k, v, g, beta))  # time-major for scan
  S, o = lax.scan(lambda S, x: _step(S, *x), S0, xs)
  return jnp.moveaxis(o, 0, 1), S


def _nilpotent_inverse(A):
  """(I + A)⁻¹ for strictly lower triangular A [..., c, c], with c matrix products.

  A is nilpotent (A^c = 0), so (I + A)⁻¹ = Σ_m (−A)^m = (I − A)(I + A²)(I + A⁴)⋯. The product stops once
  2^m ≥ c, when every later factor is exactly I.
  """
  c = A.shape[-1]
  N = -A
  inv = jnp.eye(c, dtype=A.dtype) + N
  power, span = N, 2
  while span < c:
    power = power @ power  # N^(2^m)
    inv = inv + inv @ power
    span *= 2
  return inv


def _unit_lower_inverse(A):
  """(I + A)⁻¹ for strictly lower triangular A [..., c, c], using only matrix products.

  This is a recursive 2×2 block inverse: inv([[I+A11, 0], [A21, I+A22]]) = [[T11, 0], [−T22 A21 T11, T22]].
  The two diagonal blocks are stacked on a new batch axis and inverted together, so each level costs two
  half-size products. The leaves use the nilpotent product. We avoid a triangular solve because it is a
  sequential loop on most backends, and because its batched gradient stalled once on this CPU stack.
  """
  c = A.shape[-1]
  if c <= _INVERSE_LEAF or c % 2:
    return _nilpotent_inverse(A)
  h = c // 2
  diag = _unit_lower_inverse(jnp.stack([A[..., :h, :h], A[..., h:, h:]]))
  T11, T22 = diag[0], diag[1]
  T21 = -(T22 @ (A[..., h:, :h] @ T11))
  top = jnp.concatenate([T11, jnp.zeros_like(T11)], axis=-1)
  return jnp.concatenate([top, jnp.concatenate([T21, T22], axis=-1)], axis=-2)


def _chunk_step(S, chunk, incl, strict, not_last):
  """One chunk of the WY form (module docstring). S [b,h,k,v]; chunk fields [b,h,c,·]."""
  q, k, v, g, beta = chunk
  G = jnp.cumsum(g, axis=-1)  # [b,h,c] cumulative log-decay inside the chunk
  # D_ij = exp(G_i − G_j) for j ≤ i. Mask before exp so the upper triangle cannot overflow (see module doc).
  # The diagonal is masked too: D_ii = 1 exactly, and routing it through G_i − G_i would add +x and −x
  # to dL/dG_i in separate sums. Their rounding error (~1e-7 · |x|) then swamps tiny true gradients of
  # g when decays are strong.
  diff = jnp.where(strict, G[..., :, None] - G[..., None, :], 0.0)  # [b,h,c,c]
  D = jnp.where(incl, jnp.exp(diff), 0.0)
  A = jnp.where(strict, beta[..., :, None] * D * jnp.einsum("bhik,bhjk->bhij", k, k), 0.0)
  T = _unit_lower_inverse(A)  # [b,h,c,c] = (I + A)⁻¹
  gamma = jnp.exp(G)  # [b,h,c]
  Tb = T * beta[..., None, :]  # T diag(β)
  U = jnp.einsum("bhij,bhjv->bhiv", Tb, v)  # Ũ
  W = jnp.einsum("bhij,bhjk->bhik", Tb * gamma[..., None, :], k)  # T diag(βγ) K
  U = U - jnp.einsum("bhik,bhkv->bhiv", W, S)  # residuals u_i given S_0
  P = jnp.einsum("bhik,bhjk->bhij", q, k) * D  # causal, decayed q·k
  o = jnp.einsum("bhik,bhkv->bhiv", gamma[..., None] * q, S) + jnp.einsum("bhij,bhjv->bhiv", P, U)
  # Decay from each write to the chunk's end, exactly 1 for the last token (same reason as the diagonal).
  to_end = jnp.where(not_last, G[..., -1:] - G, 0.0)  # [b,h,c]
  k_to_end = jnp.exp(to_end)[..., None] * k
  S = gamma[..., -1, None, None] * S + jnp.einsum("bhik,bhiv->bhkv", k_to_end, U)
  return S, o


def _chunked(q, k, v, g, beta, S0, chunk_size):
  """WY/UT chunkwise form. Inputs f32 in the public layout, returns (o [b,t,h,v], S)."""
  B, T, H, K = k.shape
  V = v.shape[-1]
  n = math.ceil(T / chunk_size)
  c = math.ceil(T / n)  # balanced chunks: fewer than n padding steps instead of up to chunk_size − 1
  pad = n * c - T
  if pad:
    # Identity steps (g = β = 0, k = q = v = 0) leave the state unchanged; their outputs are dropped.
    q, k, v, g, beta = (
      jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)) for x in (q, k, v, g, beta)
    )

  def to_chunks(x):  # [b, n·c, h, ...] -> [n, b, h, c, ...], chunk-major for the scan
    x = x.reshape(B, n, c, H, *x.shape[3:])
    return jnp.moveaxis(jnp.moveaxis(x, 3, 2), 1, 0)

  chunks = tuple(to_chunks(x) for x in (q, k, v, g, beta))
  idx = np.arange(c)
  incl = idx[:, None] >= idx[None, :]  # j ≤ i
  strict = idx[:, None] > idx[None, :]  # j < i
  not_last = idx < c - 1

  # Rematerialising the whole chunk body means the backward pass stores only the [b,h,k,v] carry per
  # chunk instead of every [c,c] and [c,k] intermediate. On CPU it was also faster (less memory
  # traffic): B=4 T=2048 H=4 K=V=64 C=64, fwd+bwd 160 ms / 48 MiB temp, vs 188 ms / 241 MiB without it.
  body = jax.checkpoint(lambda S, x: _chunk_step(S, x, incl, strict, not_last), prevent_cse=False)
  S, o = lax.scan(body, S0, chunks)  # o [n,b,h,c,v]
  o = jnp.moveaxis(o, 0, 1).swapaxes(2, 3).reshape(B, n * c, H, V)
  return o[:, :T], S


def gated_delta_rule(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array,
  beta: jax.Array,
  *,
  initial_state: jax.Array | None = None,
  impl: Literal["reference", "chunked"] = "reference",
  chunk_size: int = 64,
) -> tuple[jax.Array, jax.Array]:
  """Runs the gated delta rule over a sequence (module docstring has the equations).

  Both implementations compute in float32 whatever the input dtype. A length-1 input under
  ``impl="chunked"`` takes the decode path, a single recurrent step. Matrix products use JAX's default
  precision: on accelerators that default may be TF32/bf16 passes, so set
  ``jax_default_matmul_precision="highest"`` where float32-exact agreement matters.

  Args:
    q: queries [B, T, H, K], expected L2-normalised.
    k: keys [B, T, H, K], expected L2-normalised.
    v: values [B, T, H, V].
    g: log-decay [B, T, H]; α = exp(g), so g ≤ 0.
    beta: write strengths [B, T, H], typically in (0, 1).
    initial_state: S_0 [B, H, K, V]; zeros when None.
    impl: ``"reference"`` (per-token scan, the oracle) or ``"chunked"`` (WY form).
    chunk_size: maximum chunk length for ``"chunked"``. The sequence is split into ⌈T / chunk_size⌉
      balanced chunks.

  Returns:
    ``(o, final_state)``: o [B, T, H, V] in v's dtype, final_state [B, H, K, V] in float32.

  Raises:
    ValueError: on wrong ranks, mismatched shapes, an unknown impl or a non-positive chunk_size.
  """
  _validate(q, k, v, g, beta, initial_state, impl, chunk_size)
  B, T, H, K = k.shape
  V = v.shape[-1]
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  S0 = jnp.zeros((B, H, K, V), jnp.float32) if initial_state is None else f32(initial_state)
  if T == 0:
    return jnp.zeros((B, 0, H, V), v.dtype), S0
  args = (f32(q), f32(k), f32(v), f32(g), f32(beta), S0)
  if impl == "reference":
    o, S = _reference(*args)
  elif T == 1:  # decode: one recurrent step, no chunk machinery
    S, o = _step(S0, *(x[:, 0] for x in args[:5]))
    o = o[:, None]
  else:
    o, S = _chunked(*args, chunk_size)
  return o.astype(v.dtype), S
