"""What a study scale costs per training step, every variant side by side in one process.

Plans the gpu scale: a lent GPU has 15 minutes of device time per task, so how many variants of
which study fit in one task, and whether 20k steps can finish at all, depend on the seconds per
step of each variant's exact training command, which nobody has measured on a GPU yet.

  python scripts/bench_study_steps.py --study rule110 --scale cpu --only hybrid,sleep4
  # on a lent GPU (WORKSPACE.md, "The gpu scale on a lent GPU"):
  source scripts/gpu_env.sh && python3 scripts/bench_study_steps.py --study all --scale gpu \\
    --only hybrid,sleep4 --out $OUT/study_steps.json

For each study and variant, seed 0, the last training stage's command in `scripts/studies.py`
(for a two-stage variant its sleep stage: `steps` and the projection are that stage's) is
parsed exactly as `python -m sleepnet.main` parses it; its real train state, train step and
training batches (the grain pipeline) are built; the step is compiled (timed), then run for
--steps steps after one warm-up, each timed to completion (median). The batch is fetched before
the clock starts, so this is the compiled step alone: data loading, logging and checkpointing
are not in it. One process, one run at a time: a slice trains a variant's seeds side by side on
one GPU, which shares it. The scale's environment variables (`Scale.env`, e.g. the cpu scale's
single-threaded XLA) are not applied, since they must be set before jax starts: each row records
them, and the cpu scale's real runs are slower per step than this measures. Prints a markdown
table; --out also writes every number as JSON, rewritten after each variant so that a command
stopped by its time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
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

from sleepnet import sharding, train  # noqa: E402

SLICE_SECONDS = 540  # the deadline of one gpu_slice.sh command (WORKSPACE.md)


def measure(run: studies.Run, steps: int) -> dict[str, Any]:
  """Compile time, seconds per step and memory of the run's last stage.

  Memory is the compiled program's own accounting (temporaries; arguments = the train state and
  batch), not the device's peak, which one process running many variants cannot separate.
  """
  stage = run.stages[-1]
  config = studies.parse_command(stage.argv)
  model_config, task = train.resolve(config)
  mesh = train.make_mesh(config)
  tx, _ = train.make_optimizer(config)
  graphdef, state, shardings = train.create_train_state(config, model_config, tx, mesh)
  step = train.make_train_step(config, graphdef, tx, mesh, shardings)
  batch = next(train.train_iterator(config, task, mesh))
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
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  s_per_step = statistics.median(times)
  return {
    "variant": run.variant,
    "stage": stage.workdir.name if len(run.stages) > 1 else "",
    "sleep_passes": passes if passes is not None else config.model.sleep_passes,
    "batch_size": config.batch_size,
    "tokens": int(batch["tokens"].shape[-1]),
    "compile_s": round(compile_s, 2),
    "s_per_step": s_per_step,
    "s_per_step_min": min(times),
    "timed_steps": steps,
    "num_steps": config.num_steps,
    "projected_train_s": round(s_per_step * config.num_steps, 1),
    "steps_per_slice": int(SLICE_SECONDS / s_per_step),
    "temp_bytes": getattr(memory, "temp_size_in_bytes", None),
    "argument_bytes": getattr(memory, "argument_size_in_bytes", None),
    "loss": float(metrics["loss"]),
    "env_not_applied": dict(run.env),
  }


def _mib(n: int | None) -> str:
  return "" if n is None else f"{n / 2**20:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
  """The measurements as a markdown table."""
  lines = [
    "| study | variant | N | batch x tokens | compile (s) | s/step | steps | projected train (s) "
    "| steps per 540 s | temp MiB | arguments MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    name = r["variant"] + (f" ({r['stage']})" if r["stage"] else "")
    lines.append(
      f"| {r['study']} | {name} | {r['sleep_passes']} | {r['batch_size']} x {r['tokens']} "
      f"| {r['compile_s']:.1f} | {r['s_per_step']:.4f} | {r['num_steps']} "
      f"| {r['projected_train_s']:.0f} "
      f"| {r['steps_per_slice']} | {_mib(r['temp_bytes'])} | {_mib(r['argument_bytes'])} |"
    )
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  """Measures the selected variants and prints (and optionally writes) the table."""
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--study", required=True, help=f"one of {', '.join(studies.STUDIES)}, or all")
  p.add_argument("--scale", default="gpu", choices=studies.SCALES)
  p.add_argument("--only", default="", help="comma-separated variants (default: the scale's)")
  p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
  p.add_argument("--out", type=pathlib.Path, help="also write the numbers here as JSON")
  args = p.parse_args(argv)
  if args.steps < 1:
    p.error(f"--steps must be >= 1, got {args.steps}")
  names = list(studies.STUDIES) if args.study == "all" else [args.study]
  only = [v.strip() for v in args.only.split(",") if v.strip()]
  plan = []
  for name in names:
    study = studies.get_study(name)  # unknown names fail here, listing the valid ones
    scale = studies.get_scale(study, args.scale)
    variants = [v for v in only if v in scale.variants] if only else list(scale.variants)
    for v in only:
      studies.get_variant(v)
    plan += studies.runs_of(name, args.scale, variants, [0], ROOT / "runs" / "bench")
  if not plan:
    p.error(f"none of {only} is a variant of {names} at the {args.scale} scale")

  device = jax.devices()[0]
  report: dict[str, Any] = {
    "device": {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "host": platform.node(),
      "jax": jax.__version__,
    },
    "scale": args.scale,
    "date": study_runs.now(),
    "git": study_runs.git_info(),
    "rows": [],
  }
  print(f"{device.platform} / {device.device_kind}, jax {jax.__version__}", flush=True)
  for run in plan:
    row = {"study": run.study, **measure(run, args.steps)}
    report["rows"].append(row)
    print(
      f"{run.study}/{run.variant}: {row['s_per_step']:.4f} s/step, compile {row['compile_s']:.0f}"
      f" s, {row['num_steps']} steps = {row['projected_train_s']:.0f} s",
      flush=True,
    )
    if args.out:
      write(args.out, report, argv if argv is not None else sys.argv[1:])
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
    f"Device: {d['platform']} / {d['device_kind']} ({d['host']}), jax {d['jax']}, "
    f"commit {report['git']['commit'][:12]}"
    + (" with uncommitted changes" if report["git"].get("dirty") else "")
    + ". Seed 0, one run at a time, the compiled step alone "
    "(see the script's docstring); every number is in the JSON beside this file.",
    "",
    table(report["rows"]),
    "",
  ]
  path.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
  sys.exit(main())
