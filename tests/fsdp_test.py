"""Fully sharded data parallelism on 8 fake CPU devices (in a subprocess, so other tests keep one
device): a scaled-down layout of a 2B hybrid (three GDN layers to one attention layer) trains on a
(data 2, fsdp 4) mesh with the same losses as on one device, and each device holds a quarter of
the big parameters and of their optimizer state."""

import textwrap

import fake_devices
import pytest

CHILD = fake_devices.SMOKE_CONFIG + textwrap.dedent(
  """
  # The layer pattern of a 2B GDN hybrid (three GDN layers to one attention layer), narrow.
  config.model.blocks = ("gdn", "gdn", "gdn", "attn")
  config.model.d_model, config.model.num_heads = 64, 4
  config.batch_size = 8
  config.sharding.min_size = 0
  model_config, task = run_config.resolve(config)
  tx, _ = train.make_optimizer(config)

  def run(mesh, steps=3):
    graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
    step_fn = train.make_train_step(config, graphdef, tx, mesh, shardings)
    data = train.train_iterator(config, task, mesh)
    batch = next(data)
    batch = sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh)
    # Compiled once, ahead of time: the program whose memory is read is the one that runs.
    compiled = step_fn.lower(state, batch).compile()
    memory = compiled.memory_analysis()
    losses = []
    for _ in range(steps):
      state, m = compiled(state, batch)
      losses.append(float(m["loss"]))
    return losses, state, memory.argument_size_in_bytes, batch

  out = {}
  one = sharding.make_mesh((("data", 1), ("model", 1)), devices=jax.devices()[:1])
  out["single"], _, out["single_bytes"], _ = run(one)
  mesh = sharding.make_mesh((("data", 2), ("fsdp", 4), ("model", 1)))
  out["fsdp"], state, out["fsdp_bytes"], batch = run(mesh)
  p = state["params"]
  kernel = p["blocks"][0]["mixer"]["qkv_proj"]["kernel"]
  mu = state["opt"][1][0].mu["blocks"][0]["mixer"]["qkv_proj"]["kernel"]
  out["kernel_spec"] = list(kernel.sharding.spec)
  out["kernel_shards"] = sorted({tuple(s.data.shape) for s in kernel.addressable_shards})
  out["kernel_shape"] = list(kernel.shape)
  out["mu_spec"] = list(mu.sharding.spec)
  spec = batch["tokens"].sharding.spec
  out["tokens_spec"] = [list(a) if isinstance(a, tuple) else a for a in spec]
  print("RESULT " + json.dumps(out))
  """
)


@pytest.fixture(scope="module")
def result():
  return fake_devices.run(CHILD, timeout=900)


def test_fsdp_losses_equal_single_device(result):
  assert len(result["fsdp"]) == 3
  assert result["fsdp"] == pytest.approx(result["single"], rel=1e-5)


def test_parameters_and_optimizer_state_are_split_over_fsdp(result):
  # [64, 4 * (2 * 16 + 16)] = [64, 192]: the larger dimension split four ways.
  assert result["kernel_spec"] == [None, "fsdp"]
  assert result["kernel_shards"] == [[64, 48]]
  assert result["mu_spec"] == result["kernel_spec"]
  assert result["tokens_spec"][0] == ["data", "fsdp"]


def test_each_device_holds_a_fraction_of_the_state(result):
  # The compiled step's arguments per device: parameters, Adam's two moments, the batch. With
  # min_size 0 every array with a dimension that 4 divides is split four ways; what stays whole
  # is a few small vectors. Measured: 0.253.
  ratio = result["fsdp_bytes"] / result["single_bytes"]
  assert ratio < 0.3, f"per-device argument bytes {ratio:.2f} of one device's"
