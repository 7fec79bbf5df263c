"""scripts/reproduce.py: every study end to end at the ci scale (train, evaluate, merge), resuming,
slices, conflicts; the scale table resolves at every scale; the verdict formulas on hand-built
numbers. The verdicts of real results are printed by the script, never asserted here."""

import dataclasses
import importlib.util
import itertools
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from sleepnet import evaluation, run_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "reproduce.py"
sys.path.insert(0, str(ROOT / "scripts"))  # the script's helper modules
import chance  # noqa: E402
import studies  # noqa: E402
import study_report  # noqa: E402
import study_runs  # noqa: E402
import verdicts  # noqa: E402

STUDIES = tuple(studies.STUDIES)
PNG = b"\x89PNG\r\n\x1a\n"
VERDICT_LINE = re.compile(r"\[(\w+)\] \(([abcd])\) (PASS|FAIL|not yet judged)")


def env():
  # The persistent compilation cache of tests/conftest.py (its directory is in the environment).
  return dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
  )


def reproduce(*args, expect=0):
  p = subprocess.run(
    [sys.executable, str(SCRIPT), *args],
    cwd=ROOT,
    env=env(),
    capture_output=True,
    text=True,
    timeout=600,
  )
  out = p.stdout + p.stderr
  assert p.returncode == expect, out[-4000:]
  return out


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
  """Every study at the ci scale, once: {"out", "runs", "logs": {study: output}}."""
  base = tmp_path_factory.mktemp("reproduce")
  out, runs = base / "results", base / "runs"
  logs = {}
  for study in STUDIES:
    logs[study] = reproduce(
      "--study", study, "--scale", "ci", "--out", str(out), "--runs", str(runs), "--jobs", "2"
    )
  return {"out": out, "runs": runs, "logs": logs}


def flags(ci):
  return ["--scale", "ci", "--out", str(ci["out"]), "--runs", str(ci["runs"])]


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_runs_end_to_end_at_ci_scale(ci, study):
  scale = studies.STUDIES[study].scales["ci"]
  d = ci["out"] / study
  log = ci["logs"][study]
  assert f"{len(scale.variants)} runs (done: {len(scale.variants)})" in log
  # Printed verdicts: all four, at every scale of the table, as PASS / FAIL / not yet judged.
  printed = {(m[0], m[1]) for m in VERDICT_LINE.findall(log)}
  scales = studies.scale_names(studies.STUDIES[study], with_ci=True)
  assert printed == {(s, v) for s in scales for v in "abcd"}
  assert re.search(r"\[cpu\] \(a\) not yet judged: no results at the cpu scale", log)

  # Slice files, one per run, named <scale>-<variant>-seed<k>.json.
  names = sorted(p.name for p in (d / "slices").iterdir())
  assert names == sorted(f"ci-{v}-seed0.json" for v in scale.variants)

  # results.json: every number with its config, seed, device, wall time and commit.
  results = json.loads((d / "results.json").read_text())
  assert results["schema"] == 1 and results["study"] == study
  assert list(results["scales"]) == scales
  for other in scales[1:]:
    assert results["scales"][other]["status"] == "no results yet", other
  ci_results = results["scales"]["ci"]
  assert ci_results["status"] == "results" and ci_results["missing"] == []
  # One device, named as eval.json describes a CPU host (the probed description is not repeated).
  host = f"cpu: {evaluation.host_cpu()}, {os.cpu_count()} cores"
  assert ci_results["devices"] == [host] and "eval.json" in ci_results["device_source"]
  assert ci_results["settings"]["num_steps"] == scale.num_steps
  difficulties = ci_results["difficulties"]
  assert difficulties == sorted(difficulties) and len(difficulties) >= 2
  assert [v["id"] for v in ci_results["verdicts"]] == list("abcd")
  for v in ci_results["verdicts"]:
    assert v["status"] in (verdicts.PASS, verdicts.FAIL, verdicts.NOT_JUDGED) and v["line"]
  (chance,) = ci_results["chance"]
  assert set(chance["by_difficulty"]) == {str(x) for x in difficulties}
  assert all(0 <= r["exact_match"] <= 1 for r in chance["by_difficulty"].values())
  assert set(ci_results["variants"]) == set(scale.variants)
  for name, a in ci_results["variants"].items():
    variant = studies.VARIANTS[name]
    assert a["train_passes"] == variant.train_passes and a["seeds"] == [0]
    assert set(a["exact_by_difficulty"]) == {str(x) for x in difficulties}
    for r in a["exact_by_difficulty"].values():
      assert 0 <= r["mean"] <= 1 and r["num_examples"] > 0
    want_n = {1, 4, variant.train_passes} if variant.sweeps_n else {1}
    assert set(a["n_sweep"]) == {str(n) for n in want_n}
    assert a["curve"]["step"] == [2, 4]  # log_every=2, 4 steps: step-matched across variants
    assert len(a["curve"]["exact_match"]["mean"]) == len(a["curve"]["accuracy"]["mean"]) == 2
    assert a["wall_s"]["train"]["mean"] > 0 and a["wall_s"]["eval"]["mean"] > 0
    assert a["cpu_per_wall"] > 0  # logged by the trainer, carried through slice and merge
  assert len(ci_results["runs"]) == len(scale.variants)
  for run in ci_results["runs"]:
    assert run["status"] == "ok" and run["seed"] == 0
    steps = [c["num_steps"] for c in run["stage_configs"]] or [run["config"]["num_steps"]]
    assert run["config"]["seed"] == 0 and sum(steps) == scale.num_steps
    assert run["config"]["task"]["window"] == scale.task["window"]
    assert run["eval"]["step"] == steps[-1]  # the last stage's own step count
    assert run["git"]["commit"] and run["devices"][0]["platform"] == "cpu"
    assert run["commands"]["train"][0][0] == "sleepnet.main"
    assert run["commands"]["evaluate"][0] == "sleepnet.evaluate"
  if study == "depo":  # trained on two questions per example, evaluated on one
    run = ci_results["runs"][0]
    # After a curriculum: the first 2 steps asked one-hop questions only, from scratch; the
    # last 2 the scale's k in 1..2, from the curriculum's parameters.
    first, main = run["stage_configs"]
    assert (first["task"]["k_max"], first["num_steps"], first["init_from"]) == (1, 2, "")
    assert (main["task"]["k_max"], main["num_steps"]) == (2, 2)
    assert main["init_from"].endswith(f"{run['variant']}/seed0/curriculum")
    assert run["config"] == main
    assert (run["config"]["task"]["num_queries"], run["config"]["task"]["test_num_queries"]) == (
      2,
      1,
    )
    assert (
      sum(chance["by_difficulty"][str(d)]["num_examples"] for d in difficulties)
      == (run["eval"]["results"]["1"]["num_examples"])
    )
  if study.startswith("gsm"):
    assert [r["ops"] for r in ci_results["paper_comparison"]] == [2, 6]
    assert "paper 2-op (pretrained init, 4 sleep loops): 60% -> 91%" in log

  # Figures and the markdown table.
  for what in ("exact_vs_difficulty", "learning_curves", "n_sweep"):
    png = d / f"ci_{what}.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
  readme = (d / "README.md").read_text()
  assert "## Scale `ci`" in readme and "| variant | trained N |" in readme
  assert "**No results yet at this scale**" in readme  # cpu and gpu
  budget = next(line for line in readme.splitlines() if line.startswith("Budget"))
  assert ("learned in-window position embeddings" in budget) == (
    scale.position_embedding == "window"
  )
  curriculum = "; curriculum (every variant): the first 2 steps with k_max=1, then the task above"
  assert (curriculum in budget) == (study == "depo") and budget.endswith(".")
  index = (ci["out"] / "README.md").read_text()
  assert f"[{study}]({study}/README.md) | ci | {host} |" in index


def test_a_second_invocation_skips_finished_runs(ci):
  before = {p: p.stat().st_mtime_ns for p in ci["runs"].rglob("train.log")}
  log = reproduce("--study", "depo", *flags(ci))
  assert "2 runs (skipped: 2)" in log and "training (" not in log
  assert {p: p.stat().st_mtime_ns for p in ci["runs"].rglob("train.log")} == before


