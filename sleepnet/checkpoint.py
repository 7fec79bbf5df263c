"""Checkpoints and workdirs: what a run writes, how it resumes, and what it refuses.

A workdir holds:

  DIR/config.json           the run's config (JSON); once the run has a checkpoint, a relaunch
                            with a different config is refused (see RESUMABLE_KEYS)
  DIR/checkpoints/<step>/   one orbax checkpoint per saved step, with four items:
      params/               the model parameters (StandardSave: sharded arrays, ocdbt)
      optimizer/            {"opt": optax state, "step": int32} (StandardSave)
      data/                 the training data iterator's state (JSON, e.g. {"next_index": 1200})
      config/               the config again (JSON), so a checkpoint explains itself
  DIR/metrics.jsonl, DIR/tensorboard/, DIR/eval.json, DIR/data/ (see metrics.py, evaluation.py)

Saves are atomic: orbax writes `<step>.orbax-checkpoint-tmp` and renames it to `<step>` only when
every item is written, so a killed run leaves either a complete step or a tmp directory that the
next run deletes (`cleanup_tmp_directories`). Saves are asynchronous; arrays are copied to host
before `save` returns, so the next (donating) train step cannot change what is written.

Initialisation order of a run: (1) the latest checkpoint of its own workdir (parameters,
optimizer, step and data position: an exact resume); else (2) `config.init_from`, another
workdir's latest parameters with a fresh optimizer at step 0; else (3) from scratch.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
ITEMS = ("params", "optimizer", "data", "config")
# Config keys that do not change the training trajectory, so a relaunch may change them (how
# often to log, evaluation settings, how many checkpoints to keep, how the hosts connect).
# Everything else must match the saved config exactly.
RESUMABLE_KEYS = (
  "log_every",
  "checkpoint_every",
  "max_to_keep",
  "eval",
  "data_dir",
  "data_threads",  # how many threads read the (deterministic) batches, not which batches
  "data_prefetch",
  "distributed",
)


class CheckpointError(RuntimeError):
  """A workdir or checkpoint that cannot be used; the message names the path."""


# Config keys added after runs had been saved without them, each with the value that does what
# those older runs did, so that an older run directory still resumes and evaluates. This is a
# versioned migration of saved configs, not a default for configs being built.
ADDED_KEYS: dict[str, Any] = {
  "train_sleep_passes": [],  # before it, every step trained at config.model.sleep_passes
}


def upgrade_config(data: Mapping[str, Any]) -> dict[str, Any]:
  """A saved config (JSON data) with every key of ADDED_KEYS it lacks, at its old behaviour."""
  out = dict(data)
  for key, value in ADDED_KEYS.items():
    out.setdefault(key, value)
  return out


def config_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON data (tuples become lists, placeholders None)."""
  return json.loads(json.dumps(config.to_dict()))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out or {prefix[:-1]: {}}
  return {prefix[:-1]: tree}


def config_diff(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """Dotted keys whose values differ, outside RESUMABLE_KEYS, as "key: saved -> current"."""
  a, b = _flatten(saved), _flatten(current)
  out = []
  for key in sorted(set(a) | set(b)):
    if key.split(".")[0] in RESUMABLE_KEYS:
      continue
    if a.get(key, "<missing>") != b.get(key, "<missing>"):
      out.append(f"{key}: {a.get(key, '<missing>')!r} -> {b.get(key, '<missing>')!r}")
  return out


def _write_json(path: pathlib.Path, data: Any) -> None:
  # Write then rename, so a kill never leaves half a config.json.
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
  os.replace(tmp, path)


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise CheckpointError(f"{path} does not exist: not a sleepnet workdir") from None
  except (OSError, ValueError) as e:
    raise CheckpointError(
      f"{path} is unreadable ({e}); fix or delete it (a run's checkpoints record its config too, "
      "so deleting it does not let another config take the run over)"
    ) from None


def _checkpoint_config(workdir: pathlib.Path, step: int) -> dict[str, Any]:
  """The config saved with checkpoint `step` (each checkpoint's "config" item)."""
  path = workdir.absolute() / CHECKPOINTS / str(step) / "config"
  try:
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
      return reader.restore(path)
  except Exception as e:  # see restore_latest
    raise CheckpointError(_unreadable(path.parent, e)) from e


def saved_steps(workdir: str | os.PathLike) -> list[int]:
  """The complete checkpoints of a run, in order (tmp dirs of unfinished saves do not count)."""
  directory = pathlib.Path(workdir) / CHECKPOINTS
  return sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())


