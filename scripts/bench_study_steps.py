"""What a study scale costs per training step, each variant's exact command, side by side.

Plans the gpu scale: how long a study takes on a device, and how many seeds share it well, depend
on the seconds per step of each variant's exact training command.

  python scripts/bench_study_steps.py --study rule110 --scale cpu --only hybrid,sleep4
  # on a GPU or TPU host (WORKSPACE.md, "The gpu scale on a GPU or TPU host"):
  python scripts/bench_study_steps.py --study all --scale gpu --only hybrid,sleep4 \\
    --out results/bench/study_steps-gpu.json
  ... --study rule110 --only sleep4 --processes 3     # 3 seeds sharing the device (--jobs 3)

For each study and variant, the last training stage's command in `scripts/studies.py` (for a
two-stage variant its sleep stage: `steps` and the projection are that stage's; a curriculum
stage before it, at the same N, is counted in them) is parsed exactly
as `python -m sleepnet.main` parses it; its real train state, train step and training batches (the
grain pipeline) are built; the step is compiled (timed), then run for --steps steps after one
warm-up, each timed to completion (median). The batch is fetched before the clock starts, so this
is the compiled step alone: data loading, logging and checkpointing are not in it. The input
pipeline is timed on its own (data s/batch: the mean wait for the next batch of the real grain
iterator over 20 or more batches, after what it prefetched is drained); training overlaps the two,
so a run's step takes about the larger of them. One process measures seed 0, one run at a time;
`--processes K` starts K processes (seeds 0..K-1) that time each variant together, as
`reproduce.py --jobs K` runs a variant's seeds on one device, so their s/step is what each seed
gets then. The scale's
environment variables (`Scale.env`, e.g. the cpu scale's single-threaded XLA) are not applied,
since they must be set before jax starts: each row records them, and the cpu scale's real runs are
slower per step than this measures. Prints a markdown table; --out also writes every number as JSON
(and the table as .md), rewritten after each measurement so that a command stopped by its time
limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import platform
import queue as queue_lib
import statistics
import sys
import time
from typing import Any

import jax

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import studies  # noqa: E402
import study_runs  # noqa: E402

from sleepnet import evaluation, run_config, sharding, train  # noqa: E402

DATA_BATCHES = 20  # batches the input pipeline's rate is averaged over (at least --steps)


def measure(run: studies.Run, steps: int, barrier: Any = None) -> dict[str, Any]:
  """Compile time, seconds per step and memory of the run's last stage.

  Memory is the compiled program's own accounting (temporaries; arguments = the train state and
  batch), not the device's peak, which one process running many variants cannot separate. With
  a barrier (--processes), the timed steps start when every process has compiled and warmed up,
  and the next variant when every process has finished timing: the processes share the device
  while the clock runs, as seeds run with `reproduce.py --jobs` do.
  """
  stage = run.stages[-1]
  config = studies.parse_command(stage.argv)
  # A curriculum stage trains the same model at the same N on sequences as long, so it costs what
  # the measured stage does per step; a two-stage variant's N = 1 stages do not.
  same_n_steps = stage.num_steps
  if not studies.VARIANTS[run.variant].two_stage:
    same_n_steps += sum(s.num_steps for s in run.stages[:-1] if s.curriculum)
  model_config, task = run_config.resolve(config)
  mesh = run_config.make_mesh(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  step = train.make_train_step(config, graphdef, tx, mesh, shardings)
  batches = train.train_iterator(config, task, mesh)
  batch = next(batches)
  batch = sharding.put_batch({k: batch[k] for k in ("tokens", "loss_mask")}, mesh)
  # A variant trained at N drawn per step is timed at its largest N (its costliest step).
  mixture = tuple(config.train_sleep_passes)
  passes = max(mixture) if mixture else None

  start = time.perf_counter()
  compiled = step.lower(state, batch, passes=passes).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  if barrier is not None:
    barrier.wait()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  if barrier is not None:
    barrier.wait()
  s_per_step = statistics.median(times)
  # The input pipeline alone (the real grain iterator and its threads): batches are generated in
  # Python on the host, so a step faster than this waits for its data. What was prefetched while
  # the steps ran is drained first, so that the timed waits are the steady-state rate.
  for _ in range(config.data_prefetch + 2):
    next(batches)
  fetched = max(steps, DATA_BATCHES)
  start = time.perf_counter()
  for _ in range(fetched):
    next(batches)
  data_s_per_batch = (time.perf_counter() - start) / fetched
  return {
    "study": run.study,
    "variant": run.variant,
    "seed": run.seed,
    "stage": stage.workdir.name if len(run.stages) > 1 else "",
    "sleep_passes": passes if passes is not None else config.model.sleep_passes,
    "batch_size": config.batch_size,
    "tokens": int(batch["tokens"].shape[-1]),
    "compile_s": round(compile_s, 2),
    "s_per_step": s_per_step,
    "s_per_step_min": min(times),
    "timed_steps": steps,
    "num_steps": same_n_steps,
    "projected_train_s": round(s_per_step * same_n_steps, 1),
    "data_s_per_batch": data_s_per_batch,
    "temp_bytes": getattr(memory, "temp_size_in_bytes", None),
    "argument_bytes": getattr(memory, "argument_size_in_bytes", None),
    "loss": float(metrics["loss"]),
    "env_not_applied": dict(run.env),
    "device": {**evaluation.device_record(), "host": platform.node()},
  }


def _mib(n: int | None) -> str:
  return "" if n is None else f"{n / 2**20:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
  """The measurements as a markdown table."""
  lines = [
    "| study | variant | seed | N | batch x tokens | compile (s) | s/step | steps "
    "| projected train (s) | data s/batch | temp MiB | arguments MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    name = r["variant"] + (f" ({r['stage']})" if r["stage"] else "")
    lines.append(
      f"| {r['study']} | {name} | {r['seed']} | {r['sleep_passes']} "
      f"| {r['batch_size']} x {r['tokens']} | {r['compile_s']:.1f} | {r['s_per_step']:.4f} "
      f"| {r['num_steps']} | {r['projected_train_s']:.0f} | {r['data_s_per_batch']:.4f} "
      f"| {_mib(r['temp_bytes'])} | {_mib(r['argument_bytes'])} |"
    )
  return "\n".join(lines)


def plan_runs(names: list[str], scale: str, only: list[str], seed: int) -> list[studies.Run]:
  """Seed `seed`'s run of every selected variant of every named study (unknown names fail)."""
  for v in only:
    studies.get_variant(v)  # unknown names fail here, listing the valid ones
  plan = []
  for name in names:
    study = studies.get_study(name)  # as do unknown studies
    variants = list(studies.get_scale(study, scale).variants)
    chosen = [v for v in only if v in variants] if only else variants
    plan += studies.runs_of(name, scale, chosen, [seed], ROOT / "runs" / "bench")
  return plan


