"""Devices, the mesh, and where parameters and batches live.

One mesh with three axes, built from the config (`config.mesh`, e.g. `(("data", -1), ("model",
1))`, -1 meaning "all remaining devices"; "fsdp" may be left out, meaning size 1):

  * "data": batches are split over it (data parallelism);
  * "fsdp": batches are split over it too, and so are the big parameters and their optimizer
    state, each on one of its dimensions (fully sharded data parallelism: every device holds
    1/fsdp of them, and XLA gathers each layer's weights where they are used);
  * "model": big parameters are split over it (tensor parallelism), everything else is replicated.

Parameters are placed by a short, ordered list of `(regex, tactic)` rules over parameter paths such
as "blocks/0/mixer/qkv_proj/kernel" (big_vision-style; the first rule whose regex is found in the
path wins). Tactics:

  * "model": if the array has at least `min_size` elements (small arrays are cheaper replicated),
    split the largest dimension that the "model" axis size divides over "model", and the largest
    other dimension that the "fsdp" axis size divides over "fsdp";
  * "replicate": a full copy on every device.

The same rules place the optimizer state, whose paths end in the parameter paths (".../mu/blocks/
0/.../kernel"), so Adam's moments are split exactly like their parameters.

Axis types: the mesh uses `AxisType.Auto` on purpose. With Explicit axes (the default of
`jax.make_mesh` in this JAX) every matmul that contracts over a sharded dimension needs an
`out_sharding=` argument, so the model code would have to know the mesh. With Auto axes the model
stays sharding-agnostic: we only place the inputs (parameters, batches) and fix the outputs of the
jitted functions, and XLA's propagation shards everything in between.

Multi-host: `initialize_distributed` must run before any other JAX call (the entry points do it
first). Every process loads its own slice of each batch; `put_batch` assembles the global array.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp", "model")
# The axes a batch's rows are split over.
BATCH_AXES = ("data", "fsdp")
TACTICS = ("model", "replicate")


def initialize_distributed(enabled: bool) -> bool:
  """Starts multi-host JAX when the config or the environment asks for it.

  Two ways to launch on several hosts (run the same command on every host):
    * on a cluster JAX detects by itself (SLURM, Open MPI, Cloud TPU, Kubernetes), set
      `--config.distributed=True`;
    * anywhere else, set JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and
      JAX_PROCESS_ID on every host (this alone turns it on).

  Args:
    enabled: `config.distributed`.

  Returns:
    Whether `jax.distributed.initialize` was called.
  """
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not enabled and not address:
    return False
  kwargs: dict[str, Any] = {}
  if address:
    try:
      kwargs = dict(
        coordinator_address=address,
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
      )
    except (KeyError, ValueError) as e:
      raise ValueError(
        "JAX_COORDINATOR_ADDRESS is set, so JAX_NUM_PROCESSES and JAX_PROCESS_ID must be set to "
        f"integers too ({e!r})"
      ) from None
  # Collectives between processes on CPU devices need an implementation; gloo ships with
  # jaxlib. GPU and TPU collectives ignore the setting, so it is safe on every host.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  return True


def make_mesh(spec: Sequence[Sequence[Any]], devices: Sequence[Any] | None = None) -> Mesh:
  """Builds the ("data", "fsdp", "model") mesh from `config.mesh`.

  Args:
    spec: (axis name, size) pairs naming the axes of `AXES` ("fsdp" may be left out: size 1);
      one size may be -1 (all remaining devices).
    devices: the devices to use; None means all of them.

  Raises:
    ValueError: unknown or missing axes, or sizes that do not multiply to the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = {str(name): int(size) for name, size in spec}
  named = len(spec) == len(sizes) and set(sizes) <= set(AXES) and {"data", "model"} <= set(sizes)
  if not named:
    raise ValueError(
      f"mesh {list(map(tuple, spec))} must name the axes {AXES} once each ('fsdp' may be left out)"
    )
  sizes.setdefault("fsdp", 1)
  unknown = [name for name, size in sizes.items() if size == -1]
  known = math.prod(size for size in sizes.values() if size != -1)
  if len(unknown) > 1 or any(s == 0 or s < -1 for s in sizes.values()):
    raise ValueError(f"mesh {sizes}: sizes must be positive, with at most one -1")
  if unknown:
    if len(devices) % known:
      raise ValueError(f"mesh {sizes}: {len(devices)} devices are not divisible by {known}")
    sizes[unknown[0]] = len(devices) // known
  if math.prod(sizes.values()) != len(devices):
    raise ValueError(
      f"mesh {sizes} needs {math.prod(sizes.values())} devices; {len(devices)} exist"
    )
  shape = tuple(sizes[name] for name in AXES)
  # Auto axes: see the module docstring.
  return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def path_str(path: Sequence[Any]) -> str:
  """A pytree key path as "blocks/0/mixer/qkv_proj/kernel"."""
  return jax.tree_util.keystr(tuple(path), simple=True, separator="/")


