"""Times fwd+bwd of the gated delta rule, reference vs. chunked, on whatever device JAX finds.

Both run in one process on the same inputs. For each impl, the jitted gradient of a scalar loss
with respect to all six inputs (q, k, v, g, beta, initial_state) is warmed up, then timed
`--repeats` times with block_until_ready; the median is reported. Several chunk sizes can be
measured in one run. The last line printed is a JSON record for other scripts and the README.

  .venv/bin/python scripts/bench_recurrence.py                 # B=4 T=2048 H=4 K=V=64
  .venv/bin/python scripts/bench_recurrence.py --T 256 --chunk_sizes 16,32,64
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp

from sleepnet.recurrence import gated_delta_rule

API_DEFAULT_CHUNK = 64  # gated_delta_rule's default; its speedup is the headline number


def make_inputs(B, T, H, K, V, seed=0):
  """Realistic inputs: unit q and k, β ∈ (0, 1), g ≤ 0, a random initial state."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 6)
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
  q = unit(jax.random.normal(ks[0], (B, T, H, K)))
  k = unit(jax.random.normal(ks[1], (B, T, H, K)))
  v = jax.random.normal(ks[2], (B, T, H, V))
  g = -jax.nn.softplus(2.0 * jax.random.normal(ks[3], (B, T, H)))
  beta = jax.nn.sigmoid(jax.random.normal(ks[4], (B, T, H)))
  S0 = jax.random.normal(ks[5], (B, H, K, V))
  return q, k, v, g, beta, S0


def grad_fn(impl, chunk_size, o_ct, s_ct):
  def loss(q, k, v, g, beta, S0):
    o, S = gated_delta_rule(q, k, v, g, beta, initial_state=S0, impl=impl, chunk_size=chunk_size)
    return jnp.sum(o * o_ct) + jnp.sum(S * s_ct)

  return jax.jit(jax.grad(loss, argnums=tuple(range(6))))


def time_ms(fn, args, warmup, repeats):
  """Median wall time of fn(*args) in ms, excluding compilation and warmup."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def temp_mib(fn, args):
  """XLA's temp-buffer size for the compiled program, or None where the backend lacks it."""
  try:
    return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes / 2**20
  except Exception:  # memory_analysis is best effort across backends
    return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--B", type=int, default=4)
  parser.add_argument("--T", type=int, default=2048)
  parser.add_argument("--H", type=int, default=4)
  parser.add_argument("--K", type=int, default=64)
  parser.add_argument("--V", type=int, default=64)
  parser.add_argument(
    "--chunk_sizes", default="32,64,128", help="comma-separated chunk sizes for impl=chunked"
  )
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument(
    "--matmul_precision", default=None, help="jax_default_matmul_precision; JAX's if unset"
  )
  args = parser.parse_args()
  if args.matmul_precision:
    jax.config.update("jax_default_matmul_precision", args.matmul_precision)
  chunk_sizes = [int(c) for c in args.chunk_sizes.split(",")]

  device = jax.devices()[0]
  shape = dict(B=args.B, T=args.T, H=args.H, K=args.K, V=args.V)
  print(f"device: {device.platform} {device.device_kind} (x{jax.device_count()})")
  print(f"shapes: {shape}  q,k [B,T,H,K]  v [B,T,H,V]  state [B,H,K,V]  float32")
  print(f"fwd+bwd (grad w.r.t. all inputs), median of {args.repeats} after {args.warmup} warmup")

  inputs = make_inputs(**shape)
  ck = jax.random.split(jax.random.PRNGKey(1))
  o_ct = jax.random.normal(ck[0], inputs[2].shape)
  s_ct = jax.random.normal(ck[1], inputs[5].shape)

  ref = grad_fn("reference", API_DEFAULT_CHUNK, o_ct, s_ct)
  ref_ms = time_ms(ref, inputs, args.warmup, args.repeats)
  ref_mib = temp_mib(ref, inputs)
  ref_grads = ref(*inputs)
  print(f"  reference            {ref_ms:9.1f} ms   temp {ref_mib or float('nan'):7.1f} MiB")

  chunked = {}
  for c in chunk_sizes:
    fn = grad_fn("chunked", c, o_ct, s_ct)
    ms = time_ms(fn, inputs, args.warmup, args.repeats)
    mib = temp_mib(fn, inputs)
    # Sanity check that the timed program computes the same thing as the reference.
    err = max(
      float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))
      for a, b in zip(fn(*inputs), ref_grads, strict=True)
    )
    chunked[c] = dict(ms=ms, speedup=ref_ms / ms, temp_mib=mib, max_rel_grad_err=err)
    print(
      f"  chunked C={c:<4d}       {ms:9.1f} ms   temp {mib or float('nan'):7.1f} MiB   "
      f"speedup {ref_ms / ms:5.2f}x   max rel grad err vs reference {err:.1e}"
    )

  headline = chunked.get(API_DEFAULT_CHUNK) or min(chunked.values(), key=lambda r: r["ms"])
  print(f"ratio reference / chunked: {ref_ms / headline['ms']:.2f}x")
  record = dict(
    bench="gated_delta_rule_fwd_bwd",
    device=f"{device.platform} {device.device_kind}",
    **shape,
    repeats=args.repeats,
    reference_ms=round(ref_ms, 2),
    reference_temp_mib=ref_mib and round(ref_mib, 1),
    chunked={
      str(c): dict(
        ms=round(r["ms"], 2),
        speedup=round(r["speedup"], 2),
        temp_mib=r["temp_mib"] and round(r["temp_mib"], 1),
        max_rel_grad_err=float(f"{r['max_rel_grad_err']:.2e}"),
      )
      for c, r in chunked.items()
    },
    speedup_at_default_chunk=round(ref_ms / headline["ms"], 2),
  )
  print(json.dumps(record))


if __name__ == "__main__":
  main()