def _worker(plan: list[studies.Run], steps: int, barrier: Any, queue: Any) -> None:
  """One of --processes K: measures its seed's runs, in step with the others."""
  for run in plan:
    queue.put(measure(run, steps, barrier))


def _measure_side_by_side(plans: list[list[studies.Run]], steps: int, on_row: Any) -> bool:
  """Runs one process per plan (seed), all on this machine's device; False if one failed."""
  # Spawned, not forked: each child starts its own JAX runtime (forking a process whose JAX
  # threads are running is unsafe). Each takes GPU memory as it needs it, not 75% of it at start
  # (as study_runs does with --jobs > 1); the children inherit the variable at start.
  ctx = multiprocessing.get_context("spawn")
  barrier = ctx.Barrier(len(plans), timeout=1800)
  queue = ctx.Queue()
  workers = [ctx.Process(target=_worker, args=(p, steps, barrier, queue)) for p in plans]
  before = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  try:
    for w in workers:
      w.start()
  finally:
    if before is None:
      del os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"]
  expected = sum(len(p) for p in plans)
  got = 0
  while got < expected:
    try:
      on_row(queue.get(timeout=5))
      got += 1
    except queue_lib.Empty:
      if any(w.exitcode not in (None, 0) for w in workers):
        barrier.abort()
        break
  for w in workers:
    w.join()
  return all(w.exitcode == 0 for w in workers) and got == expected


