"""What sleep costs: FLOPs at wake time and per window of sleep, and streaming memory.

Counts are analytic, from the config alone, so they can be printed for sizes that do not fit on
the machine at hand. Conventions (stated so numbers can be compared):
  - FLOPs count matrix work only, 2 per multiply-add: projections, attention scores and values,
    the delta rule in its per-token form (5 K x V products per head and token: the read S^T k,
    the rank-one update, the write k v^T, and the output S^T q; the decay is elementwise and not
    counted), the LM head. Norms, activations, RoPE and the convolution's elementwise taps are
    left out (they are small next to the matrix work at any realistic width).
  - Wake FLOPs are per token, averaged over a full window (attention context grows from 1 to L).
  - A sleep pass reruns the blocks over the window but computes no logits; "hidden" passes add
    the injection matmul.
  - Memory is for one sequence (batch 1), float32 state.
"""

from __future__ import annotations

import dataclasses

from sleepnet.config import ModelConfig

_F32 = 4


@dataclasses.dataclass(frozen=True)
class Costs:
  """The price of a config, per sequence.

  Attributes:
    params: number of parameters.
    wake_flops_per_token: one ordinary forward pass, per token.
    sleep_flops_per_window: the N - 1 sleep passes over one full window.
    flops_per_token: wake plus sleep amortised over the window's L tokens.
    kv_cache_bytes: peak KV cache (L tokens, or max_len without eviction) over attention blocks.
    fast_weight_bytes: GDN fast weights S over GDN blocks (the only thing kept across windows).
    stream_state_bytes: the whole streaming state (caches, fast weights, conv histories, and
      the window's tokens and top hidden states that sleep rereads).
  """

  params: int
  wake_flops_per_token: float
  sleep_flops_per_window: float
  flops_per_token: float
  kv_cache_bytes: int
  fast_weight_bytes: int
  stream_state_bytes: int


def _gdn_dims(config: ModelConfig) -> tuple[int, int, int, int, int]:
  """GDN value heads, query/key heads, key width, value width, and conv channels."""
  h, hk, k, v = config.gdn_num_heads, config.gdn_num_key_heads, config.gdn_qk_dim, config.value_dim
  return h, hk, k, v, hk * 2 * k + h * v


def _block_params(config: ModelConfig, kind: str) -> int:
  d, h, g, k = config.d_model, config.num_heads, config.kv_heads, config.key_dim
  mlp = 3 * d * config.hidden_dim + (d if config.hidden_dim else 0)
  if kind == "attn":
    mixer = d * h * k + 2 * d * g * k + h * k * d
    mixer += {"none": 0, "head": 2 * k, "all": (h + g) * k}[config.attn_qk_norm]
    mixer += d * h * k if config.attn_output_gate else 0
  else:
    h, _, k, v, channels = _gdn_dims(config)
    mixer = d * channels + config.conv_kernel * channels + d * h + d * h + 2 * h
    mixer += channels if config.gdn_conv_bias else 0
    mixer += h if config.gdn_beta_bias else 0
    mixer += v + d * h * v + h * v * d
  return d + mixer + mlp  # d: the mixer's RMSNorm scale.


def _block_flops(config: ModelConfig, kind: str, context: float) -> float:
  """Matrix FLOPs of one block for one token that attends to `context` tokens."""
  d, h, g, k = config.d_model, config.num_heads, config.kv_heads, config.key_dim
  mlp = 2 * 3 * d * config.hidden_dim
  if kind == "attn":
    gate = d * h * k if config.attn_output_gate else 0
    return 2 * (d * h * k + 2 * d * g * k + h * k * d + gate) + 2 * 2 * h * k * context + mlp
  h, _, k, v, channels = _gdn_dims(config)
  proj = d * channels + 2 * d * h + d * h * v + h * v * d
  return 2 * proj + 2 * 5 * h * k * v + mlp


def costs(config: ModelConfig, *, sleep_passes: int | None = None) -> Costs:
  """Reports FLOPs and memory of `config` (at `sleep_passes`, or the config's N)."""
  n = config.sleep_passes if sleep_passes is None else sleep_passes
  if n < 1:
    raise ValueError(f"sleep_passes must be >= 1, got {n}.")
  d, vocab = config.d_model, config.vocab_size
  window = config.cache_size
  mean_context = (window + 1) / 2
  blocks = sum(_block_flops(config, kind, mean_context) for kind in config.blocks)
  head = 2 * d * vocab
  wake = blocks + head
  sleeps = config.window is not None and config.has_fast_weights and n > 1
  inject = 2 * d * d if config.sleep_input == "hidden" else 0
  sleep = (n - 1) * window * (blocks + inject) if sleeps else 0.0
  params = vocab * d + sum(_block_params(config, kind) for kind in config.blocks) + d
  params += 0 if config.tie_embeddings else d * vocab
  params += d + d * d  # The sleep input injection (norm and projection).
  params += window * d if config.position_embedding == "window" else 0
  num_attn = config.blocks.count("attn")
  num_gdn = config.blocks.count("gdn")
  kv = num_attn * 2 * window * config.kv_heads * config.key_dim * _F32
  gdn_heads, _, gdn_k, gdn_v, channels = _gdn_dims(config)
  fast = num_gdn * gdn_heads * gdn_k * gdn_v * _F32
  conv = num_gdn * (config.conv_kernel - 1) * channels * _F32
  buffers = window * (4 + d * _F32) if config.window is not None and num_gdn else 0
  state = kv + 2 * fast + conv + buffers + 4  # 2 * fast: the window-start copy; 4: position.
  return Costs(
    params=params,
    wake_flops_per_token=wake,
    sleep_flops_per_window=sleep,
    flops_per_token=wake + sleep / window,
    kv_cache_bytes=kv,
    fast_weight_bytes=fast,
    stream_state_bytes=state,
  )


