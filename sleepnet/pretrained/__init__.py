"""Pretrained GDN hybrids from Hugging Face model directories, given a window and sleep.

  model = sleepnet.from_pretrained("path/to/Qwen3.5-0.8B", window=512, sleep_passes=4)
  sleepnet.save_pretrained(model, "path/to/out")   # transformers loads it back

`from_pretrained` reads a local directory (config.json and safetensors, one file or shards with
their index) of a Qwen3.5, Qwen3-Next or OLMo-Hybrid model (`architectures.py` says what each
is in sleepnet's terms) into an ordinary `sleepnet.Model`: training, streaming, sampling and the
sleep loop are the ones every sleepnet model uses. Without a window the model is the released
one (its logits match `transformers`'); `window=L` turns every attention layer into attention
over the current window of L tokens, so the model evicts, and with `sleep_passes > 1` sleeps.

sleepnet adds two weights of its own, the injection of "hidden" sleep passes (`Model.inject`,
`Model.inject_norm`). A released checkpoint has neither: the projection starts at zero, so a
hidden sleep pass starts out rereading the window's tokens, and the norm at its neutral value.
`save_pretrained` writes them beside the architecture's tensors (as `sleepnet.*`, which
`transformers` ignores) and the window and sleep settings into config.json, so that a
fine-tuned model round-trips.
"""

from __future__ import annotations

import json
import os
import pathlib
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import nnx

from sleepnet import config as config_lib
from sleepnet import run_config, sharding
from sleepnet.model import Model
from sleepnet.pretrained import architectures, files
from sleepnet.pretrained.architectures import UnsupportedModelError
from sleepnet.pretrained.files import CheckpointError

__all__ = [
  "RULES",
  "CheckpointError",
  "UnsupportedModelError",
  "from_pretrained",
  "save_pretrained",
]

# Where parameters go on a mesh (sharding.py's rules): every matrix split over "model".
RULES = (("embedding|kernel|experts_", "model"), (".*", "replicate"))
# sleepnet's own weights, created when a checkpoint does not have them.
_SLEEPNET_ONLY = ("inject_norm.scale", "inject.kernel")
# What a loaded model's config.json said that sleepnet's config does not hold (special token
# ids), kept per model so that `save_pretrained` writes it back.
_KEPT_KEYS = ("pad_token_id", "bos_token_id", "eos_token_id", "initializer_range")
_SOURCES: weakref.WeakKeyDictionary[Model, dict[str, Any]] = weakref.WeakKeyDictionary()


def from_pretrained(
  path: str | os.PathLike,
  *,
  window: int | None = None,
  sleep_passes: int | None = None,
  dtype: str | None = None,
  param_dtype: str | None = None,
  mesh: jax.sharding.Mesh | None = None,
  rules: Sequence[Sequence[str]] = RULES,
  min_size: int = 2**14,
  max_len: int = 4096,
  **overrides: Any,
) -> Model:
  """A sleepnet `Model` with the weights of a local Hugging Face model directory.

  Args:
    path: the directory (config.json, model.safetensors or model.safetensors.index.json).
    window: L, the attention window; None: the one `save_pretrained` recorded, else none (the
      released model, with a KV cache of `max_len` tokens when streaming).
    sleep_passes: N; None: the one recorded, else 1.
    dtype: "float32" or "bfloat16", the compute dtype (default "float32").
    param_dtype: the dtype parameters are stored in (default: `dtype`).
    mesh: place every parameter straight onto this mesh by `rules`: each tensor is read from
      its memory-mapped file and put on its devices one at a time, so no device ever holds the
      whole model unsharded. None: the default device.
    rules, min_size: sharding rules and the smallest array they split (sharding.py).
    max_len: KV-cache capacity for streaming without a window.
    **overrides: any other `ModelConfig` field (sleep_input, gdn_chunk_size, remat...).

  Raises:
    CheckpointError: the directory is not a readable checkpoint.
    UnsupportedModelError: an unknown model_type, a config option sleepnet does not implement, a
      missing, unused or misshapen tensor.
  """
  path = pathlib.Path(path)
  hf = files.read_config(path)
  imported = architectures.read_config(hf)
  saved = hf.get("sleepnet", {})
  dtype = dtype or "float32"
  fields = dict(
    imported.fields,
    window=window if window is not None else saved.get("window"),
    sleep_passes=sleep_passes or saved.get("sleep_passes", 1),
    dtype=dtype,
    param_dtype=param_dtype or dtype,
    max_len=max_len,
  )
  for key in ("sleep_input", "sleep_start"):
    if key in saved:
      fields[key] = saved[key]
  config = config_lib.from_dict({**fields, **overrides})
  params, notes = architectures.read_weights(imported.family, config, files.TensorFiles(path))
  for note in (*imported.notes, *notes):
    logging.info("from_pretrained(%s): %s", path, note)
  model = _build(config, params, mesh, rules, min_size)
  text = hf.get("text_config", hf)
  _SOURCES[model] = {k: text[k] for k in _KEPT_KEYS if k in text}
  return model


