"""Imported Hugging Face GDN hybrids against `transformers` itself (test-only dependency).

Each test builds a tiny random model with `transformers`' own config and model classes, writes it
with `save_pretrained` into a temporary directory and loads it with `sleepnet.from_pretrained`:
nothing is downloaded. Norm weights, gates and decays are randomised away from their
initialisation, so that (1 + w) against w, a missing gate or a swapped head would show.
"""

from __future__ import annotations

import json
import pathlib

import fake_devices
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

import sleepnet  # noqa: E402
from sleepnet import pretrained, run_config  # noqa: E402

VOCAB = 64
_COMMON = dict(
  vocab_size=VOCAB,
  hidden_size=32,
  intermediate_size=48,
  num_hidden_layers=4,
  num_attention_heads=4,
  num_key_value_heads=2,
  linear_conv_kernel_dim=4,
  max_position_embeddings=256,
  layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
)
# Two value heads per key head, and key and value widths that differ: the layouts that matter.
_QWEN = dict(
  _COMMON,
  head_dim=16,
  linear_num_key_heads=2,
  linear_num_value_heads=4,
  linear_key_head_dim=8,
  linear_value_head_dim=12,
  rope_parameters=dict(rope_type="default", rope_theta=10_000.0, partial_rotary_factor=0.25),
)
_OLMO = dict(
  _COMMON,
  linear_num_key_heads=2,
  linear_num_value_heads=4,
  linear_key_head_dim=8,
  linear_value_head_dim=8,  # 2 x 8 keys and 4 x 8 values: transformers' equal-thirds split is wrong
  rope_parameters=dict(rope_type="default", rope_theta=10_000.0),
  pad_token_id=0,
  eos_token_id=1,
)


def _qwen3_5(**changes):
  return transformers.Qwen3_5ForCausalLM(transformers.Qwen3_5TextConfig(**{**_QWEN, **changes}))


def _qwen3_next(**changes):
  moe = dict(
    num_experts=4,
    num_experts_per_tok=2,
    moe_intermediate_size=16,
    shared_expert_intermediate_size=24,
    mlp_only_layers=[1],
  )
  config = transformers.Qwen3NextConfig(**{**_QWEN, **moe, **changes})
  return transformers.Qwen3NextForCausalLM(config)


def _olmo(**changes):
  config = transformers.OlmoHybridConfig(**{**_OLMO, **changes})
  return transformers.OlmoHybridForCausalLM(config)


BUILDERS = {"qwen3_5": _qwen3_5, "qwen3_next": _qwen3_next, "olmo_hybrid": _olmo}