def test_a_run_recorded_in_a_slice_is_not_retrained_elsewhere(ci, tmp_path):
  # Another machine (an empty runs directory) with the committed slices: nothing trains again.
  elsewhere = ["--scale", "ci", "--out", str(ci["out"]), "--runs", str(tmp_path / "runs")]
  log = reproduce("--study", "depo", *elsewhere)
  assert "2 runs (recorded: 2)" in log and "training (" not in log and "merged into" in log
  assert not (tmp_path / "runs").exists()
  # A slice made by other commands answers nothing: its run trains, and its slice is rewritten.
  path = ci["out"] / "depo" / "slices" / "ci-hybrid-seed0.json"
  report = json.loads(path.read_text())
  commands = report["commands"]
  report["commands"] = dict(commands, evaluate=[*commands["evaluate"][:-1], "--sleep_passes=9"])
  path.write_text(json.dumps(report))
  log = reproduce("--study", "depo", *elsewhere, "--only", "hybrid")
  assert "1 runs (done: 1)" in log and "training (" in log
  assert json.loads(path.read_text())["commands"] == commands


def test_git_state_ignores_the_scripts_own_results(tmp_path):
  def git(*args):
    subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

  git("init", "-q")
  (tmp_path / "code.py").write_text("x = 1\n")
  git("add", ".")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  assert study_runs.git_info(tmp_path)["dirty"] is False
  (tmp_path / "results" / "rule110" / "slices").mkdir(parents=True)
  (tmp_path / "results" / "rule110" / "slices" / "cpu-hybrid-seed0.json").write_text("{}")
  assert study_runs.git_info(tmp_path)["dirty"] is False  # a slice written by an earlier run
  (tmp_path / "code.py").write_text("x = 2\n")
  info = study_runs.git_info(tmp_path)
  assert info["dirty"] is True and len(info["commit"]) == 40 and info["changed"] == ["code.py"]


def test_a_run_without_its_evaluation_is_only_evaluated(ci):
  run = ci["runs"] / "rule110" / "ci" / "hybrid" / "seed0"
  (run / "eval.json").unlink()
  train_log = (run / "train.log").read_text()
  log = reproduce("--study", "rule110", *flags(ci), "--only", "hybrid", "--seeds", "0")
  assert "1 runs (done: 1)" in log and "evaluating at N = 1,4" in log and "training (" not in log
  assert (run / "train.log").read_text() == train_log  # the trainer was not launched again
  assert json.loads((run / "eval.json").read_text())["sleep_passes"] == [1, 4]
  assert "--merge" in log and "merged into" not in log  # a slice: combined only by --merge
  state = json.loads((run / "reproduce.json").read_text())
  assert len(state["sessions"]) == 2 and state["sessions"][1]["train_s"] == 0


def test_a_running_subprocess_writes_its_time_down_as_it_goes(monkeypatch, tmp_path):
  # A study killed from outside (the session ends) must still have recorded where its time went.
  monkeypatch.setattr(study_runs, "HEARTBEAT_S", 0.2)
  ctx = study_runs.Context(runs_dir=tmp_path, slices_dir=tmp_path / "slices")
  ticks = []
  argv = ["timeit", "-n1", "-r1", "import time; time.sleep(1.5)"]
  code, seconds = study_runs._run_subprocess(argv, tmp_path / "x.log", ctx, {}, ticks.append)
  assert code == 0 and seconds >= 1.5
  assert len(ticks) >= 3 and ticks == sorted(ticks) and ticks[-1] <= seconds


def test_wall_times_of_a_run_killed_before_it_could_record_them_are_lower_bounds(ci):
  run = ci["runs"] / "gsm_symbolic" / "ci" / "hybrid" / "seed0"
  state_path = run / "reproduce.json"
  slice_path = ci["out"] / "gsm_symbolic" / "slices" / "ci-hybrid-seed0.json"
  state = json.loads(state_path.read_text())
  assert all("heartbeat_s" in s for s in state["sessions"])
  assert json.loads(slice_path.read_text())["wall_complete"] is True
  # An invocation from before the heartbeat, killed while training: no time written down.
  legacy = {k: v for k, v in state["sessions"][0].items() if k not in ("heartbeat_s", "eval_s")}
  state["sessions"].insert(0, dict(legacy, train_s=0.0))
  state_path.write_text(json.dumps(state))
  reproduce("--study", "gsm_symbolic", *flags(ci), "--only", "hybrid", "--seeds", "0")
  report = json.loads(slice_path.read_text())
  assert report["wall_complete"] is False
  # The page names what differed from the commit, when the slice recorded it.
  report["git"] = dict(report["git"], dirty=True, changed=["sleepnet/model.py"])
  slice_path.write_text(json.dumps(report))
  reproduce("--study", "gsm_symbolic", "--merge", "--out", str(ci["out"]))
  merged = json.loads((ci["out"] / "gsm_symbolic" / "results.json").read_text())
  assert merged["scales"]["ci"]["variants"]["hybrid"]["wall_s"]["complete"] is False
  page = (ci["out"] / "gsm_symbolic" / "README.md").read_text()
  assert re.search(r"^\| hybrid, N = 1 .*\| ≥ \d+ \|$", page, re.M), page
  assert "Train wall ≥: a lower bound" in page
  assert "(uncommitted: sleepnet/model.py)" in page


def test_merge_alone_rewrites_results_from_slices(ci):
  path = ci["out"] / "gsm_symbolic" / "results.json"
  path.unlink()
  log = reproduce("--study", "gsm_symbolic", "--merge", "--out", str(ci["out"]))
  assert "merged into" in log and path.exists()
  merged = json.loads(path.read_text())["scales"]["ci"]
  # Slices made in another runs directory (here a test's scratch one) are the same experiment.
  assert merged["status"] == "results" and merged["outdated"] == []
  runs = [s for s in merged["runs"] if s["status"] == "ok"]
  total = sum(s["wall_s"]["train"] + s["wall_s"]["eval"] for s in runs) / 3600
  assert merged["process_hours"]["total"] == pytest.approx(total) and total > 0


def test_a_slice_made_by_older_settings_is_left_out_of_the_merge(ci, tmp_path):
  import shutil

  shutil.copytree(ci["out"] / "rule110" / "slices", tmp_path / "rule110" / "slices")
  path = tmp_path / "rule110" / "slices" / "ci-hybrid-seed0.json"
  report = json.loads(path.read_text())
  (argv,) = report["commands"]["train"]
  # The same run as trained before its scale's step count changed.
  report["commands"]["train"] = [
    [a if not a.startswith("--config.num_steps=") else "--config.num_steps=7" for a in argv]
  ]
  path.write_text(json.dumps(report))
  merged = study_report.merge("rule110", tmp_path, figures=False)["scales"]["ci"]
  assert merged["outdated"] == ["hybrid/seed0 (ci-hybrid-seed0.json)"]
  assert "hybrid/seed0" in merged["missing"] and "hybrid" not in merged.get("variants", {})
  page = (tmp_path / "rule110" / "README.md").read_text()
  assert "Left out: slices made by other commands" in page and "hybrid/seed0" in page
  # Once every slice is outdated the scale has no results, and no figure of the old ones stays.
  study_report.merge("rule110", tmp_path, figures=True)
  assert (tmp_path / "rule110" / "ci_exact_vs_difficulty.png").exists()
  for other in (tmp_path / "rule110" / "slices").glob("*.json"):
    data = json.loads(other.read_text())
    data["commands"]["evaluate"] = [*data["commands"]["evaluate"][:-1], "--sleep_passes=9"]
    other.write_text(json.dumps(data))
  merged = study_report.merge("rule110", tmp_path, figures=True)["scales"]["ci"]
  assert merged["status"] == "no results yet" and len(merged["outdated"]) == len(merged["missing"])
  assert not list((tmp_path / "rule110").glob("ci_*.png"))


