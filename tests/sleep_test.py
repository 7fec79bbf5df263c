"""Sleep: what crosses a window boundary, how passes read and start, streaming, sampling, costs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sleepnet
from sleepnet import costs, sampling
from sleepnet.gdn import GDNState

VOCAB, L = 13, 5


def config(name: str = "hybrid", **overrides) -> sleepnet.ModelConfig:
  base = dict(vocab_size=VOCAB, window=L, max_len=32)
  if name == "transformer_full":
    base.pop("window")
  return sleepnet.preset(name, size="tiny", **{**base, **overrides})


def tokens(b: int, t: int, seed: int = 1) -> jax.Array:
  return jax.random.randint(jax.random.key(seed), (b, t), 0, VOCAB)


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def test_one_pass_is_the_plain_hybrid():
  """N = 1 runs no sleep code: equal to carrying the wake pass's fast weights window to window."""
  model = sleepnet.Model(config(sleep_passes=1), rngs=nnx.Rngs(0))
  toks = tokens(2, 3 * L)
  logits, fast = model.forward(toks)
  emb, carried, outs = model.embed(toks), model.zero_fast_weights(2), []
  for w in range(3):
    h, carried = model._run_window(emb[:, w * L : (w + 1) * L], carried)
    outs.append(model._logits(h))
  np.testing.assert_allclose(logits, jnp.concatenate(outs, 1), rtol=1e-6, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), fast, carried)
  assert rel_err(model(toks, sleep_passes=4), logits) > 1e-3  # Sleep does change things.


@pytest.mark.parametrize(
  ("name", "passes", "reaches_back"),
  [("hybrid", 1, True), ("hybrid", 3, True), ("transformer", 3, False), ("gdn", 3, True)],
)
def test_gradient_reaches_evicted_window_only_through_fast_weights(name, passes, reaches_back):
  model = sleepnet.Model(config(name, sleep_passes=passes), rngs=nnx.Rngs(0))
  emb = model.embed(tokens(2, 2 * L))
  probe = jax.random.normal(jax.random.key(9), (2, L, VOCAB))

  def loss_in_window_2(e):
    logits, _ = model.forward_embeddings(e)
    return jnp.sum(logits[:, L:] * probe)

  grad = jax.grad(loss_in_window_2)(emb)
  window_1 = np.abs(np.asarray(grad[:, :L])).max()
  assert np.abs(np.asarray(grad[:, L:])).max() > 0
  if reaches_back:
    assert window_1 > 1e-6
  else:
    assert window_1 == 0.0  # Exactly: the windowed transformer forgets evicted windows.


def _zero_fast(state):
  blocks = tuple(
    s._replace(fast=jnp.zeros_like(s.fast)) if isinstance(s, GDNState) else s for s in state.blocks
  )
  return state._replace(blocks=blocks)


@pytest.mark.parametrize("passes", [1, 3])
def test_old_window_reaches_new_one_only_through_fast_weights(passes):
  model = sleepnet.Model(config(sleep_passes=passes), rngs=nnx.Rngs(0))
  second = tokens(1, L, seed=3)

  def window_2_logits(first, zero):
    _, state = model.prefill(first, model.init_state(1))
    state = model.sleep(state)
    assert int(state.pos) == 0  # The cache was cleared.
    if zero:
      state = _zero_fast(state)
    return model.prefill(second, state)[0]

  a, b = tokens(1, L, seed=4), tokens(1, L, seed=5)
  assert rel_err(window_2_logits(a, False), window_2_logits(b, False)) > 1e-4
  np.testing.assert_array_equal(window_2_logits(a, True), window_2_logits(b, True))


def test_carry_and_fresh_differ_only_with_sleep():
  toks = tokens(2, L)
  fast = {}
  for start in ("carry", "fresh"):
    for n in (1, 2, 3):
      model = sleepnet.Model(config(sleep_start=start, sleep_final_window=True), rngs=nnx.Rngs(0))
      fast[start, n] = model.forward(toks, sleep_passes=n)[1]
  same = lambda a, b: all(  # noqa: E731
    np.allclose(x, y, rtol=1e-6, atol=1e-7)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )
  assert same(fast["carry", 1], fast["fresh", 1])
  assert not same(fast["carry", 2], fast["fresh", 2])
  assert not same(fast["carry", 3], fast["fresh", 3])


