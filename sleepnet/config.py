"""The model configuration: one frozen, typed dataclass and a few named presets.

`ModelConfig` is the only thing that crosses from an experiment config into the library. It is
immutable (so it can be a static argument of `jax.jit`) and validated on construction, so a bad
value fails at the point where it is written, with a message that names it.

Sleep convention: `sleep_passes` = N counts *every* pass over a window, the wake pass included.
N = 1 is the plain hybrid (no sleep); N = 4 is one wake pass plus three offline passes made when
the window is evicted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import jax.numpy as jnp

BLOCK_KINDS = ("gdn", "attn")
SLEEP_INPUTS = ("hidden", "tokens")
SLEEP_STARTS = ("carry", "fresh")
GDN_IMPLS = ("chunked", "reference")
POSITION_EMBEDDINGS = ("none", "window")
DTYPES = ("float32", "bfloat16")
ATTN_NORMS = ("pre", "post")
QK_NORMS = ("none", "head", "all")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
  """Hyperparameters of a sleepnet language model.

  Attributes:
    vocab_size: number of token ids.
    d_model: width of the residual stream.
    num_heads: attention heads, and GDN heads.
    blocks: the block pattern, one kind per layer: "gdn" (Gated DeltaNet, carries fast weights
      across windows) or "attn" (attention within the current window). Each block is a
      pre-norm residual mixer followed by a pre-norm residual SwiGLU MLP.
    window: L, the attention window and KV-cache size in tokens. The sequence is processed in
      windows of L tokens; at each window boundary the KV cache is cleared (after sleeping).
      None means no eviction: one window spanning the whole sequence (up to `max_len`).
    sleep_passes: N, the number of passes over each evicted window, wake pass included
      (N = 1: no sleep).
    sleep_input: what sleep passes 2..N read. "hidden": the window's token embeddings plus a
      learned injection of the previous pass's top hidden states (recurrent depth, so passes
      compose computation). "tokens": the raw token embeddings again.
    sleep_start: where each sleep pass starts. "carry": from the fast weights the previous
      pass left. "fresh": every pass rewrites from the fast weights before the window.
    sleep_final_window: whether the final window of a sequence also sleeps (it changes only the
      returned state, never the logits).
    num_kv_heads: key/value heads of attention (grouped-query when < num_heads); None means
      num_heads.
    head_dim: per-head width of attention and of GDN keys; None means d_model // num_heads.
    gdn_value_dim: per-head width of GDN values; None means head_dim.
    mlp_dim: hidden width of the SwiGLU MLPs; None means 4 * d_model; 0 disables the MLPs.
    conv_kernel: width of the GDN's causal depthwise convolution.
    rope_base: RoPE frequency base.
    position_embedding: absolute positions added to the token embeddings. "none": the model
      sees positions only through RoPE (attention) and the GDN convolution. "window": a learned
      embedding of each token's position within its window (0 .. L-1, the same table in every
      window; the absolute position when `window` is None), so that GDN keys can address a
      position of an evicted window directly (the Rule 110 scales train with it: see
      `probe_positions.sh` in scripts/studies.py).
    norm_eps: epsilon of every RMSNorm.
    max_len: KV-cache capacity for streaming when `window` is None.
    gdn_impl: "chunked" (matmul form, for training) or "reference" (per-token scan).
    gdn_chunk_size: chunk length of the chunked delta rule.
    remat: wrap every window pass in `jax.checkpoint`, so activation memory grows with the
      number of passes only by the checkpointed carries.
    tie_embeddings: use the embedding matrix as the LM head.
    dtype: the dtype of matrix products and activations, "float32" or "bfloat16" (mixed
      precision). Whatever it is, the GDN fast weights and the recurrence's accumulations, the
      write-strength and decay gates, normalisation statistics, the logits and the loss stay
      float32.
    param_dtype: the dtype parameters (and so the optimizer's moments) are stored in;
      "float32" for training, also in mixed precision.

  Layer options of imported pretrained hybrids (`sleepnet.pretrained`); their defaults are
  sleepnet's own layers, so a config that does not name them builds the same model:
    norm_offset: every RMSNorm but the GDN output norm scales by (1 + w), w initialised to 0
      (Qwen3-Next, Qwen3.5), instead of by w initialised to 1.
    attn_norm: "pre" (x + mixer(norm(x)), h + mlp(norm(h))) or "post" (x + norm(mixer(x)),
      h + norm(mlp(h))) for attention blocks (OLMo-Hybrid); GDN blocks are always pre-norm.
    attn_qk_norm: RMSNorm of attention queries and keys before RoPE: "none", "head" (over each
      head's features) or "all" (over all heads' features at once).
    attn_output_gate: attention output times sigmoid(W_gate x), per feature, before o_proj.
    rope_fraction: the share of each attention head's features that RoPE rotates (the first
      ones, rotate-half pairs within them); 0 means no positions in attention (NoPE).
    gdn_heads: GDN value heads, which the fast weights have; None means num_heads.
    gdn_key_heads: GDN query/key heads, each shared by gdn_heads / gdn_key_heads consecutive
      value heads; None means gdn_heads.
    gdn_key_dim: per-head width of GDN queries and keys; None means the attention head_dim.
    gdn_q_scale: scale L2-normalised GDN queries by 1/sqrt(gdn_key_dim).
    gdn_conv_bias: the GDN convolution has a bias.
    gdn_beta_bias: the GDN write strength's projection has a bias.
    gdn_beta_scale: beta = gdn_beta_scale * sigmoid(w_b x); 2 lets the delta rule's transition
      I - beta k k^T have a negative eigenvalue (OLMo-Hybrid).
    gdn_norm_eps: epsilon of the GDN output norm; None means norm_eps.
    moe_experts: experts of mixture-of-experts MLPs (Qwen3-Next); 0 means dense SwiGLU MLPs.
    moe_top_k: experts each token is routed to (softmax router, top k).
    moe_dim: hidden width of each expert's SwiGLU; None means the dense mlp_dim.
    moe_shared_dim: hidden width of a shared expert every token uses, scaled by a sigmoid gate
      of its own; 0 means none.
    moe_norm_top_k: renormalise the k routing weights to sum to one.
    moe_layers: which layers have mixture-of-experts MLPs (one bool per block); None means
      all of them when moe_experts > 0.
  """

  vocab_size: int
  d_model: int = 64
  num_heads: int = 4
  blocks: tuple[str, ...] = ("gdn", "attn", "gdn", "attn")
  window: int | None = 32
  sleep_passes: int = 1
  sleep_input: Literal["hidden", "tokens"] = "hidden"
  sleep_start: Literal["carry", "fresh"] = "carry"
  sleep_final_window: bool = False
  num_kv_heads: int | None = None
  head_dim: int | None = None
  gdn_value_dim: int | None = None
  mlp_dim: int | None = None
  conv_kernel: int = 4
  rope_base: float = 10_000.0
  position_embedding: Literal["none", "window"] = "none"
  norm_eps: float = 1e-6
  max_len: int = 4096
  gdn_impl: Literal["chunked", "reference"] = "chunked"
  gdn_chunk_size: int = 64
  remat: bool = True
  tie_embeddings: bool = False
  dtype: Literal["float32", "bfloat16"] = "float32"
  param_dtype: Literal["float32", "bfloat16"] = "float32"
  norm_offset: bool = False
  attn_norm: Literal["pre", "post"] = "pre"
  attn_qk_norm: Literal["none", "head", "all"] = "none"
  attn_output_gate: bool = False
  rope_fraction: float = 1.0
  gdn_heads: int | None = None
  gdn_key_heads: int | None = None
  gdn_key_dim: int | None = None
  gdn_q_scale: bool = False
  gdn_conv_bias: bool = True
  gdn_beta_bias: bool = True
  gdn_beta_scale: float = 1.0
  gdn_norm_eps: float | None = None
  moe_experts: int = 0
  moe_top_k: int = 1
  moe_dim: int | None = None
  moe_shared_dim: int = 0
  moe_norm_top_k: bool = True
  moe_layers: tuple[bool, ...] | None = None

  def __post_init__(self) -> None:
    # Lists (from JSON or ml_collections) become tuples so the config stays hashable.
    if not isinstance(self.blocks, tuple):
      object.__setattr__(self, "blocks", tuple(self.blocks))
    if self.moe_layers is not None and not isinstance(self.moe_layers, tuple):
      object.__setattr__(self, "moe_layers", tuple(self.moe_layers))
    _positive(self, "vocab_size", "d_model", "num_heads", "sleep_passes", "conv_kernel")
    _positive(self, "max_len", "gdn_chunk_size")
    if not self.blocks:
      raise ValueError("ModelConfig.blocks is empty: give at least one block kind.")
    for kind in self.blocks:
      if kind not in BLOCK_KINDS:
        raise ValueError(f"ModelConfig.blocks: unknown block kind {kind!r}; known: {BLOCK_KINDS}.")
    # Optional sizes: None derives them (see the properties below), anything else must be a size.
    _positive(self, *(n for n in _OPTIONAL_SIZES if getattr(self, n) is not None))
    for name in ("rope_base", "norm_eps"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"ModelConfig.{name} must be a positive number, got {value!r}.")
    bools = ("sleep_final_window", "remat", "tie_embeddings", "norm_offset", "attn_output_gate")
    for name in (*bools, "gdn_q_scale", "gdn_conv_bias", "gdn_beta_bias", "moe_norm_top_k"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"ModelConfig.{name} must be True or False, got {getattr(self, name)!r}.")
    _choice(self, "sleep_input", SLEEP_INPUTS)
    _choice(self, "sleep_start", SLEEP_STARTS)
    _choice(self, "gdn_impl", GDN_IMPLS)
    _choice(self, "dtype", DTYPES)
    _choice(self, "param_dtype", DTYPES)
    _choice(self, "position_embedding", POSITION_EMBEDDINGS)
    _choice(self, "attn_norm", ATTN_NORMS)
    _choice(self, "attn_qk_norm", QK_NORMS)
    for name in ("gdn_beta_scale", "gdn_norm_eps"):
      value = getattr(self, name)
      if value is None and name == "gdn_norm_eps":
        continue
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"ModelConfig.{name} must be a positive number, got {value!r}.")
    self._check_moe()
    fraction = self.rope_fraction
    if (
      isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1
    ):
      raise ValueError(f"ModelConfig.rope_fraction must lie in [0, 1], got {fraction!r}.")
    if self.head_dim is None and self.d_model % self.num_heads:
      raise ValueError(
        f"ModelConfig: d_model={self.d_model} is not divisible by num_heads={self.num_heads}; "
        "set head_dim explicitly."
      )
    if self.kv_heads < 1 or self.num_heads % self.kv_heads:
      raise ValueError(
        f"ModelConfig: num_heads={self.num_heads} must be a multiple of "
        f"num_kv_heads={self.kv_heads}."
      )
    if self.rotary_dim % 2 and "attn" in self.blocks:
      raise ValueError(
        f"ModelConfig: RoPE needs an even number of rotated features, got {self.rotary_dim} "
        f"(head_dim={self.key_dim} x rope_fraction={self.rope_fraction})."
      )
    if self.gdn_num_heads % self.gdn_num_key_heads:
      raise ValueError(
        f"ModelConfig: gdn_heads={self.gdn_num_heads} must be a multiple of "
        f"gdn_key_heads={self.gdn_num_key_heads}."
      )
    if self.mlp_dim is not None and self.mlp_dim < 0:
      raise ValueError(f"ModelConfig.mlp_dim must be >= 0 or None, got {self.mlp_dim}.")

  def _check_moe(self) -> None:
    for name in ("moe_experts", "moe_shared_dim"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"ModelConfig.{name} must be an integer >= 0, got {value!r}.")
    if not self.moe_experts:
      if self.moe_layers is not None and any(self.moe_layers):
        raise ValueError("ModelConfig.moe_layers marks layers, but moe_experts is 0.")
      return
    _positive(self, "moe_top_k", *(["moe_dim"] if self.moe_dim is not None else []))
    if self.moe_top_k > self.moe_experts:
      raise ValueError(
        f"ModelConfig: moe_top_k={self.moe_top_k} exceeds moe_experts={self.moe_experts}."
      )
    if self.moe_layers is not None and len(self.moe_layers) != len(self.blocks):
      raise ValueError(
        f"ModelConfig.moe_layers has {len(self.moe_layers)} entries for {len(self.blocks)} blocks."
      )

  def is_moe(self, layer: int) -> bool:
    """Whether block `layer` has a mixture-of-experts MLP."""
    if not self.moe_experts:
      return False
    return self.moe_layers is None or bool(self.moe_layers[layer])

  # Derived sizes: properties, so they can never disagree with the fields they come from.
  @property
  def key_dim(self) -> int:
    return self.head_dim if self.head_dim is not None else self.d_model // self.num_heads

  @property
  def rotary_dim(self) -> int:
    """Features of each attention head that RoPE rotates."""
    return int(self.key_dim * self.rope_fraction)

  @property
  def gdn_num_heads(self) -> int:
    """GDN value heads (the fast weights' heads)."""
    return self.gdn_heads if self.gdn_heads is not None else self.num_heads

  @property
  def gdn_num_key_heads(self) -> int:
    return self.gdn_key_heads if self.gdn_key_heads is not None else self.gdn_num_heads

  @property
  def gdn_qk_dim(self) -> int:
    """Per-head width of GDN queries and keys (the fast weights' rows)."""
    return self.gdn_key_dim if self.gdn_key_dim is not None else self.key_dim

  @property
  def value_dim(self) -> int:
    return self.gdn_value_dim if self.gdn_value_dim is not None else self.key_dim

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

  @property
  def hidden_dim(self) -> int:
    return 4 * self.d_model if self.mlp_dim is None else self.mlp_dim

  @property
  def num_layers(self) -> int:
    return len(self.blocks)

  @property
  def has_fast_weights(self) -> bool:
    return "gdn" in self.blocks

  @property
  def compute_dtype(self) -> jnp.dtype:
    """`dtype` as a JAX dtype."""
    return jnp.dtype(self.dtype)

  @property
  def weight_dtype(self) -> jnp.dtype:
    """`param_dtype` as a JAX dtype."""
    return jnp.dtype(self.param_dtype)

  @property
  def sleeps(self) -> bool:
    """True when evicted windows are consolidated by extra passes."""
    return self.sleep_passes > 1 and self.window is not None and self.has_fast_weights

  @property
  def cache_size(self) -> int:
    """KV-cache capacity of streaming inference: L, or `max_len` without eviction."""
    return self.window if self.window is not None else self.max_len

  def replace(self, **changes: Any) -> ModelConfig:
    """Returns a copy with some fields changed (validated like a new config)."""
    return from_dict({**dataclasses.asdict(self), **changes})


def from_dict(values: Mapping[str, Any]) -> ModelConfig:
  """Builds a ModelConfig from a mapping, rejecting unknown keys by name."""
  known = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"Unknown ModelConfig key(s) {unknown}; known keys: {sorted(known)}.")
  return ModelConfig(**values)


