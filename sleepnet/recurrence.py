r"""The gated delta rule: the fast-weight recurrence of a GDN block.

Legend: b batch, t time, h heads, k key dim, v value dim, c chunk length, n number of chunks.
Per batch row and head the state is a matrix S ∈ R^{K×V} (the GDN paper writes its
transpose, V×K):

  S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,    o_t = S_tᵀ q_t,    α_t = exp(g_t) ≤ 1.

Nothing is normalised or scaled here: callers L2-normalise q and k.

Two implementations share one entry point, `gated_delta_rule`:

* ``"reference"``: a per-token `lax.scan` of the equation above. It is the oracle and stays
  as plain as possible.
* ``"chunked"``: the chunkwise WY / UT-transform form, where the work is matrix products.

Derivation of the chunked form. Write the update as a decay plus a rank-one write,

  S_t = α_t S_{t−1} + k_t u_tᵀ,    u_t = β_t (v_t − α_t S_{t−1}ᵀ k_t).                  (1)

Here u_t is the regression residual that the delta rule writes. Take one chunk of C tokens,
numbered i = 1..C, that starts from state S_0. Let G_i = g_1 + … + g_i be the cumulative
log-decay inside the chunk and γ_i = exp(G_i). Unrolling (1) gives

  S_i = γ_i S_0 + Σ_{j≤i} exp(G_i − G_j) k_j u_jᵀ.                                     (2)

Substituting (2) for S_{i−1} in the definition of u_i (note α_i γ_{i−1} = γ_i) gives

  u_i + Σ_{j<i} β_i exp(G_i − G_j) (k_iᵀ k_j) u_j = β_i v_i − β_i γ_i S_0ᵀ k_i.

In matrix form, with rows of U, V, K indexed by i and A strictly lower triangular,

  (I + A) U = diag(β) V − diag(βγ) K S_0,    A_ij = β_i exp(G_i − G_j) k_iᵀ k_j  (j < i).

So, with the UT transform T = (I + A)⁻¹, the residuals are U = Ũ − W S_0, where the WY
factors do not depend on S_0:

  Ũ = T diag(β) V,    W = T diag(βγ) K.

From (2), the chunk's outputs and its final state are

  O   = diag(γ) Q S_0 + (Q Kᵀ ⊙ D) U,    D_ij = exp(G_i − G_j) for j ≤ i, else 0,
  S_C = γ_C S_0 + (diag(exp(G_C − G)) K)ᵀ U.

A `lax.scan` over chunks carries S from one chunk to the next. Each step costs a few
[C, K]·[K, V] matrix products instead of C dependent rank-one updates.

Numerics.
* Every exponent is a log-decay over a span of tokens, so it is ≤ 0 when g ≤ 0.
* Decay ratios are masked *before* `exp`. Unmasked, exp(G_i − G_j) for j > i could overflow
  to inf, and inf · 0 = NaN would leak into the gradients.
* The spans G_i − G_j and G_C − G_j are segment sums Σ_{j<m≤i} g_m: per-column cumulative
  sums of the masked log-decays. They equal the differences of the running sum G in exact
  arithmetic, but float32 differences lose |G|·2⁻²⁴ after a strong decay earlier in the chunk.
  One g = −1000 followed by mild decays gave 8e-5 relative error against the reference with
  differences, and 3e-7 with segment sums.
* Differences would also add ±x pairs in the backward pass. Those pairs swamp the tiny true
  gradients of g under strong decay. With segment sums, ratios that are exactly one (D_ii, and
  the last token's decay to the chunk's end) carry no gradient at all.
* T = (I + A)⁻¹ is computed by blocked forward substitution (`_unit_lower_inverse`), which is
  as accurate as the per-token scan for any keys. It must not be a truncated series: keys that
  point the same way with β near 1 (small vocabularies, trained models) make A's powers grow
  combinatorially while T stays small, and an earlier product-of-factors inverse lost every
  digit there (relative error 1e10 at c = 63 on near-parallel keys, β = 0.99, no decay).
* On GPU/TPU, float32 matrix products may run as TF32 or bf16 passes by default, whose short
  mantissas bring the same cancellation back. Every product here therefore asks for
  `MATMUL_PRECISION` (HIGHEST: float32-exact) explicitly, in training, evaluation and decode.

Chunks are balanced: a length-T input uses n = ⌈T / chunk_size⌉ chunks of ⌈T / n⌉ tokens.
The few (< n) padding steps at the end use g = 0, β = 0 and k = q = v = 0. These identity steps
leave S unchanged, and their outputs are dropped.
"""

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_IMPLS = ("reference", "chunked")

