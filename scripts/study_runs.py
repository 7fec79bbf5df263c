"""Runs the (variant, seed) runs of a study slice through the framework, resumably.

Each run trains with `python -m sleepnet.main` and is evaluated with `python -m sleepnet.evaluate
--sleep_passes ...`, both as subprocesses in the repository, so what is measured is exactly what a
user runs. A run lives in runs/<study>/<scale>/<variant>/seed<k>/ (two-stage variants: stage1/ and
stage2/ under it) and is resumable at every level:

  * eval.json present and matching (final step, every requested N, the configured test set):
    nothing runs; the slice file is (re)written from the workdir;
  * no such run directory, but a finished slice of the same commands already in the slices
    directory (trained in another session or on another machine, and committed): nothing runs
    and the slice is kept as it is, so a study longer than one session resumes from results/
    (delete the slice file to retrain that run);
  * the final checkpoint present: only the evaluation runs;
  * otherwise the trainer is launched, and resumes from the workdir's latest checkpoint itself.

DIR/reproduce.json records the exact commands of the run (a later invocation with other commands
refuses the directory rather than mixing two runs) and the wall time, device and host of every
invocation that worked on it. When a run is complete its slice, results/<study>/slices/
<scale>-<variant>-seed<k>.json, holds everything `--merge` needs: the config, the evaluation, the
learning curve, wall times, the device and the git commit.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

from studies import ROOT, Run, portable

SPEC_FILE = "reproduce.json"
SLICE_SCHEMA = 1
# Run outcomes.
SKIPPED, RECORDED, DONE, FAILED, INTERRUPTED, CONFLICT = (
  "skipped",
  "recorded",
  "done",
  "failed",
  "interrupted",
  "conflict",
)

_PROBE = (
  "import json, flax, jax; d = jax.devices()[0]; print(json.dumps({'platform': d.platform, "
  "'device_kind': d.device_kind, 'count': jax.device_count(), 'jax': jax.__version__, "
  "'flax': flax.__version__}))"
)


class RunConflictError(RuntimeError):
  """A run directory holds a run launched with other commands."""


@dataclasses.dataclass
class Context:
  """What every run of one invocation shares.

  Attributes:
    runs_dir: the root of the run directories (the spec stores paths relative to it).
    slices_dir: where slice files go (results/<study>/slices).
    deadline: time.monotonic() value after which running subprocesses are killed (None: none).
    jobs: runs at once.
    log: prints one progress line.
  """

  runs_dir: pathlib.Path
  slices_dir: pathlib.Path
  deadline: float | None = None
  jobs: int = 1
  log: Callable[[str], None] = print
  _device: dict[str, Any] | None = None
  _git: dict[str, Any] | None = None
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
  _children: set[subprocess.Popen] = dataclasses.field(default_factory=set)

  def kill_children(self) -> None:
    """SIGKILLs the process group of every subprocess this invocation started that still runs."""
    with self._lock:
      for proc in self._children:
        if proc.poll() is None:
          os.killpg(proc.pid, signal.SIGKILL)

  def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subprocesses' environment: this one, a persistent compilation cache, and `extra`."""
    env = dict(os.environ)
    env.update(extra or {})
    # Compilation dominates short runs; reuse compiled programs across runs and invocations.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
    if self.jobs > 1:
      # Several processes on one accelerator: allocate on demand instead of 75% each.
      env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
      # On a CPU, one thread per process: two single-threaded runs on 2 cores did 1.4x the steps
      # of one two-threaded run (measured, rule110 cpu sleep4); the flag is ignored on GPUs.
      flags = env.get("XLA_FLAGS", "")
      if "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return env

  def device(self) -> dict[str, Any]:
    """The accelerator the subprocesses use, asked once in a subprocess with their environment.

    Asked in a separate process (not this one) so that this process never claims accelerator
    memory; it runs on the same machine, with the same environment, just before the runs.
    """
    with self._lock:
      if self._device is None:
        try:
          out = subprocess.run(
            [sys.executable, "-c", _PROBE],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
          )
          self._device = json.loads(out.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError) as e:
          self._device = {"platform": "unknown", "device_kind": "unknown", "error": str(e)[:300]}
        self._device["source"] = (
          "jax.devices()[0] in a probe subprocess started by scripts/reproduce.py on the machine "
          "and with the environment of the training/evaluation subprocesses"
        )
        self._device["host"] = platform.node()
      return dict(self._device)

  def git(self) -> dict[str, Any]:
    """The repository's commit and whether the working tree differs from it."""
    with self._lock:
      if self._git is None:
        self._git = git_info()
      return dict(self._git)


