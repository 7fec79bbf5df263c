"""The Gated DeltaNet mixer: the block whose recurrent state S is sleepnet's fast weights.

Per token, per head (the standard Gated DeltaNet, Yang, Kautz and Hatamizadeh 2024, which the
paper builds its fast weights on):
  q, k = L2norm(SiLU(conv(W_q x))), L2norm(SiLU(conv(W_k x)));  v = SiLU(conv(W_v x))
  beta = sigmoid(w_b x);  g = -exp(A_log) * softplus(w_a x + dt_bias)   (log of the decay)
  S = exp(g) (I - beta k k^T) S + beta k v^T;  o = S^T q
  y = W_o [RMSNorm_head(o) * SiLU(W_gate x)]

Imported models add options (see `ModelConfig`): fewer query/key heads than value heads, each
shared by consecutive value heads; q scaled by 1/sqrt(K); no conv or beta bias; beta scaled.

The fast weights S persist across windows. The convolution's history is per-token context, like
a tiny KV cache: it is cleared at every window boundary, so that after eviction the only path
from an old window to the present is S.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sleepnet import layers
from sleepnet.config import ModelConfig
from sleepnet.recurrence import gated_delta_rule


class GDNState(NamedTuple):
  """State of one GDN block.

  Attributes:
    fast: [B, H, K, V] float32, the fast weights S (kept across windows).
    conv: [B, W - 1, H * (2K + V)], the convolution history (cleared at each window boundary).
  """

  fast: jax.Array
  conv: jax.Array


class GatedDeltaNet(nnx.Module):
  """Gated DeltaNet token mixer (short conv, delta rule with Mamba2-style decay, gated output)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
    d, h, k, v = config.d_model, config.gdn_num_heads, config.gdn_qk_dim, config.value_dim
    hk = config.gdn_num_key_heads
    self.num_heads, self.key_heads, self.key_dim, self.value_dim = h, hk, k, v
    self.impl, self.chunk_size = config.gdn_impl, config.gdn_chunk_size
    self.norm_eps = config.gdn_norm_eps if config.gdn_norm_eps is not None else config.norm_eps
    self.q_scale = 1.0 / math.sqrt(k) if config.gdn_q_scale else None
    self.beta_scale = config.gdn_beta_scale
    channels = hk * 2 * k + h * v
    # One fused projection for q, k and v: a single matmul, split after the convolution.
    mm, pdt = layers.dtypes(config), config.weight_dtype
    self.qkv_proj = nnx.Linear(d, channels, use_bias=False, **mm, rngs=rngs)
    width = config.conv_kernel
    # Start the conv near identity on the current token (last tap), as a short-conv default.
    kernel = jax.random.normal(rngs.params(), (width, channels)) * (1.0 / math.sqrt(width))
    self.conv_kernel = nnx.Param(kernel.at[-1].add(1.0).astype(pdt))
    self.conv_bias = nnx.Param(jnp.zeros((channels,), pdt)) if config.gdn_conv_bias else None
    # The gates run in float32 in any precision: β near 1 and decays near 1 are where the
    # delta rule is most sensitive, and these projections are tiny (D -> H).
    gates = dict(dtype=jnp.float32, param_dtype=pdt)
    self.beta_proj = nnx.Linear(d, h, use_bias=config.gdn_beta_bias, **gates, rngs=rngs)
    self.decay_proj = nnx.Linear(d, h, use_bias=False, **gates, rngs=rngs)
    # Mamba2-style decay: A in [1, 16], dt in [1e-3, 1e-1] log-uniform, dt_bias = softplus^-1(dt).
    a = jax.random.uniform(rngs.params(), (h,), minval=1.0, maxval=16.0)
    self.A_log = nnx.Param(jnp.log(a).astype(pdt))
    dt = jnp.exp(
      jax.random.uniform(rngs.params(), (h,), minval=math.log(1e-3), maxval=math.log(1e-1))
    )
    self.dt_bias = nnx.Param((dt + jnp.log(-jnp.expm1(-dt))).astype(pdt))
    self.out_norm_scale = nnx.Param(jnp.ones((v,), pdt))
    self.gate_proj = nnx.Linear(d, h * v, use_bias=False, **mm, rngs=rngs)
    self.o_proj = nnx.Linear(
      h * v,
      d,
      use_bias=False,
      kernel_init=layers.residual_out_init(config.num_layers),
      **mm,
      rngs=rngs,
    )

  def init_state(self, batch_size: int, capacity: int, fast: jax.Array | None = None) -> GDNState:
    """A window-start state: the given fast weights (zeros if None) and an empty conv history."""
    del capacity  # The conv history has a fixed size; no per-window cache.
    if fast is None:
      fast = jnp.zeros((batch_size, self.num_heads, self.key_dim, self.value_dim), jnp.float32)
    width, channels = self.conv_kernel.shape
    return GDNState(fast, jnp.zeros((batch_size, width - 1, channels), jnp.float32))

  def fast_weights(self, state: GDNState) -> jax.Array:
    """What survives eviction: S."""
    return state.fast

  def __call__(
    self, x: jax.Array, state: GDNState, pos: int | jax.Array
  ) -> tuple[jax.Array, GDNState]:
    """Mixes x [B, T, D] from `state`; returns [B, T, D] and the state after x."""
    del pos  # The recurrence needs no positions.
    b, t, _ = x.shape
    h, hk, kd, vd = self.num_heads, self.key_heads, self.key_dim, self.value_dim
    kernel = self.conv_kernel[...]
    bias = jnp.zeros(kernel.shape[1:], kernel.dtype) if self.conv_bias is None else self.conv_bias
    qkv, conv = layers.causal_depthwise_conv(self.qkv_proj(x), kernel, bias[...], state.conv)
    qkv = jax.nn.silu(qkv)
    q, k, v = jnp.split(qkv, np.cumsum([hk * kd, hk * kd]), axis=-1)
    q = layers.l2_normalize(q.reshape(b, t, hk, kd))
    k = layers.l2_normalize(k.reshape(b, t, hk, kd))
    if hk != h:
      # Value heads h·r .. h·r + r − 1 share query/key head h.
      q, k = jnp.repeat(q, h // hk, axis=2), jnp.repeat(k, h // hk, axis=2)
    if self.q_scale is not None:
      q = q * jnp.asarray(self.q_scale, q.dtype)
    v = v.reshape(b, t, h, vd)
    beta = jax.nn.sigmoid(self.beta_proj(x))  # float32 (see __init__)
    if self.beta_scale != 1:
      beta = beta * self.beta_scale
    dt = jax.nn.softplus(self.decay_proj(x) + self.dt_bias[...].astype(jnp.float32))
    g = -jnp.exp(self.A_log[...].astype(jnp.float32)) * dt  # [B, T, H], <= 0
    o, fast = gated_delta_rule(
      q, k, v, g, beta, initial_state=state.fast, impl=self.impl, chunk_size=self.chunk_size
    )
    o = layers.rms_norm(o, self.out_norm_scale[...], self.norm_eps)
    o = o.reshape(b, t, h * vd) * jax.nn.silu(self.gate_proj(x))
    return self.o_proj(o), GDNState(fast, conv.astype(state.conv.dtype))
