"""Model FLOPs (`sleepnet.costs`) against XLA's own count, and the throughput that training logs.

XLA's cost analysis of a compiled program counts the body of a loop once, whatever its trip
count, so it is compared on loop-free pieces: one window (a single chunk of the delta rule, no
scan over windows) and one sleep pass. The sequence-level count is then checked against those
XLA pieces, combined by hand for a sequence of three windows with N = 4 (three wake passes and
two windows that sleep three passes each). The configs are wide (d_model 256, vocabulary 512)
so that matrix work, which the analytic count covers, dominates XLA's total.
"""

import json

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import sleepnet
from sleepnet import checkpoint, costs, run_config, throughput

B, L = 2, 32


def xla_flops(fn, *args) -> float:
  return float(jax.jit(fn).lower(*args).compile().cost_analysis()["flops"])


def config(name="hybrid", **changes):
  return sleepnet.preset(name, size="base", vocab_size=512, window=L, **changes)


@pytest.mark.parametrize("name", ["hybrid", "transformer"])
def test_one_window_forward_matches_xla_within_10_percent(name):
  cfg = config(name)
  graphdef, params = nnx.split(sleepnet.Model(cfg, rngs=nnx.Rngs(0)))
  tokens = jnp.zeros((B, L), jnp.int32)
  xla = xla_flops(lambda p, t: nnx.merge(graphdef, p)(t), params, tokens)
  assert costs.forward_flops(cfg, L) * B == pytest.approx(xla, rel=0.1)


def test_sequence_count_combines_xla_window_and_sleep_costs():
  cfg = config(sleep_passes=4)
  graphdef, params = nnx.split(sleepnet.Model(cfg, rngs=nnx.Rngs(0)))
  emb = jnp.ones((B, L, cfg.d_model))

  def pieces(p, x):
    m = nnx.merge(graphdef, p)
    return m, m.zero_fast_weights(B)

  def wake_with_logits(p, x):
    m, fast = pieces(p, x)
    return m._logits(m._window_pass(x, fast)[0])

  def wake(p, x):
    m, fast = pieces(p, x)
    return m._window_pass(x, fast)

  def middle_pass(p, x):  # a sleep pass whose hidden states feed another: injection + pass
    m, fast = pieces(p, x)
    return m._window_pass(x + m.inject(m.inject_norm(x)), fast)

  def wake_then_last_pass(p, x):  # a sleep scan of length 1 (XLA counts it right)
    m, fast = pieces(p, x)
    h, woken = m._window_pass(x, fast)
    return m._sleep(x, h, fast, woken, 2)

  # The last pass of a sleep only writes fast weights: XLA drops what nothing reads.
  last_pass = xla_flops(wake_then_last_pass, params, emb) - xla_flops(wake, params, emb)
  middle = xla_flops(middle_pass, params, emb)
  # T = 3L, N = 4: three wake passes with logits; two windows sleep (2 middle + 1 last pass).
  by_hand = 3 * xla_flops(wake_with_logits, params, emb) + 2 * (2 * middle + last_pass)
  assert costs.forward_flops(cfg, 3 * L) * B == pytest.approx(by_hand, rel=0.1)
  # The final window sleeps only when asked to, and only when it is full.
  final = cfg.replace(sleep_final_window=True)
  sleep = 2 * middle + last_pass
  assert costs.forward_flops(final, 3 * L) * B == pytest.approx(by_hand + sleep, rel=0.1)
  assert costs.forward_flops(final, 3 * L - 1) == costs.forward_flops(cfg, 3 * L - 1)


def test_training_logs_flops_tflops_and_mfu(trained):
  config = json.loads((trained / "config.json").read_text())
  rows = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
  model_config, task = run_config.resolve(checkpoint.load_config(trained))
  want = costs.train_flops_per_step(
    model_config, batch_size=config["batch_size"], seq_len=task.seq_len - 1
  )
  for row in rows:
    assert row["flops_per_step"] == want
    assert row["tflops_per_sec"] == pytest.approx(want * row["steps_per_sec"] / 1e12)
    assert row["mfu"] > 0 and row["mfu"] == pytest.approx(
      row["tflops_per_sec"] / throughput.peak_tflops() / jax.device_count()
    )


class FakeDevice:
  def __init__(self, platform, kind):
    self.platform, self.device_kind = platform, kind


@pytest.mark.parametrize(
  ("kind", "tflops"),
  [
    ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA H200", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("TPU v4", 275.0),
    ("TPU v5 lite", 197.0),
    ("TPU v5", 459.0),
    ("TPU v6 lite", 918.0),
  ],
)
def test_peak_table(kind, tflops):
  platform = "gpu" if "NVIDIA" in kind else "tpu"
  assert throughput.peak_tflops(FakeDevice(platform, kind)) == tflops


def test_an_unknown_accelerator_is_named():
  with pytest.raises(KeyError, match="'Mystery X1'"):
    throughput.peak_tflops(FakeDevice("gpu", "Mystery X1"))


def test_cpu_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
  first = throughput.measured_cpu_tflops(cache_dir=tmp_path, size=256)
  assert first > 0 and (tmp_path / "cpu_peak.json").exists()
  monkeypatch.setattr(jax, "jit", lambda *a, **k: pytest.fail("measured again"))
  assert throughput.measured_cpu_tflops(cache_dir=tmp_path, size=256) == first