def git_info(root: pathlib.Path = ROOT) -> dict[str, Any]:
  """{"commit": HEAD or "unknown", "dirty": whether files differ, "changed": which (up to 20)}.

  results/ is left out: it holds what this script writes (slices, merged reports), so a second
  invocation of a study in the same clone does not call its own outputs uncommitted code.
  """

  def git(*args: str) -> str:
    return subprocess.run(
      ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
    ).stdout

  try:
    commit = git("rev-parse", "HEAD").strip()
    changed = git("status", "--porcelain", "--", ".", ":(exclude)results").splitlines()
  except (subprocess.SubprocessError, OSError):  # no git, or a tree copied without .git
    return {"commit": "unknown", "dirty": None}
  # Which paths differ (the first 20), so a reader can tell changed code from a stray file.
  return {"commit": commit, "dirty": bool(changed), "changed": [c[3:] for c in changed[:20]]}


def now() -> str:
  """The current UTC time, ISO 8601."""
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def write_json(path: pathlib.Path, data: Any) -> None:
  """Writes JSON atomically (write, then rename): a killed invocation never leaves half a file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
  os.replace(tmp, path)


def spec_of(run: Run, runs_dir: pathlib.Path) -> dict[str, Any]:
  """The commands of a run with the runs directory written as <runs> (portable across machines)."""
  prefix = str(runs_dir)

  def norm(text: str) -> str:
    return text.replace(prefix, "<runs>")

  return {
    "env": dict(run.env),
    "train": [["sleepnet.main", *(norm(a) for a in s.argv)] for s in run.stages],
    "evaluate": [
      "sleepnet.evaluate",
      f"--workdir={norm(portable(run.eval_workdir))}",
      f"--sleep_passes={','.join(map(str, run.eval_passes))}",
    ],
  }


# Arguments that say where a run's files live, not what it trains: two machines (or a test's
# scratch directory) write them differently for the same experiment.
_PATH_ARGS = ("--workdir=", "--config.data_dir=")


def command_key(spec: Mapping[str, Any]) -> dict[str, Any]:
  """A run's commands (as `spec_of` writes them) without the arguments that name directories.

  Two slices with the same key trained and evaluated the same experiment, wherever they ran.
  """

  def strip(arg: str) -> str | None:
    if arg.startswith(_PATH_ARGS):
      return None
    if arg.startswith("--config=") and ":" in arg:
      # experiments/<exp>.py:model=sleep,passes=4,stage=2,init_from=<stage-1 workdir>
      path, _, args = arg.partition(":")
      kept = [a for a in args.split(",") if not a.startswith("init_from=")]
      return f"{path}:{','.join(kept)}"
    return arg

  def clean(argv: Sequence[str]) -> list[str]:
    return [a for a in map(strip, argv) if a is not None]

  return {
    "env": dict(spec.get("env") or {}),
    "train": [clean(argv) for argv in spec.get("train") or []],
    "evaluate": clean(spec.get("evaluate") or []),
  }


def _final_checkpoint(workdir: pathlib.Path, num_steps: int) -> bool:
  return (workdir / "checkpoints" / str(num_steps)).is_dir()


def steps_done(run: Run) -> int:
  """Training steps the run's checkpoints hold (its stages in order; 0 if none)."""
  done = 0
  for stage in run.stages:
    # As sleepnet.checkpoint.saved_steps (not imported: this process never imports jax).
    saved = sorted(
      int(p.name) for p in (stage.workdir / "checkpoints").glob("*") if p.name.isdigit()
    )
    if not saved:
      break
    done += saved[-1]
    if saved[-1] < stage.num_steps:
      break
  return done


def eval_matches(run: Run, eval_report: Any, num_test: int | None) -> bool:
  """Whether an eval.json answers this run: its final step, every requested N, the test split."""
  if not isinstance(eval_report, Mapping):
    return False
  try:
    return (
      eval_report["step"] == run.stages[-1].num_steps
      and eval_report["split"] == "test"
      and set(run.eval_passes) <= {int(n) for n in eval_report["sleep_passes"]}
      and (num_test is None or eval_report["eval_set"]["num_examples"] == num_test)
    )
  except (KeyError, TypeError, ValueError):
    return False


def _num_test(run: Run) -> int | None:
  for arg in run.stages[-1].argv:
    if arg.startswith("--config.eval.num_test="):
      return int(arg.partition("=")[2])
  return None