# Rows per diagonal block of the blocked forward substitution in `_unit_lower_inverse`: each
# block costs that many dependent row updates, the rest is [16, ·] matrix products.
_INVERSE_BLOCK = 16

# Every product of the recurrence runs at full float32 precision, whatever the global
# `jax_default_matmul_precision`: on GPU/TPU the default lets XLA use TF32 or bf16 passes, and
# their 8–10-bit mantissas cancel in the triangular solve and the state update exactly as the
# old series inverse did (module docstring, Numerics). The rest of the model keeps the
# caller's precision, so mixed-precision training still runs its big matmuls fast.
MATMUL_PRECISION = lax.Precision.HIGHEST
_einsum = functools.partial(jnp.einsum, precision=MATMUL_PRECISION)


def _validate(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array,
  beta: jax.Array,
  initial_state: jax.Array | None,
  impl: str,
  chunk_size: int,
) -> None:
  """Raises ValueError naming the offending argument, with all the shapes."""
  state_shape = None if initial_state is None else tuple(initial_state.shape)
  shapes = (
    f"q{tuple(q.shape)}, k{tuple(k.shape)}, v{tuple(v.shape)}, g{tuple(g.shape)}, "
    f"beta{tuple(beta.shape)}, initial_state{state_shape}"
  )
  if impl not in _IMPLS:
    raise ValueError(f"unknown impl {impl!r}; expected one of {_IMPLS}")
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  if chunk_size <= 0:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  for name, x, rank in (("q", q, 4), ("k", k, 4), ("v", v, 4), ("g", g, 3), ("beta", beta, 3)):
    if x.ndim != rank:
      raise ValueError(f"{name} must have rank {rank}, got rank {x.ndim}; shapes: {shapes}")
  if q.shape != k.shape:
    raise ValueError(f"q and k must have the same shape [B, T, H, K]; shapes: {shapes}")
  B, T, H, K = k.shape
  V = v.shape[-1]
  if v.shape[:3] != (B, T, H):
    raise ValueError(f"v must be [B, T, H, V] with [B, T, H] = {(B, T, H)}; shapes: {shapes}")
  if g.shape != (B, T, H) or beta.shape != (B, T, H):
    raise ValueError(f"g and beta must be [B, T, H] = {(B, T, H)}; shapes: {shapes}")
  if state_shape is not None and state_shape != (B, H, K, V):
    raise ValueError(f"initial_state must be [B, H, K, V] = {(B, H, K, V)}; shapes: {shapes}")


