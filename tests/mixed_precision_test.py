"""Mixed precision (`ModelConfig.dtype = "bfloat16"`): what runs in bf16, what stays float32, and
how close bf16 training stays to float32 training.

The tolerances come from bf16's 8-bit significand: one rounding is off by at most 2⁻⁹ ≈ 0.2%
relative, and a forward pass rounds every matmul output and activation of about a dozen layers
per window, so logits at initialisation differ by a few 0.1% to about 1% (measured: 1.0% on the
hybrid below); 4% leaves room for other seeds. Training then follows its own trajectory, so losses
are compared as curves: each of the first 30 steps within 2% of float32's (measured: under 0.1%).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_run
from absl import flags
from flax import nnx
from jaxpr_tools import dot_generals

import sleepnet
from sleepnet import run_config, sharding, train


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def tiny(dtype, **changes):
  cfg = sleepnet.preset("hybrid", size="tiny", vocab_size=13, window=5, sleep_passes=2)
  return cfg.replace(dtype=dtype, **changes)


def test_bf16_matmuls_with_float32_params_state_and_logits():
  model = sleepnet.Model(tiny("bfloat16"), rngs=nnx.Rngs(0))
  toks = jax.random.randint(jax.random.key(1), (2, 13), 0, 13)
  logits, fast = model.forward(toks)
  assert logits.dtype == jnp.float32
  assert all(f is None or f.dtype == jnp.float32 for f in fast)
  assert {str(x.dtype) for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {"float32"}
  graphdef, params = nnx.split(model)
  dots = [
    (d, str(p))
    for d, p in dot_generals(lambda p, t: nnx.merge(graphdef, p).forward(t), params, toks)
  ]
  bf16 = [d for d in dots if d[0] == "bfloat16"]
  f32 = [d for d in dots if d[0] == "float32"]
  assert bf16, "no matmul ran in bfloat16"
  # The float32 ones: the recurrence (at HIGHEST), the gates, the LM head.
  assert f32 and any("HIGHEST" in p for _, p in f32)


def test_bf16_logits_stay_close_to_float32():
  toks = jax.random.randint(jax.random.key(1), (2, 13), 0, 13)
  want = sleepnet.Model(tiny("float32"), rngs=nnx.Rngs(0))(toks)
  got = sleepnet.Model(tiny("bfloat16"), rngs=nnx.Rngs(0))(toks)
  assert rel_err(got, want) < 4e-2
  # Streaming in bf16 gives the bf16 forward's logits (the KV cache and the window's hidden
  # states are kept in float32, so only roundings differ).
  model = sleepnet.Model(tiny("bfloat16"), rngs=nnx.Rngs(0))
  state, outs = model.init_state(2), []
  for i in range(toks.shape[1]):
    out, state = model.step(toks[:, i], state)
    outs.append(out)
  assert rel_err(jnp.stack(outs, 1), got) < 4e-2


def losses(dtype, steps=30):
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags
  config = tiny_run.config(**{"model.dtype": dtype})
  mesh = sharding.make_mesh(config.mesh)
  model_config, task = run_config.resolve(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  step_fn = train.make_train_step(config, graphdef, tx, mesh, shardings)
  data = train.train_iterator(config, task, mesh)
  out = []
  for _ in range(steps):
    batch = next(data)
    state, m = step_fn(
      state, sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh)
    )
    out.append(float(m["loss"]))
  assert all(
    x.dtype == jnp.float32 for x in jax.tree.leaves(state["opt"]) if hasattr(x, "dtype") and x.ndim
  )
  return np.asarray(out)


def test_bf16_training_follows_float32_training():
  f32, bf16 = losses("float32"), losses("bfloat16")
  assert np.all(np.isfinite(bf16))
  assert bf16[-1] < bf16[0]  # it trains
  np.testing.assert_allclose(bf16, f32, rtol=2e-2)


def test_unknown_dtype_is_named():
  with pytest.raises(ValueError, match="dtype must be one of"):
    tiny("float16")
