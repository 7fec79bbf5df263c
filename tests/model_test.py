"""Model stacks: config validation, block contracts, streaming == whole-sequence forward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sleepnet
from sleepnet import layers
from sleepnet.blocks import Block
from sleepnet.config import from_dict

VOCAB = 13


def tiny(name: str = "hybrid", **overrides) -> sleepnet.ModelConfig:
  base = dict(vocab_size=VOCAB, window=5, max_len=32)
  if name == "transformer_full":
    base.pop("window")
  return sleepnet.preset(name, size="tiny", **{**base, **overrides})


def tokens(b: int, t: int, seed: int = 1) -> jax.Array:
  return jax.random.randint(jax.random.key(seed), (b, t), 0, VOCAB)


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ------------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
  ("changes", "message"),
  [
    (dict(blocks=("gdn", "mamba")), "unknown block kind 'mamba'"),
    (dict(blocks=()), "blocks is empty"),
    (dict(window=0), "window must be a positive integer, got 0"),
    (dict(window=8.5), "window must be a positive integer, got 8.5"),
    (dict(window=True), "window must be a positive integer, got True"),
    (dict(head_dim=0), "head_dim must be a positive integer"),
    (dict(gdn_value_dim=0), "gdn_value_dim must be a positive integer"),
    (dict(num_kv_heads=0), "num_kv_heads must be a positive integer"),
    (dict(norm_eps=-1.0), "norm_eps must be a positive number, got -1.0"),
    (dict(rope_base=0.0), "rope_base must be a positive number"),
    (dict(remat="yes"), "remat must be True or False, got 'yes'"),
    (dict(sleep_final_window=1), "sleep_final_window must be True or False"),
    (dict(sleep_passes=0), "sleep_passes must be a positive integer"),
    (dict(sleep_input="dreams"), "sleep_input must be one of"),
    (dict(sleep_start="later"), "sleep_start must be one of"),
    (dict(d_model=30, num_heads=4), "not divisible by num_heads"),
    (dict(num_kv_heads=3), "must be a multiple of num_kv_heads"),
    (dict(gdn_impl="fast"), "gdn_impl must be one of"),
    (dict(position_embedding="absolute"), "position_embedding must be one of"),
  ],
)
def test_config_rejects_bad_values_by_name(changes, message):
  with pytest.raises(ValueError, match=message):
    sleepnet.ModelConfig(vocab_size=VOCAB, **changes)


def test_config_unknown_key_and_preset_are_named():
  with pytest.raises(ValueError, match=r"Unknown ModelConfig key\(s\) \['windw'\]"):
    from_dict(dict(vocab_size=VOCAB, windw=4))
  with pytest.raises(ValueError, match="Unknown preset 'hybird'"):
    sleepnet.preset("hybird", vocab_size=VOCAB)
  with pytest.raises(ValueError, match="Unknown size"):
    sleepnet.preset("hybrid", size="huge", vocab_size=VOCAB)


def test_config_is_frozen_hashable_and_replace_validates():
  config = tiny()
  assert hash(config) == hash(dataclasses.replace(config))
  assert config.replace(sleep_passes=4).sleep_passes == 4
  with pytest.raises(ValueError, match="sleep_passes"):
    config.replace(sleep_passes=-1)
  assert sleepnet.ModelConfig(vocab_size=VOCAB, blocks=["gdn", "attn"]).blocks == ("gdn", "attn")


def test_presets_build_the_baselines():
  assert tiny("transformer").blocks == ("attn",) * 4
  assert tiny("transformer_full").window is None
  assert tiny("gdn").blocks == ("gdn",) * 4
  assert not tiny("transformer", sleep_passes=4).sleeps  # No fast weights: nothing to sleep into.
  assert tiny("hybrid", sleep_passes=4).sleeps and not tiny("hybrid").sleeps


# ------------------------------------------------------------------------------------------------
# Layers against independent numpy oracles


def test_causal_conv_streams_like_one_call():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 9, 3)).astype(np.float32)
  kernel = rng.normal(size=(4, 3)).astype(np.float32)
  bias = rng.normal(size=(3,)).astype(np.float32)
  padded = np.concatenate([np.zeros((2, 3, 3), np.float32), x], axis=1)
  oracle = np.stack([(padded[:, t : t + 4] * kernel).sum(1) for t in range(9)], axis=1) + bias
  history = jnp.zeros((2, 3, 3))
  outs = []
  for piece in (x[:, :2], x[:, 2:3], x[:, 3:9]):
    y, history = layers.causal_depthwise_conv(jnp.asarray(piece), kernel, bias, history)
    outs.append(y)
  np.testing.assert_allclose(np.concatenate(outs, 1), oracle, rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
  rng = np.random.default_rng(1)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, 8)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 1, 1, 8)), jnp.float32)

  def score(m, n):
    qm = layers.rope(q, jnp.array([m]), 10_000.0)
    kn = layers.rope(k, jnp.array([n]), 10_000.0)
    return float(jnp.sum(qm * kn))

  assert score(7, 3) == pytest.approx(score(4, 0), rel=1e-5)
  assert score(7, 3) != pytest.approx(score(7, 0), rel=1e-3)


def _attention_oracle(block, x: np.ndarray, window: int) -> np.ndarray:
  """Pre-norm attention block output written out in numpy, window by window."""
  mix = block.mixer
  p = lambda lin: np.asarray(lin.kernel[...], np.float64)  # noqa: E731
  xn = np.asarray(block.mixer_norm(jnp.asarray(x)), np.float64)
  b, t, _ = x.shape
  h, g, k = mix.num_heads, mix.kv_heads, mix.key_dim
  q = (xn @ p(mix.q_proj)).reshape(b, t, h, k)
  kk = (xn @ p(mix.k_proj)).reshape(b, t, g, k)
  v = (xn @ p(mix.v_proj)).reshape(b, t, g, k)
  pos = np.arange(t) % window  # Positions restart at every window.
  freqs = 10_000.0 ** (-np.arange(k // 2) / (k // 2))
  ang = pos[:, None] * freqs
  cos, sin = np.cos(ang)[None, :, None], np.sin(ang)[None, :, None]

  def rot(z):
    z1, z2 = z[..., : k // 2], z[..., k // 2 :]
    return np.concatenate([z1 * cos - z2 * sin, z2 * cos + z1 * sin], -1)

  q, kk = rot(q), rot(kk)
  out = np.zeros((b, t, h, k))
  for i in range(t):
    keys = [j for j in range(t) if j // window == i // window and j <= i]
    for head in range(h):
      kv = head // (h // g)
      s = np.einsum("bd,bjd->bj", q[:, i, head], kk[:, keys, kv]) / np.sqrt(k)
      w = np.exp(s - s.max(-1, keepdims=True))
      w /= w.sum(-1, keepdims=True)
      out[:, i, head] = np.einsum("bj,bjd->bd", w, v[:, keys, kv])
  y = x + out.reshape(b, t, h * k) @ p(mix.o_proj)
  if block.mlp is not None:
    y = y + np.asarray(block.mlp(block.mlp_norm(jnp.asarray(y, jnp.float32))), np.float64)
  return y


@pytest.mark.parametrize("num_kv_heads", [None, 1])
def test_windowed_attention_block_matches_numpy_oracle(num_kv_heads):
  config = tiny(num_kv_heads=num_kv_heads)
  block = Block("attn", config, rngs=nnx.Rngs(0))
  x = np.random.default_rng(2).normal(size=(2, 12, config.d_model)).astype(np.float32)
  # Run window by window, as the model does (a fresh state at each window start).
  outs = []
  for start in range(0, 12, 5):
    piece = jnp.asarray(x[:, start : start + 5])
    y, _ = block(piece, block.init_state(2, piece.shape[1]), 0)
    outs.append(y)
  assert rel_err(jnp.concatenate(outs, 1), _attention_oracle(block, x, 5)) < 1e-5


# ------------------------------------------------------------------------------------------------
# Block contract: streaming a block equals running it over the window


@pytest.mark.parametrize("kind", ["gdn", "attn"])
def test_block_streaming_equals_whole_window(kind):
  config = tiny()
  block = Block(kind, config, rngs=nnx.Rngs(3))
  t = 9
  x = jax.random.normal(jax.random.key(4), (2, t, config.d_model))
  fast = block.fast_weights(block.init_state(2, 1))
  if kind == "gdn":  # Start from non-zero fast weights, as after earlier windows.
    fast = 0.3 * jax.random.normal(jax.random.key(5), fast.shape)
  whole, whole_state = block(x, block.init_state(2, t, fast), 0)
  state, outs, pos = block.init_state(2, t, fast), [], 0
  for size in (1, 3, 1, 4):  # Odd cut points, including single tokens.
    y, state = block(x[:, pos : pos + size], state, jnp.int32(pos))
    outs.append(y)
    pos += size
  assert rel_err(jnp.concatenate(outs, 1), whole) < 1e-5
  if kind == "gdn":
    assert rel_err(block.fast_weights(state), block.fast_weights(whole_state)) < 1e-5
  else:
    assert block.fast_weights(state) is None


# ------------------------------------------------------------------------------------------------
# Whole model


def _stream(model, toks, schedule=None):
  state = model.init_state(toks.shape[0])
  if schedule is None:
    outs = []
    for i in range(toks.shape[1]):
      logits, state = model.step(toks[:, i], state)
      outs.append(logits)
    return jnp.stack(outs, 1), state
  outs, pos = [], 0
  for size in schedule:
    logits, state = model.prefill(toks[:, pos : pos + size], state)
    outs.append(logits)
    pos += size
  assert pos == toks.shape[1]
  return jnp.concatenate(outs, 1), state


def _assert_streaming_equals_forward(model):
  toks = tokens(2, 13)  # Two full windows of 5 and a partial one.
  full = model(toks)
  stepped, _ = _stream(model, toks)
  assert rel_err(stepped, full) < 1e-4
  chunked, _ = _stream(model, toks, schedule=(3, 7, 1, 2))  # Cuts inside and across windows.
  assert rel_err(chunked, full) < 1e-4


@pytest.mark.parametrize("name", ["hybrid", "transformer", "transformer_full", "gdn"])
@pytest.mark.parametrize("passes", [1, 2, 4])
def test_model_streaming_equals_forward(name, passes):
  model = sleepnet.Model(tiny(name, sleep_passes=passes), rngs=nnx.Rngs(0))
  toks = tokens(2, 13)  # Two full windows of 5 and a partial one.
  full = model(toks)
  assert full.shape == (2, 13, VOCAB) and full.dtype == jnp.float32
  stepped, _ = _stream(model, toks)
  assert rel_err(stepped, full) < 1e-4
  chunked, _ = _stream(model, toks, schedule=(3, 7, 1, 2))  # Cuts inside and across windows.
  assert rel_err(chunked, full) < 1e-4


@pytest.mark.parametrize("name", ["hybrid", "transformer_full"])
@pytest.mark.parametrize("passes", [1, 3])
def test_streaming_equals_forward_with_position_embeddings(name, passes):
  model = sleepnet.Model(
    tiny(name, sleep_passes=passes, position_embedding="window"), rngs=nnx.Rngs(0)
  )
  _assert_streaming_equals_forward(model)


@pytest.mark.parametrize(
  "changes",
  [dict(sleep_input="tokens"), dict(sleep_start="fresh"), dict(sleep_final_window=True)],
)
def test_streaming_equals_forward_for_every_sleep_option(changes):
  # Eviction in streaming re-runs _sleep from the saved window (its tokens and top hidden states,
  # and for "fresh" the fast weights before it): each option takes another path through it.
  model = sleepnet.Model(tiny("hybrid", sleep_passes=3, **changes), rngs=nnx.Rngs(0))
  _assert_streaming_equals_forward(model)


def test_position_embeddings_are_in_window_positions():
  model = sleepnet.Model(tiny(position_embedding="window"), rngs=nnx.Rngs(0))  # L = 5
  table = np.asarray(model.position_embed.embedding[...])
  assert table.shape == (5, model.config.d_model)
  toks = tokens(2, 12)
  got = np.asarray(model.embed_tokens(toks, 3))
  want = np.asarray(model.embed(toks)) + table[(3 + np.arange(12)) % 5]  # the numpy oracle
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  # Position matters: the same tokens one step later in the window embed differently.
  assert not np.allclose(got, model.embed_tokens(toks, 4))
  full = sleepnet.Model(tiny("transformer_full", position_embedding="window"), rngs=nnx.Rngs(0))
  assert full.position_embed.embedding[...].shape[0] == 32  # max_len: absolute positions
  with pytest.raises(ValueError, match="exceed max_len=32"):
    full(tokens(1, 33))


def test_model_accepts_any_length_and_one_token():
  model = sleepnet.Model(tiny(), rngs=nnx.Rngs(0))
  for t in (1, 4, 5, 6, 10):
    assert model(tokens(1, t)).shape == (1, t, VOCAB)


def test_jitted_forward_is_not_retraced():
  model = sleepnet.Model(tiny(sleep_passes=2), rngs=nnx.Rngs(0))
  traces = []

  @nnx.jit
  def forward(m, x):
    traces.append(1)
    return m(x)

  a = forward(model, tokens(2, 11, seed=1))
  b = forward(model, tokens(2, 11, seed=2))
  assert len(traces) == 1
  assert not np.allclose(a, b)  # Different inputs really ran.


def test_weights_do_not_depend_on_sleep_settings():
  ref = nnx.state(sleepnet.Model(tiny(), rngs=nnx.Rngs(7)), nnx.Param)
  for changes in (dict(sleep_passes=4), dict(sleep_input="tokens", sleep_start="fresh")):
    other = nnx.state(sleepnet.Model(tiny(**changes), rngs=nnx.Rngs(7)), nnx.Param)
    jax.tree.map(np.testing.assert_array_equal, ref, other)
  # Position embeddings add one table and leave every other weight as it was.
  with_positions = sleepnet.Model(tiny(position_embedding="window"), rngs=nnx.Rngs(7))
  other = nnx.state(with_positions, nnx.Param)
  flat = dict(jax.tree_util.tree_flatten_with_path(other)[0])
  ref_flat = dict(jax.tree_util.tree_flatten_with_path(ref)[0])
  assert (
    set(flat) - set(ref_flat)
    == {k for k in flat if "position_embed" in jax.tree_util.keystr(k)}
    != set()
  )
  for key, value in ref_flat.items():
    np.testing.assert_array_equal(value, flat[key])


def test_state_is_one_pytree_with_bounded_cache():
  model = sleepnet.Model(tiny(), rngs=nnx.Rngs(0))
  _, state = _stream(model, tokens(2, 12))
  leaves = jax.tree.leaves(state)
  assert all(isinstance(x, jax.Array) for x in leaves)
  caches = [s for s in state.blocks if hasattr(s, "k")]
  assert all(c.k.shape[1] == 5 for c in caches)  # Never more than L tokens.
  assert len(state.fast_weights) == 2 and int(state.pos) == 2


def test_bad_inputs_are_named():
  model = sleepnet.Model(tiny(), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"shape \[B, T\]"):
    model(jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match="must be integers"):
    model(jnp.zeros((1, 5), jnp.float32))
  with pytest.raises(ValueError, match="sleep_passes must be a positive integer"):
    model(tokens(1, 5), sleep_passes=0)
  with pytest.raises(ValueError, match="one token per row"):
    model.step(jnp.zeros((1, 1), jnp.int32), model.init_state(1))
  # Ids outside the vocabulary: NaN logits (past the table) and a wrap to the last row (−1)
  # if unchecked; every entry point names the id and where it is.
  bad = np.asarray(tokens(2, 6)).copy()
  bad[1, 4] = VOCAB
  with pytest.raises(
    ValueError, match=rf"token id {VOCAB} at index \(1, 4\) is outside .*\[0, 13\)"
  ):
    model(jnp.asarray(bad))
  bad[1, 4] = -1
  with pytest.raises(ValueError, match=r"token id -1 at index \(1, 4\)"):
    model.prefill(jnp.asarray(bad), model.init_state(2))
  with pytest.raises(ValueError, match=r"token id 99 at index \(0,\)"):
    model.step(jnp.asarray([99, 0]), model.init_state(2))
  # A batch that does not match the streaming state: both sizes named.
  with pytest.raises(ValueError, match="a batch of 3 rows was fed to a streaming state of 2 rows"):
    model.step(jnp.zeros((3,), jnp.int32), model.init_state(2))
  with pytest.raises(ValueError, match="a batch of 1 rows was fed to a streaming state of 2 rows"):
    model.prefill(tokens(1, 4), model.init_state(2))
  full = sleepnet.Model(tiny("transformer_full", max_len=6), rngs=nnx.Rngs(0))
  state = full.init_state(1)
  _, state = full.prefill(tokens(1, 5), state)
  with pytest.raises(ValueError, match="exceed max_len=6"):
    full.prefill(tokens(1, 2), state)


def test_streaming_sees_new_weights_after_first_call():
  """Streaming calls cache the module graph; parameter updates must still reach them."""
  model = sleepnet.Model(tiny(sleep_passes=2), rngs=nnx.Rngs(0))
  toks = tokens(1, 7)
  _stream(model, toks)
  nnx.update(model, nnx.state(sleepnet.Model(tiny(sleep_passes=2), rngs=nnx.Rngs(1))))
  stepped, _ = _stream(model, toks)
  chunked, _ = _stream(model, toks, schedule=(6, 1))
  assert rel_err(stepped, model(toks)) < 1e-4
  assert rel_err(chunked, model(toks)) < 1e-4
