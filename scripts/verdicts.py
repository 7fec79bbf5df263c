"""The four verdicts of a study, as exact formulas over exact-match numbers (no fitted thresholds).

Notation: D = the reported difficulties of the study, sorted; m_v(d) = the mean over seeds of the
exact match of variant v at difficulty d, evaluated at the N it was trained with; n(d) = the
evaluation examples at d (per seed); S_v = the seeds of v; sd = the standard deviation over seeds
(ddof = 1; 0 with one seed); A_v(s) = the mean over d in D of seed s's exact match.

  (a) deep-half gain:  D_hi = the last ceil(|D|/2) values of D;
      gain = mean_{d in D_hi} [m_sleep4(d) - m_hybrid(d)];  PASS iff gain >= 0.20.
  (b) no fall with N:  chain hybrid (N=1) -> sleep2 (N=2, if trained) -> sleep4 (N=4); for every
      consecutive pair (a, b): drop = mean A_a - mean A_b,
      tol = max(sd(A_a), sd(A_b), 2 * sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b)) with p = mean A and
      n = sum_d n(d) * |S|;  PASS iff drop <= tol for every pair.
  (c) windowed transformer at chance:  excess = mean_{d in D} [m_transformer(d) - chance(d)],
      c = mean_{d in D} chance(d), n = sum_d n(d) * |S|;
      tol = 2 * sqrt(c(1-c)/n) + 3/n  (binomial 2 sigma, plus 3/n so that a chance level of 0 is
      not failed by a single lucky example);  PASS iff excess <= tol.
  (d) gain grows with depth:  g(d) = m_sleep4(d) - m_hybrid(d); slope = the least-squares slope
      of g against the rank of d in D (0, 1, ..., |D|-1, so Depo's k = 1, 2, 4, 8, 16 are evenly
      spaced), se = its standard error from the residuals (|D| >= 3);
      e = 2 * sqrt(p_s(1-p_s)/n_s + p_h(1-p_h)/n_h), the binomial two-sigma of g(max D), with
      p = m_sleep4(max D), m_hybrid(max D) and n = n(max D) * |S|;
      PASS iff slope - 2 * se > 0 (with |D| = 2: slope > 0) and g(max D) > e. A slope within
      two standard errors of 0 is not a trend: floor effects (both variants near 0 at the
      deepest d) otherwise make a noise-level slope look like growth. And a loss that shrinks
      with depth is not a gain that grows: sleep behind N = 1 at every d, least at the deepest
      (a collapsed sleep model next to a hybrid that learned only the easy cases), fails. The
      deepest gain must be beyond sampling noise, not merely positive: with three difficulties
      the residual se can be tiny by luck, and a sleep model collapsed to a constant guess then
      passed with g(max D) = +0.008 on 512 examples per variant (gsm_realistic, cpu, 1000
      steps), where e = 0.032.

A verdict whose variants have no results is "not yet judged". These are computed and printed by
scripts/reproduce.py; no test asserts them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

PASS, FAIL, NOT_JUDGED = "PASS", "FAIL", "not yet judged"
GAIN_THRESHOLD = 0.20  # (a): the "at least 20 points"

# Per variant and difficulty, the exact match of every seed (at the training N).
PerSeed = Mapping[str, Mapping[int, Sequence[float]]]

TITLES = {
  "a": "sleep N=4 beats the N=1 hybrid by >= 20 points on the deeper half of the difficulties",
  "b": "accuracy does not fall as N goes from 1 to 4 (beyond the seed spread)",
  "c": "the windowed transformer is at chance on questions about evicted facts",
  "d": "the gain of sleep over N=1 grows with depth",
}

# The variants without whose results a verdict is not judged; (b) also uses sleep2 when it has
# results. `reproduce.py --todo` lists these first, so that the first runs finished decide
# verdicts.
NEEDS = {
  "a": ("hybrid", "sleep4"),
  "b": ("hybrid", "sleep4"),
  "c": ("transformer",),
  "d": ("hybrid", "sleep4"),
}
ALSO_USES = {"b": ("sleep2",)}
# Every variant a verdict reads, those some verdict needs first (in verdict order), then those
# only used: the order of `reproduce.py --todo` and the variants of the cpu_long scales.
VARIANTS_BY_NEED = tuple(
  dict.fromkeys(
    [v for vid in TITLES for v in NEEDS[vid]]
    + [v for vid in TITLES for v in ALSO_USES.get(vid, ())]
  )
)


def verdicts_using(variant: str) -> list[str]:
  """The ids of the verdicts that need or use `variant`'s results, e.g. ["a", "b", "d"]."""
  return [v for v in TITLES if variant in NEEDS[v] + ALSO_USES.get(v, ())]


