"""Sharding on 8 fake CPU devices (in a subprocess, so other tests keep one device): a 4x2 mesh
trains like one device, parameters are split over "model", the step compiles once, and a full
run (checkpoints, resume, evaluation) works sharded."""

import textwrap

import fake_devices
import pytest

CHILD = fake_devices.SMOKE_CONFIG + textwrap.dedent(
  """
  config.model.blocks = ("gdn", "attn")
  config.sharding.min_size = 0  # shard every kernel of this tiny model
  model_config, task = run_config.resolve(config)
  tx, _ = train.make_optimizer(config)

  def run(mesh, steps=3):
    graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
    step_fn = train.make_train_step(config, graphdef, tx, mesh, shardings)
    data = train.train_iterator(config, task, mesh)
    losses = []
    for _ in range(steps):
      batch = next(data)
      batch = sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh)
      state, m = step_fn(state, batch)
      losses.append(float(m["loss"]))
    return losses, state, step_fn._cache_size(), batch

  out = {"devices": jax.device_count()}
  one = sharding.make_mesh((("data", -1), ("model", 1)), devices=jax.devices()[:1])
  out["single"], _, _, _ = run(one)
  mesh = sharding.make_mesh((("data", 4), ("model", 2)))
  out["sharded"], state, out["cache_size"], batch = run(mesh)
  p = state["params"]
  mu = state["opt"][1][0].mu
  out["specs"] = {
    "qkv": list(p["blocks"][0]["mixer"]["qkv_proj"]["kernel"].sharding.spec),
    "qkv_mu": list(mu["blocks"][0]["mixer"]["qkv_proj"]["kernel"].sharding.spec),
    "embedding": list(p["embed"]["embedding"].sharding.spec),
    "norm": list(p["blocks"][0]["mixer_norm"]["scale"].sharding.spec),
    "step": list(state["step"].sharding.spec),
    "tokens": list(batch["tokens"].sharding.spec),
  }
  kernel = p["blocks"][0]["mixer"]["qkv_proj"]["kernel"]
  out["qkv_shape"] = list(kernel.shape)
  out["qkv_shard_shapes"] = sorted({tuple(s.data.shape) for s in kernel.addressable_shards})
  out["axis_types"] = [str(t) for t in mesh.axis_types]

  # A whole run on the 4x2 mesh: sharded checkpoints, resume, and evaluation.
  workdir = sys.argv[1]
  config.mesh = (("data", 4), ("model", 2))
  config.checkpoint_every, config.log_every = 20, 10  # num_steps as above: same compiled step
  config.eval.num_test, config.eval.num_train, config.eval.batch_size = 12, 8, 8
  config.eval.sleep_passes = (1,)
  train.train_and_evaluate(config, workdir)
  config.eval.at_end = False
  out["relaunch"] = train.train_and_evaluate(config, workdir)["step"]  # restores sharded state
  out["eval"] = json.loads(open(workdir + "/eval.json").read())["results"]["1"]["num_examples"]
  print("RESULT " + json.dumps(out))
  """
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("sharded") / "run"
  return fake_devices.run(CHILD, str(workdir), timeout=300)


def test_sharded_losses_equal_single_device(result):
  assert result["devices"] == 8
  single, sharded = result["single"], result["sharded"]
  assert len(single) == len(sharded) == 3
  for a, b in zip(single, sharded, strict=True):
    assert abs(a - b) <= 1e-5 * abs(a), (single, sharded)


def test_parameters_are_split_over_model(result):
  specs = result["specs"]
  # Largest divisible dimension of each kernel over "model"; small vectors replicated.
  assert specs["qkv"] == [None, "model"]
  assert specs["qkv_mu"] == specs["qkv"]  # Adam's moments live with their parameters
  assert specs["embedding"] == ["model", None]  # [70, 32]: 70 is the larger dimension
  assert specs["norm"] == [None] and specs["step"] == []
  assert specs["tokens"] == [["data", "fsdp"]]  # rows over both batch axes ("fsdp" has size 1)
  rows, cols = result["qkv_shape"]
  assert result["qkv_shard_shapes"] == [[rows, cols // 2]]
  assert result["axis_types"] == ["AxisType.Auto"] * 3


def test_train_step_compiles_once(result):
  assert result["cache_size"] == 1


def test_full_run_on_the_mesh(result):
  assert result["eval"] == 12
  assert result["relaunch"] == 40