def recorded(run: Run, ctx: Context, spec: Mapping[str, Any]) -> bool:
  """Whether the slices directory holds a finished slice of this run, made by the same commands."""
  report = _read_json(ctx.slices_dir / run.slice_name)
  return (
    isinstance(report, Mapping) and report.get("status") == "ok" and report.get("commands") == spec
  )


# How often a running subprocess's elapsed time is written to reproduce.json, so that a study
# killed from outside (a session that ends, a lost machine) still records where its time went.
HEARTBEAT_S = 30.0
# At the deadline a trainer gets SIGTERM (it saves the step it reached and exits: see
# sleepnet.train) and this long to do so before SIGKILL; an evaluation just stops.
STOP_GRACE_S = 20.0
# Children die with the thread that started them (PR_SET_PDEATHSIG, Linux): a reproduce.py killed
# outright (a job killed at a scheduler's limit, a closed session) must not leave trainers behind
# writing into run directories that its relaunch resumes. They run in their own session, so that
# the deadline can stop a trainer and whatever it started together, which a kill of this
# process's group would otherwise miss.
_DIE_WITH_PARENT = (
  "import ctypes, os, signal, sys\n"
  "parent = int(sys.argv[1])\n"
  "libc = ctypes.CDLL(None, use_errno=True)\n"
  "libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG\n"
  "if os.getppid() != parent:\n"
  "  sys.exit(1)  # the parent died before prctl: nobody waits for this run\n"
  "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def _launch_argv(argv: Sequence[str]) -> list[str]:
  """`python -m argv...`, started through a stub that ties it to this process (see above)."""
  if not sys.platform.startswith("linux"):
    return [sys.executable, "-m", *argv]
  return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), "-m", *argv]


def _run_subprocess(
  argv: Sequence[str],
  log_path: pathlib.Path,
  ctx: Context,
  env: Mapping[str, str],
  progress: Callable[[float], None] | None = None,
) -> tuple[int | None, float]:
  """Runs `python -m ...argv` in the repository, appending its output to `log_path`.

  `progress(elapsed_seconds)` is called every HEARTBEAT_S seconds while the subprocess runs.

  Returns:
    (exit status, or None if it was killed at the deadline; wall seconds).
  """
  log_path.parent.mkdir(parents=True, exist_ok=True)
  start = time.monotonic()
  with log_path.open("a") as log:
    log.write(f"\n### {now()} {sys.executable} -m {' '.join(argv)}\n")
    log.flush()
    # A new session: the trainer and anything it starts are stopped together, by this id only.
    proc = subprocess.Popen(
      _launch_argv(argv),
      cwd=ROOT,
      env=ctx.env(env),
      stdout=log,
      stderr=subprocess.STDOUT,
      start_new_session=True,
    )
    with ctx._lock:
      ctx._children.add(proc)
    try:
      code: int | None = None
      while code is None:
        left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
        if left is not None and left <= 0:
          raise subprocess.TimeoutExpired(proc.args, 0)
        try:
          code = proc.wait(timeout=HEARTBEAT_S if left is None else min(HEARTBEAT_S, left))
        except subprocess.TimeoutExpired:
          if progress is not None:
            progress(time.monotonic() - start)
    except subprocess.TimeoutExpired:
      # SIGTERM first: a trainer saves the step it reached. Checkpoints are atomic, so the
      # SIGKILL after the grace period is safe too (the relaunch resumes from the last one).
      os.killpg(proc.pid, signal.SIGTERM)
      try:
        proc.wait(timeout=STOP_GRACE_S)
        how = "stopped (SIGTERM)"
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        how = f"killed (no exit {STOP_GRACE_S:g} s after SIGTERM)"
      code = None
      log.write(f"\n### {now()} {how} at the --deadline_s of scripts/reproduce.py\n")
    except BaseException:
      os.killpg(proc.pid, signal.SIGKILL)  # Ctrl-C: take the child down with us
      proc.wait()
      raise
    finally:
      with ctx._lock:
        ctx._children.discard(proc)
  return code, time.monotonic() - start


def _tail(path: pathlib.Path, chars: int = 1500) -> str:
  try:
    return path.read_text()[-chars:]
  except OSError:
    return ""


def read_curve(workdir: pathlib.Path, step_offset: int = 0) -> list[dict[str, float]]:
  """The learning curve of metrics.jsonl: step (shifted by `step_offset`), loss, accuracies."""
  out = []
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return out
  for line in path.read_text().splitlines():
    try:
      r = json.loads(line)
    except ValueError:
      continue
    keys = ("loss", "accuracy", "exact_match", "steps_per_sec", "cpu_per_wall")
    keep = {k: r[k] for k in keys if k in r}
    out.append({"step": int(r["step"]) + step_offset, **keep})
  return out


