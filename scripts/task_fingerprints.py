"""Digests of every task generator's output, kept in data/task_fingerprints.json.

  python scripts/task_fingerprints.py           # print the digests, and whether they match
  python scripts/task_fingerprints.py --write   # record them (after bumping the VERSION)

A prepared evaluation set is cached under its TFDS builder's VERSION
(`sleepnet.tasks.datasets.TaskDatasetBuilder`), so a generator change that alters its examples
without a new VERSION would let runs read a stale set. The test suite compares the digests with
the recorded ones; when a change is intended, bump VERSION, then rerun this with --write. Results
under results/ made before the change used the old task: rerun the affected slices.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILE = ROOT / "data" / "task_fingerprints.json"


def current() -> dict[str, object]:
  """{"version": the builders' VERSION, "digests": {task: generator_fingerprint(task)}}."""
  from sleepnet.tasks import datasets, registry

  return {
    "version": str(datasets.TaskDatasetBuilder.VERSION),
    "digests": {t: datasets.generator_fingerprint(t) for t in registry.TASKS},
  }


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--write", action="store_true", help=f"record the digests in {FILE}")
  args = parser.parse_args(argv)
  now = current()
  print(json.dumps(now, indent=2))
  if args.write:
    FILE.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
    print(f"wrote {FILE}")
    return 0
  recorded = json.loads(FILE.read_text()) if FILE.exists() else None
  if recorded == now:
    print(f"matches {FILE}")
    return 0
  print(f"differs from {FILE}: {recorded}", file=sys.stderr)
  return 1


if __name__ == "__main__":
  sys.exit(main())