def test_superseded_slices_are_left_out_and_listed(ci, tmp_path):
  import shutil

  shutil.copytree(ci["out"] / "rule110" / "slices", tmp_path / "rule110" / "slices")
  superseded = tmp_path / "rule110" / study_report.SUPERSEDED
  superseded.mkdir()
  shutil.move(tmp_path / "rule110" / "slices" / "ci-sleep4-seed0.json", superseded)
  merged = study_report.merge("rule110", tmp_path, figures=False)["scales"]["ci"]
  assert merged["superseded"] == ["sleep4/seed0"]
  assert "sleep4/seed0" in merged["missing"] and "sleep4" not in merged.get("variants", {})
  page = (tmp_path / "rule110" / "README.md").read_text()
  assert "Superseded, kept in [`superseded/`](superseded/README.md)" in page
  assert "left out of every number here: sleep4/seed0." in page


def test_readme_summary_states_every_verdict_by_status(ci, tmp_path):
  # The ci results of rule110, presented as if they were a cpu scale (verdicts as they came out).
  results = json.loads((ci["out"] / "rule110" / "results.json").read_text())
  results["scales"] = {"cpu": results["scales"]["ci"]}
  drawn = results["scales"]["cpu"]["figures"]
  assert len(drawn) == 3, drawn
  results["scales"]["cpu"]["figures"] = [f.replace("ci_", "cpu_", 1) for f in drawn]
  (tmp_path / "rule110").mkdir()
  (tmp_path / "rule110" / "results.json").write_text(json.dumps(results))
  (tmp_path / "rule110" / "README.md").write_text("page")
  lines = study_report.summary_lines(tmp_path)
  assert len(lines) == 4
  # The fourth line links each figure of the scale, by the path the merge wrote it to.
  assert lines[3].startswith("- **Figures**: rule110 [cpu]: ")
  for f in results["scales"]["cpu"]["figures"]:
    assert f"](results/rule110/{f})" in lines[3]
  assert "[exact match vs t](results/rule110/cpu_exact_vs_difficulty.png)" in lines[3]
  for v in results["scales"]["cpu"]["verdicts"]:
    line = {"PASS": lines[0], "FAIL": lines[1], "not yet judged": lines[2]}[v["status"]]
    if v["status"] == "not yet judged":
      assert "rule110 [cpu] (some verdicts)" in line, (v, line)
      continue
    # Grouped by claim: the claim's own clause names the study and scale where it came out so.
    head = f"({v['id']}) {verdicts.TITLES[v['id']]}: "
    clause = line[line.index(head) + len(head) :].split("; (")[0]
    assert "rule110 [cpu" in clause, (v, line)
  assert "Devices: cpu scale on " in lines[2]
  clear = [r for r in results["scales"]["cpu"]["gains"] if r["clear"]]
  assert ("Clear gains of sleep N = 4" in lines[2]) == bool(clear)
  for other in ("rule110 [gpu]", "depo [cpu]", "depo [gpu]", "gsm_realistic [gpu]"):
    assert other in lines[2]
  assert "[rule110](results/rule110/README.md)" in lines[2]
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{study_report.SUMMARY_BEGIN}\nold\n{study_report.SUMMARY_END}\nrest\n")
  assert study_report.update_readme_summary(readme, tmp_path)
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
  assert "\n".join(lines) in text
  # The repository's README has the block, and it states what results/ holds now.
  top = (ROOT / "README.md").read_text()
  assert "\n".join(study_report.summary_lines(ROOT / "results")) in top


def test_a_claim_failing_at_one_scale_says_where_it_passes(ci, tmp_path):
  # The ci results of rule110 as two scales: every verdict FAIL at cpu; at cpu_long (a) passes.
  results = json.loads((ci["out"] / "rule110" / "results.json").read_text())
  cpu = results["scales"]["ci"]
  cpu["verdicts"] = [dict(v, status=verdicts.FAIL) for v in cpu["verdicts"]]
  long = json.loads(json.dumps(cpu))
  long["verdicts"][0]["status"] = verdicts.PASS
  results["scales"] = {"cpu": cpu, "cpu_long": long}
  (tmp_path / "rule110").mkdir()
  (tmp_path / "rule110" / "results.json").write_text(json.dumps(results))
  study_report.write_index(tmp_path)
  text = (tmp_path / "README.md").read_text()
  failing = text.split("## Where a claim does not reproduce")[1].split("\n## ")[0]
  lines = [x for x in failing.splitlines() if x.startswith("- rule110")]
  assert len(lines) == 7, lines  # four at cpu, three at cpu_long
  for line in lines:
    passes_elsewhere = line.startswith("- rule110 [cpu], claim (a)")
    assert line.endswith(" It passes at `cpu_long` (above).") == passes_elsewhere, line


def test_readme_summary_marks_studies_whose_verdicts_compare_no_skill(tmp_path):
  def merged(hybrid_learned):
    learned = {"excess": 0.1, "tol": 0.01, "learned": hybrid_learned}
    return {
      "status": "results",
      "devices": ["cpu: test"],
      "verdicts": [{"id": "a", "status": "FAIL"}, {"id": "c", "status": "PASS"}],
      "variants": {"transformer": {"group": "main"}, "hybrid": {"group": "main"}},
      "above_chance": {"transformer": dict(learned, learned=False), "hybrid": learned},
    }

  baseline_only = merged(False)  # full attention learned, the hybrid (compared) did not
  baseline_only["variants"]["transformer_full"] = {"group": "main"}
  baseline_only["above_chance"]["transformer_full"] = baseline_only["above_chance"]["hybrid"] | {
    "learned": True
  }
  studies_in = (
    ("rule110", merged(False)),
    ("depo", merged(True)),
    ("gsm_symbolic", None),
    ("gsm_realistic", baseline_only),
  )
  for name, m in studies_in:
    if m is None:
      continue
    if name == "depo":  # learned names above chance, but followed no edge
      m["above_no_hop"] = {"hybrid": {"excess": 0.0, "tol": 0.01, "learned": False}}
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps({"scales": {"cpu": m}}))
  lines = study_report.summary_lines(tmp_path)
  expected = "rule110 [cpu]†, depo [cpu]‡, gsm_realistic [cpu]§."
  assert "(a) " + verdicts.TITLES["a"] + ": " + expected == lines[1].split(": ", 1)[1]
  assert "† rule110 [cpu]: no model learned the task" in lines[2]
  assert "‡ depo [cpu]: no model followed the edges" in lines[2]
  assert "§ gsm_realistic [cpu]: the hybrid and sleep models learned nothing" in lines[2]
  assert (
    "gsm_symbolic [cpu]" in lines[2]
    and "Devices: cpu scale on cpu: test (rule110, depo, gsm_realistic)." in lines[2]
  )


def test_a_run_directory_of_another_run_is_refused(ci):
  state_path = ci["runs"] / "gsm_realistic" / "ci" / "transformer" / "seed0" / "reproduce.json"
  state = json.loads(state_path.read_text())
  state["spec"]["evaluate"][-1] = "--sleep_passes=9"
  state_path.write_text(json.dumps(state))
  log = reproduce("--study", "gsm_realistic", *flags(ci), "--only", "transformer", expect=1)
  assert "holds a run launched with other commands" in log


def test_deadline_stops_and_reports_resumable(ci):
  log = reproduce(
    "--study", "rule110", *flags(ci), "--only", "deep4", "--deadline_s", "0", expect=3
  )
  assert "rerun the same command to resume" in log
  assert not (ci["out"] / "rule110" / "slices" / "ci-deep4-seed0.json").exists()


