"""The price of sleep, measured side by side in one run.

For a fixed small hybrid: wall time of one jitted training step (forward, backward through every
sleep pass, AdamW update) at N = 1, 2, 4, 8, its ratio to N = 1, the compiled program's memory,
and the per-token decode latency of the sleep model against the N = 1 hybrid on wake steps (the
steps that do not trigger a sleep). Prints a markdown table and a JSON line.

  python scripts/bench_sleep.py [--batch 8 --window 32 --windows 4 --d_model 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import sleepnet
from sleepnet import costs


def train_step_fn(model: sleepnet.Model, n: int):
  """A jitted (graphdef, state) -> state training step at N = n, donating its state."""
  optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))

  def loss_fn(m: sleepnet.Model, tokens: jax.Array) -> jax.Array:
    logits = m(tokens[:, :-1], sleep_passes=n)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  @jax.jit
  def step(state, tokens):
    m, opt = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(loss_fn)(m, tokens)
    opt.update(m, grads)
    return nnx.state((m, opt)), loss

  return step, state


def time_call(fn, *args, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--window", type=int, default=32)
  parser.add_argument("--windows", type=int, default=4)
  parser.add_argument("--d_model", type=int, default=64)
  parser.add_argument("--passes", default="1,2,4,8")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--decode_tokens", type=int, default=200)
  args = parser.parse_args()
  passes = [int(p) for p in args.passes.split(",")]

  config = sleepnet.ModelConfig(
    vocab_size=64, d_model=args.d_model, num_heads=4, window=args.window
  )
  model = sleepnet.Model(config, rngs=nnx.Rngs(0))
  t = args.window * args.windows + 1
  tokens = jax.random.randint(jax.random.key(1), (args.batch, t), 0, config.vocab_size)
  device = jax.devices()[0]
  print(
    f"device: {device.platform} ({device.device_kind}); batch {args.batch}, "
    f"{args.windows} windows of L={args.window}, d_model {args.d_model}, "
    f"blocks {config.blocks}"
  )

  rows = {}
  for n in passes:
    step, state = train_step_fn(model, n)
    compiled = step.lower(state, tokens).compile()
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    state, _ = step(state, tokens)  # Warm up (and donate-free first run).
    seconds = time_call(lambda s, f=step: f(s, tokens)[1], state, repeats=args.repeats)
    rows[n] = dict(step_s=seconds, temp_bytes=temp)

  # Decode latency: the same weights at N = 1 and at the largest N, alternating to share noise.
  n_sleep = max(passes)
  latencies = {1: [], n_sleep: []}
  states = {n: model.init_state(1) for n in latencies}
  token = jnp.zeros((1,), jnp.int32)
  for n in latencies:  # Compile both before timing.
    jax.block_until_ready(model.step(token, states[n], sleep_passes=n))
  for i in range(args.decode_tokens):
    for n in latencies:
      wake = int(states[n].pos) != args.window  # This step will not trigger a sleep.
      start = time.perf_counter()
      logits, states[n] = model.step(token, states[n], sleep_passes=n)
      jax.block_until_ready(logits)
      if wake:
        latencies[n].append(time.perf_counter() - start)
    token = jnp.full((1,), i % config.vocab_size, jnp.int32)
  wake_ms = {n: 1e3 * statistics.median(v) for n, v in latencies.items()}

  print(
    "\n| N | train step (ms) | x N=1 | compiled temp memory (MiB) | analytic FLOPs/token x N=1 |"
  )
  print("| --- | --- | --- | --- | --- |")
  base = rows[passes[0]]["step_s"]
  flops1 = costs.costs(config, sleep_passes=1).flops_per_token
  for n, row in rows.items():
    mib = f"{row['temp_bytes'] / 2**20:.1f}" if row["temp_bytes"] is not None else "n/a"
    ratio = costs.costs(config, sleep_passes=n).flops_per_token / flops1
    print(f"| {n} | {1e3 * row['step_s']:.1f} | {row['step_s'] / base:.2f} | {mib} | {ratio:.2f} |")
  print("\nanalytic costs of this config (sleepnet.costs):")
  print(costs.format_costs(config, tuple(passes)))
  change = 100 * (wake_ms[n_sleep] / wake_ms[1] - 1)
  print(
    f"\nwake decode latency per token: N=1 {wake_ms[1]:.3f} ms, N={n_sleep} "
    f"{wake_ms[n_sleep]:.3f} ms ({change:+.1f}%)"
  )
  print(
    json.dumps(
      dict(
        device=device.platform,
        batch=args.batch,
        window=args.window,
        windows=args.windows,
        d_model=args.d_model,
        train_step_s={n: r["step_s"] for n, r in rows.items()},
        temp_bytes={n: r["temp_bytes"] for n, r in rows.items()},
        wake_decode_ms=wake_ms,
      )
    )
  )


if __name__ == "__main__":
  main()
