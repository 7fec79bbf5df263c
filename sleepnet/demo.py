"""A short, self-checking tour of a sleep model: `python -m sleepnet.demo`.

Builds a small GDN-attention hybrid, runs it over a sequence several windows long with and
without sleep, streams the same sequence token by token, and prints what happened: when the
model slept, how much the fast weights changed, and that streaming matches the batch forward.
Untrained weights: the point is the mechanics, not the predictions.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import sleepnet


def _norms(fast: tuple) -> str:
  return " ".join(f"{float(jnp.linalg.norm(f)):6.3f}" for f in fast if f is not None)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--window", type=int, default=16, help="L, tokens per window")
  parser.add_argument("--windows", type=int, default=4, help="windows in the demo sequence")
  parser.add_argument("--passes", type=int, default=4, help="N, passes per evicted window")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  config = sleepnet.ModelConfig(
    vocab_size=64, d_model=64, num_heads=4, window=args.window, sleep_passes=args.passes
  )
  model = sleepnet.Model(config, rngs=nnx.Rngs(args.seed))
  params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  t = args.window * args.windows
  tokens = jax.random.randint(jax.random.key(args.seed + 1), (2, t), 0, config.vocab_size)
  print(
    f"device: {jax.devices()[0].platform}; blocks {config.blocks}; d_model {config.d_model}; "
    f"{params:,} parameters"
  )
  print(
    f"sequence: 2 x {t} tokens = {args.windows} windows of L={args.window}; "
    f"N={args.passes} passes per evicted window (wake pass included), "
    f"sleep input '{config.sleep_input}', start '{config.sleep_start}'"
  )

  forward = nnx.jit(lambda m, x, n: m.forward(x, sleep_passes=n), static_argnums=2)
  for n in sorted({1, args.passes}):
    start = time.perf_counter()
    logits, fast = forward(model, tokens, n)
    jax.block_until_ready(logits)
    print(
      f"  forward N={n}: logits {logits.shape} in {time.perf_counter() - start:.2f}s "
      f"(incl. compile); final |S| per GDN layer: {_norms(fast)}"
    )

  print("streaming token by token (KV cache <= L, sleeps by itself when a window is full):")
  state = model.init_state(2)
  stream = []
  for i in range(t):
    if i and i % args.window == 0:
      before = state.fast_weights
    logits_i, state = model.step(tokens[:, i], state)
    stream.append(logits_i)
    if i and i % args.window == 0:
      window = i // args.window
      print(
        f"  token {i:3d}: window {window} was full -> slept {args.passes - 1} extra passes, "
        f"cleared the KV cache; |S| after wake {_norms(before)} -> now {_norms(state.fast_weights)}"
      )
  stream_logits = jnp.stack(stream, axis=1)
  full = model(tokens)
  err = float(jnp.max(jnp.abs(stream_logits - full)) / jnp.max(jnp.abs(full)))
  print(f"streaming vs whole-sequence forward: max relative difference {err:.2e}")
  cache = [s for s in state.blocks if hasattr(s, "k")]
  if cache:
    print(
      f"KV cache capacity: {cache[0].k.shape[1]} tokens (= L); position in window: {int(state.pos)}"
    )
  if not np.isfinite(err) or err > 1e-4:
    raise SystemExit("streaming and batch forward disagree")


if __name__ == "__main__":
  main()
