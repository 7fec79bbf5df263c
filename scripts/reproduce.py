r"""Reproduces one study of the paper through the framework itself, resumably and in slices.

  python scripts/reproduce.py --study rule110 --scale cpu --jobs 2     # the whole study, then merge
  python scripts/reproduce.py --study rule110 --scale gpu --jobs 1     # on a GPU or TPU host
  python scripts/reproduce.py --study rule110 --scale gpu --only hybrid,sleep4 --seeds 0 \
      --deadline_s 3300                                                # part of it, time-boxed
  python scripts/reproduce.py --study rule110 --merge                  # slices -> results, figures
  python scripts/reproduce.py --study depo --scale cpu --dry_run       # print the commands only
  python scripts/reproduce.py --study depo --scale gpu --todo          # what is left to run

Studies: rule110, depo, gsm_symbolic, gsm_realistic. Scales (scripts/studies.py, one table): ci
(minutes; for the test), cpu (tiny models, two seeds; 3.3 to 3.8 process-hours per study as
measured on each study page, so 1.7 to 1.9 hours on a 2-core CPU with --jobs 2), cpu_long
(rule110 and gsm_symbolic only: the cpu scale trained longer), gpu (the full study on one GPU
or TPU host, for as long as it needs).

Every run is `python -m sleepnet.main --config experiments/<exp>.py:<args> --workdir
runs/<study>/<scale>/<variant>/seed<k> --config.KEY=VALUE ...` followed by `python -m
sleepnet.evaluate --workdir ... --sleep_passes ...`. Rerunning the same command resumes: finished
runs (eval.json present and matching) are skipped, interrupted ones resume from their checkpoints.
Each finished run writes results/<study>/slices/<scale>-<variant>-seed<k>.json; a run with no run
directory here whose slice is already there, made by the same commands (a committed slice from an
earlier session or another machine), is skipped too, so a study longer than a session goes on
where the committed results stop (delete a slice file to retrain its run). `--merge` (and a
run of a whole scale, without --only/--seeds) combines every slice present, from any number of
invocations and machines, into results/<study>/results.json, PNG figures, results/<study>/README.md
and the index results/README.md, and prints the verdicts as PASS/FAIL lines. A slice made by
other commands than its run gets from the scale table today (the table changed since) is left out
of the merge and named, so results are never reported under settings they did not run with.

Exit status: 0 when every selected run finished (or was already finished), 1 if a run failed or a
run directory holds another run, 3 if --deadline_s stopped runs (rerun the command to resume).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the sibling helper modules
import studies
import study_report
import study_runs
import verdicts

DEFAULT_OUT = studies.ROOT / "results"
DEFAULT_RUNS = studies.ROOT / "runs"
# ci results are a pipeline check: they never go to results/ unless --out says so explicitly.
CI_OUT = DEFAULT_RUNS / "results-ci"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  """The command line (see the module docstring)."""
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--study", required=True, choices=list(studies.STUDIES))
  p.add_argument("--scale", default="cpu", choices=list(studies.SCALE_ORDER))
  p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the scale's)")
  p.add_argument("--only", default=None, help="comma-separated variants (default: the scale's)")
  p.add_argument(
    "--merge", action="store_true", help="only merge the slice files present; train nothing"
  )
  p.add_argument("--out", type=pathlib.Path, default=None, help="results directory (results/)")
  p.add_argument("--runs", type=pathlib.Path, default=DEFAULT_RUNS, help="run directories (runs/)")
  p.add_argument(
    "--jobs",
    type=int,
    default=1,
    help="runs at once (2 on a 2-core CPU: one single-threaded process per core; on a GPU or "
    "TPU, the seeds side by side where the device has room)",
  )
  p.add_argument(
    "--deadline_s",
    type=float,
    default=None,
    help="stop whatever still runs after this many seconds (e.g. within a scheduler's time "
    "limit): trainers get SIGTERM and save the step they reached; rerun to resume",
  )
  p.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
  p.add_argument(
    "--todo",
    action="store_true",
    help="list the selected runs that have no finished slice yet (made by today's commands), "
    "those the verdicts need first, with the command that runs each variant; run nothing",
  )
  args = p.parse_args(argv)
  if args.out is None:
    args.out = CI_OUT if args.scale == "ci" else DEFAULT_OUT
  args.out, args.runs = args.out.resolve(), args.runs.resolve()
  return args


def _split(text: str | None) -> list[str] | None:
  return [x.strip() for x in text.split(",") if x.strip()] if text else None


def select_runs(args: argparse.Namespace) -> list[studies.Run]:
  """The runs of the slice the arguments select."""
  study = studies.get_study(args.study)
  scale = studies.get_scale(study, args.scale)
  variants = _split(args.only) or list(scale.variants)
  for v in variants:
    studies.get_variant(v)  # unknown names fail before anything runs
  seeds = [int(s) for s in _split(args.seeds)] if args.seeds else list(scale.seeds)
  return studies.runs_of(study.name, args.scale, variants, seeds, args.runs)


def print_merge(args: argparse.Namespace) -> None:
  """Merges the study's slices and prints its verdict lines (and the paper's GSM numbers)."""
  results = study_report.merge(args.study, args.out)
  print(f"merged into {args.out / args.study}/ (results.json, README.md, figures)")
  for line in study_report.verdict_lines(results):
    print(line)
  for scale_name, merged in results["scales"].items():
    for r in merged.get("paper_comparison") or []:
      ours = r["ours"]
      hybrid, sleep4 = study_report.fmt(ours["hybrid"]), study_report.fmt(ours["sleep4"])
      text = (
        f"ours hybrid {hybrid} -> sleep4 {sleep4}"
        if ours["hybrid"] is not None or ours["sleep4"] is not None
        else "ours: not measured (outside this scale's ops range)"
      )
      print(
        f"{args.study} [{scale_name}] paper {r['ops']}-op (pretrained init, 4 sleep loops): "
        f"{r['paper_no_sleep']:.0%} -> {r['paper_sleep4']:.0%}; {text}"
      )
  if any(m.get("paper_comparison") for m in results["scales"].values()):
    print(f"What differs: {study_report.PAPER_DIFFERENCES}")


def todo_order(missing: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
  """`missing` (variant -> seeds), the verdicts' variants first (verdicts.VARIANTS_BY_NEED:
  hybrid, sleep4, transformer, sleep2), the rest after in their table order."""
  first = [v for v in verdicts.VARIANTS_BY_NEED if v in missing]
  rest = [v for v in missing if v not in verdicts.VARIANTS_BY_NEED]
  return [(v, missing[v]) for v in (*first, *rest)]


def print_todo(args: argparse.Namespace, runs: list[studies.Run]) -> None:
  """The runs still to do: no finished slice in results/ made by the commands they have today."""
  ctx = study_runs.Context(runs_dir=args.runs, slices_dir=args.out / args.study / "slices")
  missing: dict[str, list[int]] = {}
  partial: list[str] = []  # interrupted runs whose checkpoints are under --runs
  steps = 0
  for run in runs:
    if not study_runs.recorded(run, ctx, study_runs.spec_of(run, args.runs)):
      missing.setdefault(run.variant, []).append(run.seed)
      steps += sum(stage.num_steps for stage in run.stages)
      done = study_runs.steps_done(run)
      if done:
        partial.append(f"{run.variant}/seed{run.seed} at step {done}")
  if not missing:
    print(f"{args.study}/{args.scale}: every selected run has a finished slice")
    return
  todo = sum(len(s) for s in missing.values())
  print(
    f"{args.study}/{args.scale}: {todo} of {len(runs)} runs to do ({steps} training steps), "
    "those the verdicts need first:"
  )
  for variant, seeds in todo_order(missing):
    seed_text = ",".join(map(str, seeds))
    how = f"python scripts/reproduce.py --study {args.study} --scale {args.scale} "
    how += f"--only {variant} --seeds {seed_text}"
    used = verdicts.verdicts_using(variant)
    feeds = f" [verdicts {', '.join(used)}]" if used else ""
    print(f"  {variant}: seeds {seed_text}{feeds}  ({how})")
  if partial:
    where = study_runs.portable(args.runs / args.study / args.scale)
    print(
      f"  resume from checkpoints here ({'; '.join(partial)}): in {where}/VARIANT, which that "
      "variant's command continues from the step it reached"
    )


def main(argv: list[str] | None = None) -> int:
  """Runs the selected slice (unless --merge) and merges when asked or when it is a whole scale."""
  args = parse_args(argv)
  if args.merge:
    print_merge(args)
    return 0
  try:
    runs = select_runs(args)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if args.todo:
    print_todo(args, runs)
    return 0
  if args.dry_run:
    for run in runs:
      env = "".join(f"{k}={v} " for k, v in run.env.items())
      for stage in run.stages:
        print(f"{env}{sys.executable} -m sleepnet.main " + " ".join(stage.argv))
      workdir = studies.portable(run.eval_workdir)
      passes = ",".join(map(str, run.eval_passes))
      print(
        f"{env}{sys.executable} -m sleepnet.evaluate --workdir={workdir} --sleep_passes={passes}"
      )
    return 0
  start = time.monotonic()
  ctx = study_runs.Context(
    runs_dir=args.runs,
    slices_dir=args.out / args.study / "slices",
    deadline=None if args.deadline_s is None else start + args.deadline_s,
    jobs=args.jobs,
    log=lambda line: print(f"[{time.monotonic() - start:7.0f}s] {line}", flush=True),
  )
  outcomes = study_runs.execute_all(runs, ctx)
  summary = ", ".join(f"{k}: {len(v)}" for k, v in sorted(outcomes.items()))
  print(
    f"{args.study}/{args.scale}: {len(runs)} runs ({summary}) in {time.monotonic() - start:.0f} s"
  )
  whole_scale = args.only is None and args.seeds is None
  if whole_scale:
    print_merge(args)
  else:
    print(f"slices in {ctx.slices_dir}; combine them with:")
    print(f"  python scripts/reproduce.py --study {args.study} --merge --out {args.out}")
  if outcomes.get(study_runs.FAILED) or outcomes.get(study_runs.CONFLICT):
    return 1
  if outcomes.get(study_runs.INTERRUPTED):
    print("stopped at --deadline_s: rerun the same command to resume")
    return 3
  return 0


if __name__ == "__main__":
  sys.exit(main())
