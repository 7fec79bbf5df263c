"""Achieved FLOP/s and model-FLOPs utilisation (MFU) against the device's peak.

MFU = (model FLOPs per step x steps per second) / (peak FLOP/s per device x devices), with the
model FLOPs of `sleepnet.costs.train_flops_per_step` (matrix work only, 3 x the forward, no
recomputation). Peaks are dense bfloat16 matrix throughput from the vendors' data sheets, the
figure MFU is usually quoted against, also for float32 runs. A CPU has no data-sheet figure
here: its peak is measured once per machine by a float32 matmul benchmark and cached, so CPU MFU
says how close a run gets to what this CPU's matmuls reach.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp

from sleepnet.evaluation import host_cpu

# Dense bf16 peak TFLOP/s per device (one GPU, or one TPU chip), by a substring of
# `device.device_kind`, most specific first.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
  ("H200", 989.0),
  ("H100", 989.0),  # SXM; the PCIe card is lower (756)
  ("A100", 312.0),
  ("TPU v6", 918.0),  # v6e (Trillium)
  ("TPU v5 lite", 197.0),  # v5e
  ("TPU v5e", 197.0),
  ("TPU v5p", 459.0),
  ("TPU v5", 459.0),  # v5p reports itself as "TPU v5"
  ("TPU v4", 275.0),
)

_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "sleepnet"


def peak_tflops(
  device: jax.Device | None = None, *, cache_dir: pathlib.Path | None = None
) -> float:
  """The peak TFLOP/s of one device: the table above, or a measured (and cached) CPU peak.

  Raises:
    KeyError: an accelerator that is not in the table (the message names its kind).
  """
  device = device or jax.devices()[0]
  if device.platform == "cpu":
    return measured_cpu_tflops(cache_dir=cache_dir)
  for key, tflops in PEAK_TFLOPS:
    if key.lower() in device.device_kind.lower():
      return tflops
  raise KeyError(
    f"no peak FLOP/s known for {device.platform} device {device.device_kind!r}; known: "
    f"{', '.join(k for k, _ in PEAK_TFLOPS)}"
  )


def _cpu_name() -> str:
  return f"{host_cpu()} x{os.cpu_count()}"  # the name results record, and the core count


def measured_cpu_tflops(*, cache_dir: pathlib.Path | None = None, size: int = 1024) -> float:
  """Float32 matmul throughput of this CPU (best of 5 runs of a [size]² product), cached per
  CPU model and core count in `cache_dir` (default ~/.cache/sleepnet/cpu_peak.json)."""
  path = (cache_dir or _CACHE) / "cpu_peak.json"
  name = _cpu_name()
  try:
    cached = json.loads(path.read_text())
  except (OSError, ValueError):
    cached = {}
  if name in cached:
    return float(cached[name])
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()  # compile
  best = float("inf")
  for _ in range(5):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  tflops = 2 * size**3 / best / 1e12
  cached[name] = tflops
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cached, indent=1) + "\n")
    os.replace(tmp, path)
  except OSError:
    pass  # a read-only home only costs a remeasurement next time
  return tflops


def utilisation(
  flops_per_step: float, steps_per_sec: float, peak: float, devices: int
) -> dict[str, float]:
  """{"tflops_per_sec": achieved over all devices, "mfu": that over peak x devices}."""
  achieved = flops_per_step * steps_per_sec / 1e12
  return {"tflops_per_sec": achieved, "mfu": achieved / (peak * devices)}