def test_ci_results_never_default_to_results_dir():
  spec = importlib.util.spec_from_file_location("reproduce_cli", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert (
    module.parse_args(["--study", "rule110", "--scale", "ci"]).out == ROOT / "runs" / "results-ci"
  )
  assert module.parse_args(["--study", "rule110", "--scale", "cpu"]).out == ROOT / "results"


# --------------------------------------------------------------------------------------------------
# The scale table


def load_experiment(name):
  spec = importlib.util.spec_from_file_location(f"exp_{name}", ROOT / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_of(study, scale_name, variant, seed, stage):
  """The config a stage's command builds, from the same (key, value) overrides, in process."""
  study_ = studies.STUDIES[study]
  scale = study_.scales[scale_name]
  arg = stage.argv[0].partition(":")[2]
  config = load_experiment(study_.experiment).get_config(arg)
  pairs = studies.overrides(
    study_,
    scale,
    studies.VARIANTS[variant],
    seed,
    num_steps=stage.num_steps,
    data_dir=ROOT,
    curriculum=stage.curriculum,
  )
  for key, value in pairs:
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.mark.parametrize(
  ("study", "scale"),
  [(st, sc) for st in STUDIES for sc in studies.scale_names(studies.STUDIES[st], with_ci=True)],
)
def test_every_command_of_the_scale_table_resolves(study, scale, tmp_path):
  s = studies.STUDIES[study].scales[scale]
  runs = studies.runs_of(study, scale, s.variants, s.seeds[:1], tmp_path)
  for run in runs:
    for stage in run.stages:
      config = config_of(study, scale, run.variant, run.seed, stage)
      model, task = run_config.resolve(config)  # raises ConfigError on any inconsistency
      variant = studies.VARIANTS[run.variant]
      assert config.num_steps == stage.num_steps and config.batch_size == s.batch_size
      assert model.d_model == s.d_model
      assert model.position_embedding == s.position_embedding
      # Passed only when set, so that the commands (and slices) of scales without it are
      # those they were before the option existed.
      passed = any("position_embedding" in a for a in stage.argv)
      assert passed == (s.position_embedding != "none")
      if variant.model == "transformer_full":
        assert model.window is None
      else:
        assert model.window == task.window
      if variant.two_stage:
        assert config.stage in (1, 2)
      else:
        assert model.sleep_passes == variant.train_passes
      for k, v in variant.model_overrides:
        assert getattr(model, k) == v
      for k, v in variant.config_overrides:
        assert tuple(config[k]) == v if isinstance(v, tuple) else config[k] == v
      assert task.show_steps_before_eviction if variant.show_steps else True
      assert f"--workdir={stage.workdir}" in stage.argv
      # Rerunning a committed run trains the task it recorded: a changed experiment default
      # (not in the commands) must not move it. Fields newer than the slice are at their default.
      committed = studies.ROOT / "results" / study / "slices" / f"{scale}-{run.variant}-seed0.json"
      if committed.is_file() and len(run.stages) == 1:
        recorded = json.loads(committed.read_text())["config"]["task"]
        fields = dataclasses.asdict(task)
        defaults = dataclasses.asdict(type(task)())
        for k, v in fields.items():
          assert v == recorded.get(k, defaults[k]), (study, scale, run.variant, k)
    assert run.directory == tmp_path / study / scale / run.variant / f"seed{run.seed}"
    assert ("smoke" in run.stages[0].argv[0].partition(":")[2]) == (scale == "ci")


def test_a_curriculum_trains_every_variant_on_the_easier_task_first(tmp_path, monkeypatch):
  depo = studies.STUDIES["depo"]
  scale = dataclasses.replace(
    depo.scales["ci"], num_steps=10, curriculum=dict(k_max=1, num_queries=1), curriculum_steps=3
  )
  monkeypatch.setitem(
    studies.STUDIES, "depo", dataclasses.replace(depo, scales={**depo.scales, "ci": scale})
  )
  hybrid, two_stage = studies.runs_of("depo", "ci", ["hybrid", "sleep4_2stage"], [0], tmp_path)
  # Every variant trains num_steps in all, on one step axis (the learning curves).
  for run, names in (
    (hybrid, ["curriculum", "main"]),
    (two_stage, ["curriculum", "stage1", "stage2"]),
  ):
    assert [s.workdir.name for s in run.stages] == names
    assert sum(s.num_steps for s in run.stages) == 10
    assert [s.step_offset for s in run.stages] == [
      0,
      *itertools.accumulate(s.num_steps for s in run.stages[:-1]),
    ]
    assert [s.curriculum for s in run.stages] == [True] + [False] * (len(names) - 1)
  assert [s.num_steps for s in two_stage.stages] == [3, 2, 5]  # two_stage_fraction 0.5
  for run in (hybrid, two_stage):
    configs = [config_of("depo", "ci", run.variant, 0, s) for s in run.stages]
    tasks = [run_config.resolve(c)[1] for c in configs]
    assert (tasks[0].k_max, tasks[0].num_queries) == (1, 1)  # the curriculum's overrides
    assert all((t.k_max, t.num_queries) == (2, 2) for t in tasks[1:])  # then the scale's task
    assert tasks[0].window == tasks[-1].window and tasks[0].seq_len == tasks[-1].seq_len
    assert configs[0].init_from == ""
    for previous, config in zip(run.stages, configs[1:], strict=False):
      assert config.init_from == str(previous.workdir)  # each stage continues the one before
  # Two-stage: N = 1 through the curriculum and stage 1, then N = 4.
  assert [
    c.stage for c in (config_of("depo", "ci", "sleep4_2stage", 0, s) for s in two_stage.stages)
  ] == [1, 1, 2]
  # The N = 1 stage must keep steps of its own after the curriculum.
  monkeypatch.setitem(
    studies.STUDIES,
    "depo",
    dataclasses.replace(
      depo, scales={**depo.scales, "ci": dataclasses.replace(scale, curriculum_steps=5)}
    ),
  )
  with pytest.raises(ValueError, match="curriculum_steps=5 must be below the N = 1 stage's 5"):
    studies.runs_of("depo", "ci", ["sleep4_2stage"], [0], tmp_path)


@pytest.mark.parametrize(
  ("change", "message"),
  [
    (dict(curriculum={}, curriculum_steps=2), "go together"),
    (dict(curriculum=dict(k_max=1), curriculum_steps=0), "go together"),
    (dict(curriculum=dict(window=8, k_max=1), curriculum_steps=2), r"may not change \['window'\]"),
    (dict(curriculum=dict(k_max=1), curriculum_steps=4), "leaves none of num_steps=4"),
  ],
)
def test_a_bad_curriculum_is_refused_by_name(change, message):
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(studies.STUDIES["depo"].scales["ci"], **change)


def test_the_scale_table_meets_the_study_design():
  for name, study in studies.STUDIES.items():
    assert set(studies.SCALES) <= set(study.scales) <= set(studies.SCALE_ORDER), name
    for scale_name in ("cpu", "gpu"):
      s = study.scales[scale_name]
      assert set(studies.MAIN) <= set(s.variants), (name, scale_name)
      assert s.eval_passes == (1, 2, 4, 8) and not s.smoke
    gpu = study.scales["gpu"]
    assert gpu.num_steps >= 20_000 and len(gpu.seeds) >= 3 and "sleep8" in gpu.variants
    assert gpu.d_model > study.scales["cpu"].d_model
    assert "sleep4_2stage" in gpu.variants and gpu.two_stage_fraction == 0.5
  r = studies.STUDIES["rule110"].scales["gpu"]
  assert 32 <= r.task["width"] <= 64 and 16 <= r.task["t_max"] <= 32
  for v in ("sleep4_tokens", "sleep4_fresh", "hybrid_show_t", "sleep4_show_t"):
    assert v in r.variants and v in studies.STUDIES["rule110"].scales["cpu"].variants
  assert studies.STUDIES["depo"].scales["gpu"].difficulties == (1, 2, 4, 8, 16)
  assert studies.STUDIES["depo"].scales["gpu"].task["k_max"] == 16
  for gsm in ("gsm_symbolic", "gsm_realistic"):
    g = studies.STUDIES[gsm].scales["gpu"].task
    assert g["ops_min"] <= 2 and g["ops_max"] >= 6  # the paper's 2-op and 6-op points
    assert g["seq_len"] // g["window"] >= 3  # the problem spans several windows


@pytest.mark.parametrize("name, factor", [("rule110", 3), ("gsm_symbolic", 2)])
def test_cpu_long_is_the_cpu_scale_trained_longer_for_the_verdict_variants(name, factor):
  study = studies.STUDIES[name]
  cpu, long = study.scales["cpu"], study.scales["cpu_long"]
  assert studies.scale_names(study) == ["cpu", "cpu_long", "gpu"]
  assert long.num_steps == factor * cpu.num_steps
  # The same models, task, test set, seeds and optimizer: only the budget and the variants differ.
  differ = {"variants", "num_steps", "checkpoint_every", "note", "tried", "probes"}
  for field in dataclasses.fields(studies.Scale):
    if field.name not in differ:
      assert getattr(long, field.name) == getattr(cpu, field.name), field.name
  needed = {
    v for vid in verdicts.TITLES for v in verdicts.NEEDS[vid] + verdicts.ALSO_USES.get(vid, ())
  }
  assert set(long.variants) <= set(cpu.variants)
  assert long.variants[: len(needed)] == verdicts.VARIANTS_BY_NEED  # --todo's order first
  for v in long.variants[len(needed) :]:  # then ablations of the N = 4 sleep model only
    assert studies.VARIANTS[v].group == "ablation", v
  assert long.num_steps % long.checkpoint_every == 0
  # Its commands are the cpu scale's with the step count (and checkpoint spacing) changed.
  (a,) = studies.runs_of(name, "cpu", ["sleep4"], [0], pathlib.Path("runs"))
  (b,) = studies.runs_of(name, "cpu_long", ["sleep4"], [0], pathlib.Path("runs"))
  changed = {x.replace("/cpu/", "/SCALE/") for x in a.stages[0].argv} ^ {
    x.replace("/cpu_long/", "/SCALE/") for x in b.stages[0].argv
  }
  assert {x.split("=")[0] for x in changed} == {"--config.num_steps", "--config.checkpoint_every"}
  # The index's description of the scale names it and its factor.
  assert f"{name} {factor}x" in study_report._cpu_long_factors()


def test_a_study_without_cpu_long_refuses_it_by_name():
  assert "cpu_long" not in studies.STUDIES["depo"].scales
  with pytest.raises(ValueError, match="unknown scale 'cpu_long'; valid scales: ci, cpu, gpu"):
    studies.get_scale(studies.STUDIES["depo"], "cpu_long")


def test_every_probe_names_a_committed_script_that_reruns_it():
  probes = [
    (name, scale_name, text)
    for name, study in studies.STUDIES.items()
    for scale_name, scale in study.scales.items()
    for text in scale.probes
  ]
  assert probes, "the table records no probe"
  for name, scale_name, text in probes:
    scripts = re.findall(r"scripts/[\w.-]+\.(?:sh|py)", text)
    assert scripts, (name, scale_name, text)
    for script in scripts:
      assert (studies.ROOT / script).is_file(), (name, scale_name, script)


def test_the_index_lists_earlier_designs_and_probes_of_a_scale():
  merged = {
    "outdated": ["hybrid-seed0"],
    "settings": {"tried": ["old design"], "probes": ["a probe"]},
  }
  assert study_report._earlier_lines(merged) == [
    "  - left out (made by older settings): hybrid-seed0",
    "  - tried before: old design",
    "  - probe: a probe",
  ]
  assert study_report._earlier_lines({"settings": None}) == []


# --------------------------------------------------------------------------------------------------
# Verdict formulas on hand-built numbers


def by_status(results):
  return {v.id: v.status for v in results}


def test_verdicts_on_hand_built_numbers():
  ds = [1, 2, 3, 4]
  n = {d: 100 for d in ds}
  chance = {d: 0.0 for d in ds}
  acc = {
    "transformer": {d: [0.0, 0.005] for d in ds},
    "hybrid": {1: [1.0, 1.0], 2: [0.8, 0.8], 3: [0.1, 0.1], 4: [0.0, 0.0]},
    "sleep2": {1: [1.0, 1.0], 2: [0.9, 0.9], 3: [0.3, 0.3], 4: [0.1, 0.1]},
    "sleep4": {1: [1.0, 1.0], 2: [1.0, 1.0], 3: [0.5, 0.5], 4: [0.3, 0.3]},
  }
  got = verdicts.judge(acc, ds, n, chance)
  assert by_status(got) == dict.fromkeys("abcd", verdicts.PASS)
  a, b, c, d = got
  assert a.numbers["deeper_half"] == [3, 4] and a.numbers["gain"] == pytest.approx(0.35)
  assert [p["to"] for p in b.numbers["pairs"]] == ["sleep2", "sleep4"]
  assert c.numbers["tol"] == pytest.approx(3 / 800)  # chance 0: only the 3/n allowance
  assert d.numbers["slope"] == pytest.approx(0.11)  # gains 0, .2, .4, .3 by rank 0..3
  assert d.numbers["slope"] > 2 * d.numbers["slope_se"]
  assert "(a) PASS" in a.line and "+0.350" in a.line

  # Sleep worse than N = 1 beyond the spread; a transformer far above chance; a shrinking gain.
  acc["hybrid"] = {1: [1.0, 1.0], 2: [0.9, 0.9], 3: [0.6, 0.6], 4: [0.4, 0.4]}
  acc["sleep4"] = {1: [1.0, 1.0], 2: [0.8, 0.8], 3: [0.4, 0.4], 4: [0.1, 0.1]}
  acc["sleep2"] = acc["hybrid"]
  acc["transformer"] = {d: [0.5, 0.5] for d in ds}
  assert by_status(verdicts.judge(acc, ds, n, chance)) == dict.fromkeys("abcd", verdicts.FAIL)

  # Missing variants: not yet judged, never PASS.
  got = by_status(verdicts.judge({"hybrid": acc["hybrid"]}, ds, n, chance))
  assert got == dict.fromkeys("abcd", verdicts.NOT_JUDGED)


def test_a_scale_where_no_model_beats_chance_is_flagged():
  ds = [1, 2]
  n = {d: 400 for d in ds}
  chance = {1: 0.2, 2: 0.5}
  at_chance = {1: [0.2, 0.21], 2: [0.49, 0.5]}
  acc = {"transformer": at_chance, "hybrid": at_chance, "sleep4": at_chance}
  above = verdicts.above_chance(acc, ds, n, chance)
  assert set(above) == {"transformer", "hybrid", "sleep4"}
  assert not any(r["learned"] for r in above.values())
  labels = {v: {"label": v} for v in acc}
  lines = study_report.chance_lines({"above_chance": above, "variants": labels})
  assert len(lines) == 2 and "No model learned this task" in lines[1]
  assert len(study_report.chance_lines({"above_chance": {}, "variants": labels})) == 0
  # An ablation above chance is listed as learned, but the warning is about the main variants.
  ablation = dict(acc, sleep4_2stage={1: [0.5, 0.5], 2: [0.8, 0.8]})
  above = verdicts.above_chance(ablation, ds, n, chance)
  with_ablation = labels | {"sleep4_2stage": {"label": "2stage", "group": "ablation"}}
  lines = study_report.chance_lines({"above_chance": above, "variants": with_ablation})
  assert len(lines) == 2 and "2stage +0.300 (learned)" in lines[0]
  # One model clearly above chance (0.3 over 800 answers): learned, and no warning.
  acc["sleep4"] = {1: [0.5, 0.5], 2: [0.8, 0.8]}
  above = verdicts.above_chance(acc, ds, n, chance)
  assert above["sleep4"]["learned"] and above["sleep4"]["excess"] == pytest.approx(0.3)
  assert not above["hybrid"]["learned"]
  lines = study_report.chance_lines({"above_chance": above, "variants": labels})
  assert len(lines) == 1 and "sleep4 +0.300 (learned)" in lines[0]
  # A variant missing a difficulty is left out rather than judged on part of the range.
  assert "hybrid" not in verdicts.above_chance(dict(acc, hybrid={1: [0.2]}), ds, n, chance)


def test_a_scale_where_only_baselines_beat_chance_flags_the_sleep_verdicts():
  ds = [1, 2]
  n = {d: 400 for d in ds}
  chance = {1: 0.2, 2: 0.5}
  at_chance = {1: [0.2, 0.21], 2: [0.49, 0.5]}
  clearly = {1: [0.5, 0.5], 2: [0.8, 0.8]}
  acc = {v: at_chance for v in ("transformer", "hybrid", "sleep2", "sleep4")}
  acc |= {"transformer_full": clearly, "sleep4_2stage": clearly}
  labels = {v: {"label": v} for v in acc} | {"sleep4_2stage": {"label": "2s", "group": "ablation"}}
  merged = {"above_chance": verdicts.above_chance(acc, ds, n, chance), "variants": labels}
  # Full attention learned, the compared models did not; the ablation is not a main model.
  assert study_report.compared_unlearned(merged) == ["transformer_full"]
  assert not study_report.nothing_learned(merged)
  lines = study_report.chance_lines(merged)
  assert len(lines) == 2 and "Neither the N = 1 hybrid nor the sleep models" in lines[1]
  assert "transformer_full did" in lines[1] and "(b) holds trivially" in lines[1]
  # One compared model above chance: no warning.
  acc["sleep2"] = clearly
  merged["above_chance"] = verdicts.above_chance(acc, ds, n, chance)
  assert study_report.compared_unlearned(merged) == []
  assert len(study_report.chance_lines(merged)) == 1
  # Nothing learned at all: the stronger warning only.
  acc = {v: at_chance for v in ("transformer", "transformer_full", "hybrid", "sleep4")}
  merged["above_chance"] = verdicts.above_chance(acc, ds, n, chance)
  assert study_report.nothing_learned(merged) and not study_report.compared_unlearned(merged)


def test_models_that_learned_only_the_easier_difficulties_flag_the_deep_verdicts(tmp_path):
  ds = [1, 2, 3, 4]
  n = {d: 400 for d in ds}
  chance = dict.fromkeys(ds, 0.1)
  easy_only = {1: [0.9, 0.9], 2: [0.6, 0.6], 3: [0.1, 0.11], 4: [0.1, 0.09]}
  acc = {v: easy_only for v in ("transformer_full", "hybrid", "sleep2", "sleep4")}
  acc["transformer"] = {d: [0.1, 0.1] for d in ds}
  labels = {v: {"label": f"<{v}>"} for v in acc}
  assert verdicts.deeper_half(ds) == [3, 4] and verdicts.deeper_half([1, 2, 3]) == [2, 3]

  def merge(acc):
    deep = verdicts.deeper_half(ds)
    return {
      "above_chance": verdicts.above_chance(acc, ds, n, chance),
      "above_chance_deep": {
        "difficulties": deep,
        "models": verdicts.above_chance(acc, deep, n, chance),
      },
      "variants": labels,
    }

  merged = merge(acc)
  # Learned over the whole range, so neither of the stronger warnings applies ...
  assert not study_report.nothing_learned(merged) and not study_report.compared_unlearned(merged)
  # ... but at chance on the half (a) judges.
  assert study_report.deep_unlearned(merged)
  lines = study_report.chance_lines(merged)
  assert len(lines) == 2 and "at chance on the deeper half [3, 4]" in lines[1]
  assert "<hybrid> +0.000, <sleep2> +0.000, <sleep4> +0.000" in lines[1]
  # The study is marked where the README lists it.
  merged |= {
    "status": "results",
    "devices": ["cpu: test"],
    "verdicts": [{"id": "a", "status": "FAIL"}],
  }
  (tmp_path / "gsm_symbolic").mkdir()
  (tmp_path / "gsm_symbolic" / "results.json").write_text(json.dumps({"scales": {"cpu": merged}}))
  summary = study_report.summary_lines(tmp_path)
  assert "gsm_symbolic [cpu]¶" in summary[1]
  assert (
    "¶ gsm_symbolic [cpu]: the hybrid and sleep models are at chance on the deeper" in summary[2]
  )
  # One compared model beyond chance at depth: no warning.
  acc["sleep4"] = easy_only | {3: [0.4, 0.4], 4: [0.3, 0.3]}
  assert not study_report.deep_unlearned(merge(acc))
  # Results merged before the deeper-half aid existed: no warning (nothing to read).
  assert not study_report.deep_unlearned(
    {"above_chance": merged["above_chance"], "variants": labels}
  )
  # Where the compared models learned nothing at all, the stronger warning says it instead.
  flat = {v: {d: [0.1, 0.1] for d in ds} for v in ("hybrid", "sleep2", "sleep4")}
  merged = merge(acc | flat)
  assert study_report.compared_unlearned(merged) and not study_report.deep_unlearned(merged)


@pytest.mark.parametrize(
  "task, expected",
  [
    # One cycle of 5 names, k < 5: the answer is one of the 4 names that are not the query.
    (dict(n_min=5, n_max=5, k_min=1, k_max=3, single_cycle=True), 1 / 4),
    # Two queries on such a cycle: both guesses must be right.
    (dict(n_min=5, n_max=5, k_min=1, k_max=3, single_cycle=True, num_queries=2), 1 / 16),
    # A random permutation: k hops may come back to the query, so all 4 names are candidates.
    (dict(n_min=4, n_max=4, k_min=1, k_max=2, single_cycle=False), 1 / 4),
  ],
)
def test_depo_no_hop_guess_is_one_over_the_candidate_names(task, expected):
  base = dict(window=16, seq_len=48, syllables_min=1, syllables_max=1)
  got = chance.no_hop_baseline("depo", base | task, eval_seed=3, num_test=64)
  assert got["exact_match"] == pytest.approx(expected)
  assert sum(r["num_examples"] for r in got["by_difficulty"].values()) == 64
  assert all(r["exact_match"] == pytest.approx(expected) for r in got["by_difficulty"].values())
  assert chance.no_hop_baseline("rule110", {}, eval_seed=3, num_test=4) is None


def test_chance_of_a_task_that_trains_on_more_questions_is_fitted_on_test_shaped_examples():
  # Training asks 3 questions, testing one: the majority answers must be counted over examples
  # asking one question (a 3-answer tuple never equals a 1-answer truth), so the baseline equals
  # that of the task that asks one question in both splits (the same test set). On one 3-cycle
  # of 1-syllable names copying the query is never right, so the majority answer is the guess,
  # and it is right now and then.
  base = dict(window=16, seq_len=48, syllables_min=1, syllables_max=1, n_min=3, n_max=3, k_max=2)
  base |= dict(single_cycle=True)
  kw = dict(eval_seed=5, num_test=512, num_fit=1024)
  one = chance.question_only_baseline("depo", base, **kw)
  assert one["exact_match"] > 0
  three = chance.question_only_baseline(
    "depo", base | dict(num_queries=3, test_num_queries=1), **kw
  )
  assert three == one


def test_models_that_only_guess_names_are_flagged_on_depo():
  ds = [1, 2]
  n = {d: 400 for d in ds}
  no_hop = {1: 0.1, 2: 0.1}
  acc = {"transformer": {1: [0.0, 0.0], 2: [0.0, 0.0]}, "hybrid": {1: [0.1, 0.1], 2: [0.1, 0.11]}}
  labels = {v: {"label": v} for v in acc}
  merged = {"above_no_hop": verdicts.above_chance(acc, ds, n, no_hop), "variants": labels}
  lines = study_report.no_hop_lines(merged)
  assert len(lines) == 2 and "No model followed the edges" in lines[1]
  # An ablation beyond the guess does not clear the warning about the main variants.
  ablation = dict(acc, sleep4_tokens={1: [0.5, 0.5], 2: [0.5, 0.5]})
  merged["above_no_hop"] = verdicts.above_chance(ablation, ds, n, no_hop)
  merged["variants"] = labels | {"sleep4_tokens": {"label": "tokens", "group": "ablation"}}
  assert "No model followed the edges" in study_report.no_hop_lines(merged)[1]
  merged["variants"] = labels
  # A model well beyond the no-hop guess (0.4 over 800 answers) clears the warning.
  acc["sleep4"] = {1: [0.5, 0.5], 2: [0.5, 0.5]}
  labels["sleep4"] = {"label": "sleep4"}
  merged["above_no_hop"] = verdicts.above_chance(acc, ds, n, no_hop)
  lines = study_report.no_hop_lines(merged)
  assert len(lines) == 1 and "sleep4 +0.400 (beyond)" in lines[0]
  assert study_report.no_hop_lines({"above_chance": {}, "variants": labels}) == []


def test_cpu_share_flags_runs_that_shared_the_cpu():
  variants = {
    "hybrid": {"label": "hybrid", "cpu_per_wall": 0.98},
    "sleep4": {"label": "sleep4", "cpu_per_wall": 0.55},
    "deep4": {"label": "deep4", "cpu_per_wall": None},
  }
  merged = {"devices": ["cpu: test, 2 cores"], "variants": variants}
  line = study_report.cpu_share_line(merged)
  assert "hybrid 0.98; sleep4 0.55." in line
  assert "Not recorded (older runs): deep4." in line
  assert "Below 0.8: sleep4 shared the CPU" in line and "hybrid shared" not in line
  # On an accelerator the host's CPU share says nothing about sharing; old runs say nothing.
  assert study_report.cpu_share_line(dict(merged, devices=["gpu: NVIDIA H200 x1"])) == ""
  quiet = {v: dict(a, cpu_per_wall=None) for v, a in variants.items()}
  assert study_report.cpu_share_line(dict(merged, variants=quiet)) == ""


def test_no_fall_tolerance_is_the_seed_spread_or_two_binomial_errors():
  ds = [1]
  n = {1: 10_000}
  # A 0.05 drop with a seed spread of ~0.07: within the spread.
  acc = {"hybrid": {1: [0.5, 0.6]}, "sleep4": {1: [0.45, 0.55]}}
  (pair,) = verdicts.no_fall_with_n(acc, ds, n).numbers["pairs"]
  assert pair["tol"] == pytest.approx(0.0707, abs=1e-3)
  assert verdicts.no_fall_with_n(acc, ds, n).status == verdicts.PASS
  # One seed each: the tolerance is 2 binomial standard errors of the difference.
  acc = {"hybrid": {1: [0.5]}, "sleep4": {1: [0.45]}}
  assert verdicts.no_fall_with_n(acc, ds, n).status == verdicts.FAIL
  assert verdicts.ols_slope([0.0, 1.0])[0] == 1.0 and verdicts.ols_slope([0.0, 1.0])[1] is None


def test_a_noise_level_slope_is_not_growth():
  # Sleep worse in the middle, both at the floor at the deepest d: a small positive slope within
  # two standard errors (the first cpu-scale Rule 110 numbers looked like this).
  ds = [1, 2, 3, 4, 5, 6]
  n = {d: 256 for d in ds}
  hybrid = [0.958, 0.850, 0.531, 0.094, 0.010, 0.004]
  sleep4 = [0.913, 0.693, 0.244, 0.049, 0.014, 0.015]
  acc = {
    "hybrid": {d: [x] for d, x in zip(ds, hybrid, strict=True)},
    "sleep4": {d: [x] for d, x in zip(ds, sleep4, strict=True)},
  }
  got = verdicts.gain_grows_with_depth(acc, ds, n)
  assert got.numbers["slope"] > 0 and got.status == verdicts.FAIL


def test_a_loss_that_shrinks_with_depth_is_not_a_growing_gain():
  # Sleep collapsed to a constant guess, the hybrid above it only on the easy cases: the
  # gain rises steadily (-0.3, -0.2, -0.1, 0.0) but sleep never gets ahead.
  ds = [1, 2, 3, 4]
  n = {d: 256 for d in ds}
  hybrid = [0.4, 0.3, 0.2, 0.1]
  acc = {
    "hybrid": {d: [x, x] for d, x in zip(ds, hybrid, strict=True)},
    "sleep4": {d: [0.1, 0.1] for d in ds},
  }
  got = verdicts.gain_grows_with_depth(acc, ds, n)
  assert got.numbers["slope"] > 2 * got.numbers["slope_se"] and got.status == verdicts.FAIL
  # The same rising gain lifted by 0.25 (-0.05 .. +0.25) ends ahead of N = 1: growth.
  acc["sleep4"] = {
    d: [x - 0.05 + 0.1 * i] * 2 for i, (d, x) in enumerate(zip(ds, hybrid, strict=True))
  }
  assert verdicts.gain_grows_with_depth(acc, ds, n).status == verdicts.PASS


def test_a_deepest_gain_within_sampling_noise_is_not_growth():
  # The gsm_realistic cpu numbers at 1000 steps: sleep collapsed to a constant near chance, the
  # hybrid a little above it on the easy cases. Three nearly collinear gains give a tiny residual
  # se, and the deepest gain is positive, but +0.008 on 2 x 256 examples is noise.
  ds = [1, 2, 3]
  n = {d: 256 for d in ds}
  hybrid = {1: 0.116, 2: 0.058, 3: 0.069}
  sleep4 = {1: 0.095, 2: 0.053, 3: 0.077}
  acc = {
    "hybrid": {d: [x, x] for d, x in hybrid.items()},
    "sleep4": {d: [x, x] for d, x in sleep4.items()},
  }
  got = verdicts.gain_grows_with_depth(acc, ds, n)
  assert got.numbers["slope"] > 2 * got.numbers["slope_se"]
  assert 0 < got.numbers["gains"]["3"] < got.numbers["deepest_noise"]
  assert got.status == verdicts.FAIL and "two-sigma 0.033" in got.line
  # The same trend with sleep clearly ahead at the deepest difficulty is growth.
  acc["sleep4"] = {d: [x + 0.1 * (d - 1), x + 0.1 * (d - 1)] for d, x in sleep4.items()}
  assert verdicts.gain_grows_with_depth(acc, ds, n).status == verdicts.PASS


def test_git_info_without_a_repository_says_unknown(tmp_path):
  assert study_runs.git_info(tmp_path) == {"commit": "unknown", "dirty": None}
  # Inside a repository, git's own answer.
  assert study_runs.git_info()["commit"] != "unknown"


def test_todo_lists_the_runs_without_a_finished_slice_of_todays_commands(tmp_path):
  # Nothing is run: --todo only reads results/<study>/slices.
  out, runs = tmp_path / "results", tmp_path / "runs"
  base = ["--study", "depo", "--scale", "gpu", "--out", str(out), "--runs", str(runs), "--todo"]
  text = reproduce(*base, "--only", "hybrid,sleep4")
  assert "depo/gpu: 6 of 6 runs to do (120000 training steps)" in text
  assert (
    "hybrid: seeds 0,1,2 [verdicts a, b, d]  (python scripts/reproduce.py --study depo --scale "
    "gpu --only hybrid --seeds 0,1,2)"
  ) in text
  # A finished slice made by today's commands counts as done; a failed one, or one made by other
  # commands, does not.
  (run,) = studies.runs_of("depo", "gpu", ["hybrid"], [1], runs)
  slices = out / "depo" / "slices"
  slices.mkdir(parents=True)
  spec = study_runs.spec_of(run, runs)
  (slices / run.slice_name).write_text(json.dumps({"status": "ok", "commands": spec}))
  text = reproduce(*base, "--only", "hybrid,sleep4")
  assert "5 of 6 runs to do" in text
  assert (
    "hybrid: seeds 0,2 [verdicts a, b, d]  (python scripts/reproduce.py --study depo --scale gpu "
    "--only hybrid --seeds 0,2)"
  ) in text
  for status, commands in (("failed", spec), ("ok", dict(spec, env={"X": "1"}))):
    (slices / run.slice_name).write_text(json.dumps({"status": status, "commands": commands}))
    assert "6 of 6 runs to do" in reproduce(*base, "--only", "hybrid,sleep4")
  (slices / run.slice_name).write_text(json.dumps({"status": "ok", "commands": spec}))
  assert "every selected run has a finished slice" in reproduce(
    *base, "--only", "hybrid", "--seeds", "1"
  )
  assert not runs.exists()  # nothing was trained


def test_todo_lists_what_the_verdicts_need_first(tmp_path):
  out, runs = tmp_path / "results", tmp_path / "runs"
  text = reproduce(
    "--study", "rule110", "--scale", "gpu", "--out", str(out), "--runs", str(runs), "--todo"
  )
  lines = [line.strip() for line in text.splitlines() if line.startswith("  ")]
  order = [line.split(":")[0] for line in lines]
  scale = studies.STUDIES["rule110"].scales["gpu"]
  assert sorted(order) == sorted(scale.variants)
  # hybrid and sleep4 decide (a), (b) and (d); the transformer (c); sleep2 is (b)'s middle step.
  assert order[:4] == ["hybrid", "sleep4", "transformer", "sleep2"]
  assert lines[0].startswith("hybrid: seeds 0,1,2 [verdicts a, b, d]")
  assert lines[2].startswith("transformer: seeds 0,1,2 [verdicts c]")
  assert lines[3].startswith("sleep2: seeds 0,1,2 [verdicts b]")
  # The rest keep the table's order and feed no verdict.
  rest = [v for v in scale.variants if v not in order[:4]]
  assert order[4:] == rest
  assert all("[verdicts" not in line for line in lines[4:])


def test_every_verdict_names_variants_that_the_main_variants_hold():
  for vid in verdicts.TITLES:
    assert verdicts.NEEDS[vid], vid
    for variant in verdicts.NEEDS[vid] + verdicts.ALSO_USES.get(vid, ()):
      assert variant in studies.MAIN, (vid, variant)
      assert vid in verdicts.verdicts_using(variant)
  assert verdicts.verdicts_using("deep4") == []


def test_todo_names_runs_that_resume_from_checkpoints_here(tmp_path):
  # An interrupted run's directory: its checkpoints say how far it got.
  out, runs = tmp_path / "results", tmp_path / "runs"
  base = ["--study", "rule110", "--scale", "gpu", "--out", str(out), "--runs", str(runs), "--todo"]
  (hybrid,) = studies.runs_of("rule110", "gpu", ["hybrid"], [2], runs)
  for step in ("4000", "5000", "5000.orbax-checkpoint-tmp-1"):  # an unfinished save counts not
    (hybrid.directory / "checkpoints" / step).mkdir(parents=True)
  (two_stage,) = studies.runs_of("rule110", "gpu", ["sleep4_2stage"], [0], runs)
  stage1, stage2 = two_stage.stages
  (stage1.workdir / "checkpoints" / str(stage1.num_steps)).mkdir(parents=True)
  (stage2.workdir / "checkpoints" / "1000").mkdir(parents=True)
  assert study_runs.steps_done(hybrid) == 5000
  assert study_runs.steps_done(two_stage) == stage1.num_steps + 1000
  text = reproduce(*base, "--only", "hybrid,sleep4_2stage")
  expected = f"hybrid/seed2 at step 5000; sleep4_2stage/seed0 at step {stage1.num_steps + 1000}"
  assert f"resume from checkpoints here ({expected}): in " in text
  assert "rule110/gpu/VARIANT, which that variant's command continues" in text
  assert "resume" not in reproduce(*base, "--only", "sleep2")


def test_compare_slices_finds_any_changed_number():
  import compare_slices

  report = {
    "eval": {
      "results": {
        "1": {
          "exact_match": 0.25,
          "token_accuracy": 0.5,
          "by_difficulty": {"2": {"exact_match": 0.1}},
        }
      }
    },
    "curve": [{"step": 10, "loss": 1.5}],
  }
  assert compare_slices.compare(report, report) == (True, "same (4 numbers)")
  changed = json.loads(json.dumps(report))
  changed["eval"]["results"]["1"]["by_difficulty"]["2"]["exact_match"] = 0.125
  same, text = compare_slices.compare(report, changed)
  assert not same and "N=1 d=2 exact_match: 0.1000 -> 0.1250" in text
  changed = json.loads(json.dumps(report))
  changed["curve"][-1]["loss"] = 1.25
  assert not compare_slices.compare(report, changed)[0]
  assert compare_slices.compare(report, {"eval": {}}) == (False, "no evaluation to compare")


def test_gain_by_difficulty_marks_only_gains_clear_of_sampling_and_seed_noise():
  ds = [1, 2, 3, 4]
  examples = dict.fromkeys(ds, 256)
  acc = {
    "hybrid": {1: [0.99, 0.99], 2: [0.83, 0.81], 3: [0.08, 0.03], 4: [0.0, 0.0]},
    # 2: +0.14, seeds apart; 3: +0.30 but a seed of N = 4 below one of N = 1; 4: +0.006, seeds
    # apart but within two binomial sigmas of 0 (0.000 vs 0.006 over 512 answers each).
    "sleep4": {1: [0.98, 1.0], 2: [0.95, 0.97], 3: [0.02, 0.68], 4: [0.004, 0.008]},
  }
  gains = verdicts.gain_by_difficulty(acc, ds, examples)
  rows = {r["difficulty"]: r for r in gains}
  assert rows[2]["gain"] == pytest.approx(0.14) and rows[2]["clear"]
  assert rows[3]["gain"] == pytest.approx(0.295) and not rows[3]["clear"]  # seed luck
  assert rows[4]["gain"] == pytest.approx(0.006) and not rows[4]["clear"]  # sampling noise
  assert rows[4]["two_sigma"] > 0.006
  assert not rows[1]["clear"]  # a loss is never clear
  line = study_report.gain_line({"gains": gains}, "t")
  assert "t=2 +0.140 (clear)" in line and "t=3 +0.295;" in line and "(clear)" not in line[-30:]
  # Without both variants there is nothing to say.
  del acc["sleep4"]
  assert verdicts.gain_by_difficulty(acc, ds, examples) == []
  assert study_report.gain_line({"gains": []}, "t") == study_report.gain_line({}, "t") == ""


def test_ablation_costs_compare_sleep4_with_each_ablation_in_both_directions():
  ds = [1, 2, 3]
  examples = dict.fromkeys(ds, 512)
  acc = {
    "sleep4": {1: [1.0, 1.0], 2: [0.85, 0.90], 3: [0.50, 0.49]},
    # 2: sleep4 clearly ahead; 3: the ablation clearly ahead (a clear loss of sleep4).
    "sleep4_tokens": {1: [1.0, 1.0], 2: [0.40, 0.45], 3: [0.70, 0.72]},
    # Within noise everywhere: 3 differs by 0.01 over 1024 answers each.
    "sleep4_fresh": {1: [1.0, 1.0], 2: [0.86, 0.88], 3: [0.50, 0.51]},
  }
  rows = verdicts.gain_by_difficulty(acc, ds, examples, "sleep4", "sleep4_tokens")
  by = {r["difficulty"]: r for r in rows}
  assert by[2]["gain"] == pytest.approx(0.45) and by[2]["clear"] and not by[2]["clear_loss"]
  assert by[3]["gain"] == pytest.approx(-0.215) and by[3]["clear_loss"] and not by[3]["clear"]
  assert not by[1]["clear"] and not by[1]["clear_loss"]
  fresh = verdicts.gain_by_difficulty(acc, ds, examples, "sleep4", "sleep4_fresh")
  assert not any(r["clear"] or r["clear_loss"] for r in fresh)
  merged = {
    "variants": {
      "sleep4_tokens": {"label": "sleep, N = 4, re-feeding tokens"},
      "sleep4_fresh": {"label": "sleep, N = 4, fresh pass start"},
    },
    "ablation_costs": {"sleep4_tokens": rows, "sleep4_fresh": fresh},
  }
  line = study_report.ablation_line(merged, "t")
  assert "re-feeding tokens: t=1 +0.000, t=2 +0.450 (clear), t=3 -0.215 (clear loss);" in line
  assert "fresh pass start: t=1 +0.000, t=2 +0.005, t=3 -0.010." in line
  assert "sleep, N = 4, re-feeding" not in line  # the common prefix is dropped
  # No ablations (or no sleep4 to compare them with): no line.
  assert study_report.ablation_line({"variants": {}, "ablation_costs": {"x": []}}, "t") == ""
  assert study_report.ablation_line({}, "t") == ""


def test_cpu_long_refuses_an_ablation_the_cpu_scale_lacks():
  cpu = studies.STUDIES["gsm_symbolic"].scales["cpu"]
  with pytest.raises(ValueError, match="'sleep4_tokens' is not an ablation variant"):
    studies._trained_longer(cpu, 2, note="x", ablations=("sleep4_tokens",))
  rule110 = studies.STUDIES["rule110"].scales["cpu"]
  with pytest.raises(ValueError, match="'sleep2' is not an ablation variant"):
    studies._trained_longer(rule110, 2, note="x", ablations=("sleep2",))
  long = studies._trained_longer(rule110, 2, note="x", ablations=("sleep4_fresh",))
  assert long.variants[-1] == "sleep4_fresh"
