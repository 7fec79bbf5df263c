"""The GDN hybrids of Hugging Face `transformers` in sleepnet's terms: configs and tensor names.

Three families, each a sleepnet `ModelConfig` with the layer options it needs (the same model
code path as every sleepnet model; see `ModelConfig`'s "Layer options"):

  qwen3_5 (model types "qwen3_5_text" and "qwen3_5", whose text model it reads): (1 + w) RMSNorm,
    GDN with fewer key heads than value heads and separate projections, attention with per-head
    q/k norms, partial RoPE and a sigmoid output gate, SwiGLU MLPs.
  qwen3_next ("qwen3_next"): the same layers, with the GDN projections fused and interleaved per
    key head, and mixture-of-experts MLPs.
  olmo_hybrid ("olmo_hybrid"): w RMSNorm, GDN with beta = 2 sigmoid(.) and an output norm of its
    own epsilon, post-norm attention layers with q/k norms over all heads and full RoPE (or none).

Each tensor is mapped by name; every tensor of a checkpoint must be used (or be one of the parts
known not to belong to the text model, which are named when skipped), and every sleepnet
parameter but the sleep injection must be found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from sleepnet import config as config_lib

FAMILIES = ("qwen3_5", "qwen3_next", "olmo_hybrid")
MODEL_TYPES = {
  "qwen3_5_text": "qwen3_5",
  "qwen3_5": "qwen3_5",
  "qwen3_next": "qwen3_next",
  "olmo_hybrid": "olmo_hybrid",
}
HF_CLASSES = {
  "qwen3_5": ("qwen3_5_text", "Qwen3_5ForCausalLM"),
  "qwen3_next": ("qwen3_next", "Qwen3NextForCausalLM"),
  "olmo_hybrid": ("olmo_hybrid", "OlmoHybridForCausalLM"),
}
# Checkpoint parts that are not the text model: skipped, and said so.
SKIPPED_PREFIXES = ("model.visual.", "mtp.")
# sleepnet's own weights, saved beside the architecture's so that a round trip keeps them.
SLEEPNET_PREFIX = "sleepnet."
_LAYER_KINDS = {"linear_attention": "gdn", "full_attention": "attn"}


class UnsupportedModelError(ValueError):
  """A config or checkpoint that sleepnet cannot load exactly, with the reason."""


@dataclasses.dataclass(frozen=True)
class Imported:
  """What a Hugging Face config.json says, in sleepnet's terms.

  Attributes:
    family: one of FAMILIES.
    fields: `ModelConfig` fields (everything but the window, sleep and dtype settings).
    notes: what was read but is not part of the text model (e.g. a vision tower), for the user.
  """

  family: str
  fields: dict[str, Any]
  notes: tuple[str, ...] = ()


def read_config(hf: Mapping[str, Any]) -> Imported:
  """The sleepnet fields of a Hugging Face config.json; refuses what sleepnet does not implement."""
  model_type = hf.get("model_type")
  if model_type not in MODEL_TYPES:
    raise UnsupportedModelError(
      f"model_type {model_type!r} is not a GDN hybrid sleepnet loads; known: {sorted(MODEL_TYPES)}."
    )
  family = MODEL_TYPES[model_type]
  notes = []
  tie = hf.get("tie_word_embeddings", False)
  if model_type == "qwen3_5":
    if "text_config" not in hf:
      raise UnsupportedModelError("a qwen3_5 config.json without text_config.")
    # The multimodal model ties its head by its own top-level flag, not the text config's.
    notes.append(
      "read the text model of a multimodal Qwen3.5 checkpoint; the vision tower is skipped"
    )
    hf = {**hf["text_config"], "tie_word_embeddings": tie}
  _require(hf, "hidden_act", "silu")
  _require(hf, "attention_bias", False)
  if hf.get("attention_dropout", 0.0):
    notes.append(f"attention_dropout={hf['attention_dropout']} is ignored (sleepnet has none)")
  n = _int(hf, "num_hidden_layers")
  heads = _int(hf, "num_attention_heads")
  d = _int(hf, "hidden_size")
  fields: dict[str, Any] = dict(
    vocab_size=_int(hf, "vocab_size"),
    d_model=d,
    num_heads=heads,
    blocks=_blocks(hf, family, n),
    mlp_dim=_int(hf, "intermediate_size"),
    conv_kernel=hf.get("linear_conv_kernel_dim", 4),
    norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
    tie_embeddings=bool(tie),
    gdn_q_scale=True,
    gdn_conv_bias=False,
    gdn_beta_bias=False,
  )
  theta, fraction = _rope(hf, family)
  if (hf.get("rope_parameters") or {}).get("mrope_section"):
    notes.append(
      "multimodal RoPE sections read as plain partial RoPE: for text the three position axes "
      "are equal, and then the two are the same"
    )
  fields.update(rope_base=theta or 10_000.0, rope_fraction=fraction if theta else 0.0)
  if family == "olmo_hybrid":
    kv = hf.get("num_key_value_heads") or heads
    hk = hf.get("linear_num_key_heads") or heads
    hv = hf.get("linear_num_value_heads") or heads
    dk = hf.get("linear_key_head_dim") or int(0.75 * d / hk)
    dv = hf.get("linear_value_head_dim") or 2 * dk
    fields.update(
      num_kv_heads=kv,
      head_dim=hf.get("head_dim") or d // heads,
      attn_norm="post",
      attn_qk_norm="all",
      gdn_beta_scale=2.0 if hf.get("linear_allow_neg_eigval", True) else 1.0,
      gdn_norm_eps=1e-5,  # fixed in OLMo-Hybrid's GDN output norm, whatever rms_norm_eps is
    )
  else:
    kv, hk, hv = (
      _int(hf, k) for k in ("num_key_value_heads", "linear_num_key_heads", "linear_num_value_heads")
    )
    dk, dv = _int(hf, "linear_key_head_dim"), _int(hf, "linear_value_head_dim")
    fields.update(
      num_kv_heads=kv,
      head_dim=_int(hf, "head_dim"),
      norm_offset=True,
      attn_qk_norm="head",
      attn_output_gate=True,
    )
  fields.update(gdn_heads=hv, gdn_key_heads=hk, gdn_key_dim=dk, gdn_value_dim=dv)
  if family == "qwen3_next":
    fields.update(_moe_fields(hf, n))
  return Imported(family, fields, tuple(notes))


def _moe_fields(hf: Mapping[str, Any], n: int) -> dict[str, Any]:
  experts = hf.get("num_experts", 0)
  if not experts:
    return {}
  step = hf.get("decoder_sparse_step", 1)
  dense = set(hf.get("mlp_only_layers") or ())
  moe = tuple(i not in dense and (i + 1) % step == 0 for i in range(n))
  if not any(moe):
    return {}
  return dict(
    moe_experts=experts,
    moe_top_k=_int(hf, "num_experts_per_tok"),
    moe_dim=_int(hf, "moe_intermediate_size"),
    moe_shared_dim=hf.get("shared_expert_intermediate_size") or 0,
    moe_norm_top_k=bool(hf.get("norm_topk_prob", True)),
    moe_layers=moe,
  )


def _blocks(hf: Mapping[str, Any], family: str, n: int) -> tuple[str, ...]:
  types = hf.get("layer_types")
  if types is None:
    if family == "olmo_hybrid":
      types = ["full_attention" if i % 4 == 3 else "linear_attention" for i in range(n)]
      if "full_attention" not in types:
        types[-1] = "full_attention"
    else:
      interval = hf.get("full_attention_interval", 4)
      types = [
        "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n)
      ]
  if len(types) != n:
    raise UnsupportedModelError(f"layer_types has {len(types)} entries for num_hidden_layers={n}.")
  unknown = sorted(set(types) - set(_LAYER_KINDS))
  if unknown:
    raise UnsupportedModelError(
      f"layer_types {unknown} are not supported; known: {sorted(_LAYER_KINDS)}."
    )
  return tuple(_LAYER_KINDS[t] for t in types)


def _rope(hf: Mapping[str, Any], family: str) -> tuple[float | None, float]:
  """(theta, rotated share); theta None: no RoPE (an OLMo-Hybrid written with rope_theta null)."""
  default_fraction = 1.0 if family == "olmo_hybrid" else 0.25
  params = hf.get("rope_parameters")
  if params is None:  # older configs keep the keys at the top level
    params = {k: hf[k] for k in ("rope_theta", "partial_rotary_factor") if k in hf}
    if hf.get("rope_scaling"):
      params.update(hf["rope_scaling"])
  rope_type = params.get("rope_type", params.get("type", "default"))
  if rope_type != "default":
    raise UnsupportedModelError(f"rope_type {rope_type!r} is not supported (only 'default').")
  theta = params.get("rope_theta", 10_000.0)
  if theta is None and family != "olmo_hybrid":
    raise UnsupportedModelError(f"{family} needs a rope_theta.")
  return theta, float(
    params.get("partial_rotary_factor", hf.get("partial_rotary_factor", default_fraction))
  )


def write_config(family: str, config: config_lib.ModelConfig) -> dict[str, Any]:
  """config.json for `transformers`, with the window and sleep settings under "sleepnet"."""
  model_type, hf_class = HF_CLASSES[family]
  layer_types = ["linear_attention" if k == "gdn" else "full_attention" for k in config.blocks]
  hf: dict[str, Any] = dict(
    architectures=[hf_class],
    model_type=model_type,
    vocab_size=config.vocab_size,
    hidden_size=config.d_model,
    intermediate_size=config.hidden_dim,
    num_hidden_layers=config.num_layers,
    num_attention_heads=config.num_heads,
    num_key_value_heads=config.kv_heads,
    head_dim=config.key_dim,
    hidden_act="silu",
    rms_norm_eps=config.norm_eps,
    tie_word_embeddings=config.tie_embeddings,
    attention_bias=False,
    layer_types=layer_types,
    linear_conv_kernel_dim=config.conv_kernel,
    linear_key_head_dim=config.gdn_qk_dim,
    linear_value_head_dim=config.value_dim,
    linear_num_key_heads=config.gdn_num_key_heads,
    linear_num_value_heads=config.gdn_num_heads,
    max_position_embeddings=config.max_len,
  )
  if config.rotary_dim:
    hf["rope_parameters"] = dict(
      rope_type="default", rope_theta=config.rope_base, partial_rotary_factor=config.rope_fraction
    )
  else:
    hf["rope_parameters"] = dict(rope_type="default", rope_theta=None)
  if family == "olmo_hybrid":
    hf["linear_allow_neg_eigval"] = config.gdn_beta_scale == 2.0
  if family == "qwen3_next":
    moe = config.moe_layers or (False,) * config.num_layers
    hf.update(
      num_experts=config.moe_experts,
      num_experts_per_tok=config.moe_top_k,
      moe_intermediate_size=config.moe_dim,
      shared_expert_intermediate_size=config.moe_shared_dim,
      norm_topk_prob=config.moe_norm_top_k,
      decoder_sparse_step=1,
      mlp_only_layers=[i for i, m in enumerate(moe) if not m],
    )
  hf["sleepnet"] = dict(
    window=config.window,
    sleep_passes=config.sleep_passes,
    sleep_input=config.sleep_input,
    sleep_start=config.sleep_start,
  )
  return hf


def family_of(config: config_lib.ModelConfig) -> str:
  """Which architecture a sleepnet config is, by its layer options; refuses any other."""
  qwen = dict(norm_offset=True, attn_norm="pre", attn_qk_norm="head", attn_output_gate=True)
  olmo = dict(norm_offset=False, attn_norm="post", attn_qk_norm="all", attn_output_gate=False)
  common = dict(
    gdn_q_scale=True, gdn_conv_bias=False, gdn_beta_bias=False, position_embedding="none"
  )
  for family, options in (("qwen3_5", qwen), ("olmo_hybrid", olmo)):
    if all(getattr(config, k) == v for k, v in {**options, **common}.items()):
      if family == "olmo_hybrid" and (
        config.gdn_beta_scale not in (1.0, 2.0) or config.gdn_norm_eps != 1e-5
      ):
        break
      if family == "qwen3_5" and (config.gdn_beta_scale != 1.0 or config.gdn_norm_eps is not None):
        break
      if family == "qwen3_5" and config.moe_experts:
        return "qwen3_next"
      return family
  raise UnsupportedModelError(
    "this config matches none of the Hugging Face architectures sleepnet writes "
    f"({', '.join(FAMILIES)}): its layer options are "
    + ", ".join(
      f"{k}={getattr(config, k)!r}" for k in (*qwen, *common, "gdn_beta_scale", "gdn_norm_eps")
    )
  )


# ------------------------------------------------------------------------------------------------
# Tensors. A sleepnet parameter path is "blocks.0.mixer.qkv_proj.kernel"; nnx.Linear kernels are
# [in, out], torch Linear weights [out, in].


def _t(w: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(np.asarray(w).T)


@dataclasses.dataclass
class _Reader:
  """Takes tensors by name, remembering which were used, and says which are missing."""

  tensors: Mapping[str, np.ndarray]
  root: str
  used: set[str] = dataclasses.field(default_factory=set)

  def has(self, name: str) -> bool:
    return self.root + name in self.tensors

  def take(self, *names: str) -> np.ndarray:
    """The first of `names` (aliases) that the checkpoint has."""
    for name in names:
      if self.root + name in self.tensors:
        self.used.add(self.root + name)
        return np.asarray(self.tensors[self.root + name])
    raise UnsupportedModelError(f"the checkpoint is missing tensor {self.root + names[0]!r}.")


def read_weights(
  family: str, config: config_lib.ModelConfig, tensors: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[str]]:
  """sleepnet parameters (path -> array) from a checkpoint's tensors, and notes on what was skipped.

  Raises UnsupportedModelError for a missing tensor or a tensor nothing reads.
  """
  root = (
    "model.language_model." if "model.language_model.embed_tokens.weight" in tensors else "model."
  )
  r = _Reader(tensors, root)
  out: dict[str, np.ndarray] = {"embed.embedding": r.take("embed_tokens.weight")}
  out["final_norm.scale"] = r.take("norm.weight")
  if not config.tie_embeddings:
    r.root = "" if "lm_head.weight" in tensors else root
    out["lm_head.kernel"] = _t(r.take("lm_head.weight"))
    r.root = root
  h, hk = config.gdn_num_heads, config.gdn_num_key_heads
  dk, dv = config.gdn_qk_dim, config.value_dim
  for i, kind in enumerate(config.blocks):
    p, s = f"layers.{i}.", f"blocks.{i}."
    post = kind == "attn" and family == "olmo_hybrid"
    if post:
      out[s + "mixer_norm.scale"] = r.take(
        p + "post_attention_layernorm.weight", p + "feedforward_layer_norm.weight"
      )
      out[s + "mlp_norm.scale"] = r.take(p + "post_feedforward_layernorm.weight")
    else:
      out[s + "mixer_norm.scale"] = r.take(
        p + "input_layernorm.weight", p + "attention_layer_norm.weight"
      )
      out[s + "mlp_norm.scale"] = r.take(
        p + "post_attention_layernorm.weight", p + "feedforward_layer_norm.weight"
      )
    m, x = p + ("linear_attn." if kind == "gdn" else "self_attn."), s + "mixer."
    if kind == "attn":
      q = r.take(m + "q_proj.weight")
      if config.attn_output_gate:  # rows per head: [query (K) | gate (K)]
        q = q.reshape(config.num_heads, 2, config.key_dim, -1)
        out[x + "gate_proj.kernel"] = _t(q[:, 1].reshape(-1, q.shape[-1]))
        q = q[:, 0].reshape(-1, q.shape[-1])
      out[x + "q_proj.kernel"] = _t(q)
      for name in ("k_proj", "v_proj", "o_proj"):
        out[x + name + ".kernel"] = _t(r.take(m + name + ".weight"))
      for name in ("q_norm", "k_norm"):
        out[x + name + ".scale"] = r.take(m + name + ".weight")
    elif family == "qwen3_next":
      fused = r.take(m + "in_proj_qkvz.weight").reshape(hk, 2 * dk + 2 * (h // hk) * dv, -1)
      rv = (h // hk) * dv
      parts = [fused[:, :dk], fused[:, dk : 2 * dk], fused[:, 2 * dk : 2 * dk + rv]]
      out[x + "qkv_proj.kernel"] = _t(np.concatenate([a.reshape(-1, a.shape[-1]) for a in parts]))
      out[x + "gate_proj.kernel"] = _t(fused[:, 2 * dk + rv :].reshape(h * dv, -1))
      ba = r.take(m + "in_proj_ba.weight").reshape(hk, 2, h // hk, -1)
      out[x + "beta_proj.kernel"] = _t(ba[:, 0].reshape(h, -1))
      out[x + "decay_proj.kernel"] = _t(ba[:, 1].reshape(h, -1))
    elif family == "qwen3_5":
      out[x + "qkv_proj.kernel"] = _t(r.take(m + "in_proj_qkv.weight"))
      out[x + "gate_proj.kernel"] = _t(r.take(m + "in_proj_z.weight"))
      out[x + "beta_proj.kernel"] = _t(r.take(m + "in_proj_b.weight"))
      out[x + "decay_proj.kernel"] = _t(r.take(m + "in_proj_a.weight"))
    else:
      qkv = [r.take(m + f"{c}_proj.weight") for c in "qkv"]
      out[x + "qkv_proj.kernel"] = _t(np.concatenate(qkv))
      out[x + "gate_proj.kernel"] = _t(r.take(m + "g_proj.weight"))
      out[x + "beta_proj.kernel"] = _t(r.take(m + "b_proj.weight"))
      out[x + "decay_proj.kernel"] = _t(r.take(m + "a_proj.weight"))
    if kind == "gdn":
      if family == "olmo_hybrid" and not r.has(m + "conv1d.weight"):
        # Stored in three parts. Concatenating them whatever their sizes is right both for files
        # that split at the true q/k/v widths and for those transformers 5.x writes in equal
        # thirds.
        conv = np.concatenate([r.take(m + f"{c}_conv1d.weight") for c in "qkv"])
      else:
        conv = r.take(m + "conv1d.weight")
      out[x + "conv_kernel"] = _t(conv[:, 0, :])  # [C, 1, W] -> [W, C]
      out[x + "A_log"] = r.take(m + "A_log")
      out[x + "dt_bias"] = r.take(m + "dt_bias")
      out[x + "out_norm_scale"] = r.take(
        m + ("o_norm.weight" if family == "olmo_hybrid" else "norm.weight")
      )
      out[x + "o_proj.kernel"] = _t(
        r.take(m + ("o_proj.weight" if family == "olmo_hybrid" else "out_proj.weight"))
      )
    _read_mlp(r, config, i, out)
  notes = []
  r.root = SLEEPNET_PREFIX  # sleepnet's own weights, present if save_pretrained wrote the files
  if r.has("inject_norm.weight"):
    out["inject_norm.scale"] = r.take("inject_norm.weight")
  if r.has("inject.weight"):
    out["inject.kernel"] = _t(r.take("inject.weight"))
  skipped = sorted(k for k in tensors if k not in r.used and k.startswith(SKIPPED_PREFIXES))
  if skipped:
    parts = sorted({".".join(k.split(".")[:2]) for k in skipped})
    notes.append(f"skipped {len(skipped)} tensors that are not the text model: {', '.join(parts)}")
  unused = sorted(k for k in tensors if k not in r.used and not k.startswith(SKIPPED_PREFIXES))
  if unused:
    raise UnsupportedModelError(
      f"the checkpoint has {len(unused)} tensor(s) sleepnet would not use, e.g. {unused[:5]}: "
      "a layer option sleepnet does not implement."
    )
  return out, notes


def _read_mlp(
  r: _Reader, config: config_lib.ModelConfig, i: int, out: dict[str, np.ndarray]
) -> None:
  p, s = f"layers.{i}.mlp.", f"blocks.{i}.mlp."
  if config.moe_layers and config.moe_layers[i]:
    e = config.moe_experts
    out[s + "router.kernel"] = _t(r.take(p + "gate.weight"))
    for name in ("gate", "up", "down"):
      # Stored per expert ([out, in] each); sleepnet keeps them stacked as [E, in, out].
      out[s + f"experts_{name}"] = np.stack(
        [_t(r.take(p + f"experts.{j}.{name}_proj.weight")) for j in range(e)]
      )
    if config.moe_shared_dim:
      for name in ("gate", "up", "down"):
        out[s + f"shared.{name}.kernel"] = _t(r.take(p + f"shared_expert.{name}_proj.weight"))
      out[s + "shared_gate.kernel"] = _t(r.take(p + "shared_expert_gate.weight"))
    return
  for name in ("gate", "up", "down"):
    out[s + name + ".kernel"] = _t(r.take(p + name + "_proj.weight"))


def write_weights(
  family: str, config: config_lib.ModelConfig, params: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
  """The checkpoint tensors of sleepnet parameters (the inverse of `read_weights`)."""
  out: dict[str, np.ndarray] = {"model.embed_tokens.weight": params["embed.embedding"]}
  out["model.norm.weight"] = params["final_norm.scale"]
  if not config.tie_embeddings:
    out["lm_head.weight"] = _t(params["lm_head.kernel"])
  h, hk, dk = config.gdn_num_heads, config.gdn_num_key_heads, config.gdn_qk_dim
  for i, kind in enumerate(config.blocks):
    p, s = f"model.layers.{i}.", f"blocks.{i}."
    if kind == "attn" and family == "olmo_hybrid":
      out[p + "post_attention_layernorm.weight"] = params[s + "mixer_norm.scale"]
      out[p + "post_feedforward_layernorm.weight"] = params[s + "mlp_norm.scale"]
    else:
      out[p + "input_layernorm.weight"] = params[s + "mixer_norm.scale"]
      out[p + "post_attention_layernorm.weight"] = params[s + "mlp_norm.scale"]
    m, x = p + ("linear_attn." if kind == "gdn" else "self_attn."), s + "mixer."
    if kind == "attn":
      q = _t(params[x + "q_proj.kernel"])
      if config.attn_output_gate:
        gate = _t(params[x + "gate_proj.kernel"])
        q = np.stack(
          [
            q.reshape(config.num_heads, config.key_dim, -1),
            gate.reshape(config.num_heads, config.key_dim, -1),
          ],
          1,
        )
        q = q.reshape(-1, q.shape[-1])
      out[m + "q_proj.weight"] = q
      for name in ("k_proj", "v_proj", "o_proj"):
        out[m + name + ".weight"] = _t(params[x + name + ".kernel"])
      for name in ("q_norm", "k_norm"):
        out[m + name + ".weight"] = params[x + name + ".scale"]
      _write_mlp(config, i, params, out)
      continue
    qkv = _t(params[x + "qkv_proj.kernel"])
    z = _t(params[x + "gate_proj.kernel"])
    b, a = _t(params[x + "beta_proj.kernel"]), _t(params[x + "decay_proj.kernel"])
    conv = _t(params[x + "conv_kernel"])[:, None, :]  # [W, C] -> [C, 1, W]
    if family == "qwen3_next":
      q, k, v = np.split(qkv, [hk * dk, 2 * hk * dk])
      group = [
        q.reshape(hk, dk, -1),
        k.reshape(hk, dk, -1),
        v.reshape(hk, -1, qkv.shape[-1]),
        z.reshape(hk, -1, z.shape[-1]),
      ]
      out[m + "in_proj_qkvz.weight"] = np.concatenate(group, 1).reshape(-1, qkv.shape[-1])
      out[m + "in_proj_ba.weight"] = np.stack(
        [b.reshape(hk, h // hk, -1), a.reshape(hk, h // hk, -1)], 1
      ).reshape(2 * h, -1)
    elif family == "qwen3_5":
      out[m + "in_proj_qkv.weight"] = qkv
      out[m + "in_proj_z.weight"] = z
      out[m + "in_proj_b.weight"] = b
      out[m + "in_proj_a.weight"] = a
    else:
      for c, part in zip("qkv", np.split(qkv, [hk * dk, 2 * hk * dk]), strict=True):
        out[m + f"{c}_proj.weight"] = part
      out[m + "g_proj.weight"] = z
      out[m + "b_proj.weight"] = b
      out[m + "a_proj.weight"] = a
    if family == "olmo_hybrid":
      # At the true q/k/v widths, as OLMo-Hybrid's own checkpoints store them.
      for c, part in zip("qkv", np.split(conv, [hk * dk, 2 * hk * dk]), strict=True):
        out[m + f"{c}_conv1d.weight"] = part
      out[m + "o_norm.weight"] = params[x + "out_norm_scale"]
      out[m + "o_proj.weight"] = _t(params[x + "o_proj.kernel"])
    else:
      out[m + "conv1d.weight"] = conv
      out[m + "norm.weight"] = params[x + "out_norm_scale"]
      out[m + "out_proj.weight"] = _t(params[x + "o_proj.kernel"])
    out[m + "A_log"] = params[x + "A_log"]
    out[m + "dt_bias"] = params[x + "dt_bias"]
    _write_mlp(config, i, params, out)
  out[SLEEPNET_PREFIX + "inject_norm.weight"] = params["inject_norm.scale"]
  out[SLEEPNET_PREFIX + "inject.weight"] = _t(params["inject.kernel"])
  return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _write_mlp(
  config: config_lib.ModelConfig,
  i: int,
  params: Mapping[str, np.ndarray],
  out: dict[str, np.ndarray],
) -> None:
  p, s = f"model.layers.{i}.mlp.", f"blocks.{i}.mlp."
  if config.moe_layers and config.moe_layers[i]:
    out[p + "gate.weight"] = _t(params[s + "router.kernel"])
    for name in ("gate", "up", "down"):
      for j, w in enumerate(params[s + f"experts_{name}"]):
        out[p + f"experts.{j}.{name}_proj.weight"] = _t(w)
    if config.moe_shared_dim:
      for name in ("gate", "up", "down"):
        out[p + f"shared_expert.{name}_proj.weight"] = _t(params[s + f"shared.{name}.kernel"])
      out[p + "shared_expert_gate.weight"] = _t(params[s + "shared_gate.kernel"])
    return
  for name in ("gate", "up", "down"):
    out[p + name + "_proj.weight"] = _t(params[s + name + ".kernel"])


def _int(hf: Mapping[str, Any], key: str) -> int:
  value = hf.get(key)
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise UnsupportedModelError(f"config.json: {key} must be a positive integer, got {value!r}.")
  return value


def _require(hf: Mapping[str, Any], key: str, value: Any) -> None:
  if key in hf and hf[key] != value:
    raise UnsupportedModelError(
      f"config.json: {key}={hf[key]!r} is not supported (only {value!r})."
    )
