"""Mixture-of-experts MLP (Qwen3-Next's): a softmax router, the top k experts per token, and an
optional shared expert behind a sigmoid gate.

  p = softmax(W_r x);  (w, e) = top_k(p);  w = w / sum(w) (if renormalised)
  y = sum_j w_j SwiGLU_{e_j}(x) + sigmoid(w_s . x) SwiGLU_shared(x)

Dispatch is dense: every expert runs on every token and the routing weights (zero outside the
top k) combine them. That is exact and simple, and costs E / k times the routed compute, which
is right for the small expert counts sleepnet trains and for checking an imported model, not
for serving a many-expert model fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from sleepnet import layers
from sleepnet.config import ModelConfig


class MoE(nnx.Module):
  """The MLP of a mixture-of-experts block (see the module docstring)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
    d, e = config.d_model, config.moe_experts
    f = config.moe_dim if config.moe_dim is not None else config.hidden_dim
    self.top_k, self.renormalise = config.moe_top_k, config.moe_norm_top_k
    dt = layers.dtypes(config)
    self.compute_dtype = config.compute_dtype
    # The router computes in float32: its softmax and top-k decide discrete choices.
    self.router = nnx.Linear(
      d, e, use_bias=False, dtype=jnp.float32, param_dtype=config.weight_dtype, rngs=rngs
    )
    init = nnx.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=0)
    out_init = nnx.initializers.variance_scaling(
      1.0 / (2 * config.num_layers),
      "fan_in",
      "truncated_normal",
      in_axis=1,
      out_axis=2,
      batch_axis=0,
    )
    pdt = config.weight_dtype
    self.experts_gate = nnx.Param(init(rngs.params(), (e, d, f), pdt))
    self.experts_up = nnx.Param(init(rngs.params(), (e, d, f), pdt))
    self.experts_down = nnx.Param(out_init(rngs.params(), (e, f, d), pdt))
    shared = config.moe_shared_dim
    self.shared = (
      layers.SwiGLU(
        d, shared, out_init=layers.residual_out_init(config.num_layers), rngs=rngs, **dt
      )
      if shared
      else None
    )
    self.shared_gate = nnx.Linear(d, 1, use_bias=False, **dt, rngs=rngs) if shared else None

  def routing(self, x: jax.Array) -> jax.Array:
    """Routing weights [..., E]: the top k softmax probabilities, zero elsewhere."""
    probs = jax.nn.softmax(self.router(x.astype(jnp.float32)), axis=-1)
    weights, experts = jax.lax.top_k(probs, self.top_k)
    if self.renormalise:
      weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    onehot = jax.nn.one_hot(experts, probs.shape[-1], dtype=weights.dtype)  # [..., k, E]
    return jnp.einsum("...k,...ke->...e", weights, onehot)

  def __call__(self, x: jax.Array) -> jax.Array:
    cd = self.compute_dtype
    xc = x.astype(cd)
    gate = jnp.einsum("btd,edf->btef", xc, self.experts_gate[...].astype(cd))
    up = jnp.einsum("btd,edf->btef", xc, self.experts_up[...].astype(cd))
    out = jnp.einsum("btef,efd->bted", jax.nn.silu(gate) * up, self.experts_down[...].astype(cd))
    y = jnp.einsum("bte,bted->btd", self.routing(x).astype(cd), out)
    if self.shared is not None:
      y = y + jax.nn.sigmoid(self.shared_gate(xc)) * self.shared(xc)
    return y.astype(x.dtype)
