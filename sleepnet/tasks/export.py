"""Writes task examples as JSON lines, for people and for checks outside Python.

Usage::

  python -m sleepnet.tasks.export TASK --num N --seed S [--split train|test] [--start I]
      [--set key=value ...] [--out FILE] [--tokens]

TASK is one of rule110, depo, gsm_symbolic, gsm_realistic. Example i (i = start .. start+N-1) is
``generate(config, S, i, split)``, so a line can be reproduced from its id. Each line has ``id``,
``task``, ``split``, ``index``, ``difficulty``, ``text`` (the example as a person reads it: every
token except PAD and FILL), and the task's structured fields, ``answer`` (a string) among them;
``--tokens`` adds ``tokens`` and ``loss_mask``. Bad arguments (unknown task or key, impossible
settings, negative counts) exit with status 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sleepnet.tasks import base, registry


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="python -m sleepnet.tasks.export",
    description="Write task examples as JSON lines.",
  )
  parser.add_argument("task", help=f"one of: {', '.join(registry.TASKS)}")
  parser.add_argument("--num", type=int, required=True, help="number of examples")
  parser.add_argument("--seed", type=int, default=0, help="seed of the example stream")
  parser.add_argument("--split", default="train", choices=base.SPLITS)
  parser.add_argument("--start", type=int, default=0, help="index of the first example")
  parser.add_argument(
    "--set",
    dest="overrides",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="override a config field (repeatable)",
  )
  parser.add_argument("--out", help="also write the lines to this file")
  parser.add_argument("--tokens", action="store_true", help="include tokens and loss_mask")
  return parser


def record(
  spec: registry.TaskSpec,
  config: base.TaskConfig,
  seed: int,
  index: int,
  split: str,
  tokens: bool = False,
) -> dict[str, Any]:
  """Returns the JSON record of one example."""
  example = spec.generate(config, seed, index, split)
  out: dict[str, Any] = {
    "id": f"{spec.name}/{split}/{seed}/{index}",
    "task": spec.name,
    "split": split,
    "index": index,
    "difficulty": example.difficulty,
    "text": spec.text(example),
    **example.facts,
  }
  if tokens:
    out["tokens"] = example.tokens.tolist()
    out["loss_mask"] = example.loss_mask.astype(int).tolist()
  return out


def _parse_overrides(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, str]:
  overrides = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      parser.error(f"--set {item!r}: expected KEY=VALUE")
    overrides[key.strip()] = value.strip()
  return overrides


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
  """Runs the CLI; returns the exit status (argument errors exit through argparse)."""
  stdout = stdout or sys.stdout
  parser = _parser()
  args = parser.parse_args(argv)
  if args.num < 0:
    parser.error(f"--num={args.num} must be >= 0")
  if args.seed < 0:
    parser.error(f"--seed={args.seed} must be >= 0")
  if args.start < 0:
    parser.error(f"--start={args.start} must be >= 0")
  overrides = _parse_overrides(parser, args.overrides)
  try:
    spec = registry.get_task(args.task)
    config = registry.config_from_overrides(args.task, overrides)
  except ValueError as e:
    parser.error(str(e))
  with contextlib.ExitStack() as stack:
    sinks = [stdout]
    if args.out:
      sinks.append(stack.enter_context(open(args.out, "w")))
    try:
      for index in range(args.start, args.start + args.num):
        line = json.dumps(record(spec, config, args.seed, index, args.split, args.tokens))
        for sink in sinks:
          sink.write(line + "\n")
    except RuntimeError as e:  # the content space of the config cannot reach the split
      print(f"{parser.prog}: error: {e}", file=sys.stderr)
      return 1
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
      sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (keeps the interpreter's final flush quiet)
      return 0
  return 0


if __name__ == "__main__":
  sys.exit(main())
