"""How far the chunked delta rule was from the per-token scan at every study's settings.

Until the chunked form inverted its [c, c] triangular systems by forward substitution, it used
a product expansion (I + A)⁻¹ = (I − A)(I + A²)(I + A⁴)… (whole, for chunks of odd length or up
to 16 tokens; as the leaf of a recursive 2×2 block split otherwise). That expansion cancels in
float32 when keys inside a chunk are correlated and β is near 1. This script measures, for each
study and scale, on the study's own test sequences (seq_len − 1 input tokens, as training feeds
them) and its own model configs, the largest relative difference between the logits and the
fast weights of `gdn_impl="chunked"` and `gdn_impl="reference"` (the per-token scan):

  kernel  "series": the former inverse, reproduced below, so that the audit can be rerun;
          "exact": the current one.
  gates   "init": the parameters at initialisation (seed 0);
          "trained": every GDN block's β pushed to sigmoid(6) ≈ 0.998 and its decay to
          α ≥ 0.998, where trained models put them (the worst case for the old expansion).

A study whose "series" error exceeds 1e-4 trained on a corrupted path. Writes
results/chunked_kernel_audit.{json,md}.

  .venv/bin/python scripts/audit_chunked_kernel.py [--examples 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import studies  # a sibling module: `python scripts/...` puts scripts/ first on the path
from flax import nnx

import sleepnet
from sleepnet import evaluation, recurrence, run_config
from sleepnet.gdn import GatedDeltaNet
from sleepnet.tasks import base as task_base
from sleepnet.tasks.registry import get_task

ROOT = pathlib.Path(__file__).resolve().parent.parent
THRESHOLD = 1e-4
VARIANTS = ("hybrid", "sleep4")  # the GDN variants; every other GDN variant shares their shapes


def series_inverse(A: jax.Array) -> jax.Array:
  """(I + A)⁻¹ as the kernel computed it before the fix (kept only for this audit)."""
  c = A.shape[-1]
  if c <= 16 or c % 2:
    power = -A
    inv = jnp.eye(c, dtype=A.dtype) + power
    span = 2
    while span < c:
      power = power @ power
      inv = inv + inv @ power
      span *= 2
    return inv
  h = c // 2
  diag = series_inverse(jnp.stack([A[..., :h, :h], A[..., h:, h:]]))
  T11, T22 = diag[0], diag[1]
  T21 = -(T22 @ (A[..., h:, :h] @ T11))
  top = jnp.concatenate([T11, jnp.zeros_like(T11)], axis=-1)
  return jnp.concatenate([top, jnp.concatenate([T21, T22], axis=-1)], axis=-2)


@contextlib.contextmanager
def kernel(name: str):
  exact = recurrence._unit_lower_inverse
  if name == "series":
    recurrence._unit_lower_inverse = series_inverse
  try:
    yield
  finally:
    recurrence._unit_lower_inverse = exact


def push_gates_to_trained_values(model: sleepnet.Model) -> None:
  for _, module in nnx.iter_modules(model):
    if isinstance(module, GatedDeltaNet):
      module.beta_proj.bias[...] = jnp.full(module.beta_proj.bias.shape, 6.0)
      module.dt_bias[...] = jnp.full(module.dt_bias.shape, -9.0)
      module.A_log[...] = jnp.zeros(module.A_log.shape)


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def forward(model: sleepnet.Model, tokens: jax.Array, sleep_passes: int):
  # A new jitted function per call: the kernel is swapped at trace time, so no cached trace of
  # the other kernel may be reused.
  return nnx.jit(lambda m, t: m.forward(t, sleep_passes=sleep_passes))(model, tokens)


def audit_one(study: str, scale: str, variant: str, num_examples: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    run = studies.runs_of(study, scale, [variant], [0], pathlib.Path(tmp))[0]
    config = studies.parse_command(run.stages[-1].argv)
  model_config, task_config = run_config.resolve(config)
  spec = get_task(config.task_name)
  examples = [spec.generate(task_config, 0, i, "test") for i in range(num_examples)]
  tokens = jnp.asarray(task_base.collate(examples)["tokens"][:, :-1])
  passes = model_config.sleep_passes
  row = dict(
    study=study,
    scale=scale,
    variant=variant,
    window=model_config.window,
    input_tokens=int(tokens.shape[1]),
    chunk_size=model_config.gdn_chunk_size,
    sleep_passes=passes,
    d_model=model_config.d_model,
    num_heads=model_config.num_heads,
  )
  for gates in ("init", "trained"):
    models = {}
    for impl in ("chunked", "reference"):
      models[impl] = sleepnet.Model(model_config.replace(gdn_impl=impl), rngs=nnx.Rngs(0))
      if gates == "trained":
        push_gates_to_trained_values(models[impl])
    logits_ref, fast_ref = forward(models["reference"], tokens, passes)
    for name in ("series", "exact"):
      with kernel(name):
        logits, fast = forward(models["chunked"], tokens, passes)
      row[f"{name}_{gates}_logits"] = rel_err(logits, logits_ref)
      row[f"{name}_{gates}_fast"] = max(
        rel_err(a, b) for a, b in zip(fast, fast_ref, strict=True) if b is not None
      )
  row["series_max"] = max(v for k, v in row.items() if k.startswith("series_"))
  row["exact_max"] = max(v for k, v in row.items() if k.startswith("exact_"))
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--examples", type=int, default=8, help="test sequences per setting")
  parser.add_argument("--out", default=str(ROOT / "results" / "chunked_kernel_audit"))
  args = parser.parse_args()
  jax.config.update("jax_default_matmul_precision", "highest")
  rows = []
  for study in studies.STUDIES:
    for scale in ("cpu", "gpu"):  # cpu_long trains the cpu scale's models and task
      for variant in VARIANTS:
        row = audit_one(study, scale, variant, args.examples)
        rows.append(row)
        print(
          f"{study:14s} {scale:4s} {variant:7s} L={row['window']} T={row['input_tokens']}: "
          f"series {row['series_max']:.1e}  exact {row['exact_max']:.1e}",
          flush=True,
        )
  device = evaluation.device_record()
  if device["platform"] == "cpu":
    label = f"cpu: {device['host_cpu']}, {device['host_cores']} cores"
  else:
    label = f"{device['platform']}: {device['device_kind']}"
  record = dict(
    device=label,
    device_record=device,
    examples=args.examples,
    seed=0,
    threshold=THRESHOLD,
    rows=rows,
  )
  out = pathlib.Path(args.out)
  out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
  lines = [
    "# The chunked delta rule against the per-token scan, at every study's settings",
    "",
    f"Written by `scripts/audit_chunked_kernel.py` on {record['device']}; {args.examples} test "
    "sequences of each study (seed 0), model parameters from seed 0. Each cell is the largest "
    "relative difference (max |chunked − reference| / max |reference|) of the logits or the "
    "fast weights, at initialisation and with trained-like gates (β ≈ 0.998, α ≥ 0.998). "
    "`series` is the former inverse, `exact` the current forward substitution. "
    f"**Bold**: above {THRESHOLD:g}, a study that trained on a corrupted path.",
    "",
    "| study | scale | variant | L | input tokens | series, init | series, trained-like "
    "| exact, init | exact, trained-like |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]

  def cell(row, name, gates):
    v = max(row[f"{name}_{gates}_logits"], row[f"{name}_{gates}_fast"])
    return f"**{v:.1e}**" if v > THRESHOLD else f"{v:.1e}"

  for r in rows:
    lines.append(
      f"| {r['study']} | {r['scale']} | {r['variant']} | {r['window']} | {r['input_tokens']} | "
      + " | ".join(cell(r, n, g) for n in ("series", "exact") for g in ("init", "trained"))
      + " |"
    )
  out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
  main()
