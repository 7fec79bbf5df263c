"""Training throughput of the hybrid at N = 1, 4 and 8, float32 and bfloat16, at three sizes.

Every row is sleepnet's own jitted train step (`train.make_train_step`: forward, backward through
every sleep pass, AdamW), on random tokens, on whatever device JAX finds, all in one process so
the ratios compare like with like. Per row: step time (median of --repeats after one warmup),
tokens/s, model TFLOP/s and MFU (`sleepnet.costs.train_flops_per_step` against
`sleepnet.throughput.peak_tflops`), and the compiled program's peak memory (XLA's temp plus
argument and output buffers). Writes results/bench/train-<device>.{md,json}.

  python scripts/bench_train.py                      # every size, N in 1,4,8, both dtypes
  python scripts/bench_train.py --sizes cpu,25M --batch_scale 4   # bigger batches on a GPU
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import time

import jax
import ml_collections
import numpy as np

from sleepnet import costs, evaluation, run_config, sharding, throughput, train

ROOT = pathlib.Path(__file__).resolve().parent.parent

# name -> model width, heads, layers (gdn/attn alternating), vocabulary, and the batch and
# windows a CPU can time in minutes (--batch_scale multiplies the batch).
SIZES = {
  "cpu": dict(d_model=64, num_heads=4, layers=4, vocab=128, batch=8, window=32, windows=4),
  "25M": dict(d_model=384, num_heads=6, layers=8, vocab=8192, batch=4, window=64, windows=2),
  "150M": dict(d_model=768, num_heads=12, layers=12, vocab=24576, batch=1, window=64, windows=2),
}


def config_for(size: dict, n: int, dtype: str, batch: int) -> ml_collections.ConfigDict:
  """A training config for the Rule 110 experiment's trainer, with the size's model."""
  import importlib.util

  spec = importlib.util.spec_from_file_location("rule110", ROOT / "experiments" / "rule110.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(f"model=sleep,passes={n}" if n > 1 else "model=hybrid")
  # The task config only has to validate: the bench feeds random tokens, whole windows of input.
  config.task.window, config.task.seq_len = size["window"], size["window"] * size["windows"]
  config.task.width = size["window"] - 1
  config.model.window = size["window"]
  config.model.d_model, config.model.num_heads = size["d_model"], size["num_heads"]
  config.model.blocks = ("gdn", "attn") * (size["layers"] // 2)
  config.model.vocab_size = size["vocab"]
  config.model.dtype = dtype
  config.batch_size = batch
  config.eval.batch_size = batch
  return config


def measure(config: ml_collections.ConfigDict, seq_len: int, repeats: int, peak: float) -> dict:
  model_config = run_config.resolve(config)[0]
  mesh = run_config.make_mesh(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  step = train.make_train_step(config, graphdef, tx, mesh, shardings)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, model_config.vocab_size, (config.batch_size, seq_len), np.int32)
  batch = sharding.put_batch({"tokens": tokens, "loss_mask": np.ones(tokens.shape, bool)}, mesh)
  compiled = step.lower(state, batch).compile()
  memory = None
  try:
    m = compiled.memory_analysis()
    memory = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes) / 2**20
  except Exception:  # memory_analysis is best effort across backends
    pass
  state, _ = step(state, batch)  # warmup
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  flops = costs.train_flops_per_step(
    model_config, batch_size=config.batch_size, seq_len=seq_len - 1
  )
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  return dict(
    params=int(params),
    step_s=seconds,
    tokens_per_s=config.batch_size * (seq_len - 1) / seconds,
    flops_per_step=flops,
    **throughput.utilisation(flops, 1 / seconds, peak, jax.device_count()),
    peak_memory_mib=memory,
  )


def device_slug() -> str:
  d = jax.devices()[0]
  return (
    "cpu" if d.platform == "cpu" else re.sub(r"[^a-z0-9]+", "-", d.device_kind.lower()).strip("-")
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default=",".join(SIZES))
  parser.add_argument("--passes", default="1,4,8")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--batch_scale", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
  args = parser.parse_args()
  from absl import flags

  flags.FLAGS.mark_as_parsed()
  peak = throughput.peak_tflops()
  device = evaluation.device_record()
  label = (
    f"cpu: {device['host_cpu']}, {device['host_cores']} cores"
    if device["platform"] == "cpu"
    else f"{device['platform']}: {device['device_kind']} x{device['count']}"
  )
  rows = []
  for name in args.sizes.split(","):
    size = SIZES[name]
    seq_len = size["window"] * size["windows"] + 1
    for dtype in args.dtypes.split(","):
      for n in (int(x) for x in args.passes.split(",")):
        config = config_for(size, n, dtype, size["batch"] * args.batch_scale)
        row = dict(size=name, N=n, dtype=dtype, batch=config.batch_size, seq_len=seq_len - 1)
        row.update(measure(config, seq_len, args.repeats, peak))
        rows.append(row)
        print(
          f"{name:5s} N={n} {dtype:8s} {row['params'] / 1e6:7.1f}M  {row['step_s'] * 1e3:9.1f} ms  "
          f"{row['tokens_per_s']:9.0f} tok/s  {row['tflops_per_sec']:.4f} TFLOP/s  "
          f"MFU {row['mfu']:.1%}  mem {row['peak_memory_mib'] or float('nan'):.0f} MiB",
          flush=True,
        )
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  slug = device_slug()
  record = dict(bench="train_step", device=label, device_record=device, peak_tflops=peak, rows=rows)
  (out / f"train-{slug}.json").write_text(json.dumps(record, indent=1) + "\n")
  lines = [
    f"# Training throughput on {label}",
    "",
    f"Written by `python scripts/bench_train.py` (median of {args.repeats} steps after one "
    f"warmup; random tokens; sleepnet's jitted train step with AdamW). MFU is against "
    f"{peak:.4g} TFLOP/s per device"
    + (" (this CPU's float32 matmul peak, measured once and cached)" if slug == "cpu" else "")
    + "; FLOPs are `sleepnet.costs.train_flops_per_step` (model FLOPs, 3 x forward).",
    "",
    "| size | params | N | dtype | batch x tokens | step | tokens/s | TFLOP/s | MFU "
    "| peak memory |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    mem = f"{r['peak_memory_mib']:.0f} MiB" if r["peak_memory_mib"] is not None else "n/a"
    lines.append(
      f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['N']} | {r['dtype']} | "
      f"{r['batch']} x {r['seq_len']} | {r['step_s'] * 1e3:.1f} ms | {r['tokens_per_s']:,.0f} | "
      f"{r['tflops_per_sec']:.4f} | {r['mfu']:.1%} | {mem} |"
    )
  (out / f"train-{slug}.md").write_text("\n".join(lines) + "\n")
  print(f"wrote {out / f'train-{slug}.md'} and .json")


if __name__ == "__main__":
  main()