def main(argv: list[str] | None = None) -> int:
  """Measures the selected variants and prints (and optionally writes) the table."""
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--study", required=True, help=f"one of {', '.join(studies.STUDIES)}, or all")
  p.add_argument("--scale", default="gpu", choices=studies.SCALES)
  p.add_argument("--only", default="", help="comma-separated variants (default: the scale's)")
  p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
  p.add_argument(
    "--processes",
    type=int,
    default=1,
    help="K processes side by side, seeds 0..K-1, timed together (as reproduce.py --jobs K)",
  )
  p.add_argument("--out", type=pathlib.Path, help="also write the numbers here as JSON")
  args = p.parse_args(argv)
  argv = argv if argv is not None else sys.argv[1:]
  if args.steps < 1 or args.processes < 1:
    p.error(f"--steps and --processes must be >= 1, got {args.steps} and {args.processes}")
  names = list(studies.STUDIES) if args.study == "all" else [args.study]
  only = [v.strip() for v in args.only.split(",") if v.strip()]
  plans = [plan_runs(names, args.scale, only, seed) for seed in range(args.processes)]
  if not plans[0]:
    p.error(f"none of {only} is a variant of {names} at the {args.scale} scale")

  report: dict[str, Any] = {
    "scale": args.scale,
    "processes": args.processes,
    "date": study_runs.now(),
    "git": study_runs.git_info(),
    "rows": [],
  }

  def on_row(row: dict[str, Any]) -> None:
    row["processes"] = args.processes
    report["rows"].append(row)
    report.setdefault("device", row["device"])
    print(
      f"{row['study']}/{row['variant']}/seed{row['seed']}: {row['s_per_step']:.4f} s/step, "
      f"compile {row['compile_s']:.0f} s, {row['num_steps']} steps = "
      f"{row['projected_train_s']:.0f} s",
      flush=True,
    )
    if args.out:
      write(args.out, report, argv)

  if args.processes == 1:
    for run in plans[0]:
      on_row(measure(run, args.steps))
  elif not _measure_side_by_side(plans, args.steps, on_row):
    print("error: a measuring process failed (its traceback is above)", file=sys.stderr)
    return 1
  print(table(report["rows"]))
  return 0


def write(path: pathlib.Path, report: dict[str, Any], argv: list[str]) -> None:
  """PATH (JSON, every number) and PATH with .md (the table, with what made it)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(report, indent=1) + "\n")
  d = report["device"]
  lines = [
    f"# Seconds per training step, {report['scale']} scale",
    "",
    f"Written by `python scripts/bench_study_steps.py {' '.join(argv)}` on {report['date']}.",
    f"Device: {d['platform']} / {d['device_kind']} (host {d['host']}: {d['host_cpu']}, "
    f"{d['host_cores']} cores), jax {d['jax']}, "
    f"commit {report['git']['commit'][:12]}"
    + (" with uncommitted changes" if report["git"].get("dirty") else "")
    + (
      f". {report['processes']} processes side by side (seeds 0..{report['processes'] - 1}), "
      if report["processes"] > 1
      else ". One process (seed 0), "
    )
    + "the compiled step alone (see the script's docstring); every number is in the JSON beside "
    "this file.",
    "",
    table(report["rows"]),
    "",
  ]
  path.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
  sys.exit(main())