def claim_workdir(workdir: str | os.PathLike, config: ml_collections.ConfigDict) -> None:
  """Checks that `workdir` is new or holds this run, then records the config in config.json.

  A workdir whose run has checkpoints is never taken over by a different config: its saved
  config is config.json or, where that file is gone, the one in the latest checkpoint. One with
  a config.json but no checkpoint (a run stopped before its first save) has nothing to resume
  and is started afresh with the new config.

  Raises:
    CheckpointError: the workdir holds checkpoints of a run with a different config (the message
      lists every differing key), or its config.json (or that checkpoint's config) is unreadable.
  """
  workdir = pathlib.Path(workdir)
  path = workdir / CONFIG_FILE
  current = config_json(config)
  steps = saved_steps(workdir)
  saved, source = None, path
  if path.exists():
    saved = _read_json(path)
  elif steps:
    source = workdir / CHECKPOINTS / str(steps[-1])
    saved = _checkpoint_config(workdir, steps[-1])
  if saved is not None:
    diff = config_diff(upgrade_config(saved), current)
    if diff and steps:
      raise CheckpointError(
        f"workdir {workdir} holds a run with a different config ({source}):\n  "
        + "\n  ".join(diff)
        + "\nUse a new --workdir, or delete that one to start over."
      )
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(path, current)  # same trajectory; records the latest bookkeeping keys


def load_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config a run in `workdir` was launched with (from DIR/config.json, upgraded: see
  ADDED_KEYS)."""
  return ml_collections.ConfigDict(upgrade_config(_read_json(pathlib.Path(workdir) / CONFIG_FILE)))


def manager(workdir: str | os.PathLike, *, max_to_keep: int | None) -> ocp.CheckpointManager:
  """The checkpoint manager of a run, writing to DIR/checkpoints (the caller decides when)."""
  options = ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    create=True,
    cleanup_tmp_directories=True,  # tmp dirs of a killed save (see the module docstring)
  )
  return ocp.CheckpointManager(
    pathlib.Path(workdir).absolute() / CHECKPOINTS, item_names=ITEMS, options=options
  )


def save(
  mngr: ocp.CheckpointManager,
  step: int,
  state: Mapping[str, Any],
  data_state: Mapping[str, Any],
  config: ml_collections.ConfigDict,
) -> None:
  """Saves the train state at `step` (asynchronously; see the module docstring)."""
  mngr.save(
    step,
    args=ocp.args.Composite(
      params=ocp.args.StandardSave(state["params"]),
      optimizer=ocp.args.StandardSave({"opt": state["opt"], "step": state["step"]}),
      data=ocp.args.JsonSave(dict(data_state)),
      config=ocp.args.JsonSave(config_json(config)),
    ),
    force=True,  # the trainer decides when to save; orbax would also save at the first step
  )


def restore_latest(
  mngr: ocp.CheckpointManager, abstract_state: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], int] | None:
  """Restores the latest checkpoint into arrays shaped and sharded like `abstract_state`.

  Args:
    mngr: the run's manager.
    abstract_state: {"params", "opt", "step"} of ShapeDtypeStructs with shardings.

  Returns:
    (state, data iterator state, step), or None if the run has no checkpoint yet.

  Raises:
    CheckpointError: the latest checkpoint cannot be read (named by path).
  """
  step = mngr.latest_step()
  if step is None:
    return None
  path = pathlib.Path(mngr.directory) / str(step)
  try:
    r = mngr.restore(
      step,
      args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state["params"]),
        optimizer=ocp.args.StandardRestore(
          {"opt": abstract_state["opt"], "step": abstract_state["step"]}
        ),
        data=ocp.args.JsonRestore(),
      ),
    )
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise CheckpointError(_unreadable(path, e)) from e
  state = {"params": r.params, "opt": r.optimizer["opt"], "step": r.optimizer["step"]}
  if int(state["step"]) != step:
    raise CheckpointError(f"checkpoint {path} holds step {int(state['step'])}, not {step}")
  return state, r.data, step


def load_params(workdir: str | os.PathLike, abstract_params: Any) -> tuple[Any, int]:
  """The parameters of the latest checkpoint of another run (`init_from`, evaluation).

  Args:
    workdir: the run's workdir.
    abstract_params: ShapeDtypeStructs with shardings for the parameters.

  Returns:
    (parameters, step).

  Raises:
    CheckpointError: no checkpoint there, or it cannot be read; the message names the path.
  """
  directory = pathlib.Path(workdir).absolute() / CHECKPOINTS
  steps = saved_steps(workdir)
  if not steps:
    raise CheckpointError(f"no checkpoint in {directory}: has a run been trained in {workdir}?")
  path = directory / str(steps[-1])
  try:
    with ocp.StandardCheckpointer() as reader:
      params = reader.restore(path / "params", abstract_params)
  except Exception as e:  # see restore_latest
    raise CheckpointError(_unreadable(path, e)) from e
  return params, steps[-1]


def _unreadable(path: pathlib.Path, error: Exception) -> str:
  detail = str(error).strip().splitlines()
  first = detail[0][:300] if detail else ""
  return (
    f"checkpoint {path} cannot be read ({type(error).__name__}: {first}). It is damaged or was "
    "written for another model; delete that step directory to fall back to an earlier one."
  )
