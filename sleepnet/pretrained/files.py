"""Reading and writing Hugging Face model directories: config.json and safetensors files.

The safetensors format is small enough to read directly: an 8-byte little-endian header length,
a JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
Reading it here, with numpy memory maps and `ml_dtypes` for bfloat16 (which the `safetensors`
package's numpy loader does not support), means a checkpoint's tensors are only read when they
are placed on their devices, one at a time, and nothing else (torch, safetensors) is imported.
"""

from __future__ import annotations

import json
import mmap
import pathlib
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import ml_dtypes
import numpy as np

_DTYPES: dict[str, np.dtype] = {
  "F64": np.dtype(np.float64),
  "F32": np.dtype(np.float32),
  "F16": np.dtype(np.float16),
  "BF16": np.dtype(ml_dtypes.bfloat16),
  "I64": np.dtype(np.int64),
  "I32": np.dtype(np.int32),
  "I16": np.dtype(np.int16),
  "I8": np.dtype(np.int8),
  "U8": np.dtype(np.uint8),
  "BOOL": np.dtype(np.bool_),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# Real checkpoints split their tensors over files of a few GB; so do we when writing.
SHARD_BYTES = 4 * 1024**3


class CheckpointError(ValueError):
  """A model directory that cannot be read as the checkpoint it claims to be."""


def read_config(path: pathlib.Path) -> dict[str, Any]:
  """config.json of a model directory."""
  file = path / "config.json"
  if not file.is_file():
    raise CheckpointError(f"{path} has no config.json: not a Hugging Face model directory.")
  return json.loads(file.read_text())


class TensorFiles(Mapping[str, np.ndarray]):
  """The tensors of a model directory by name, each read (memory-mapped) when asked for.

  Reads `model.safetensors`, or every file that `model.safetensors.index.json` names.
  """

  def __init__(self, path: pathlib.Path) -> None:
    path = pathlib.Path(path)
    if (path / INDEX).is_file():
      weight_map = json.loads((path / INDEX).read_text()).get("weight_map")
      if not isinstance(weight_map, dict):
        raise CheckpointError(f"{path / INDEX} has no weight_map.")
      files = sorted(set(weight_map.values()))
    elif (path / SINGLE).is_file():
      files = [SINGLE]
    else:
      raise CheckpointError(f"{path} has neither {SINGLE} nor {INDEX}.")
    # Each entry holds its file's map, which keeps the map open as long as it is needed.
    self._entries: dict[str, tuple[mmap.mmap, int, dict[str, Any]]] = {}
    for name in files:
      file = path / name
      if not file.is_file():
        raise CheckpointError(f"{path / INDEX} names {name}, which is missing.")
      with open(file, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
      (size,) = struct.unpack("<Q", data[:8])
      if size > len(data) - 8:
        raise CheckpointError(f"{file}: the header claims {size} bytes; the file is truncated.")
      header = json.loads(data[8 : 8 + size])
      header.pop("__metadata__", None)
      for key, entry in header.items():
        if key in self._entries:
          raise CheckpointError(f"tensor {key!r} appears in two files of {path}.")
        if entry["dtype"] not in _DTYPES:
          raise CheckpointError(f"{file}: tensor {key!r} has unsupported dtype {entry['dtype']}.")
        self._entries[key] = (data, 8 + size, entry)

  def __getitem__(self, key: str) -> np.ndarray:
    data, base, entry = self._entries[key]
    start, end = entry["data_offsets"]
    dtype = _DTYPES[entry["dtype"]]
    shape = tuple(entry["shape"])
    if end - start != dtype.itemsize * int(np.prod(shape)):
      raise CheckpointError(f"tensor {key!r}: {end - start} bytes do not hold {shape} {dtype}.")
    return np.frombuffer(data, dtype.newbyteorder("<"), int(np.prod(shape)), base + start).reshape(
      shape
    )

  def shape(self, key: str) -> tuple[int, ...]:
    return tuple(self._entries[key][2]["shape"])

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)


def write_tensors(
  path: pathlib.Path, tensors: Mapping[str, np.ndarray], *, shard_bytes: int = SHARD_BYTES
) -> list[str]:
  """Writes `tensors` as model.safetensors, or as shards with an index past `shard_bytes`.

  Returns the file names written.
  """
  path = pathlib.Path(path)
  names = sorted(tensors)
  shards: list[list[str]] = [[]]
  size = 0
  for name in names:
    nbytes = np.asarray(tensors[name]).nbytes
    if shards[-1] and size + nbytes > shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(name)
    size += nbytes
  if len(shards) == 1:
    files = [SINGLE]
  else:
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  for file, members in zip(files, shards, strict=True):
    _write_file(path / file, {name: tensors[name] for name in members})
  if len(files) > 1:
    weight_map = {
      name: file for file, members in zip(files, shards, strict=True) for name in members
    }
    total = sum(np.asarray(tensors[name]).nbytes for name in names)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / INDEX).write_text(json.dumps(index, indent=2) + "\n")
  return files


def _write_file(file: pathlib.Path, tensors: Mapping[str, np.ndarray]) -> None:
  header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
  offset = 0
  arrays = {}
  for name, value in tensors.items():
    array = np.ascontiguousarray(value)
    if array.dtype not in _NAMES:
      raise CheckpointError(f"tensor {name!r}: dtype {array.dtype} has no safetensors name.")
    header[name] = {
      "dtype": _NAMES[array.dtype],
      "shape": list(array.shape),
      "data_offsets": [offset, offset + array.nbytes],
    }
    arrays[name] = array
    offset += array.nbytes
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
  tmp = file.with_name(file.name + ".tmp")
  with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    for array in arrays.values():
      f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
  tmp.replace(file)  # a reader never sees half a file