def _window_flops(config: ModelConfig, tokens: int) -> float:
  """Matrix FLOPs of one pass of the blocks over a window of `tokens` tokens from its start."""
  context = (tokens + 1) / 2  # causal attention: token i attends to i tokens
  return tokens * sum(_block_flops(config, kind, context) for kind in config.blocks)


def _state_only_pass_flops(config: ModelConfig, tokens: int) -> float:
  """A pass whose only use is the fast weights it writes: the blocks below the last GDN block,
  and of that block what its state update needs (the q/k/v projection, the gates, and the
  delta rule without its output S^T q); nothing above it, and no output path."""
  last = max(i for i, kind in enumerate(config.blocks) if kind == "gdn")
  context = (tokens + 1) / 2
  below = sum(_block_flops(config, kind, context) for kind in config.blocks[:last])
  d = config.d_model
  h, _, k, v, channels = _gdn_dims(config)
  update = 2 * (d * channels + 2 * d * h) + 2 * 4 * h * k * v
  return tokens * (below + update)


def _sleep_flops(config: ModelConfig, n: int) -> float:
  """The N − 1 sleep passes over one full window, counting what their results need.

  What a pass feeds decides what of it is needed (and XLA removes the rest):
    - "hidden" input: every pass but the last feeds its top hidden states to the next one (a
      whole pass, plus the injection matmul of the next); the last only writes fast weights;
    - "tokens" input, "carry" start: every pass only writes the fast weights the next one
      starts from;
    - "tokens" input, "fresh" start: only the last pass's fast weights are kept, so the other
      passes are not needed at all.
  """
  window = config.window
  partial = _state_only_pass_flops(config, window)
  if config.sleep_input == "hidden":
    inject = 2 * config.d_model**2 * window
    return (n - 2) * _window_flops(config, window) + partial + (n - 1) * inject
  if config.sleep_start == "carry":
    return (n - 1) * partial
  return partial


def forward_flops(config: ModelConfig, seq_len: int, *, sleep_passes: int | None = None) -> float:
  """Matrix FLOPs of `Model.forward` over one sequence of `seq_len` tokens (batch 1).

  Every window gets its wake pass and the LM head; every window followed by another (and the
  last, if `sleep_final_window` and full) gets N − 1 sleep passes over its L tokens, counted as
  `_sleep_flops` says: work whose result nothing reads is not counted (`costs`, a streaming
  budget, counts every sleep pass whole instead). The conventions of this module apply (matrix
  work only; the delta rule in its per-token form, whatever the implementation computes).
  """
  n = config.sleep_passes if sleep_passes is None else sleep_passes
  if n < 1 or seq_len < 1:
    raise ValueError(f"sleep_passes and seq_len must be >= 1, got {n} and {seq_len}.")
  window = config.window or seq_len
  sizes = [min(window, seq_len - start) for start in range(0, seq_len, window)]
  flops = (
    sum(_window_flops(config, t) for t in sizes) + 2 * config.d_model * config.vocab_size * seq_len
  )
  if config.window is not None and config.has_fast_weights and n > 1:
    sleeping = len(sizes) - 1 + (config.sleep_final_window and sizes[-1] == window)
    flops += sleeping * _sleep_flops(config, n)
  return flops


def train_flops_per_step(
  config: ModelConfig, *, batch_size: int, seq_len: int, sleep_passes: int | None = None
) -> float:
  """Model FLOPs of one training step: 3 x the forward (the backward costs about twice the
  forward), over `batch_size` sequences of `seq_len` input tokens. Recomputation under
  `jax.checkpoint` is not counted, as is usual for model-FLOPs utilisation (MFU)."""
  return 3.0 * batch_size * forward_flops(config, seq_len, sleep_passes=sleep_passes)


def format_costs(config: ModelConfig, passes: tuple[int, ...] = (1, 2, 4, 8)) -> str:
  """A small table of `costs` at several N, for logs and the README."""
  rows = ["| N | wake MFLOP/token | sleep MFLOP/window | total MFLOP/token | x N=1 |"]
  rows.append("| --- | --- | --- | --- | --- |")
  base = costs(config, sleep_passes=1).flops_per_token
  for n in passes:
    c = costs(config, sleep_passes=n)
    rows.append(
      f"| {n} | {c.wake_flops_per_token / 1e6:.3f} | {c.sleep_flops_per_window / 1e6:.2f} | "
      f"{c.flops_per_token / 1e6:.3f} | {c.flops_per_token / base:.2f} |"
    )
  c = costs(config)
  rows.append(
    f"\nparams {c.params:,}; KV cache {c.kv_cache_bytes:,} B; fast weights "
    f"{c.fast_weight_bytes:,} B; streaming state {c.stream_state_bytes:,} B (batch 1, float32)"
  )
  return "\n".join(rows)