def _build(
  config: config_lib.ModelConfig,
  params: Mapping[str, np.ndarray],
  mesh: jax.sharding.Mesh | None,
  rules: Sequence[Sequence[str]],
  min_size: int,
) -> Model:
  """The model of `config` holding `params`, each placed once, straight where it belongs."""
  graphdef, abstract = run_config.split_model(
    nnx.eval_shape(lambda: Model(config, rngs=nnx.Rngs(0)))
  )
  flat = _flatten(abstract)
  missing = sorted(set(flat) - set(params) - set(_SLEEPNET_ONLY))
  if missing:
    raise UnsupportedModelError(f"no checkpoint tensor for sleepnet parameter(s) {missing}.")
  extra = sorted(set(params) - set(flat))
  if extra:
    raise UnsupportedModelError(f"checkpoint tensors map to no sleepnet parameter: {extra}.")
  where = {} if mesh is None else _flatten(sharding.tree_shardings(abstract, mesh, rules, min_size))
  placed = {}
  for key, spec in flat.items():
    if key in params:
      value = np.asarray(params[key])
      if value.shape != tuple(spec.shape):
        raise UnsupportedModelError(
          f"sleepnet parameter {key} has shape {tuple(spec.shape)}; the checkpoint gives "
          f"{value.shape}."
        )
    elif key == "inject.kernel":
      value = np.zeros(spec.shape)  # a hidden sleep pass starts by rereading the tokens
    else:
      value = np.zeros(spec.shape) if config.norm_offset else np.ones(spec.shape)
    placed[key] = jax.device_put(value.astype(spec.dtype), where.get(key))
  return nnx.merge(graphdef, _unflatten(placed, abstract))


def save_pretrained(
  model: Model, path: str | os.PathLike, *, shard_bytes: int | None = None
) -> None:
  """Writes `model` as a Hugging Face model directory that `transformers` loads back.

  The architecture is the one whose layer options the model's config has (a model from
  `from_pretrained` keeps its own); a config that matches none is refused. The window and sleep
  settings go into config.json under "sleepnet", the sleep injection weights into the
  safetensors as `sleepnet.*`; `from_pretrained` restores both.
  """
  config = model.config
  family = architectures.family_of(config)
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  _, params = run_config.split_model(model)
  flat = {k: np.asarray(jax.device_get(v)) for k, v in _flatten(params).items()}
  tensors = architectures.write_weights(family, config, flat)
  kwargs = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
  files.write_tensors(path, tensors, **kwargs)
  # Token ids the model was loaded with, else none (rather than an architecture's default ids,
  # which may lie outside a small vocabulary).
  kept = {k: None for k in _KEPT_KEYS[:3]} | _SOURCES.get(model, {})
  hf = {**architectures.write_config(family, config), **kept}
  hf["dtype"] = config.param_dtype
  tmp = path / "config.json.tmp"
  tmp.write_text(json.dumps(hf, indent=2) + "\n")
  tmp.replace(path / "config.json")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def _unflatten(flat: Mapping[str, Any], like: Any, prefix: str = "") -> Any:
  if isinstance(like, Mapping):
    return {key: _unflatten(flat, value, f"{prefix}{key}.") for key, value in like.items()}
  return flat[prefix[:-1]]
