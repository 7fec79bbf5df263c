"""Pre-norm residual blocks and the registry of temporal mixers.

Every temporal mixer follows one contract, so the model never branches on block kinds:
  - `init_state(batch_size, capacity, fast=None)`: the state at a window start, holding the
    given fast weights (or their zero value) and no per-token context;
  - `__call__(x, state, pos) -> (y, new_state)`: x [B, T, D] are the tokens at window positions
    pos .. pos + T - 1;
  - `fast_weights(state)`: what survives eviction (None for a mixer that keeps nothing).
To add a kind, write a module with these three methods and register it in `MIXERS` (and in
`config.BLOCK_KINDS`); WORKSPACE.md walks through it.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from sleepnet import layers
from sleepnet.attention import WindowAttention
from sleepnet.config import ModelConfig
from sleepnet.gdn import GatedDeltaNet
from sleepnet.moe import MoE

MIXERS: dict[str, type[nnx.Module]] = {"gdn": GatedDeltaNet, "attn": WindowAttention}


class Block(nnx.Module):
  """x + mixer(norm(x)), then h + mlp(norm(h)) (the MLP is skipped when mlp_dim is 0; with
  `moe`, it is a mixture of experts).

  With `config.attn_norm == "post"`, attention blocks compute x + norm(mixer(x)), then
  h + norm(mlp(h)) instead (the same two norms, applied to the branches' outputs).
  """

  def __init__(self, kind: str, config: ModelConfig, *, rngs: nnx.Rngs, moe: bool = False) -> None:
    if kind not in MIXERS:
      raise ValueError(f"Unknown block kind {kind!r}; known: {sorted(MIXERS)}.")
    self.kind = kind
    norm = layers.norm_args(config, rngs)
    # "post": the norms apply to what the mixer and the MLP return (OLMo-Hybrid's attention).
    self.post_norm = kind == "attn" and config.attn_norm == "post"
    self.mixer_norm = layers.RMSNorm(config.d_model, **norm)
    self.mixer = MIXERS[kind](config, rngs=rngs)
    if moe:
      self.mlp_norm = layers.RMSNorm(config.d_model, **norm)
      self.mlp = MoE(config, rngs=rngs)
    elif config.hidden_dim:
      self.mlp_norm = layers.RMSNorm(config.d_model, **norm)
      self.mlp = layers.SwiGLU(
        config.d_model,
        config.hidden_dim,
        out_init=layers.residual_out_init(config.num_layers),
        rngs=rngs,
        **layers.dtypes(config),
      )
    else:
      self.mlp_norm = self.mlp = None

  def init_state(self, batch_size: int, capacity: int, fast: Any = None) -> Any:
    return self.mixer.init_state(batch_size, capacity, fast)

  def fast_weights(self, state: Any) -> Any:
    return self.mixer.fast_weights(state)

  def __call__(self, x: jax.Array, state: Any, pos: int | jax.Array) -> tuple[jax.Array, Any]:
    if self.post_norm:
      y, state = self.mixer(x, state, pos)
      h = x + self.mixer_norm(y)
      if self.mlp is not None:
        h = h + self.mlp_norm(self.mlp(h))
      return h, state
    y, state = self.mixer(self.mixer_norm(x), state, pos)
    h = x + y
    if self.mlp is not None:
      h = h + self.mlp(self.mlp_norm(h))
    return h, state
