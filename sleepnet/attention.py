"""Attention that sees only the current window, with a KV cache of at most one window.

The window boundary is where the KV cache is cleared: nothing of an evicted window survives in
this block. Positions (RoPE) count from the start of the current window, so every window is
treated alike and position values stay small.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from sleepnet import layers
from sleepnet.config import ModelConfig


class KVCache(NamedTuple):
  """Keys and values of the tokens of the current window seen so far.

  Attributes:
    k: [B, C, G, K] keys (after RoPE).
    v: [B, C, G, K] values.
  The number of valid entries is the model-level position in the window.
  """

  k: jax.Array
  v: jax.Array


class WindowAttention(nnx.Module):
  """Multi-head or grouped-query causal attention within the current window, with RoPE.

  Options for imported models (see `ModelConfig`): RMSNorm of queries and keys per head or over
  all heads (`attn_qk_norm`), RoPE on a leading share of each head (`rope_fraction`, 0: none),
  and a sigmoid output gate (`attn_output_gate`).
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
    d, h, g, k = config.d_model, config.num_heads, config.kv_heads, config.key_dim
    self.num_heads, self.kv_heads, self.key_dim = h, g, k
    self.rope_base = config.rope_base
    self.rotary_dim = config.rotary_dim
    self.qk_norm = config.attn_qk_norm
    dt = layers.dtypes(config)
    self.q_proj = nnx.Linear(d, h * k, use_bias=False, **dt, rngs=rngs)
    self.k_proj = nnx.Linear(d, g * k, use_bias=False, **dt, rngs=rngs)
    self.v_proj = nnx.Linear(d, g * k, use_bias=False, **dt, rngs=rngs)
    self.o_proj = nnx.Linear(
      h * k,
      d,
      use_bias=False,
      kernel_init=layers.residual_out_init(config.num_layers),
      **dt,
      rngs=rngs,
    )
    # The options' weights come last, and only when used, so that a config without them has the
    # weights it had before they existed (same seed, same parameters).
    norm = layers.norm_args(config, rngs)
    per_head = config.attn_qk_norm == "head"
    normed = config.attn_qk_norm != "none"
    self.q_norm = layers.RMSNorm(k if per_head else h * k, **norm) if normed else None
    self.k_norm = layers.RMSNorm(k if per_head else g * k, **norm) if normed else None
    self.gate_proj = (
      nnx.Linear(d, h * k, use_bias=False, **dt, rngs=rngs) if config.attn_output_gate else None
    )

  def init_state(self, batch_size: int, capacity: int, fast: None = None) -> KVCache:
    """An empty cache for `capacity` tokens; attention keeps no fast weights."""
    del fast
    shape = (batch_size, capacity, self.kv_heads, self.key_dim)
    return KVCache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))

  def fast_weights(self, state: KVCache) -> None:
    """What survives eviction: nothing."""
    del state
    return None

  def __call__(
    self, x: jax.Array, state: KVCache, pos: int | jax.Array
  ) -> tuple[jax.Array, KVCache]:
    """Attends from the tokens of x to the cached tokens of this window and to themselves.

    Args:
      x: [B, T, D] inputs, the tokens at window positions pos .. pos + T - 1.
      state: the cache, holding the window's first `pos` tokens.
      pos: tokens of the window before x; a Python 0 with T equal to the cache capacity selects
        the plain causal path used for whole windows in training.
    """
    b, t, _ = x.shape
    positions = pos + jnp.arange(t)
    q = self._project(self.q_proj, self.q_norm, x, self.num_heads)
    k = self._project(self.k_proj, self.k_norm, x, self.kv_heads)
    q = layers.rope(q, positions, self.rope_base, self.rotary_dim)
    k = layers.rope(k, positions, self.rope_base, self.rotary_dim)
    v = self.v_proj(x).reshape(b, t, self.kv_heads, self.key_dim)
    capacity = state.k.shape[1]
    if isinstance(pos, int) and pos == 0 and t == capacity:
      # A whole window at once: the cache would hold exactly these keys, so skip writing it.
      out = jax.nn.dot_product_attention(q, k, v, is_causal=True)
      new_state = KVCache(k.astype(state.k.dtype), v.astype(state.v.dtype))
    else:
      start = (0, pos, 0, 0)
      cache_k = jax.lax.dynamic_update_slice(state.k, k.astype(state.k.dtype), start)
      cache_v = jax.lax.dynamic_update_slice(state.v, v.astype(state.v.dtype), start)
      # Query i sits at window position pos + i and may see cache slots 0 .. pos + i.
      mask = jnp.arange(capacity)[None, :] <= positions[:, None]  # [T, C]
      out = jax.nn.dot_product_attention(
        q, cache_k.astype(q.dtype), cache_v.astype(q.dtype), mask=mask[None, None]
      )
      new_state = KVCache(cache_k, cache_v)
    out = out.reshape(b, t, self.num_heads * self.key_dim)
    if self.gate_proj is not None:
      out = out * jax.nn.sigmoid(self.gate_proj(x))
    return self.o_proj(out), new_state

  def _project(
    self, proj: nnx.Linear, norm: layers.RMSNorm | None, x: jax.Array, heads: int
  ) -> jax.Array:
    """Queries or keys [B, T, heads, K], RMS-normalised as `attn_qk_norm` says."""
    b, t, _ = x.shape
    y = proj(x)
    if norm is not None and self.qk_norm == "all":
      y = norm(y)
    y = y.reshape(b, t, heads, self.key_dim)
    if norm is not None and self.qk_norm == "head":
      y = norm(y)
    return y