@dataclasses.dataclass(frozen=True)
class Verdict:
  """One verdict: its id (a-d), PASS / FAIL / not yet judged, a printable line and its numbers."""

  id: str
  status: str
  line: str
  numbers: dict[str, Any]

  def to_json(self) -> dict[str, Any]:
    """As JSON data."""
    return {"id": self.id, "title": TITLES[self.id], **dataclasses.asdict(self)}


def _mean(xs: Sequence[float]) -> float:
  return sum(xs) / len(xs)


def _sd(xs: Sequence[float]) -> float:
  return statistics.stdev(xs) if len(xs) > 1 else 0.0


def _m(acc: PerSeed, v: str, d: int) -> float:
  return _mean(acc[v][d])


def two_sigma_of_difference(pa: float, na: int, pb: float, nb: int) -> float:
  """Two binomial standard errors of pa - pb, proportions over na and nb answers."""
  return 2 * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)


def _missing(acc: PerSeed, variants: Sequence[str], difficulties: Sequence[int]) -> list[str]:
  return [v for v in variants if v not in acc or any(d not in acc[v] for d in difficulties)]


def _not_judged(vid: str, why: str) -> Verdict:
  return Verdict(vid, NOT_JUDGED, f"({vid}) {NOT_JUDGED}: {why}", {})


def _seed_means(acc: PerSeed, v: str, difficulties: Sequence[int]) -> list[float]:
  """A_v(s): each seed's mean exact match over the difficulties."""
  seeds = len(acc[v][difficulties[0]])
  return [_mean([acc[v][d][s] for d in difficulties]) for s in range(seeds)]