def _randomise(model, seed=0):
  """Moves every norm weight, A_log and dt_bias off its initial value."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1 or "A_log" in name or "dt_bias" in name:
        p.add_(0.3 * torch.randn(p.shape, generator=gen))
  return model.eval()


def _save(model, path) -> pathlib.Path:
  model.save_pretrained(path)
  return pathlib.Path(path)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def hf_model(request, tmp_path_factory):
  """(family, transformers model, its directory)."""
  torch.manual_seed(0)
  model = _randomise(BUILDERS[request.param]())
  path = _save(model, tmp_path_factory.mktemp(request.param))
  return request.param, model, path


def _tokens(batch=2, length=70, seed=0):
  return np.random.default_rng(seed).integers(0, VOCAB, (batch, length)).astype(np.int32)


def _hf_logits(model, tokens):
  with torch.no_grad():
    return model(input_ids=torch.from_numpy(tokens.astype(np.int64))).logits.float().numpy()


def _close(a, b, tol=1e-4):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  err = np.max(np.abs(a - b)) / np.max(np.abs(b))
  assert err < tol, f"relative error {err:.2e} (largest logit {np.max(np.abs(b)):.3f})"


def test_whole_sequence_logits_match_transformers(hf_model):
  _, hf, path = hf_model
  model = sleepnet.from_pretrained(path)
  tokens = _tokens()  # 70 tokens: past the 64-token chunk of both implementations
  _close(model(jnp.asarray(tokens)), _hf_logits(hf, tokens))


def test_streaming_logits_match_transformers(hf_model):
  _, hf, path = hf_model
  model = sleepnet.from_pretrained(path, max_len=64)
  tokens = _tokens(length=24, seed=1)
  logits, state = model.prefill(jnp.asarray(tokens[:, :5]), model.init_state(2))
  steps = [logits]
  for t in range(5, tokens.shape[1]):
    step_logits, state = model.step(jnp.asarray(tokens[:, t]), state)
    steps.append(step_logits[:, None])
  _close(jnp.concatenate(steps, axis=1), _hf_logits(hf, tokens))


def test_greedy_generation_matches_transformers(hf_model):
  _, hf, path = hf_model
  model = sleepnet.from_pretrained(path, max_len=64)
  prompt = _tokens(batch=1, length=6, seed=2)
  ours = sleepnet.generate(model, jnp.asarray(prompt), max_new_tokens=20).tokens
  with torch.no_grad():
    theirs = hf.generate(
      torch.from_numpy(prompt.astype(np.int64)),
      max_new_tokens=20,
      min_new_tokens=20,
      do_sample=False,
      pad_token_id=0,
    )
  np.testing.assert_array_equal(ours, theirs[:, prompt.shape[1] :].numpy())


def test_save_pretrained_round_trips_through_transformers(hf_model, tmp_path):
  _, hf, path = hf_model
  model = sleepnet.from_pretrained(path)
  out = tmp_path / "saved"
  sleepnet.save_pretrained(model, out)
  reloaded = type(hf).from_pretrained(out).eval()
  # transformers -> sleepnet -> transformers: every weight bit for bit.
  for name, value in hf.state_dict().items():
    np.testing.assert_array_equal(reloaded.state_dict()[name].numpy(), value.numpy(), err_msg=name)
  # sleepnet -> transformers files -> sleepnet: every parameter bit for bit.
  again = sleepnet.from_pretrained(out)
  _, a = run_config.split_model(model)
  _, b = run_config.split_model(again)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  tokens = _tokens(length=20, seed=3)
  _close(_hf_logits(reloaded, tokens), _hf_logits(hf, tokens), tol=1e-6)


def test_window_as_long_as_the_sequence_changes_nothing(hf_model):
  _, _, path = hf_model
  tokens = jnp.asarray(_tokens(length=40, seed=4))
  full = sleepnet.from_pretrained(path)(tokens)
  _close(sleepnet.from_pretrained(path, window=40)(tokens), full, tol=1e-6)


@pytest.mark.parametrize("family", ["qwen3_5", "olmo_hybrid"])
def test_evicted_windows_reach_the_present_only_through_gdn(family, tmp_path):
  torch.manual_seed(1)
  hybrid = _save(_randomise(BUILDERS[family]()), tmp_path / "hybrid")
  # The same architecture with attention layers only (written by sleepnet: transformers asks
  # for at least one GDN layer in some of these configs).
  attn_only = sleepnet.from_pretrained(hybrid, window=8)
  attn_only = sleepnet.Model(attn_only.config.replace(blocks=("attn",) * 4), rngs=nnx.Rngs(0))
  tokens = _tokens(length=32, seed=5)
  changed = tokens.copy()
  changed[:, :8] = (changed[:, :8] + 1) % VOCAB  # window 0; we look at window 2 (16..23)
  for model, bridged in ((sleepnet.from_pretrained(hybrid, window=8), True), (attn_only, False)):
    a = np.asarray(model(jnp.asarray(tokens)))[:, 16:24]
    b = np.asarray(model(jnp.asarray(changed)))[:, 16:24]
    if bridged:
      assert np.max(np.abs(a - b)) > 1e-4, "the GDN fast weights should carry window 0 forward"
    else:
      np.testing.assert_array_equal(a, b)


def test_qwen3_5_text_model_of_a_multimodal_checkpoint(tmp_path):
  torch.manual_seed(2)
  vision = dict(
    depth=1,
    hidden_size=16,
    num_heads=2,
    intermediate_size=32,
    out_hidden_size=32,
    patch_size=2,
    temporal_patch_size=2,
    spatial_merge_size=2,
    num_position_embeddings=16,
    in_channels=3,
  )
  config = transformers.Qwen3_5Config(text_config=_QWEN, vision_config=vision)
  hf = _randomise(transformers.Qwen3_5ForConditionalGeneration(config))
  path = _save(hf, tmp_path / "multimodal")
  tokens = _tokens(length=12, seed=6)
  _close(sleepnet.from_pretrained(path)(jnp.asarray(tokens)), _hf_logits(hf, tokens))


def test_olmo_conv_written_in_equal_thirds_is_read_whole(hf_model):
  family, _, path = hf_model
  if family != "olmo_hybrid":
    pytest.skip("OLMo-Hybrid only")
  names = json.loads((path / "config.json").read_text())
  assert names["linear_key_head_dim"] * 2 != names["linear_value_head_dim"] * 4
  shapes = pretrained.files.TensorFiles(path)
  # transformers 5.x splits the fused [q | k | v] convolution into equal thirds on save; the
  # true widths are 16, 16 and 32, so a reader that trusted the names would mix channels.
  thirds = [shapes.shape(f"model.layers.0.linear_attn.{c}_conv1d.weight")[0] for c in "qkv"]
  assert thirds != [16, 16, 32]


def test_no_rope_olmo_matches_transformers(tmp_path):
  torch.manual_seed(3)
  hf = _randomise(_olmo(rope_parameters=dict(rope_type="default", rope_theta=None)))
  path = _save(hf, tmp_path / "nope")
  model = sleepnet.from_pretrained(path)
  assert model.config.rotary_dim == 0
  tokens = _tokens(length=20, seed=7)
  _close(model(jnp.asarray(tokens)), _hf_logits(hf, tokens))


def test_fine_tuning_an_imported_model_with_sleep(tmp_path):
  # A tiny Qwen3.5 given windows of 8 tokens and N = 4, fine-tuned end to end through sleep on
  # sequences whose last window repeats the first (drawn from 8 of the 64 tokens). The held-out
  # loss must fall (within 30 steps mostly by learning which tokens occur; the copy itself takes
  # longer), and the sleep injection, zero on import, must receive gradient: it is what
  # "hidden" sleep passes learn.
  import optax

  torch.manual_seed(5)
  path = _save(_randomise(_qwen3_5()), tmp_path / "base")
  model = sleepnet.from_pretrained(path, window=8, sleep_passes=4)
  assert not np.any(np.asarray(model.inject.kernel[...]))

  def batch(seed, n=16):
    rng = np.random.default_rng(seed)
    first = rng.integers(2, 10, (n, 8))
    middle = np.ones((n, 8), np.int64)
    return jnp.asarray(np.concatenate([first, middle, first], axis=1), jnp.int32)

  def loss_fn(model, tokens):
    logits = model(tokens[:, :-1])[:, 16:]  # predictions of the repeated window
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 17:]).mean()

  optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, tokens):
    loss, grads = nnx.value_and_grad(loss_fn)(model, tokens)
    optimizer.update(model, grads)
    return loss, grads

  held_out = batch(10_000, n=64)
  before = float(loss_fn(model, held_out))
  for i in range(30):
    _, grads = step(model, optimizer, batch(i))
    if i == 0:
      assert np.any(np.asarray(grads.inject.kernel[...])), "no gradient reaches the injection"
  after = float(loss_fn(model, held_out))
  assert after < 0.8 * before, (before, after)


# ------------------------------------------------------------------------------------------------
# Bad inputs: each refused with an error that names the problem.


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
  torch.manual_seed(4)
  return _save(_randomise(_qwen3_5()), tmp_path_factory.mktemp("qwen"))


def _copy(src: pathlib.Path, dst: pathlib.Path, config=None, tensors=None) -> pathlib.Path:
  dst.mkdir()
  hf = json.loads((src / "config.json").read_text())
  (dst / "config.json").write_text(json.dumps(config(hf) if config else hf))
  values = dict(pretrained.files.TensorFiles(src))
  pretrained.files.write_tensors(dst, tensors(values) if tensors else values)
  return dst


def test_missing_tensor_is_named(qwen_dir, tmp_path):
  name = "model.layers.0.linear_attn.in_proj_z.weight"
  bad = _copy(
    qwen_dir, tmp_path / "bad", tensors=lambda t: {k: v for k, v in t.items() if k != name}
  )
  with pytest.raises(pretrained.UnsupportedModelError, match=name.replace(".", r"\.")):
    sleepnet.from_pretrained(bad)


def test_wrong_shape_is_named(qwen_dir, tmp_path):
  name = "model.layers.1.self_attn.k_proj.weight"
  bad = _copy(qwen_dir, tmp_path / "bad", tensors=lambda t: {**t, name: t[name][:-1]})
  with pytest.raises(pretrained.UnsupportedModelError, match=r"blocks\.1\.mixer\.k_proj\.kernel"):
    sleepnet.from_pretrained(bad)


def test_extra_tensor_is_named(qwen_dir, tmp_path):
  name = "model.layers.0.linear_attn.in_proj_z.bias"
  extra = {name: np.zeros(48, np.float32)}
  bad = _copy(qwen_dir, tmp_path / "bad", tensors=lambda t: {**t, **extra})
  with pytest.raises(pretrained.UnsupportedModelError, match=name.replace(".", r"\.")):
    sleepnet.from_pretrained(bad)


@pytest.mark.parametrize(
  "change, message",
  [
    (dict(model_type="llama"), "model_type 'llama'"),
    (dict(hidden_act="gelu"), "hidden_act='gelu'"),
    (dict(attention_bias=True), "attention_bias=True"),
    (
      dict(rope_parameters=dict(rope_type="yarn", rope_theta=1e4, factor=2.0)),
      "rope_type 'yarn'",
    ),
    (dict(layer_types=["linear_attention", "sliding_attention"] * 2), "sliding_attention"),
  ],
)
def test_unsupported_config_is_named(qwen_dir, tmp_path, change, message):
  bad = _copy(qwen_dir, tmp_path / "bad", config=lambda hf: {**hf, **change})
  with pytest.raises(pretrained.UnsupportedModelError, match=message):
    sleepnet.from_pretrained(bad)


def test_not_a_model_directory(tmp_path):
  with pytest.raises(pretrained.CheckpointError, match=r"config\.json"):
    sleepnet.from_pretrained(tmp_path)
  (tmp_path / "config.json").write_text(json.dumps(dict(model_type="qwen3_5_text")))
  with pytest.raises(pretrained.CheckpointError, match=r"model\.safetensors"):
    pretrained.files.TensorFiles(tmp_path)


def test_sharded_checkpoints_read_like_one_file(qwen_dir, tmp_path):
  model = sleepnet.from_pretrained(qwen_dir)
  sleepnet.save_pretrained(model, tmp_path, shard_bytes=20_000)
  assert (tmp_path / "model.safetensors.index.json").is_file()
  assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
  tokens = jnp.asarray(_tokens(length=10, seed=8))
  _close(sleepnet.from_pretrained(tmp_path)(tokens), model(tokens), tol=1e-7)


def test_import_sleepnet_imports_neither_torch_nor_transformers():
  import subprocess
  import sys

  code = (
    "import sys, sleepnet, sleepnet.pretrained; sleepnet.Model; "
    "print(sorted(m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


_MESH_CHILD = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
import sleepnet
from sleepnet import sharding
mesh = sharding.make_mesh((("data", 4), ("model", 2)))
model = sleepnet.from_pretrained(sys.argv[1], mesh=mesh, min_size=0)
kernel = model.blocks[0].mixer.qkv_proj.kernel[...]
tokens = jnp.asarray(np.arange(40).reshape(4, 10) % 64, jnp.int32)
print("RESULT " + json.dumps({
  "spec": list(kernel.sharding.spec),
  "shards": sorted({tuple(s.data.shape) for s in kernel.addressable_shards}),
  "logits": np.asarray(model(tokens)).tolist(),
}))
"""


def test_parameters_are_born_sharded_on_a_mesh(qwen_dir):
  out = fake_devices.run(_MESH_CHILD, str(qwen_dir), timeout=300)
  assert out["spec"] == [None, "model"]  # [32, 80]: the 80 outputs split in two
  assert out["shards"] == [[32, 40]]
  tokens = jnp.asarray(np.arange(40).reshape(4, 10) % 64, jnp.int32)
  _close(out["logits"], sleepnet.from_pretrained(qwen_dir)(tokens), tol=1e-5)