@pytest.mark.parametrize(("sleep_input", "depends"), [("hidden", True), ("tokens", False)])
def test_hidden_sleep_reads_the_top_layer(sleep_input, depends):
  """The top block writes no fast weights itself; only a re-fed hidden state carries its output."""
  model = sleepnet.Model(
    config(sleep_passes=3, sleep_input=sleep_input, sleep_final_window=True), rngs=nnx.Rngs(0)
  )
  toks = tokens(2, L)
  probe = [
    jax.random.normal(jax.random.key(i), f.shape)
    for i, f in enumerate(model.zero_fast_weights(2))
    if f is not None
  ]

  def fast_after_sleep(m):
    _, fast = m.forward(toks)
    return sum(
      jnp.sum(f * p) for f, p in zip([f for f in fast if f is not None], probe, strict=True)
    )

  grads = nnx.grad(fast_after_sleep)(model)
  top = max(np.abs(np.asarray(g)).max() for g in jax.tree.leaves(grads["blocks"][3]))
  if depends:
    assert top > 1e-6
  else:
    assert top == 0.0


def test_any_n_at_test_time_from_one_model():
  model = sleepnet.Model(config(sleep_passes=2), rngs=nnx.Rngs(0))
  toks = tokens(1, 2 * L)
  outs = {n: model(toks, sleep_passes=n) for n in (1, 2, 4, 8)}
  np.testing.assert_array_equal(outs[2], model(toks))
  for n in (1, 4, 8):  # Window 1 is unaffected by N; window 2 depends on it.
    np.testing.assert_allclose(outs[n][:, :L], outs[2][:, :L], rtol=1e-6, atol=1e-6)
    assert rel_err(outs[n][:, L:], outs[2][:, L:]) > 1e-4


def test_sleep_needs_a_full_window():
  model = sleepnet.Model(config(sleep_passes=2), rngs=nnx.Rngs(0))
  _, state = model.prefill(tokens(1, 3), model.init_state(1))
  with pytest.raises(ValueError, match="needs a full window: 3 of 5"):
    model.sleep(state)
  full = sleepnet.Model(config("transformer_full"), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="window=None"):
    full.sleep(full.init_state(1))


# ------------------------------------------------------------------------------------------------
# Sampling


def test_greedy_generation_matches_argmax_of_forward():
  model = sleepnet.Model(config(sleep_passes=2), rngs=nnx.Rngs(0))
  prompt = tokens(2, 4)
  out = sampling.generate(model, prompt, max_new_tokens=9)  # Crosses two window boundaries.
  assert out.tokens.shape == (2, 9) and out.tokens.dtype == np.int32
  seq = np.concatenate([np.asarray(prompt), out.tokens], axis=1)
  logits = model(jnp.asarray(seq))
  np.testing.assert_array_equal(np.argmax(logits[:, 3:-1], -1), out.tokens)


def test_sampling_is_seeded_and_stops_at_end_token():
  model = sleepnet.Model(config(), rngs=nnx.Rngs(0))
  prompt = tokens(3, 2)
  a = sampling.generate(model, prompt, max_new_tokens=12, temperature=1.0, seed=5).tokens
  b = sampling.generate(model, prompt, max_new_tokens=12, temperature=1.0, seed=5).tokens
  c = sampling.generate(model, prompt, max_new_tokens=12, temperature=1.0, seed=6).tokens
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  end = int(a[0, 2])
  stopped = sampling.generate(
    model, prompt, max_new_tokens=12, temperature=1.0, seed=5, end_token=end
  ).tokens
  row = stopped[0]
  first = int(np.argmax(row == end))
  assert first <= 2 and np.all(row[first:] == end)
  np.testing.assert_array_equal(row[:first], a[0, :first])
  with pytest.raises(ValueError, match="temperature must be >= 0"):
    sampling.generate(model, prompt, max_new_tokens=2, temperature=-1.0)


# ------------------------------------------------------------------------------------------------
# Costs


@pytest.mark.parametrize("positions", ["none", "window"])
@pytest.mark.parametrize("name", ["hybrid", "transformer", "transformer_full", "gdn"])
def test_costs_match_the_real_model(name, positions):
  cfg = config(name, sleep_passes=4, position_embedding=positions)
  model = sleepnet.Model(cfg, rngs=nnx.Rngs(0))
  report = costs.costs(cfg)
  assert report.params == sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  state = model.init_state(1)
  assert report.stream_state_bytes == sum(x.nbytes for x in jax.tree.leaves(state))
  caches = [s for s in state.blocks if hasattr(s, "k")]
  assert report.kv_cache_bytes == sum(c.k.nbytes + c.v.nbytes for c in caches)
  assert report.fast_weight_bytes == sum(f.nbytes for f in state.fast_weights)


def test_costs_scale_with_passes():
  cfg = config("hybrid")
  one, two, four = (costs.costs(cfg, sleep_passes=n) for n in (1, 2, 4))
  assert one.sleep_flops_per_window == 0
  assert four.sleep_flops_per_window == pytest.approx(3 * two.sleep_flops_per_window)
  assert one.wake_flops_per_token == four.wake_flops_per_token  # Wake cost does not grow with N.
  assert costs.costs(config("transformer"), sleep_passes=4).sleep_flops_per_window == 0
  assert "| 4 |" in costs.format_costs(cfg)
