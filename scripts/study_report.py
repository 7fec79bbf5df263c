"""Merges a study's slice files into results.json, figures, a markdown table and the index.

`merge(study, out_dir)` reads every results/<study>/slices/*.json (written by any invocation, on
any machine), aggregates them per scale and variant, computes the chance level and the verdicts,
and writes:

  results/<study>/results.json                  every number, with its config, seed, device, wall
                                                time and git commit (schema below, RESULTS_SCHEMA)
  results/<study>/<scale>_exact_vs_difficulty.png   exact match per difficulty, mean and seed range
  results/<study>/<scale>_learning_curves.png       training exact match (token accuracy where
                                                    examples ask several questions), loss vs step
  results/<study>/<scale>_n_sweep.png               exact match vs test-time N
  results/<study>/README.md                     the tables, verdicts and figures
  results/README.md                             the index of every study (`write_index`)
"""

from __future__ import annotations

import inspect
import json
import math
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import chance as chance_lib
import studies
import verdicts as verdicts_lib
from study_runs import SLICE_SCHEMA, command_key, now, spec_of, write_json

RESULTS_SCHEMA = 1
FIGURES = ("exact_vs_difficulty", "learning_curves", "n_sweep")
COLORS = {
  "transformer": "#7f7f7f",
  "transformer_full": "#17becf",
  "hybrid": "#1f77b4",
  "sleep2": "#ff7f0e",
  "sleep4": "#d62728",
  "sleep8": "#9467bd",
  "deep4": "#2ca02c",
  "sleep4_tokens": "#e377c2",
  "sleep4_fresh": "#8c564b",
  "sleep4_mix": "#ff9896",
  "sleep4_2stage": "#bcbd22",
  "hybrid_show_t": "#1f77b4",
  "sleep4_show_t": "#d62728",
}


# --------------------------------------------------------------------------------------------------
# Reading and aggregating


def load_slices(slices_dir: pathlib.Path, study: str) -> list[dict[str, Any]]:
  """Every readable slice of `study` in `slices_dir` (others are reported and skipped)."""
  out = []
  for path in sorted(slices_dir.glob("*.json")):
    try:
      data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
      print(f"warning: skipping unreadable slice {path}: {e}")
      continue
    if data.get("schema") != SLICE_SCHEMA or data.get("study") != study:
      print(f"warning: skipping {path}: not a schema-{SLICE_SCHEMA} slice of {study}")
      continue
    data["file"] = path.name
    out.append(data)
  return out


def _stats(xs: Sequence[float]) -> dict[str, Any]:
  return {
    "mean": statistics.fmean(xs),
    "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0,
    "min": min(xs),
    "max": max(xs),
    "per_seed": list(xs),
  }


def _label(variant: str) -> str:
  return studies.VARIANTS[variant].label if variant in studies.VARIANTS else variant


def _group(variant: str) -> str:
  return studies.VARIANTS[variant].group if variant in studies.VARIANTS else "main"


def _train_passes(slice_: Mapping[str, Any]) -> int:
  return int(slice_["eval"]["train_sleep_passes"])


def _by_difficulty(slice_: Mapping[str, Any], n: int) -> Mapping[str, Any]:
  return slice_["eval"]["results"][str(n)]["by_difficulty"]


def aggregate_variant(
  slices: Sequence[Mapping[str, Any]], difficulties: Sequence[int]
) -> dict[str, Any]:
  """The seeds of one variant: exact match per difficulty at the training N, the N sweep, the
  learning curve (steps every seed has), wall times and devices."""
  slices = sorted(slices, key=lambda s: s["seed"])
  train_n = _train_passes(slices[0])
  out: dict[str, Any] = {
    "label": _label(slices[0]["variant"]),
    "group": _group(slices[0]["variant"]),
    "train_passes": train_n,
    "seeds": [s["seed"] for s in slices],
  }
  by_d = {}
  for d in difficulties:
    rows = [_by_difficulty(s, train_n).get(str(d)) for s in slices]
    if any(r is None for r in rows):
      continue
    by_d[str(d)] = {
      **_stats([r["exact_match"] for r in rows]),
      "token_accuracy": statistics.fmean(r["token_accuracy"] for r in rows),
      "num_examples": rows[0]["num_examples"],
    }
  out["exact_by_difficulty"] = by_d
  present = [d for d in difficulties if str(d) in by_d]
  if present:
    per_seed = [
      statistics.fmean(_by_difficulty(s, train_n)[str(d)]["exact_match"] for d in present)
      for s in slices
    ]
    out["exact_mean"] = _stats(per_seed)
  sweep = {}
  common = sorted(set.intersection(*(set(map(int, s["eval"]["results"])) for s in slices)))
  for n in common:
    per_seed = (
      [
        statistics.fmean(_by_difficulty(s, n)[str(d)]["exact_match"] for d in present)
        for s in slices
      ]
      if present
      else []
    )
    sweep[str(n)] = {
      **(_stats(per_seed) if per_seed else {}),
      "by_difficulty": {
        str(d): statistics.fmean(_by_difficulty(s, n)[str(d)]["exact_match"] for s in slices)
        for d in present
      },
    }
  out["n_sweep"] = sweep
  curves = [{r["step"]: r for r in s.get("curve", [])} for s in slices]
  steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
  out["curve"] = {"step": steps}
  for key in ("exact_match", "accuracy", "loss"):
    values = [[c[step].get(key, math.nan) for c in curves] for step in steps]
    out["curve"][key] = {
      "mean": [statistics.fmean(v) for v in values],
      "min": [min(v) for v in values],
      "max": [max(v) for v in values],
    }
  out["wall_s"] = {
    "train": _stats([s["wall_s"]["train"] for s in slices]),
    "eval": _stats([s["wall_s"]["eval"] for s in slices]),
    # Lower bounds when a seed's earlier invocation was killed before recording its time.
    "complete": all(s.get("wall_complete", True) for s in slices),
  }
  step_times = [s["step_time_s"] for s in slices if s.get("step_time_s")]
  out["step_time_s"] = statistics.fmean(step_times) if step_times else None
  shares = [s["cpu_per_wall"] for s in slices if s.get("cpu_per_wall") is not None]
  out["cpu_per_wall"] = min(shares) if shares else None  # the most starved seed speaks
  out["num_steps"] = (
    slices[0]["config"]["num_steps"]
    if not slices[0].get("stage_configs")
    else (sum(c["num_steps"] for c in slices[0]["stage_configs"]))
  )
  return out


def _difficulties(scale: studies.Scale | None, slices: Sequence[Mapping[str, Any]]) -> list[int]:
  """The reported difficulties: the scale's list, else every difficulty evaluated."""
  seen = set()
  for s in slices:
    for result in s["eval"]["results"].values():
      seen |= set(map(int, result["by_difficulty"]))
  if scale is not None and scale.difficulties is not None:
    return [d for d in scale.difficulties if d in seen]
  return sorted(seen)


def _task_key(slice_: Mapping[str, Any]) -> str:
  return json.dumps(slice_["config"]["task"], sort_keys=True)


def current_commands(study: studies.Study, scale_name: str, slice_: Mapping[str, Any]) -> bool:
  """Whether a slice was made by the commands its (variant, seed) gets at this scale today."""
  try:
    (run,) = studies.runs_of(
      study.name, scale_name, [slice_["variant"]], [slice_["seed"]], studies.ROOT / "runs"
    )
  except ValueError:  # a variant the table no longer knows, or not for this study
    return False
  expected = command_key(spec_of(run, studies.ROOT / "runs"))
  return command_key(slice_.get("commands") or {}) == expected