def leaf_sharding(
  path: str, shape: Sequence[int], mesh: Mesh, rules: Sequence[Sequence[str]], min_size: int
) -> NamedSharding:
  """The sharding of one array by the first rule whose regex is found in `path`."""
  for pattern, tactic in rules:
    if tactic not in TACTICS:
      raise ValueError(f"sharding rule ({pattern!r}, {tactic!r}): tactic must be one of {TACTICS}")
    if re.search(pattern, path):
      break
  else:
    tactic = "replicate"
  spec: list[str | None] = [None] * len(shape)
  if tactic == "model" and math.prod(shape) >= min_size:
    for axis in ("model", "fsdp"):
      size = mesh.shape.get(axis, 1)
      # The largest free dimension that divides evenly; ties go to the last (the output features).
      dims = [d for d in range(len(shape)) if spec[d] is None and shape[d] % size == 0]
      if size > 1 and dims:
        spec[max(dims, key=lambda d: (shape[d], d))] = axis
  return NamedSharding(mesh, P(*spec))


def tree_shardings(tree: Any, mesh: Mesh, rules: Sequence[Sequence[str]], min_size: int) -> Any:
  """Shardings for every array of `tree` (arrays or ShapeDtypeStructs), by the rules."""
  return jax.tree_util.tree_map_with_path(
    lambda path, x: leaf_sharding(path_str(path), x.shape, mesh, rules, min_size), tree
  )


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device (scalars, metrics)."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over "data" and "fsdp", the rest whole."""
  return NamedSharding(mesh, P(BATCH_AXES))


def batch_ways(mesh: Mesh) -> int:
  """Into how many parts a batch's rows are split."""
  return math.prod(mesh.shape.get(axis, 1) for axis in BATCH_AXES)


def put_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles global batch arrays from this process's rows, split over "data" and "fsdp".

  With one process the local rows are the whole batch; with several, process p holds rows
  p * B/P .. (p + 1) * B/P - 1 of the global batch of B rows.
  """
  sharding = batch_sharding(mesh)
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()
  }


def check_batch_size(global_batch: int, mesh: Mesh, what: str = "batch_size") -> int:
  """Returns this process's share of a global batch, or raises if it does not divide evenly."""
  data, procs = batch_ways(mesh), jax.process_count()
  if global_batch % data or global_batch % procs:
    raise ValueError(
      f"{what}={global_batch} must be divisible by the 'data' x 'fsdp' mesh axes ({data}) and "
      f"the number of processes ({procs})"
    )
  return global_batch // procs


def describe(tree: Any) -> str:
  """A one-line summary of how much of `tree` is split over "model" and "fsdp", for the log."""
  leaves = jax.tree.leaves(tree)
  total = sum(x.size for x in leaves)
  parts = []
  for axis in ("model", "fsdp"):
    split = [x for x in leaves if axis in tuple(getattr(x.sharding, "spec", ()))]
    share = sum(x.size for x in split) / max(total, 1)
    parts.append(
      f"{len(split)} of {len(leaves)} arrays ({share:.0%} of the elements) over {axis!r}"
    )
  return "split: " + "; ".join(parts)


def log_devices() -> None:
  """Logs the process and its devices (the first thing a multi-host log should say)."""
  logging.info(
    "process %d of %d; %d local / %d global devices: %s",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
    jax.devices(),
  )