# Named layouts. The same code builds every baseline of the paper: only the pattern, the window
# and N differ.
PRESETS: dict[str, dict[str, Any]] = {
  # The paper's model: GDN-attention hybrid that sleeps (set sleep_passes).
  "hybrid": dict(blocks=("gdn", "attn", "gdn", "attn")),
  # Windowed transformer: forgets every evicted window completely.
  "transformer": dict(blocks=("attn", "attn", "attn", "attn")),
  # Full-attention transformer: no eviction at all, the upper bound.
  "transformer_full": dict(blocks=("attn", "attn", "attn", "attn"), window=None),
  # GDN only: no attention, the window only marks when sleep happens.
  "gdn": dict(blocks=("gdn", "gdn", "gdn", "gdn")),
}

# Named widths, to combine with a layout.
SIZES: dict[str, dict[str, Any]] = {
  "tiny": dict(d_model=32, num_heads=2),
  "small": dict(d_model=64, num_heads=4),
  "base": dict(d_model=256, num_heads=4),
  "large": dict(d_model=512, num_heads=8),
}


def preset(name: str, *, size: str = "small", **overrides: Any) -> ModelConfig:
  """Builds a config from a named layout and size, e.g. `preset("hybrid", vocab_size=32)`.

  Args:
    name: one of `PRESETS` ("hybrid", "transformer", "transformer_full", "gdn").
    size: one of `SIZES` ("tiny", "small", "base", "large").
    **overrides: any ModelConfig field; `vocab_size` is required.
  """
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; known presets: {sorted(PRESETS)}.")
  if size not in SIZES:
    raise ValueError(f"Unknown size {size!r}; known sizes: {sorted(SIZES)}.")
  return from_dict({**SIZES[size], **PRESETS[name], **overrides})


# Fields where None means "derived from the others" (window: no eviction).
_OPTIONAL_SIZES = (
  "window",
  "num_kv_heads",
  "head_dim",
  "gdn_value_dim",
  "gdn_heads",
  "gdn_key_heads",
  "gdn_key_dim",
)


def _positive(config: ModelConfig, *names: str) -> None:
  for name in names:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}.")


def _choice(config: ModelConfig, name: str, choices: tuple[str, ...]) -> None:
  value = getattr(config, name)
  if value not in choices:
    raise ValueError(f"ModelConfig.{name} must be one of {choices}, got {value!r}.")