def _step_time(curve: Sequence[Mapping[str, float]]) -> float | None:
  # The median is robust to the first record of each session, which includes compilation.
  rates = [r["steps_per_sec"] for r in curve if r.get("steps_per_sec", 0) > 0]
  return 1.0 / statistics.median(rates) if rates else None


def _cpu_per_wall(curve: Sequence[Mapping[str, float]]) -> float | None:
  # The median over reports, as for the step time; None for runs from before it was logged.
  shares = [r["cpu_per_wall"] for r in curve if "cpu_per_wall" in r]
  return statistics.median(shares) if shares else None


def execute(run: Run, ctx: Context) -> str:
  """Brings one run to completion (or as far as the deadline allows); returns its outcome."""
  name = f"{run.study}/{run.scale}/{run.variant}/seed{run.seed}"
  spec = spec_of(run, ctx.runs_dir)
  state_path = run.directory / SPEC_FILE
  state = _read_json(state_path)
  if state is not None and state.get("spec") != spec:
    raise RunConflictError(
      f"{run.directory} holds a run launched with other commands (see {state_path}); the scale "
      "table changed since. Delete that directory to retrain it, or use another --runs."
    )
  if state is None:
    state = {"spec": spec, "sessions": [], "train_s": 0.0, "eval_s": 0.0}
  num_test = _num_test(run)
  eval_path = run.eval_workdir / "eval.json"
  if eval_matches(run, _read_json(eval_path), num_test):
    if not state_path.exists():
      write_json(state_path, state)  # claim the directory for these commands
    _write_slice(run, ctx, state, status="ok")
    ctx.log(f"{name}: finished before (eval.json matches); skipped")
    return SKIPPED

  if not state_path.exists() and recorded(run, ctx, spec):
    ctx.log(f"{name}: finished elsewhere ({ctx.slices_dir / run.slice_name}); skipped")
    return RECORDED

  session = {
    "started": now(),
    "device": ctx.device(),
    "git": ctx.git(),
    "train_s": 0.0,
    "heartbeat_s": HEARTBEAT_S,  # its times are written while it runs (see wall_complete)
  }
  state["sessions"].append(session)
  write_json(state_path, state)

  def save_state() -> None:
    state["train_s"] = sum(s.get("train_s", 0.0) for s in state["sessions"])
    state["eval_s"] = sum(s.get("eval_s", 0.0) for s in state["sessions"])
    write_json(state_path, state)

  def clock(key: str) -> Callable[[float], None]:
    """A progress callback: this session's `key` = its value now + the subprocess's elapsed s."""
    before = session.get(key, 0.0)

    def record(elapsed: float) -> None:
      session[key] = before + elapsed
      save_state()

    return record

  for i, stage in enumerate(run.stages):
    if _final_checkpoint(stage.workdir, stage.num_steps):
      continue
    what = f"stage {i + 1}/{len(run.stages)}, " if len(run.stages) > 1 else ""
    ctx.log(f"{name}: training ({what}{stage.num_steps} steps) -> {stage.workdir}")
    log_path = run.directory / "train.log"
    trained_for = clock("train_s")
    code, seconds = _run_subprocess(
      ["sleepnet.main", *stage.argv], log_path, ctx, run.env, progress=trained_for
    )
    trained_for(seconds)
    if code is None:
      ctx.log(f"{name}: stopped at the deadline after {seconds:.0f} s; rerun to resume")
      return INTERRUPTED
    if code != 0:
      error = f"training exited with status {code}; log {log_path}:\n{_tail(log_path)}"
      ctx.log(f"{name}: FAILED ({error})")
      _write_slice(run, ctx, state, status="failed", error=error)
      return FAILED
    ctx.log(f"{name}: trained in {seconds:.0f} s")

  log_path = run.directory / "evaluate.log"
  passes = ",".join(map(str, run.eval_passes))
  ctx.log(f"{name}: evaluating at N = {passes}")
  # Seeds evaluate side by side: sleepnet.tasks.datasets.prepare locks the shared data
  # directory while one of them builds the evaluation set, and the others then read it.
  argv = [
    "sleepnet.evaluate",
    f"--workdir={portable(run.eval_workdir)}",
    f"--sleep_passes={passes}",
  ]
  evaluated_for = clock("eval_s")
  code, seconds = _run_subprocess(argv, log_path, ctx, run.env, progress=evaluated_for)
  evaluated_for(seconds)
  if code is None:
    ctx.log(f"{name}: evaluation stopped at the deadline; rerun to resume")
    return INTERRUPTED
  if code != 0 or not eval_matches(run, _read_json(eval_path), num_test):
    error = f"evaluation exited with status {code}; log {log_path}:\n{_tail(log_path)}"
    ctx.log(f"{name}: FAILED ({error})")
    _write_slice(run, ctx, state, status="failed", error=error)
    return FAILED
  _write_slice(run, ctx, state, status="ok")
  ctx.log(f"{name}: evaluated in {seconds:.0f} s")
  return DONE