def merge_scale(
  study: studies.Study, scale_name: str, slices: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
  """Everything results.json holds about one scale of a study."""
  scale = study.scales.get(scale_name)
  # A slice trained by other commands than the scale's current ones (its settings changed since)
  # would be reported under settings it never ran with: it is left out, by name, until rerun.
  ok, outdated = [], []
  for s in slices:
    if s["status"] == "ok" and s.get("eval"):
      current = not scale or current_commands(study, scale_name, s)
      (ok if current else outdated).append(s)
  failed = [
    {"variant": s["variant"], "seed": s["seed"], "error": s.get("error", "")}
    for s in slices
    if s["status"] != "ok"
  ]
  out: dict[str, Any] = {
    "status": "results" if ok else "no results yet",
    "settings": studies.scale_table(study, scale_name) if scale else None,
    "failed": failed,
  }
  wanted = [(v, seed) for v in scale.variants for seed in scale.seeds] if scale else []
  have = {(s["variant"], s["seed"]) for s in ok}
  out["missing"] = [f"{v}/seed{seed}" for v, seed in wanted if (v, seed) not in have]
  out["outdated"] = [f"{s['variant']}/seed{s['seed']} ({s['file']})" for s in outdated]
  if not ok:
    out["verdicts"] = [
      verdicts_lib._not_judged(vid, f"no results at the {scale_name} scale").to_json()
      for vid in "abcd"
    ]
    return out
  devices, commits, software = [], [], []
  for s in ok:
    for d in s.get("devices", []):
      text = f"{d.get('platform')} / {d.get('device_kind')} (x{d.get('count', '?')})"
      if d.get("platform") == "cpu" and d.get("host_cpu"):
        text = f"cpu: {d['host_cpu']}, {d.get('host_cores', '?')} cores"
      if text not in devices:
        devices.append(text)
      # The framework versions it ran with (an accelerator host's jax may not be the one CI
      # pins).
      versions = ", ".join(f"{k} {d[k]}" for k in ("jax", "flax") if d.get(k))
      if versions and versions not in software:
        software.append(versions)
    commit = (s.get("git") or {}).get("commit", "unknown")
    dirty = (s.get("git") or {}).get("dirty")
    changed = (s.get("git") or {}).get("changed")
    text = commit[:12]
    if dirty:
      # Slices from before "changed" was recorded say only that something differed.
      text += f" (uncommitted: {', '.join(changed)})" if changed else " (uncommitted changes)"
    if text not in commits:
      commits.append(text)
  out["devices"] = devices or ["unknown"]
  out["device_source"] = next((s["device_source"] for s in ok if s.get("device_source")), "")
  out["commits"] = commits
  out["software"] = software
  main = [s for s in ok if _group(s["variant"]) != "show_t"]
  difficulties = _difficulties(scale, main or ok)
  out["difficulties"] = difficulties

  # Chance per task config (the show_t variants see another task config).
  chance_by_task: dict[str, Any] = {}
  for s in ok:
    key = _task_key(s)
    if key not in chance_by_task:
      c = s["config"]
      chance_by_task[key] = {
        "task": c["task"],
        "variants": [],
        **chance_lib.question_only_baseline(
          c["task_name"], c["task"], eval_seed=c["eval"]["seed"], num_test=c["eval"]["num_test"]
        ),
        "no_hop": chance_lib.no_hop_baseline(
          c["task_name"], c["task"], eval_seed=c["eval"]["seed"], num_test=c["eval"]["num_test"]
        ),
      }
    if s["variant"] not in chance_by_task[key]["variants"]:
      chance_by_task[key]["variants"].append(s["variant"])
  out["chance"] = list(chance_by_task.values())
  main_chance = chance_by_task[_task_key(main[0])] if main else None

  by_variant: dict[str, list[Mapping[str, Any]]] = {}
  for s in ok:
    by_variant.setdefault(s["variant"], []).append(s)
  order = list(studies.VARIANTS)
  names = sorted(by_variant, key=lambda v: order.index(v) if v in order else len(order))
  out["variants"] = {v: aggregate_variant(by_variant[v], difficulties) for v in names}
  # What the whole scale cost, as process time: with --jobs J side by side the wall is about 1/J.
  out["process_hours"] = {
    "total": sum(s["wall_s"]["train"] + s["wall_s"]["eval"] for s in ok) / 3600,
    "complete": all(s.get("wall_complete", True) for s in ok),
  }

  every = {
    v: {
      d: a["exact_by_difficulty"][str(d)]["per_seed"]
      for d in difficulties
      if str(d) in a["exact_by_difficulty"]
    }
    for v, a in out["variants"].items()
    if a["group"] != "show_t"  # another task (t shown before eviction), so another chance level
  }
  # The verdicts judge the main variants only; the reading aids below cover the ablations too,
  # since whether one (e.g. two-stage sleep) learned at all is what its row needs beside it.
  acc = {v: every[v] for v, a in out["variants"].items() if a["group"] == "main"}
  examples = {}
  for a in out["variants"].values():
    for d, r in a["exact_by_difficulty"].items():
      examples.setdefault(int(d), r["num_examples"])
  chance = (
    {int(d): r["exact_match"] for d, r in main_chance["by_difficulty"].items()}
    if main_chance
    else {}
  )
  out["verdicts"] = [v.to_json() for v in verdicts_lib.judge(acc, difficulties, examples, chance)]
  out["above_chance"] = verdicts_lib.above_chance(every, difficulties, examples, chance)
  # The same reading aid on the difficulties (a) judges: a model can beat chance on the easy
  # cases alone, and then (a) compares guesses however well it learned those.
  deep = verdicts_lib.deeper_half(difficulties)
  out["above_chance_deep"] = {
    "difficulties": deep,
    "models": verdicts_lib.above_chance(every, deep, examples, chance),
  }
  out["gains"] = verdicts_lib.gain_by_difficulty(acc, difficulties, examples)
  # What each ablation's one change costs the N = 4 sleep model (the same reading aid, sleep4
  # against the ablation), e.g. whether re-feeding hidden states beats re-feeding tokens.
  out["ablation_costs"] = {
    v: verdicts_lib.gain_by_difficulty(every, difficulties, examples, "sleep4", v)
    for v, a in out["variants"].items()
    if a["group"] == "ablation"
  }
  no_hop = main_chance.get("no_hop") if main_chance else None
  if no_hop:
    # The same reading aid against Depo's no-hop guess: who followed edges, not just names.
    level = {int(d): r["exact_match"] for d, r in no_hop["by_difficulty"].items()}
    out["above_no_hop"] = verdicts_lib.above_chance(every, difficulties, examples, level)
  if study.task_name.startswith("gsm"):
    out["paper_comparison"] = paper_comparison(out["variants"])
  out["runs"] = [{k: v for k, v in s.items() if k != "file"} | {"slice": s["file"]} for s in slices]
  return out


NOTHING_LEARNED = (
  "**No model learned this task at this scale** (none is above chance): (b) and (c) hold "
  "trivially, and (a) and (d) say nothing about sleep."
)


def _main_models(merged: Mapping[str, Any], judged: Mapping[str, Any]) -> list[str]:
  """The main variants in `judged` other than the windowed transformer (ablations excluded)."""
  groups = {v: a.get("group", "main") for v, a in merged["variants"].items()}
  return [v for v in judged if v != "transformer" and groups.get(v, "main") == "main"]


def nothing_learned(merged: Mapping[str, Any]) -> bool:
  """Whether no main model but the windowed transformer was judged above chance, and none is."""
  above = merged.get("above_chance") or {}
  models = _main_models(merged, above)
  return bool(models) and not any(above[v]["learned"] for v in models)


# The variants verdicts (a), (b) and (d) compare (scripts/verdicts.py).
SLEEP_COMPARED = ("hybrid", "sleep2", "sleep4")


def compared_unlearned(merged: Mapping[str, Any]) -> list[str]:
  """The models that learned the task when the hybrid and the sleep models did not ([] else).

  Non-empty only when some main model beat chance (else `nothing_learned` says more) while none
  of SLEEP_COMPARED did: then (a), (b) and (d) compare models that learned nothing (a constant
  guess at chance), whatever the other baselines show.
  """
  above = merged.get("above_chance") or {}
  compared = [v for v in SLEEP_COMPARED if v in above]
  learned = [v for v in _main_models(merged, above) if above[v]["learned"]]
  if not compared or any(above[v]["learned"] for v in compared) or not learned:
    return []
  return learned


def compared_unlearned_line(merged: Mapping[str, Any]) -> str:
  """The warning of `compared_unlearned`, naming the models that did learn ('' when none)."""
  learned = compared_unlearned(merged)
  if not learned:
    return ""
  labels = {v: a["label"] for v, a in merged["variants"].items()}
  return (
    "**Neither the N = 1 hybrid nor the sleep models learned this task at this scale** (none is "
    f"above chance; {', '.join(labels.get(v, v) for v in learned)} did): (b) holds trivially, "
    "and (a) and (d) compare constant guesses, so they say nothing about sleep."
  )


def deep_unlearned(merged: Mapping[str, Any]) -> bool:
  """Whether the hybrid and the sleep models all are at chance on (a)'s deeper half.

  Not raised where `nothing_learned` or `compared_unlearned` already holds (they say more): this
  is the case of models that learned the easier difficulties only, so that (a) and the deep end
  of (d) compare guesses, while the shallower gains still say something about sleep.
  """
  deep = (merged.get("above_chance_deep") or {}).get("models") or {}
  compared = [v for v in SLEEP_COMPARED if v in deep]
  if not compared or any(deep[v]["learned"] for v in compared):
    return False
  return not nothing_learned(merged) and not compared_unlearned(merged)


def deep_unlearned_line(merged: Mapping[str, Any]) -> str:
  """The warning of `deep_unlearned`, with each compared model's excess there ('' when none)."""
  if not deep_unlearned(merged):
    return ""
  info = merged["above_chance_deep"]
  labels = {v: a["label"] for v, a in merged["variants"].items()}
  cells = ", ".join(
    f"{labels.get(v, v)} {info['models'][v]['excess']:+.3f}"
    for v in SLEEP_COMPARED
    if v in info["models"]
  )
  return (
    "**The N = 1 hybrid and the sleep models are at chance on the deeper half "
    f"{list(info['difficulties'])}** (excess over chance there: {cells}; none beyond the "
    "tolerance): they learned the easier difficulties only, so (a) and the deep end of (d) "
    "compare guesses; what sleep does shows only where they learned (the gain per difficulty)."
  )


def _level_row(label: str, by_difficulty: Mapping[str, Any], ds: Sequence[int]) -> str:
  """A reference level's table row: its exact match per difficulty and the mean over them."""
  cells = [label, "", ""] + [fmt(by_difficulty.get(str(x), {}).get("exact_match")) for x in ds]
  known = [by_difficulty[str(x)]["exact_match"] for x in ds if str(x) in by_difficulty]
  cells += [fmt(statistics.fmean(known) if known else None), "", ""]
  return "| " + " | ".join(cells) + " |"


SHARED_CPU = 0.8  # CPU per wall second below which a single-threaded run did not have its core


def cpu_share_line(merged: Mapping[str, Any]) -> str:
  """The training runs' CPU seconds per wall second, and which of them shared the CPU.

  Empty when no run recorded it (runs from before sleepnet.metrics logged `cpu_per_wall`).
  """
  if not all(d.startswith("cpu") for d in merged.get("devices", [])):
    return ""  # on an accelerator the host mostly waits: its CPU share says nothing about sharing
  labels = {v: a["label"] for v, a in merged["variants"].items()}
  shares = {v: a.get("cpu_per_wall") for v, a in merged["variants"].items()}
  known = {v: x for v, x in shares.items() if x is not None}
  if not known:
    return ""
  cells = [f"{labels[v]} {x:.2f}" for v, x in known.items()]
  unknown = [labels[v] for v, x in shares.items() if x is None]
  line = (
    "CPU seconds per wall second while training (lowest seed, median over log reports; about 1 "
    "for a single-threaded CPU run with a core to itself): " + "; ".join(cells) + "."
  )
  if unknown:
    line += f" Not recorded (older runs): {', '.join(unknown)}."
  if starved := [labels[v] for v, x in known.items() if x < SHARED_CPU]:
    line += (
      f" Below {SHARED_CPU}: {', '.join(starved)} shared the CPU with other work, so its step "
      "time and wall time overstate its cost."
    )
  return line


def _excess_line(
  merged: Mapping[str, Any], above: Mapping[str, Any], level: str, mark: str, ref: str = ""
) -> str:
  """Every variant's excess over a reference level, `(mark)` where it is beyond the tolerance."""
  labels = {v: a["label"] for v, a in merged["variants"].items()}
  cells = [
    f"{labels.get(v, v)} {r['excess']:+.3f}{f' ({mark})' if r['learned'] else ''}"
    for v, r in above.items()
  ]
  return (
    f"Exact match above {level} (mean over difficulties; '({mark})': beyond 2 binomial sigma "
    f"+ 3/n{ref}): " + "; ".join(cells) + "."
  )


def gain_line(merged: Mapping[str, Any], name: str) -> str:
  """The merge's `gains` (`verdicts.gain_by_difficulty`) as one line ('' where there are none)."""
  rows = merged.get("gains") or []
  if not rows:
    return ""
  cells = [
    f"{name}={r['difficulty']} {r['gain']:+.3f}{' (clear)' if r['clear'] else ''}" for r in rows
  ]
  return (
    "Gain of sleep N = 4 over the N = 1 hybrid per difficulty (descriptive, not a verdict; "
    "'(clear)': beyond its binomial two sigma, and every seed of N = 4 above every seed of N = 1): "
    + "; ".join(cells)
    + "."
  )


def ablation_line(merged: Mapping[str, Any], name: str) -> str:
  """The merge's `ablation_costs` as one line ('' where there are none)."""
  costs = {v: rows for v, rows in (merged.get("ablation_costs") or {}).items() if rows}
  if not costs:
    return ""
  labels = {v: a["label"] for v, a in merged["variants"].items()}

  def cell(r: Mapping[str, Any]) -> str:
    mark = " (clear)" if r["clear"] else " (clear loss)" if r.get("clear_loss") else ""
    return f"{name}={r['difficulty']} {r['gain']:+.3f}{mark}"

  # Every ablation is of sleep N = 4, so its label's "sleep, N = 4, " says nothing here.
  parts = [
    f"{labels.get(v, v).removeprefix('sleep, N = 4, ')}: " + ", ".join(cell(r) for r in rows)
    for v, rows in costs.items()
  ]
  return (
    "What each ablation costs sleep N = 4, per difficulty (sleep N = 4 minus the ablation, each "
    "at its trained N; descriptive, not a verdict; '(clear)': beyond its binomial two sigma, and "
    "every seed of sleep N = 4 above every seed of the ablation; '(clear loss)': the same with the "
    "ablation ahead): " + "; ".join(parts) + "."
  )


def chance_lines(merged: Mapping[str, Any]) -> list[str]:
  """Which variants beat the question-only chance, and a warning when only chance was learned.

  The first line lists every variant's excess over chance; a second, when no model other than
  the windowed transformer beats chance, says what that means for the verdicts.
  """
  above = merged.get("above_chance") or {}
  if not above:
    return []
  lines = [_excess_line(merged, above, "the question-only chance", "learned", ", as in (c)")]
  if nothing_learned(merged):
    lines.append(NOTHING_LEARNED)
  if warning := compared_unlearned_line(merged):
    lines.append(warning)
  if warning := deep_unlearned_line(merged):
    lines.append(warning)
  return lines + no_hop_lines(merged)


NO_HOPS_LEARNED = (
  "**No model followed the edges at this scale**: every model above the question-only chance "
  "is at or below the no-hop guess, so what it learned is which names the evicted edge list "
  "holds, not multi-hop retrieval; (a), (b) and (d) compare name guessing, not sleep's effect "
  "on reasoning."
)


def no_hops_learned(merged: Mapping[str, Any]) -> bool:
  """Whether, on a task with a no-hop guess (Depo), no main model beats it beyond tolerance."""
  above = merged.get("above_no_hop")
  return bool(above) and not any(above[v]["learned"] for v in _main_models(merged, above))


def no_hop_lines(merged: Mapping[str, Any]) -> list[str]:
  """Each variant's excess over Depo's no-hop guess, and a warning when none beats it."""
  above = merged.get("above_no_hop")
  if not above:
    return []
  lines = [_excess_line(merged, above, "the no-hop guess", "beyond")]
  if no_hops_learned(merged):
    lines.append(NO_HOPS_LEARNED)
  return lines


def paper_comparison(variants: Mapping[str, Any]) -> list[dict[str, Any]]:
  """The paper's GSM-Infinite numbers beside ours (hybrid N=1 -> sleep N=4), per op count."""
  rows = []
  for ops, (before, after) in studies.PAPER_GSM.items():
    ours: dict[str, Any] = {}
    for v in ("hybrid", "sleep4"):
      r = variants.get(v, {}).get("exact_by_difficulty", {}).get(str(ops))
      ours[v] = r["mean"] if r else None
    rows.append({"ops": ops, "paper_no_sleep": before, "paper_sleep4": after, "ours": ours})
  return rows


PAPER_DIFFERENCES = (
  "The paper fine-tunes a pretrained LLM (reportedly Jet-Nemotron, about 2B parameters) with its "
  "own tokenizer on the GSM-Infinite benchmark data; here tiny models are trained from scratch on "
  "this repository's GSM-Infinite-style generator (own vocabulary, values bounded, fewer "
  "operations at the cpu scale), so only the direction of the effect is comparable."
)


# --------------------------------------------------------------------------------------------------
# Figures


def _plt() -> Any:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def draw_figures(
  study: studies.Study, scale_name: str, merged: Mapping[str, Any], out_dir: pathlib.Path
) -> list[str]:
  """Draws the three figures of one scale; returns their file names."""
  plt = _plt()
  variants = merged["variants"]
  difficulties = merged["difficulties"]
  x = list(range(len(difficulties)))
  names = []

  # 1. Exact match vs difficulty (mean over seeds, seed min..max as error bars).
  groups = {a["group"] for a in variants.values()}
  other = " and ".join(
    name
    for g, name in (("ablation", "ablations"), ("show_t", "t shown before eviction"))
    if g in groups
  )
  panels = [("main", "main variants"), ("other", other)]
  has_other = bool(other)
  fig, axes = plt.subplots(
    1, 2 if has_other else 1, figsize=(13 if has_other else 7, 4.6), squeeze=False
  )
  for ax, (panel, title) in zip(axes[0], panels, strict=False):
    for v, a in variants.items():
      in_panel = (
        a["group"] == "main"
        if panel == "main"
        else (a["group"] != "main" or v in ("hybrid", "sleep4"))
      )
      if not in_panel:
        continue
      pts = [
        (i, a["exact_by_difficulty"][str(d)])
        for i, d in zip(x, difficulties, strict=True)
        if str(d) in a["exact_by_difficulty"]
      ]
      if not pts:
        continue
      xs = [p[0] for p in pts]
      ys = [p[1]["mean"] for p in pts]
      err = [[p[1]["mean"] - p[1]["min"] for p in pts], [p[1]["max"] - p[1]["mean"] for p in pts]]
      style = ":" if a["group"] == "show_t" else "-"
      ax.errorbar(
        xs,
        ys,
        yerr=err,
        label=f"{a['label']} ({len(a['seeds'])} seed{'s' if len(a['seeds']) > 1 else ''})",
        color=COLORS.get(v),
        ls=style,
        marker="o",
        ms=3,
        capsize=2,
      )
    for c in merged["chance"]:
      if panel == "main" and not any(_group(v) == "main" for v in c["variants"]):
        continue
      ys = [c["by_difficulty"].get(str(d), {}).get("exact_match", math.nan) for d in difficulties]
      shown = any(_group(v) == "show_t" for v in c["variants"])
      ax.plot(x, ys, "k--", lw=1, label="chance, t shown" if shown else "chance (question only)")
      if c.get("no_hop"):
        level = c["no_hop"]["by_difficulty"]
        ys = [level.get(str(d), {}).get("exact_match", math.nan) for d in difficulties]
        ax.plot(x, ys, "k:", lw=1, label="no-hop guess")
    ax.set_xticks(x, [str(d) for d in difficulties])
    ax.set_xlabel(f"difficulty {study.difficulty}")
    ax.set_ylabel("exact match (at the training N)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"{study.title} [{scale_name} scale]", fontsize=11)
  fig.tight_layout()
  names.append(_save(fig, plt, out_dir, scale_name, "exact_vs_difficulty"))

  # 2. Step-matched learning curves (every run has the same steps and log interval). Where a
  # training example asks several questions (Depo), its exact match needs all of them right and
  # says little next to the one-question test; the answer-token accuracy is shown instead.
  # Read from what the runs recorded, not the scale table (which omits the task's defaults).
  questions = max(
    (int(r["config"]["task"].get("num_queries", 1)) for r in merged.get("runs") or []), default=1
  )
  first = "exact_match" if questions == 1 else "accuracy"
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
  for v, a in variants.items():
    c = a["curve"]
    if not c["step"]:
      continue
    style = ":" if a["group"] == "show_t" else "-"
    for ax, key in zip(axes, (first, "loss"), strict=True):
      ax.plot(c["step"], c[key]["mean"], color=COLORS.get(v), ls=style, lw=1.2, label=a["label"])
      if len(a["seeds"]) > 1:
        ax.fill_between(c["step"], c[key]["min"], c[key]["max"], color=COLORS.get(v), alpha=0.15)
  axes[0].set_ylabel(
    "training-batch exact match"
    if questions == 1
    else f"training-batch token accuracy\n(answers and <eos>, {questions} questions per example)"
  )
  axes[1].set_ylabel("training loss (answer tokens)")
  axes[1].set_yscale("log")
  for ax in axes:
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.suptitle(f"{study.title}: learning curves [{scale_name} scale]", fontsize=11)
  fig.tight_layout()
  names.append(_save(fig, plt, out_dir, scale_name, "learning_curves"))

  # 3. Test-time N sweep: every model with GDN layers evaluated at several N.
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
  for v, a in variants.items():
    sweep = {int(n): r for n, r in a["n_sweep"].items() if "mean" in r}
    if len(sweep) < 2:
      continue
    ns = sorted(sweep)
    axes[0].plot(
      ns,
      [sweep[n]["mean"] for n in ns],
      marker="o",
      color=COLORS.get(v),
      ls=":" if a["group"] == "show_t" else "-",
      label=a["label"],
    )
    if a["train_passes"] in sweep:
      axes[0].plot(
        [a["train_passes"]],
        [sweep[a["train_passes"]]["mean"]],
        marker="*",
        ms=12,
        color=COLORS.get(v),
      )
  axes[0].set_xscale("log", base=2)
  all_ns = sorted({int(n) for a in variants.values() for n in a["n_sweep"]})
  axes[0].set_xticks(all_ns, [str(n) for n in all_ns])
  axes[0].set_xlabel("test-time N (star: the trained N)")
  axes[0].set_ylabel(f"exact match, mean over {study.difficulty} in {difficulties}")
  axes[0].legend(fontsize=7)
  focus = (
    "sleep4"
    if "sleep4" in variants
    else next((v for v in variants if len(variants[v]["n_sweep"]) > 1), None)
  )
  if focus:
    sweep = variants[focus]["n_sweep"]
    for n in sorted(sweep, key=int):
      by_d = sweep[n]["by_difficulty"]
      axes[1].plot(
        x, [by_d.get(str(d), math.nan) for d in difficulties], marker="o", label=f"N = {n}"
      )
    axes[1].set_xticks(x, [str(d) for d in difficulties])
    axes[1].set_xlabel(f"difficulty {study.difficulty}")
    axes[1].set_ylabel("exact match")
    axes[1].set_title(f"{variants[focus]['label']} evaluated at several N", fontsize=10)
    axes[1].legend(fontsize=7)
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.set_ylim(-0.03, 1.03)
  fig.suptitle(f"{study.title}: test-time N [{scale_name} scale]", fontsize=11)
  fig.tight_layout()
  names.append(_save(fig, plt, out_dir, scale_name, "n_sweep"))
  return names


def _save(fig: Any, plt: Any, out_dir: pathlib.Path, scale_name: str, what: str) -> str:
  name = f"{scale_name}_{what}.png"
  fig.savefig(out_dir / name, dpi=110)
  plt.close(fig)
  return name


# --------------------------------------------------------------------------------------------------
# Markdown


def fmt(x: float | None) -> str:
  """A rate with three decimals, or an en dash for no value."""
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _positions(settings: Mapping[str, Any]) -> str:
  """ ", learned in-window position embeddings" where a scale has them (older results: none)."""
  kind = settings.get("position_embedding", "none")
  if kind == "none":
    return ""
  return ", learned in-window position embeddings" if kind == "window" else f", {kind} positions"


def _curriculum(settings: Mapping[str, Any]) -> str:
  """ "; curriculum: ..." where a scale trains every variant on an easier task first."""
  if not settings.get("curriculum"):
    return ""
  task = ", ".join(f"{k}={v}" for k, v in settings["curriculum"].items())
  return (
    f"; curriculum (every variant): the first {settings['curriculum_steps']} steps with {task}, "
    "then the task above from those weights (fresh optimizer)"
  )


def scale_markdown(study: studies.Study, scale_name: str, merged: Mapping[str, Any]) -> list[str]:
  """The README section of one scale."""
  lines = [f"## Scale `{scale_name}`", ""]
  settings = merged.get("settings")
  if settings:
    task = ", ".join(f"{k}={v}" for k, v in settings["task"].items())
    lines += [
      f"Budget (every variant): {settings['num_steps']} steps, batch {settings['batch_size']}, "
      f"d_model {settings['d_model']}, {settings['num_heads']} heads{_positions(settings)}, "
      f"lr {settings['lr']}, seeds {list(settings['seeds'])}; task: {task}; "
      f"{settings['num_test']} evaluation examples"
      + (
        f"; two-stage (variant sleep4_2stage): N = 1 for the first "
        f"{settings['two_stage_fraction']:.0%} of the steps, then N = 4 from those weights"
        if "sleep4_2stage" in settings["variants"]
        else ""
      )
      + _curriculum(settings)
      + ".",
      "",
      f"*{settings['note']}*",
      "",
    ]
    if settings.get("tried"):
      lines += ["Tried before at this scale:", *(f"- {t}" for t in settings["tried"]), ""]
    if settings.get("probes"):
      lines += ["Probes at this scale:", *(f"- {t}" for t in settings["probes"]), ""]
  outdated = merged.get("outdated") or []
  if outdated:
    lines += [
      "Left out: slices made by other commands than this scale's current ones (its settings "
      f"changed since they ran; rerun them): {', '.join(outdated)}.",
      "",
    ]
  if merged["status"] != "results":
    lines += [
      "**No results yet at this scale** (run `python scripts/reproduce.py --study "
      f"{study.name} --scale {scale_name}`).",
      "",
    ]
    return lines
  lines += [
    f"Device: {', '.join(merged['devices'])} ({merged['device_source']}). "
    f"Commit: {', '.join(merged['commits'])}."
    + (f" Software: {'; '.join(merged['software'])}." if merged.get("software") else ""),
    "",
  ]
  ds = merged["difficulties"]
  d = study.difficulty
  head = [
    "variant",
    "trained N",
    "seeds",
    *(f"{d}={x}" for x in ds),
    "mean",
    "train s/step",
    "train wall (s)",
  ]
  lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for a in merged["variants"].values():
    cells = [
      a["label"] + (" *(t shown)*" if a["group"] == "show_t" and "shown" not in a["label"] else ""),
      str(a["train_passes"]),
      str(len(a["seeds"])),
    ]
    for x in ds:
      r = a["exact_by_difficulty"].get(str(x))
      cells.append(
        f"{r['mean']:.3f} ± {r['sd']:.3f}"
        if r and len(a["seeds"]) > 1
        else fmt(r["mean"] if r else None)
      )
    cells.append(fmt(a.get("exact_mean", {}).get("mean")))
    cells.append(f"{a['step_time_s']:.3f}" if a["step_time_s"] else "–")
    wall = a["wall_s"]
    cells.append(f"{'' if wall['complete'] else '≥ '}{wall['train']['mean']:.0f}")
    lines.append("| " + " | ".join(cells) + " |")
  for c in merged["chance"]:
    label = "chance (question only)" + (
      ", t shown" if any(_group(v) == "show_t" for v in c["variants"]) else ""
    )
    lines.append(_level_row(label, c["by_difficulty"], ds))
    if c.get("no_hop"):
      lines.append(_level_row("no-hop guess (names, no edges)", c["no_hop"]["by_difficulty"], ds))
  lines += [
    "",
    "Exact match at the training N (mean ± sd over seeds where there are several); "
    f"mean = the average over {d} in {ds}. Chance: {merged['chance'][0]['definition']}."
    + (
      f" No-hop guess: {merged['chance'][0]['no_hop']['definition']}."
      if merged["chance"][0].get("no_hop")
      else ""
    )
    + (
      " Train wall ≥: a lower bound (an invocation of the run was killed before it could record "
      "its time; s/step, from the training log, is exact)."
      if not all(a["wall_s"]["complete"] for a in merged["variants"].values())
      else ""
    ),
    "",
  ]
  hours = merged.get("process_hours")
  if hours:
    lines += [
      f"Cost of the runs above: {'≥ ' if not hours['complete'] else ''}{hours['total']:.1f} "
      "process-hours (training and evaluation, summed over runs; `--jobs J` runs J at a time, "
      "so a study's wall time is about 1/J of it).",
      "",
    ]
  if share := cpu_share_line(merged):
    lines += [share, ""]

  sweep_variants = {v: a for v, a in merged["variants"].items() if len(a["n_sweep"]) > 1}
  if sweep_variants:
    ns = sorted({int(n) for a in sweep_variants.values() for n in a["n_sweep"]})
    lines += [
      "Test-time N (exact match, mean over difficulties; the model is trained once, at its own N):",
      "",
    ]
    lines += ["| variant | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for a in sweep_variants.values():
      cells = [fmt(a["n_sweep"].get(str(n), {}).get("mean")) for n in ns]
      lines.append(f"| {a['label']} | " + " | ".join(cells) + " |")
    lines.append("")
  lines += ["Verdicts:", ""]
  lines += [f"- {v['line']}" for v in merged["verdicts"]]
  lines.append("")
  if gains := gain_line(merged, study.difficulty):
    lines += [gains, ""]
  if costs := ablation_line(merged, study.difficulty):
    lines += [costs, ""]
  if above := chance_lines(merged):
    lines += [*above, ""]
  if merged.get("paper_comparison"):
    lines += ["Paper vs ours (hybrid N=1 -> sleep N=4):", ""]
    for r in merged["paper_comparison"]:
      ours = r["ours"]
      text = (
        f"{fmt(ours['hybrid'])} -> {fmt(ours['sleep4'])}"
        if ours["hybrid"] is not None or ours["sleep4"] is not None
        else f"not measured ({r['ops']} ops is outside this scale's range)"
      )
      lines.append(
        f"- {r['ops']}-op: paper {r['paper_no_sleep']:.0%} -> {r['paper_sleep4']:.0%}; ours {text}"
      )
    lines += ["", PAPER_DIFFERENCES, ""]
  if merged.get("superseded"):
    lines += [
      f"Superseded, kept in [`{SUPERSEDED}/`]({SUPERSEDED}/README.md) and left out of every "
      "number here: " + ", ".join(merged["superseded"]) + ". They trained through the former "
      "chunked delta rule, which at this scale's settings was far from the gated delta rule "
      "([the audit](../chunked_kernel_audit.md)); the probes and earlier designs above that "
      "trained GDN models (hybrid, sleep) ran through it too, so their numbers record that "
      "kernel. Those runs are retrained with the exact kernel.",
      "",
    ]
  if merged["missing"]:
    lines += [f"Not run yet at this scale: {', '.join(merged['missing'])}.", ""]
  if merged["failed"]:
    lines += [
      "Failed runs: "
      + "; ".join(f"{f['variant']}/seed{f['seed']}" for f in merged["failed"])
      + " (see results.json).",
      "",
    ]
  lines += [
    f"![exact match vs {d}]({scale_name}_exact_vs_difficulty.png)",
    "",
    f"![learning curves]({scale_name}_learning_curves.png)",
    "",
    f"![test-time N]({scale_name}_n_sweep.png)",
    "",
  ]
  return lines


def study_markdown(study: studies.Study, results: Mapping[str, Any]) -> str:
  """results/<study>/README.md."""
  lines = [
    f"# {study.title}",
    "",
    f"Claim tested: {study.claim}",
    "",
    f"Generated by `python scripts/reproduce.py --study {study.name} --merge` from the slice "
    f"files in `slices/` ({results['generated_at']}); every number is in `results.json`.",
    "",
  ]
  for scale_name, merged in results["scales"].items():
    lines += scale_markdown(study, scale_name, merged)
  return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------
# Merge and index


def superseded_runs(study_dir: pathlib.Path, scale_name: str) -> list[str]:
  """`variant/seedK` of the slices in results/<study>/superseded/ at one scale: runs whose
  numbers no longer stand (the folder's README says why) and that merges leave out."""
  out = []
  for path in sorted((study_dir / SUPERSEDED).glob(f"{scale_name}-*.json")):
    data = json.loads(path.read_text())
    if data.get("scale") == scale_name:
      out.append(f"{data['variant']}/seed{data['seed']}")
  return out


def merge(study_name: str, out_dir: pathlib.Path, *, figures: bool = True) -> dict[str, Any]:
  """Merges results/<study>/slices/ into results.json, figures and README.md; returns the data."""
  study = studies.get_study(study_name)
  study_dir = out_dir / study.name
  slices = load_slices(study_dir / "slices", study.name)
  by_scale: dict[str, list[dict[str, Any]]] = {}
  for s in slices:
    by_scale.setdefault(s["scale"], []).append(s)
  # The scales of the table (ci only when it has results: it is never committed), then any other.
  names = [s for s in studies.scale_names(study, with_ci=True) if s in by_scale or s != "ci"]
  names += sorted(set(by_scale) - set(names))
  results = {
    "schema": RESULTS_SCHEMA,
    "study": study.name,
    "title": study.title,
    "task": study.task_name,
    "difficulty": study.difficulty,
    "claim": study.claim,
    "verdict_definitions": verdicts_lib.__doc__,
    "generated_at": now(),
    "scales": {},
  }
  study_dir.mkdir(parents=True, exist_ok=True)
  for name in names:
    merged = merge_scale(study, name, by_scale.get(name, []))
    merged["superseded"] = superseded_runs(study_dir, name)
    if figures and merged["status"] == "results":
      merged["figures"] = draw_figures(study, name, merged, study_dir)
    elif figures:
      # Figures of slices that are now left out would outlive the numbers they plot.
      for what in FIGURES:
        (study_dir / f"{name}_{what}.png").unlink(missing_ok=True)
    results["scales"][name] = merged
  write_json(study_dir / "results.json", results)
  (study_dir / "README.md").write_text(study_markdown(study, results))
  write_index(out_dir)
  if out_dir.resolve() == (studies.ROOT / "results").resolve():
    # Only the committed results speak for the repository's README (not ci or scratch merges).
    update_readme_summary(studies.ROOT / "README.md", out_dir)
  return results


# results/<study>/SUPERSEDED/ holds slices whose numbers no longer stand, with a README saying
# why; merges never read them and the study page lists them.
SUPERSEDED = "superseded"

# The figures every merged scale draws (file suffix -> how the README names it).
FIGURE_LABELS = {
  "exact_vs_difficulty": "exact match vs difficulty",
  "learning_curves": "learning curves",
  "n_sweep": "test-time N",
}

SUMMARY_BEGIN = "<!-- reproduction summary: written by scripts/reproduce.py --merge -->"
SUMMARY_END = "<!-- end of reproduction summary -->"


# A study whose verdicts compare no learned skill is marked where it is listed, and the mark is
# explained once, so the claim lines stay readable.
CAVEAT_MARKS = {
  "nothing_learned": "†",
  "no_hops_learned": "‡",
  "compared_unlearned": "§",
  "deep_unlearned": "¶",
}
CAVEATS = {
  "†": "no model learned the task, so its verdicts are trivial",
  "‡": "no model followed the edges, so its verdicts compare name guessing only",
  "§": "the hybrid and sleep models learned nothing (other baselines did), so (a), (b) and "
  "(d) compare constant guesses",
  "¶": "the hybrid and sleep models are at chance on the deeper half of the difficulties, so "
  "(a) compares guesses there",
}


def summary_lines(out_dir: pathlib.Path) -> list[str]:
  """Lines for the top-level README: what reproduced, what did not, what is not judged, figures.

  Read from every results/<study>/results.json present. The first two lines group by claim, each
  claim followed by the studies and scales where it came out that way, so a reader sees in one
  line which claims reproduced; the third names what is not judged, the devices each scale ran
  on, and what a mark (CAVEAT_MARKS) after a study means. The fourth line links every figure
  the merges drew (absent while there is none).
  """
  by_status: dict[str, dict[str, list[str]]] = {verdicts_lib.PASS: {}, verdicts_lib.FAIL: {}}
  unjudged, figures, caveats, gains = [], [], [], []
  devices: dict[str, dict[str, list[str]]] = {}  # scale -> device -> the studies run on it
  for name, study in studies.STUDIES.items():
    path = out_dir / name / "results.json"
    scales = json.loads(path.read_text())["scales"] if path.exists() else {}
    for scale_name in studies.scale_names(study):
      merged = scales.get(scale_name)
      if not merged or merged["status"] != "results":
        redesigned = bool(merged and merged.get("outdated"))
        unjudged.append(f"{name} [{scale_name}]" + (" (redesigned; rerun pending)" * redesigned))
        continue
      for d in merged["devices"]:
        ran = devices.setdefault(scale_name, {}).setdefault(d, [])
        if name not in ran:
          ran.append(name)
      mark = ""
      if nothing_learned(merged):
        mark = CAVEAT_MARKS["nothing_learned"]
      elif compared_unlearned(merged):
        mark = CAVEAT_MARKS["compared_unlearned"]
      elif no_hops_learned(merged):
        mark = CAVEAT_MARKS["no_hops_learned"]
      elif deep_unlearned(merged):
        mark = CAVEAT_MARKS["deep_unlearned"]
      if mark:
        caveats.append(f"{mark} {name} [{scale_name}]: {CAVEATS[mark]}")
      where = f"{name} [{scale_name}]{mark}"
      drawn = [f for f in FIGURE_LABELS if f"{scale_name}_{f}.png" in merged.get("figures", [])]
      if drawn:
        label = {**FIGURE_LABELS, "exact_vs_difficulty": f"exact match vs {study.difficulty}"}
        figures.append(
          f"{name} [{scale_name}]: "
          + ", ".join(f"[{label[f]}](results/{name}/{scale_name}_{f}.png)" for f in drawn)
        )
      for v in merged["verdicts"]:
        if v["status"] in by_status:
          by_status[v["status"]].setdefault(v["id"], []).append(where)
      clear = [r for r in merged.get("gains") or [] if r["clear"]]
      if clear:
        gains.append(
          f"{where} at "
          + ", ".join(f"{study.difficulty}={r['difficulty']} {r['gain']:+.2f}" for r in clear)
        )
      if any(v["status"] == verdicts_lib.NOT_JUDGED for v in merged["verdicts"]):
        unjudged.append(f"{name} [{scale_name}] (some verdicts)")

  def claims(status: str) -> str:
    groups = sorted(by_status[status].items())
    text = "; ".join(f"({i}) {verdicts_lib.TITLES.get(i, i)}: {', '.join(w)}" for i, w in groups)
    return text or "nothing yet"

  links = ", ".join(
    f"[{n}](results/{n}/README.md)" for n in studies.STUDIES if (out_dir / n / "README.md").exists()
  )
  # A device string has commas of its own ("cpu: AMD EPYC, 2 cores"): devices are joined by
  # "and", each followed by the studies that ran on it.
  ran_on = "; ".join(
    f"{k} scale on " + " and ".join(f"{d} ({', '.join(names)})" for d, names in v.items())
    for k, v in devices.items()
  )
  return [
    "- **Reproduced** (PASS): " + claims(verdicts_lib.PASS) + ".",
    "- **Not reproduced** (FAIL): " + claims(verdicts_lib.FAIL) + ".",
    "- **Not yet judged**: "
    + ("; ".join(unjudged) or "nothing")
    + "."
    + (f" Devices: {ran_on}." if ran_on else "")
    + "".join(f" {c}." for c in caveats)
    + (
      " Clear gains of sleep N = 4 over N = 1 at single difficulties (descriptive, not "
      f"verdicts; see the study pages): {'; '.join(gains)}."
      if gains
      else ""
    )
    + " Verdicts (a)-(d), numbers and figures: [results/README.md](results/README.md)"
    + (f"; per study: {links}." if links else "."),
  ] + (["- **Figures**: " + "; ".join(figures) + "."] if figures else [])


def update_readme_summary(readme: pathlib.Path, out_dir: pathlib.Path) -> bool:
  """Rewrites the block between SUMMARY_BEGIN and SUMMARY_END of `readme` from `out_dir`.

  Returns whether the file has the block (a README without it is left alone).
  """
  text = readme.read_text()
  start, end = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
  if start < 0 or end < start:
    return False
  block = "\n".join([SUMMARY_BEGIN, *summary_lines(out_dir), SUMMARY_END])
  readme.write_text(text[:start] + block + text[end + len(SUMMARY_END) :])
  return True


def verdict_lines(results: Mapping[str, Any]) -> list[str]:
  """Printable verdict lines of every scale of a merged study."""
  out = []
  for scale_name, merged in results["scales"].items():
    for v in merged["verdicts"]:
      out.append(f"{results['study']} [{scale_name}] {v['line']}")
  return out


def _earlier_lines(merged: Mapping[str, Any] | None) -> list[str]:
  """The index's lines on slices left out and on earlier designs of a scale."""
  if not merged:
    return []
  out = []
  if merged.get("outdated"):
    out.append(f"  - left out (made by older settings): {', '.join(merged['outdated'])}")
  settings = merged.get("settings") or {}
  out += [f"  - tried before: {t}" for t in settings.get("tried") or ()]
  out += [f"  - probe: {t}" for t in settings.get("probes") or ()]
  return out


def _cpu_long_factors() -> str:
  """Which studies have a cpu_long scale and how many times the cpu scale's steps it trains."""
  return ", ".join(
    f"{name} {study.scales['cpu_long'].num_steps / study.scales['cpu'].num_steps:g}x"
    for name, study in studies.STUDIES.items()
    if "cpu_long" in study.scales
  )


def write_index(out_dir: pathlib.Path) -> None:
  """results/README.md: every study, its scales and devices, its verdicts, what is missing."""
  lines = [
    "# Reproduction results",
    "",
    'Index of the studies of "Language Models Need Sleep" reproduced with this framework. Every '
    "file under a study's directory is written by `scripts/reproduce.py` (train and evaluate "
    "through `python -m sleepnet.main` / `python -m sleepnet.evaluate`, then `--merge`); this "
    "index is regenerated by every merge. Nothing here is typed in by hand.",
    "",
    "| study | scale | device | (a) deep-half gain | (b) no fall with N "
    "| (c) transformer at chance | (d) gain grows |",
    "|---|---|---|---|---|---|---|",
  ]
  details: list[str] = []
  not_reproduced: list[str] = []
  without: list[str] = []  # "study (scales)" with no results
  judged = False
  for name, study in studies.STUDIES.items():
    path = out_dir / name / "results.json"
    data = json.loads(path.read_text()) if path.exists() else None
    scales = data["scales"] if data else {s: None for s in studies.scale_names(study)}
    # Link a study only once a merge has written its page.
    link = f"[{name}]({name}/README.md)" if (out_dir / name / "README.md").exists() else name
    title = f"[{study.title}]({name}/README.md)" if data else study.title
    details += [f"### {title}", "", f"Claim: {study.claim}", ""]
    empty = [k for k, m in scales.items() if not m or m["status"] != "results"]
    failed: list[tuple[str, dict, str]] = []  # (scale, verdict, what was tried)
    passed_at: dict[str, list[str]] = {}  # verdict id -> the scales where it passes
    if empty:
      without.append(f"{name} ({', '.join(empty)})")
    for scale_name, merged in scales.items():
      if not merged or merged["status"] != "results":
        cells = [link, scale_name, "–", *[verdicts_lib.NOT_JUDGED] * 4]
        lines.append("| " + " | ".join(cells) + " |")
        details.append(f"- `{scale_name}`: **no results yet**; every verdict is not yet judged.")
        details += _earlier_lines(merged)
        continue
      status = {v["id"]: v["status"] for v in merged["verdicts"]}
      judged |= any(x != verdicts_lib.NOT_JUDGED for x in status.values())
      lines.append(
        f"| {link} | {scale_name} | {', '.join(merged['devices'])} | "
        + " | ".join(status[k] for k in "abcd")
        + " |"
      )
      details.append(
        f"- `{scale_name}` ({', '.join(merged['devices'])}; commit {', '.join(merged['commits'])}):"
      )
      details += [f"  - {v['line']}" for v in merged["verdicts"]]
      if gains := gain_line(merged, study.difficulty):
        details.append(f"  - {gains}")
      if costs := ablation_line(merged, study.difficulty):
        details.append(f"  - {costs}")
      if nothing_learned(merged):
        details.append(f"  - {NOTHING_LEARNED}")
      if warning := compared_unlearned_line(merged):
        details.append(f"  - {warning}")
      if no_hops_learned(merged):
        details.append(f"  - {NO_HOPS_LEARNED}")
      if warning := deep_unlearned_line(merged):
        details.append(f"  - {warning}")
      if merged["missing"]:
        details.append(f"  - not run yet: {', '.join(merged['missing'])}")
      details += _earlier_lines(merged)
      settings = merged["settings"] or {}
      task = ", ".join(f"{k}={v}" for k, v in (settings.get("task") or {}).items())
      tried = (
        f"{', '.join(merged['variants'])} at {settings.get('num_steps')} steps, batch "
        f"{settings.get('batch_size')}, lr {settings.get('lr')} (warmup "
        f"{settings.get('warmup_steps')}, cosine), d_model {settings.get('d_model')}"
        f"{_positions(settings)}, seeds "
        f"{settings.get('seeds')}, task {task}"
      )
      for v in merged["verdicts"]:
        if v["status"] == verdicts_lib.FAIL:
          failed.append((scale_name, v, tried))
        elif v["status"] == verdicts_lib.PASS:
          passed_at.setdefault(v["id"], []).append(scale_name)
    # A claim that fails at one scale and passes at another of the same study says so where it
    # fails: a reader of this list should not conclude it never reproduces.
    for scale_name, v, tried in failed:
      elsewhere = passed_at.get(v["id"])
      also = f" It passes at {', '.join(f'`{s}`' for s in elsewhere)} (above)." if elsewhere else ""
      not_reproduced.append(
        f'- {name} [{scale_name}], claim ({v["id"]}) "{verdicts_lib.TITLES[v["id"]]}" does '
        f"not reproduce: {v['line']} Tried: {tried}.{also}"
      )
    details.append("")
  lines += [""]
  if without:
    lines += [
      "**No results yet** (every verdict there is not yet judged, and no number is reported): "
      + "; ".join(without)
      + ".",
      "",
    ]
  lines += ["## Per study", "", *details]
  lines += ["## Where a claim does not reproduce", ""]
  if not not_reproduced:
    not_reproduced = [
      "No verdict has failed at the scales with results; see the per-study lines for what is "
      "still not yet judged."
      if judged
      else "Nothing has been judged yet: no study has results, so no claim can be said to "
      "reproduce or not."
    ]
  lines += [*not_reproduced, ""]
  lines += ["## The paper's own numbers", ""]
  lines += [
    "Only GSM-Infinite numbers could be recovered (from secondary sources: podcast and blog "
    "summaries of the paper), with a "
    "pretrained initialisation and 4 sleep loops: "
    + ", ".join(
      f"{ops}-op {before:.0%} -> {after:.0%}" for ops, (before, after) in studies.PAPER_GSM.items()
    )
    + ". The GSM studies print them beside ours. "
    + PAPER_DIFFERENCES
    + " No Rule 110 or Depo numbers were recoverable.",
    "",
  ]
  lines += [
    "",
    "## Verdict definitions (computed by `scripts/verdicts.py`, never asserted in a test)",
    "",
  ]
  lines += ["```", verdicts_lib.__doc__.strip(), "```", ""]
  lines += ["## Chance", "", chance_lib.__doc__.strip(), ""]
  lines += ["Depo has a second reference level, the no-hop guess:", ""]
  lines += [inspect.cleandoc(chance_lib.no_hop_baseline.__doc__).split("\n\n", 1)[1], ""]
  lines += [
    "## Scales",
    "",
    "From the one scale table in `scripts/studies.py` (every variant of a study gets the same "
    "budget). `ci` results are never written here (they go to `runs/results-ci/`). `cpu`: tiny "
    "models, two seeds trained side by side (`--jobs 2`, one single-threaded process each). "
    f"`cpu_long` ({_cpu_long_factors()}): the cpu scale's models, task and seeds trained "
    "longer, for the variants the verdicts need (and the ablations a scale names). "
    "`gpu`: the full study on one GPU or TPU host, run for as long as it needs (the seeds side "
    "by side with `--jobs` where the device has room), resuming from its run directories after "
    "a preemption.",
    "",
    "| study | scale | steps | batch | d_model | seeds | task | variants |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, study in studies.STUDIES.items():
    for scale_name in studies.scale_names(study):
      sc = study.scales[scale_name]
      task = ", ".join(f"{k}={v}" for k, v in sc.task.items())
      lines.append(
        f"| {name} | {scale_name} | {sc.num_steps} | {sc.batch_size} | {sc.d_model} | "
        f"{list(sc.seeds)} | {task} | {', '.join(sc.variants)} |"
      )
  lines += [
    "",
    "Reproduce a study: `python scripts/reproduce.py --study rule110 --scale cpu` (trains what is "
    "missing, then merges); on a GPU or TPU host, `python scripts/reproduce.py --study rule110 "
    "--scale gpu --jobs 1` (more jobs where the device has room; rerun it to resume after a "
    "preemption; `--todo` lists what is missing), and `python scripts/reproduce.py --study "
    "rule110 --merge` wherever the slice files are gathered.",
    "",
  ]
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "README.md").write_text("\n".join(lines).rstrip() + "\n")
