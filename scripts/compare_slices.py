r"""Compares a study's slice files with their versions at an earlier git revision: does a rerun
reproduce the numbers?

  python scripts/compare_slices.py --study gsm_symbolic --rev 5ce58f7

For every slice in results/<study>/slices/ that also exists at REV, prints whether the evaluation
(exact match and token accuracy, overall and per difficulty, at every test-time N) and the last
logged training loss are the same, else the largest difference. Exit status 0 when every compared
slice is the same, 1 otherwise. Training on a CPU is deterministic for a given seed, commit and
jax version, so a rerun at a clean commit of a slice first made from uncommitted changes shows
whether those changes mattered.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRICS = ("exact_match", "token_accuracy")


def numbers(report: Mapping[str, Any]) -> dict[str, float]:
  """The slice's compared numbers, keyed by where they are (N, difficulty, metric)."""
  out: dict[str, float] = {}

  def walk(prefix: str, r: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    for m in METRICS:
      if m in r:
        yield f"{prefix}{m}", float(r[m])

  for n, r in (report.get("eval") or {}).get("results", {}).items():
    out.update(walk(f"N={n} ", r))
    for d, rd in r.get("by_difficulty", {}).items():
      out.update(walk(f"N={n} d={d} ", rd))
  curve = report.get("curve") or []
  if curve and "loss" in curve[-1]:
    out[f"train loss at step {curve[-1].get('step')}"] = float(curve[-1]["loss"])
  return out


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[bool, str]:
  """(same, a one-line account) of two versions of one slice."""
  a, b = numbers(old), numbers(new)
  if not a or not b:
    return False, "no evaluation to compare"
  if a.keys() != b.keys():
    return False, f"different numbers recorded ({len(a)} vs {len(b)})"
  worst = max(a, key=lambda k: abs(a[k] - b[k]))
  diff = abs(a[worst] - b[worst])
  if diff == 0:
    return True, f"same ({len(a)} numbers)"
  return False, f"differs, most at {worst}: {a[worst]:.4f} -> {b[worst]:.4f}"


def main(argv: list[str] | None = None) -> int:
  """Prints one line per slice compared; exit status 1 if any differs."""
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--study", required=True)
  p.add_argument("--rev", required=True, help="the git revision holding the earlier slices")
  args = p.parse_args(argv)
  slices = ROOT / "results" / args.study / "slices"
  if not slices.is_dir():
    raise SystemExit(f"no slices for study {args.study!r} in {slices}")
  all_same, compared = True, 0
  for path in sorted(slices.glob("*.json")):
    rel = path.relative_to(ROOT).as_posix()
    show = subprocess.run(
      ["git", "-C", str(ROOT), "show", f"{args.rev}:{rel}"], capture_output=True, text=True
    )
    if show.returncode != 0:
      print(f"{path.name}: not at {args.rev}")
      continue
    old, new = json.loads(show.stdout), json.loads(path.read_text())
    same, text = compare(old, new)
    if old.get("git", {}).get("commit") == new.get("git", {}).get("commit"):
      text += " (the same file: made at the same commit)"
    print(f"{path.name}: {text}")
    all_same &= same
    compared += 1
  print(
    f"{compared} slices compared with {args.rev}: {'all the same' if all_same else 'some differ'}"
  )
  return 0 if all_same else 1


if __name__ == "__main__":
  sys.exit(main())