def deeper_half(difficulties: Sequence[int]) -> list[int]:
  """The difficulties (a) judges: the upper half (the middle one too, for an odd count)."""
  return list(difficulties[len(difficulties) // 2 :])


def deep_half_gain(acc: PerSeed, difficulties: Sequence[int]) -> Verdict:
  """(a) sleep4 - hybrid, averaged over the deeper half of the difficulties."""
  if not difficulties or (miss := _missing(acc, NEEDS["a"], difficulties)):
    return _not_judged("a", f"no results for {', '.join(miss) if difficulties else 'any run'}")
  hi = deeper_half(difficulties)
  gain = _mean([_m(acc, "sleep4", d) - _m(acc, "hybrid", d) for d in hi])
  status = PASS if gain >= GAIN_THRESHOLD else FAIL
  detail = ", ".join(f"{d}: {_m(acc, 'hybrid', d):.3f} -> {_m(acc, 'sleep4', d):.3f}" for d in hi)
  line = (
    f"({'a'}) {status}: mean gain of sleep N=4 over hybrid N=1 on the deeper half {hi} = "
    f"{gain:+.3f} (threshold +{GAIN_THRESHOLD:.2f}); per difficulty {detail}"
  )
  return Verdict("a", status, line, {"deeper_half": hi, "gain": gain})


def no_fall_with_n(
  acc: PerSeed, difficulties: Sequence[int], examples: Mapping[int, int]
) -> Verdict:
  """(b) hybrid -> sleep2 -> sleep4: no drop beyond max(seed spreads, 2 binomial SEs)."""
  if not difficulties or (miss := _missing(acc, NEEDS["b"], difficulties)):
    return _not_judged("b", f"no results for {', '.join(miss) if difficulties else 'any run'}")
  chain = [v for v in ("hybrid", "sleep2", "sleep4") if not _missing(acc, (v,), difficulties)]
  pairs, ok = [], True
  for a, b in itertools.pairwise(chain):
    sa, sb = _seed_means(acc, a, difficulties), _seed_means(acc, b, difficulties)
    pa, pb = _mean(sa), _mean(sb)
    na = sum(examples[d] for d in difficulties) * len(sa)
    nb = sum(examples[d] for d in difficulties) * len(sb)
    tol = max(_sd(sa), _sd(sb), two_sigma_of_difference(pa, na, pb, nb))
    drop = pa - pb
    ok &= drop <= tol
    pairs.append({"from": a, "to": b, "from_mean": pa, "to_mean": pb, "drop": drop, "tol": tol})
  status = PASS if ok else FAIL
  detail = "; ".join(
    f"{p['from']} {p['from_mean']:.3f} -> {p['to']} {p['to_mean']:.3f} "
    f"(drop {p['drop']:+.3f}, tolerance {p['tol']:.3f})"
    for p in pairs
  )
  return Verdict(
    "b",
    status,
    f"(b) {status}: mean exact match over {list(difficulties)}: {detail}",
    {"pairs": pairs},
  )


def excess_over_chance(
  acc: PerSeed,
  variant: str,
  difficulties: Sequence[int],
  examples: Mapping[int, int],
  chance: Mapping[int, float],
) -> tuple[float, float, float, int]:
  """(excess, c, tol, n) of verdict (c)'s formula, for any variant with every difficulty."""
  seeds = len(acc[variant][difficulties[0]])
  excess = _mean([_m(acc, variant, d) - chance[d] for d in difficulties])
  c = _mean([chance[d] for d in difficulties])
  n = sum(examples[d] for d in difficulties) * seeds
  return excess, c, 2 * math.sqrt(c * (1 - c) / n) + 3 / n, n


def above_chance(
  acc: PerSeed,
  difficulties: Sequence[int],
  examples: Mapping[int, int],
  chance: Mapping[int, float],
) -> dict[str, dict[str, Any]]:
  """Which variants learned the task at all: exact match above chance beyond (c)'s tolerance.

  Not a verdict: a reading aid. Where no model beats chance (the scale too small to learn the
  task), (b) and (c) pass trivially and (a), (d) say nothing about sleep.
  """
  if not difficulties or any(d not in chance for d in difficulties):
    return {}
  out = {}
  for v in acc:
    if _missing(acc, (v,), difficulties):
      continue
    excess, _, tol, _ = excess_over_chance(acc, v, difficulties, examples, chance)
    out[v] = {"excess": excess, "tol": tol, "learned": excess > tol}
  return out


def gain_by_difficulty(
  acc: PerSeed,
  difficulties: Sequence[int],
  examples: Mapping[int, int],
  better: str = "sleep4",
  worse: str = "hybrid",
) -> list[dict[str, Any]]:
  """`better` - `worse` (by default sleep4 - hybrid) at each difficulty, and whether it is clear.

  Not a verdict: a reading aid. (a) judges the deeper half and (d) the trend; this shows where in
  the difficulty range sleep helps, e.g. at the frontier of what a small budget learns. `clear`:
  the gain exceeds its binomial two-sigma (as in (d), n = examples x seeds) *and* every seed of
  `better` scores above every seed of `worse`, so neither sampling nor seed luck explains it;
  `clear_loss`: the same the other way round (`worse` clearly ahead).
  """
  if better not in acc or worse not in acc:
    return []
  rows = []
  for d in difficulties:
    if d not in acc[worse] or d not in acc[better]:
      continue
    h, s = acc[worse][d], acc[better][d]
    gain = _mean(s) - _mean(h)
    noise = two_sigma_of_difference(_mean(s), examples[d] * len(s), _mean(h), examples[d] * len(h))
    rows.append(
      {
        "difficulty": d,
        "gain": gain,
        "two_sigma": noise,
        "clear": gain > noise and min(s) > max(h),
        "clear_loss": -gain > noise and min(h) > max(s),
      }
    )
  return rows


def transformer_at_chance(
  acc: PerSeed,
  difficulties: Sequence[int],
  examples: Mapping[int, int],
  chance: Mapping[int, float],
) -> Verdict:
  """(c) windowed transformer - chance, averaged over the difficulties, within 2 sigma + 3/n."""
  if not difficulties or (miss := _missing(acc, NEEDS["c"], difficulties)):
    return _not_judged("c", f"no results for {', '.join(miss) if difficulties else 'any run'}")
  if any(d not in chance for d in difficulties):
    return _not_judged("c", "no chance level for some difficulties")
  excess, c, tol, n = excess_over_chance(acc, "transformer", difficulties, examples, chance)
  status = PASS if excess <= tol else FAIL
  line = (
    f"(c) {status}: windowed transformer {c + excess:.3f} vs chance {c:.3f} "
    f"(excess {excess:+.3f}, tolerance {tol:.3f}, {n} examples)"
  )
  return Verdict(
    "c", status, line, {"transformer": c + excess, "chance": c, "excess": excess, "tol": tol}
  )


def gain_grows_with_depth(
  acc: PerSeed, difficulties: Sequence[int], examples: Mapping[int, int]
) -> Verdict:
  """(d) the slope of (sleep4 - hybrid) per difficulty rank is positive, the deepest gain real."""
  if len(difficulties) < 2 or (miss := _missing(acc, NEEDS["d"], difficulties)):
    why = (
      "fewer than two difficulties"
      if len(difficulties) < 2
      else f"no results for {', '.join(miss)}"
    )
    return _not_judged("d", why)
  gains = [_m(acc, "sleep4", d) - _m(acc, "hybrid", d) for d in difficulties]
  slope, se = ols_slope(gains)
  deepest = difficulties[-1]
  ps, ph = _m(acc, "sleep4", deepest), _m(acc, "hybrid", deepest)
  ns = examples[deepest] * len(acc["sleep4"][deepest])
  nh = examples[deepest] * len(acc["hybrid"][deepest])
  noise = two_sigma_of_difference(ps, ns, ph, nh)
  status = PASS if slope - 2 * (se or 0.0) > 0 and gains[-1] > noise else FAIL
  detail = ", ".join(f"{d}: {g:+.3f}" for d, g in zip(difficulties, gains, strict=True))
  if se is None:
    se_text, rule = "", "slope > 0"
  else:
    se_text, rule = f" (standard error {se:.4f})", "slope - 2 se > 0"
  line = (
    f"(d) {status}: slope of the gain per difficulty rank = {slope:+.4f}{se_text}; gains {detail} "
    f"(passes iff {rule} and the gain at the deepest difficulty > its binomial two-sigma "
    f"{noise:.3f})"
  )
  return Verdict(
    "d",
    status,
    line,
    {
      "gains": dict(zip(map(str, difficulties), gains, strict=True)),
      "slope": slope,
      "slope_se": se,
      "deepest_noise": noise,
    },
  )


def ols_slope(ys: Sequence[float]) -> tuple[float, float | None]:
  """Least-squares slope of ys against 0, 1, ..., and its standard error (None for 2 points)."""
  xs = list(range(len(ys)))
  mx, my = _mean(xs), _mean(ys)
  sxx = sum((x - mx) ** 2 for x in xs)
  slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
  if len(ys) < 3:
    return slope, None
  resid = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys, strict=True)]
  return slope, math.sqrt(sum(r * r for r in resid) / (len(ys) - 2) / sxx)


def judge(
  acc: PerSeed,
  difficulties: Sequence[int],
  examples: Mapping[int, int],
  chance: Mapping[int, float],
) -> list[Verdict]:
  """All four verdicts of one study at one scale, from its main-group results."""
  return [
    deep_half_gain(acc, difficulties),
    no_fall_with_n(acc, difficulties, examples),
    transformer_at_chance(acc, difficulties, examples, chance),
    gain_grows_with_depth(acc, difficulties, examples),
  ]