def _step(
  S: jax.Array, q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array, beta: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """One token of the recurrence, literally.

  Args:
    S: state [b, h, k, v].
    q: query [b, h, k].
    k: key [b, h, k].
    v: value [b, h, v].
    g: log-decay [b, h].
    beta: write strength [b, h].

  Returns:
    The new state S_t and the output o_t = S_tᵀ q_t [b, h, v].
  """
  beta = beta[..., None, None]
  kS = _einsum("bhk,bhkv->bhv", k, S)  # k_tᵀ S_{t−1}
  S = jnp.exp(g)[..., None, None] * (S - beta * k[..., :, None] * kS[..., None, :])
  S = S + beta * k[..., :, None] * v[..., None, :]
  return S, _einsum("bhk,bhkv->bhv", q, S)


def _reference(
  q: jax.Array, k: jax.Array, v: jax.Array, g: jax.Array, beta: jax.Array, S0: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The oracle: a scan of `_step` over time. Float32 public layout in; (o, S) out."""
  xs = tuple(jnp.moveaxis(x, 1, 0) for x in (q, k, v, g, beta))  # time-major for the scan
  S, o = lax.scan(lambda S, x: _step(S, *x), S0, xs)
  return jnp.moveaxis(o, 0, 1), S


def _forward_substitution_inverse(A: jax.Array) -> jax.Array:
  """(I + A)⁻¹ for strictly lower triangular A [..., b, b], row by row.

  Row i of T = (I + A)⁻¹ solves T_i = e_i − Σ_{j<i} A_ij T_j, so each row needs only the rows
  above it: b − 1 dependent vector-matrix products. Forward substitution is backward stable: its
  error is bounded by the size of the true inverse, whatever the size of A's powers. (A series
  Σ (−A)^m, evaluated as a product of factors, is not: with near-parallel keys and β ≈ 1 the
  entries of A^m grow like binomial coefficients while T stays small, and float32 cancels.)
  """
  b = A.shape[-1]
  T = jnp.broadcast_to(jnp.eye(b, dtype=A.dtype), A.shape)
  for i in range(1, b):
    # A_ij = 0 for j ≥ i, so the rows of T that are still identity rows do not contribute.
    row = -_einsum("...j,...jm->...m", A[..., i, :], T)
    T = T.at[..., i, :].set(row.at[..., i].add(1.0))
  return T


def _unit_lower_inverse(A: jax.Array) -> jax.Array:
  """(I + A)⁻¹ for strictly lower triangular A [..., c, c], exact up to float rounding.

  Blocked forward substitution, the way chunked linear-attention kernels invert their
  [c, c] systems: the diagonal blocks of `_INVERSE_BLOCK` rows are inverted together by
  `_forward_substitution_inverse` (one batched call), then the block rows below are solved in
  order,

    T_ij = −T_ii Σ_{j≤m<i} A_im T_mj        (blocks; one [b, i·b] · [i·b, i·b] product each),

  which is forward substitution on blocks and inherits its stability. A length that is not a
  multiple of the block is padded with zero rows and columns: the padded system is
  block-diagonal with an identity block, so its inverse restricted to the first c rows and
  columns is exactly T. `lax.linalg.triangular_solve` would do the same work, but its
  gradient on batched inputs was slow to compile on XLA:CPU; products keep it on matmul units.
  """
  c = A.shape[-1]
  bs = _INVERSE_BLOCK
  if c <= bs:
    return _forward_substitution_inverse(A)
  nb = -(-c // bs)
  pad = nb * bs - c
  if pad:
    A = jnp.pad(A, [(0, 0)] * (A.ndim - 2) + [(0, pad), (0, pad)])
  # Diagonal blocks [nb, ..., bs, bs], inverted in one batched call.
  diag = _forward_substitution_inverse(
    jnp.stack([A[..., i * bs : (i + 1) * bs, i * bs : (i + 1) * bs] for i in range(nb)])
  )
  T = diag[0]  # the inverse of the leading i·bs rows and columns, grown one block row at a time
  for i in range(1, nb):
    lo, hi = i * bs, (i + 1) * bs
    below = -_einsum(
      "...ij,...jm->...im", diag[i], _einsum("...ij,...jm->...im", A[..., lo:hi, :lo], T)
    )
    T = jnp.concatenate(
      [
        jnp.concatenate([T, jnp.zeros((*T.shape[:-1], bs), T.dtype)], axis=-1),
        jnp.concatenate([below, diag[i]], axis=-1),
      ],
      axis=-2,
    )
  return T[..., :c, :c]


def _chunk_step(
  S: jax.Array, chunk: tuple[jax.Array, ...], incl: np.ndarray, strict: np.ndarray
) -> tuple[jax.Array, jax.Array]:
  """One chunk of the WY form (module docstring).

  Args:
    S: state at the chunk's start, [b, h, k, v].
    chunk: q, k [b, h, c, k]; v [b, h, c, v]; g, beta [b, h, c].
    incl: [c, c] mask of j ≤ i.
    strict: [c, c] mask of j < i.

  Returns:
    The state at the chunk's end and the chunk's outputs [b, h, c, v].
  """
  q, k, v, g, beta = chunk
  # D_ij = exp(Σ_{j<m≤i} g_m) for j ≤ i, as a segment sum rather than G_i − G_j (see Numerics
  # in the module docstring). Masking g first makes the exponent 0 on and above the diagonal,
  # so exp cannot overflow there; the second mask then zeroes the upper triangle.
  log_decay = jnp.cumsum(jnp.where(strict, g[..., :, None], 0.0), axis=-2)  # [b,h,c,c]
  D = jnp.where(incl, jnp.exp(log_decay), 0.0)
  A = jnp.where(strict, beta[..., :, None] * D * _einsum("bhik,bhjk->bhij", k, k), 0.0)
  T = _unit_lower_inverse(A)  # [b,h,c,c] = (I + A)⁻¹
  gamma = jnp.exp(jnp.cumsum(g, axis=-1))  # [b,h,c] = γ_i
  Tb = T * beta[..., None, :]  # T diag(β)
  U = _einsum("bhij,bhjv->bhiv", Tb, v)  # Ũ
  W = _einsum("bhij,bhjk->bhik", Tb * gamma[..., None, :], k)  # T diag(βγ) K
  U = U - _einsum("bhik,bhkv->bhiv", W, S)  # residuals u_i for this S_0
  P = _einsum("bhik,bhjk->bhij", q, k) * D  # causal, decayed q·k
  o = _einsum("bhik,bhkv->bhiv", gamma[..., None] * q, S)
  o = o + _einsum("bhij,bhjv->bhiv", P, U)
  # Log-decay from each write to the chunk's end, Σ_{m>j} g_m: a segment sum again.
  g_after = jnp.pad(g[..., 1:], [(0, 0)] * (g.ndim - 1) + [(0, 1)])  # g_{j+1}; 0 at the end
  k_to_end = jnp.exp(lax.cumsum(g_after, axis=g.ndim - 1, reverse=True))[..., None] * k
  S = gamma[..., -1, None, None] * S + _einsum("bhik,bhiv->bhkv", k_to_end, U)
  return S, o


def _chunked(
  q: jax.Array,
  k: jax.Array,
  v: jax.Array,
  g: jax.Array,
  beta: jax.Array,
  S0: jax.Array,
  chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
  """The WY/UT chunkwise form. Float32 public layout in; (o, S) out."""
  B, T, H, _ = k.shape
  V = v.shape[-1]
  n = math.ceil(T / chunk_size)
  c = math.ceil(T / n)  # balanced: < n padding steps, not up to chunk_size − 1
  pad = n * c - T
  if pad:
    # Identity steps (g = β = 0, k = q = v = 0) leave S unchanged. Their outputs are dropped.
    q, k, v, g, beta = (
      jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)) for x in (q, k, v, g, beta)
    )

  def to_chunks(x: jax.Array) -> jax.Array:  # [b, n·c, h, ...] -> [n, b, h, c, ...]
    x = x.reshape(B, n, c, H, *x.shape[3:])
    return jnp.moveaxis(jnp.moveaxis(x, 3, 2), 1, 0)

  chunks = tuple(to_chunks(x) for x in (q, k, v, g, beta))
  idx = np.arange(c)
  incl = idx[:, None] >= idx[None, :]
  strict = idx[:, None] > idx[None, :]

  # Remat the chunk body: the backward pass then stores only the [b,h,k,v] carry per chunk,
  # not every [c,c] and [c,k] intermediate, and recomputes one chunk at a time. Measured for
  # fwd+bwd at B=4 T=2048 H=4 K=V=64 C=64 on the 2-core CPU: temp memory 168 -> 38 MiB, time
  # 137-148 -> 100-106 ms (less memory traffic). prevent_cse=False is the recommended setting
  # inside a scan; it made no measurable difference here.
  body = jax.checkpoint(lambda S, x: _chunk_step(S, x, incl, strict), prevent_cse=False)
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
  """Runs the gated delta rule over a sequence (the module docstring has the equations).

  Both implementations cast their inputs to float32 and accumulate in float32. Under
  ``impl="chunked"``, a length-1 input takes the decode path: one recurrent step. Every matrix
  product runs at ``MATMUL_PRECISION`` (float32-exact, also on GPU/TPU, where the default
  precision may use TF32 or bf16 passes).

  Args:
    q: queries [B, T, H, K], expected L2-normalised.
    k: keys [B, T, H, K], expected L2-normalised.
    v: values [B, T, H, V].
    g: log-decay [B, T, H]; the decay is α = exp(g), so g ≤ 0.
    beta: write strengths [B, T, H], usually in (0, 1).
    initial_state: S_0 [B, H, K, V]; zeros when None.
    impl: ``"reference"`` (per-token scan, the oracle) or ``"chunked"`` (the WY form).
    chunk_size: the longest chunk ``"chunked"`` uses. The sequence is split into
      ⌈T / chunk_size⌉ chunks of equal length (the last one padded).

  Returns:
    ``(o, final_state)``: o [B, T, H, V] in v's dtype; final_state [B, H, K, V] in float32.

  Raises:
    ValueError: on wrong ranks, mismatched shapes, an unknown impl or a bad chunk_size.
  """
  _validate(q, k, v, g, beta, initial_state, impl, chunk_size)
  B, T, H, K = k.shape
  V = v.shape[-1]
  if initial_state is None:
    S0 = jnp.zeros((B, H, K, V), jnp.float32)
  else:
    S0 = jnp.asarray(initial_state, jnp.float32)
  if T == 0:
    return jnp.zeros((B, 0, H, V), v.dtype), S0
  xs = tuple(jnp.asarray(x, jnp.float32) for x in (q, k, v, g, beta))
  if impl == "reference":
    o, S = _reference(*xs, S0)
  elif T == 1:  # decode: one recurrent step, none of the chunk machinery
    S, o = _step(S0, *(x[:, 0] for x in xs))
    o = o[:, None]
  else:
    o, S = _chunked(*xs, S0, chunk_size)
  return o.astype(v.dtype), S
