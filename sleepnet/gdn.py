"""The Gated DeltaNet mixer: the block whose recurrent state S is sleepnet's fast weights.

Per token, per head (the standard Gated DeltaNet, Yang, Kautz and Hatamizadeh 2024, which the
paper builds its fast weights on):
  q, k = L2norm(SiLU(conv(W_q x))), L2norm(SiLU(conv(W_k x)));  v = SiLU(conv(W_v x))
  beta = sigmoid(w_b x);  g = -exp(A_log) * softplus(w_a x + dt_bias)   (log of the decay)
  S = exp(g) (I - beta k k^T) S + beta k v^T;  o = S^T q
  y = W_o [RMSNorm_head(o) * SiLU(W_gate x)]

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
    d, h, k, v = config.d_model, config.num_heads, config.key_dim, config.value_dim
    self.num_heads, self.key_dim, self.value_dim = h, k, v
    self.impl, self.chunk_size = config.gdn_impl, config.gdn_chunk_size
    self.norm_eps = config.norm_eps
    channels = h * (2 * k + v)
    # One fused projection for q, k and v: a single matmul, split after the convolution.
    mm, pdt = layers.dtypes(config), config.weight_dtype
    self.qkv_proj = nnx.Linear(d, channels, use_bias=False, **mm, rngs=rngs)
    width = config.conv_kernel
    # Start the conv near identity on the current token (last tap), as a short-conv default.
    kernel = jax.random.normal(rngs.params(), (width, channels)) * (1.0 / math.sqrt(width))
    self.conv_kernel = nnx.Param(kernel.at[-1].add(1.0).astype(pdt))
    self.conv_bias = nnx.Param(jnp.zeros((channels,), pdt))
    # The gates run in float32 in any precision: β near 1 and decays near 1 are where the
    # delta rule is most sensitive, and these projections are tiny (D -> H).
    gates = dict(dtype=jnp.float32, param_dtype=pdt)
    self.beta_proj = nnx.Linear(d, h, use_bias=True, **gates, rngs=rngs)
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
    h, kd, vd = self.num_heads, self.key_dim, self.value_dim
    qkv, conv = layers.causal_depthwise_conv(
      self.qkv_proj(x), self.conv_kernel[...], self.conv_bias[...], state.conv
    )
    qkv = jax.nn.silu(qkv)
    q, k, v = jnp.split(qkv, np.cumsum([h * kd, h * kd]), axis=-1)
    q = layers.l2_normalize(q.reshape(b, t, h, kd))
    k = layers.l2_normalize(k.reshape(b, t, h, kd))
    v = v.reshape(b, t, h, vd)
    beta = jax.nn.sigmoid(self.beta_proj(x))  # float32 (see __init__)
    dt = jax.nn.softplus(self.decay_proj(x) + self.dt_bias[...].astype(jnp.float32))
    g = -jnp.exp(self.A_log[...].astype(jnp.float32)) * dt  # [B, T, H], <= 0
    o, fast = gated_delta_rule(
      q, k, v, g, beta, initial_state=state.fast, impl=self.impl, chunk_size=self.chunk_size
    )
    o = layers.rms_norm(o, self.out_norm_scale[...], self.norm_eps)
    o = o.reshape(b, t, h * vd) * jax.nn.silu(self.gate_proj(x))
    return self.o_proj(o), GDNState(fast, conv.astype(state.conv.dtype))
