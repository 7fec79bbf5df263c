"""Draws the README's picture of sleep: `python scripts/plot_sleep.py [--out docs/sleep.png]`.

Three windows of L tokens; each gets one wake pass (the only pass that makes predictions). When a
window is full and more tokens follow, the model sleeps: N - 1 more passes over the same window
write it into the GDN fast weights S, then the KV cache is cleared. S is all that crosses a
window boundary.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

WAKE, SLEEP, FAST, KV = "#4c78a8", "#b279a2", "#f58518", "#9ecae9"


def box(ax, x, y, w, h, color, text, fontsize=9, textcolor="white"):
  ax.add_patch(
    FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="none")
  )
  ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=textcolor)


def arrow(ax, start, end, color="black", style="-|>", lw=1.4):
  ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=lw))


def draw(passes: int, out: pathlib.Path) -> None:
  fig, ax = plt.subplots(figsize=(11, 4.6))
  width, gap = 3.0, 1.4
  row_h, row_gap = 0.42, 0.12
  wake_y = 0.6
  for w in range(3):
    x0 = w * (width + gap)
    last = w == 2
    ax.text(x0 + width / 2, -0.25, f"window {w + 1} (L tokens)", ha="center", fontsize=9)
    box(ax, x0, 0.0, width, 0.42, KV, "KV cache (≤ L tokens)", textcolor="black")
    box(ax, x0, wake_y, width, row_h, WAKE, "wake pass (predicts)")
    top = wake_y + row_h
    if not last:
      for n in range(2, passes + 1):
        y = wake_y + (n - 1) * (row_h + row_gap)
        box(ax, x0, y, width, row_h, SLEEP, f"sleep pass {n} (no input)")
        arrow(ax, (x0 + 0.25, y - row_gap - 0.02), (x0 + 0.25, y + 0.02), color="#555")
        top = y + row_h
      ax.text(x0 + width + 0.08, 0.21, "cleared", fontsize=8, color="#c00", va="center")
    else:
      ax.text(
        x0 + width / 2,
        top + 0.25,
        "question here: evicted windows\nare reachable only through S",
        ha="center",
        fontsize=9,
        style="italic",
      )
    # The fast weights leave the window from its last pass and enter the next window's wake pass.
    if not last:
      sx = x0 + width + gap / 2
      sy = (top + wake_y) / 2
      box(ax, sx - 0.35, sy - 0.25, 0.7, 0.5, FAST, "S", fontsize=12)
      arrow(ax, (x0 + width, top - row_h / 2), (sx - 0.35, sy + 0.1), color=FAST, lw=2)
      arrow(ax, (sx + 0.35, sy - 0.1), (x0 + width + gap, wake_y + row_h / 2), color=FAST, lw=2)
  ax.text(
    0.0,
    wake_y + passes * (row_h + row_gap) + 0.55,
    f"sleep_passes N = {passes}: every pass over a window counts, the wake pass included "
    "(N = 1 is the plain hybrid)",
    fontsize=10,
    weight="bold",
  )
  ax.text(
    0.0,
    wake_y + passes * (row_h + row_gap) + 0.2,
    'sleep_input="hidden": pass n reads the token embeddings + W·RMSNorm(top hidden state of '
    'pass n-1).  sleep_start="carry": pass n starts from the S that pass n-1 left.\n'
    "Only the fast weights S cross a window boundary; KV cache and conv history are cleared.",
    fontsize=8.5,
    color="#333",
  )
  ax.set_xlim(-0.2, 3 * width + 2 * gap + 0.2)
  ax.set_ylim(-0.5, wake_y + passes * (row_h + row_gap) + 0.8)
  ax.axis("off")
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=130, bbox_inches="tight")
  print(f"wrote {out}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--passes", type=int, default=4)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/sleep.png"))
  args = parser.parse_args()
  draw(args.passes, args.out)


if __name__ == "__main__":
  main()