def _write_slice(
  run: Run, ctx: Context, state: Mapping[str, Any], *, status: str, error: str = ""
) -> None:
  """Writes results/<study>/slices/<scale>-<variant>-seed<k>.json from the run's workdirs."""
  curve: list[dict[str, float]] = []
  configs = []
  for stage in run.stages:
    curve += read_curve(stage.workdir, stage.step_offset)
    configs.append(_read_json(stage.workdir / "config.json"))
  sessions = state.get("sessions", [])
  devices = []
  for s in sessions:
    d = {k: v for k, v in s.get("device", {}).items() if k != "source"}
    if d and d not in devices:
      devices.append(d)
  eval_report = _read_json(run.eval_workdir / "eval.json") if status == "ok" else None
  source = sessions[-1]["device"].get("source", "") if sessions else ""
  if isinstance(eval_report, Mapping) and isinstance(eval_report.get("device"), Mapping):
    # Once the evaluator records its device in eval.json, that is the first-hand answer; a probed
    # device of the same platform, kind and count is the same device described with fewer fields.
    evaluated = dict(eval_report["device"])
    same = ("platform", "device_kind", "count")
    devices = [
      evaluated,
      *(d for d in devices if any(d.get(k) != evaluated.get(k) for k in same)),
    ]
    source = "eval.json (recorded by the evaluating process)"
  report = {
    "schema": SLICE_SCHEMA,
    "study": run.study,
    "scale": run.scale,
    "variant": run.variant,
    "seed": run.seed,
    "status": status,
    "error": error,
    "eval_passes": list(run.eval_passes),
    "config": configs[-1],
    "stage_configs": configs if len(configs) > 1 else [],
    "commands": state.get("spec"),
    "eval": eval_report,
    "curve": curve,
    "step_time_s": _step_time(curve),
    # CPU seconds per wall second while training (median over log reports; see
    # sleepnet.metrics.Progress): well under 1 for a single-threaded CPU run: it shared the CPU.
    "cpu_per_wall": _cpu_per_wall(curve),
    "wall_s": {
      "train": round(state.get("train_s", 0.0), 1),
      "eval": round(state.get("eval_s", 0.0), 1),
    },
    # False when an earlier invocation was killed before it could write its times down (only
    # possible for invocations from before HEARTBEAT_S): the wall times are then lower bounds.
    "wall_complete": all("heartbeat_s" in s or "eval_s" in s for s in sessions[:-1]),
    # The devices of the invocations that trained or evaluated this run (normally one).
    "devices": devices,
    "device_source": source,
    "git": sessions[-1].get("git") if sessions else ctx.git(),
    "workdir": str(run.directory),
    "written_at": now(),
  }
  write_json(ctx.slices_dir / run.slice_name, report)


def execute_all(runs: Sequence[Run], ctx: Context) -> dict[str, list[str]]:
  """Runs every run (`ctx.jobs` at once); returns {outcome: [run names]}."""
  outcomes: dict[str, list[str]] = {}

  def one(run: Run) -> tuple[str, str]:
    name = f"{run.variant}/seed{run.seed}"
    if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
      return INTERRUPTED, name
    try:
      return execute(run, ctx), name
    except RunConflictError as e:
      ctx.log(f"{run.study}/{run.scale}/{name}: {e}")
      return CONFLICT, name

  if ctx.jobs <= 1:  # in this thread, so that Ctrl-C reaches the running subprocess's wait
    results = map(one, runs)
    for outcome, name in results:
      outcomes.setdefault(outcome, []).append(name)
    return outcomes
  pool = futures.ThreadPoolExecutor(max_workers=ctx.jobs)
  try:
    for outcome, name in pool.map(one, runs):
      outcomes.setdefault(outcome, []).append(name)
  except BaseException:
    # Ctrl-C arrives in this thread only: stop queued runs and kill the running subprocesses.
    pool.shutdown(wait=False, cancel_futures=True)
    ctx.kill_children()
    raise
  pool.shutdown()
  return outcomes
