"""Small building blocks: RMSNorm, SwiGLU, RoPE and the causal depthwise convolution.

Dimension legend used in shape comments across sleepnet:
  B batch, T time (tokens in the current call), L window, C cache capacity, D model width,
  H heads, G key/value heads, K key width, V value width, F MLP hidden width, W conv kernel.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sleepnet.config import ModelConfig


def dtypes(config: ModelConfig) -> dict[str, jnp.dtype]:
  """`nnx.Linear`/`nnx.Embed` keyword arguments for a config's compute and parameter dtypes."""
  return {"dtype": config.compute_dtype, "param_dtype": config.weight_dtype}


def norm_args(config: ModelConfig, rngs: nnx.Rngs) -> dict[str, Any]:
  """`RMSNorm` keyword arguments of a config's norms (all but the GDN output norm)."""
  return dict(
    eps=config.norm_eps, param_dtype=config.weight_dtype, offset=config.norm_offset, rngs=rngs
  )


def rms_norm(x: jax.Array, scale: jax.Array, eps: float, offset: bool = False) -> jax.Array:
  """RMSNorm over the last axis, computed in float32 and cast back to x's dtype.

  `offset`: scale by (1 + scale) instead of scale (the form Qwen3-Next and Qwen3.5 store).
  """
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  w = scale.astype(jnp.float32)
  return (y * (1.0 + w if offset else w)).astype(x.dtype)


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Scales the last axis to unit L2 norm (the GDN keys and queries)."""
  x32 = x.astype(jnp.float32)
  return (x32 * jax.lax.rsqrt(jnp.sum(x32 * x32, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def rope(
  x: jax.Array, positions: jax.Array, base: float, rotary_dim: int | None = None
) -> jax.Array:
  """Rotary position embedding, rotating feature pairs (i, i + R/2) of the first R features.

  Args:
    x: [B, T, H, K] queries or keys.
    positions: [T] integer positions (position within the current window).
    base: frequency base.
    rotary_dim: R, the features that rotate (None: all K; 0: none); the rest pass through.
  """
  r = x.shape[-1] if rotary_dim is None else rotary_dim
  if r == 0:
    return x
  half = r // 2
  freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)  # [R/2]
  angles = positions.astype(jnp.float32)[:, None] * freqs  # [T, R/2]
  sin = jnp.sin(angles)[None, :, None, :]
  cos = jnp.cos(angles)[None, :, None, :]
  x32 = x.astype(jnp.float32)
  x1, x2 = x32[..., :half], x32[..., half:r]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x32[..., r:]], axis=-1)
  return out.astype(x.dtype)


def causal_depthwise_conv(
  x: jax.Array, kernel: jax.Array, bias: jax.Array, history: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Causal depthwise 1-D convolution that streams: history in, history out.

  Output t is sum_j kernel[j] * z[t + j] over the concatenation z = [history; x], so the last
  tap sees the current token. Feeding a sequence in pieces, passing the returned history on,
  gives the same output as one call.

  Args:
    x: [B, T, C] input channels.
    kernel: [W, C] per-channel taps.
    bias: [C].
    history: [B, W - 1, C], the W - 1 inputs before x (zeros at a window start).

  Returns:
    y: [B, T, C]; new_history: [B, W - 1, C], the last W - 1 inputs.
  """
  width = kernel.shape[0]
  t = x.shape[1]
  z = jnp.concatenate([history.astype(x.dtype), x], axis=1)  # [B, W - 1 + T, C]
  # W is small (4): a sum of shifted slices is cheaper and clearer than a general conv op.
  kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)  # no promotion out of bf16
  y = sum(z[:, j : j + t] * kernel[j] for j in range(width)) + bias
  return y, z[:, t:]


def residual_out_init(num_layers: int) -> nnx.Initializer:
  """Initialiser of the projections that write into the residual stream.

  Scaled by 1 / sqrt(2 * num_layers) (two branches per block) so that, with unit-scale
  embeddings, the stream stays near unit RMS and each block is a small perturbation of the
  identity. This matters more here than in a feed-forward LM: "hidden" sleep passes feed the top
  of the network back into its bottom, and at the default scale that loop amplifies rounding
  differences by orders of magnitude per window (measured; see tests/model_test.py).
  """
  return nnx.initializers.variance_scaling(1.0 / (2 * num_layers), "fan_in", "truncated_normal")


class RMSNorm(nnx.Module):
  """RMSNorm with a learned per-feature scale: w (initialised to one) or, with `offset`, 1 + w
  (w initialised to zero)."""

  def __init__(
    self,
    dim: int,
    *,
    eps: float,
    rngs: nnx.Rngs,
    param_dtype: jnp.dtype = jnp.float32,
    offset: bool = False,
  ) -> None:
    del rngs  # Deterministic initialisation; the argument keeps the constructor uniform.
    self.scale = nnx.Param((jnp.zeros if offset else jnp.ones)((dim,), param_dtype))
    self.eps = eps
    self.offset = offset

  def __call__(self, x: jax.Array) -> jax.Array:
    return rms_norm(x, self.scale[...], self.eps, self.offset)


class SwiGLU(nnx.Module):
  """The MLP of every block: down(silu(gate(x)) * up(x))."""

  def __init__(
    self,
    d_model: int,
    hidden: int,
    *,
    out_init: nnx.Initializer,
    rngs: nnx.Rngs,
    dtype: jnp.dtype = jnp.float32,
    param_dtype: jnp.dtype = jnp.float32,
  ) -> None:
    dt = {"dtype": dtype, "param_dtype": param_dtype}
    self.gate = nnx.Linear(d_model, hidden, use_bias=False, **dt, rngs=rngs)
    self.up = nnx.Linear(d_model, hidden, use_bias=False, **dt, rngs=rngs)
    self.down = nnx.Linear(hidden, d_model, use_bias=False, kernel_init=out_init, **dt, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down(jax.nn.silu(self.gate(x)) * self.up(x))
