"""Experiment configs: every experiment x model kind resolves, arguments parse, errors name keys."""

import importlib.util
import pathlib
import re

import pytest

from sleepnet import run_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPERIMENTS = ("rule110", "depo", "gsm_infinite")
KINDS = ("transformer", "transformer_full", "hybrid", "sleep", "deep")


def load(name):
  """Loads experiments/<name>.py the way config_flags does (by path, not as a package)."""
  spec = importlib.util.spec_from_file_location(f"exp_{name}", ROOT / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("smoke", [False, True])
def test_every_model_kind_resolves(name, smoke):
  exp = load(name)
  for kind in KINDS:
    config = exp.get_config(f"model={kind},passes=4" + (",smoke" if smoke else ""))
    model, task = run_config.resolve(config)
    assert config.model_kind == kind
    assert model.window == (None if kind == "transformer_full" else task.window)
    n_blocks = {"deep": 16}.get(kind, 4)
    assert len(model.blocks) == n_blocks, kind
    assert model.sleep_passes == (4 if kind == "sleep" else 1), kind
    if kind.startswith("transformer"):
      assert set(model.blocks) == {"attn"}
    else:
      assert model.blocks[:2] == ("gdn", "attn") and "gdn" in model.blocks


def test_deep_is_depth_matched_to_the_sleep_model():
  exp = load("rule110")
  sleep, deep = exp.get_config("model=sleep,passes=4"), exp.get_config("model=deep,passes=4")
  assert len(deep.model.blocks) == len(sleep.model.blocks) * sleep.model.sleep_passes == 16
  assert deep.model.blocks == ("gdn", "attn") * 8 and deep.model.sleep_passes == 1
  assert len(exp.get_config("model=deep,passes=2").model.blocks) == 8


def test_realistic_rule110_defaults_follow_the_prototype():
  c = load("rule110").get_config(None)
  assert (c.task.width, c.task.window, c.task.seq_len, c.task.t_max) == (16, 17, 34, 8)
  assert (c.model.d_model, c.model.num_heads, c.model.blocks) == (64, 4, ("gdn", "attn") * 2)
  assert (c.batch_size, c.num_steps) == (64, 4000)
  o = c.optimizer
  assert (o.lr, o.warmup_steps, o.end_lr, o.grad_clip, o.weight_decay) == (1e-3, 200, 1e-4, 1, 0.01)


def test_gsm_variants_and_two_stage():
  exp = load("gsm_infinite")
  assert exp.get_config("variant=realistic,smoke").task_name == "gsm_realistic"
  assert exp.get_config("smoke").task_name == "gsm_symbolic"
  with pytest.raises(ValueError, match="valid variants: symbolic, realistic"):
    exp.get_config("variant=visual")
  s1 = exp.get_config("stage=1,passes=4")
  s2 = exp.get_config("stage=2,passes=4,init_from=/runs/s1")
  assert (s1.model.sleep_passes, s1.init_from) == (1, "")
  assert (s2.model.sleep_passes, s2.init_from, s2.stage) == (4, "/runs/s1", 2)
  # Stage 2 without a stage-1 workdir is refused when the run starts.
  with pytest.raises(run_config.ConfigError, match="init_from"):
    run_config.resolve(exp.get_config("stage=2"))


def test_arguments_parse_and_errors_name_the_problem():
  exp = load("depo")
  c = exp.get_config("model=sleep,passes=3,smoke=true")
  assert c.model.sleep_passes == 3 and c.num_steps == 40
  with pytest.raises(ValueError, match="valid model kinds: transformer, transformer_full, hybrid"):
    exp.get_config("model=foo")
  with pytest.raises(ValueError, match=r"unknown config argument 'pases'; valid: model, passes"):
    exp.get_config("pases=4")
  with pytest.raises(ValueError, match="passes='x' is not a int"):
    exp.get_config("passes=x")
  with pytest.raises(ValueError, match="stage=2 is two-stage training of model=sleep"):
    exp.get_config("model=deep,stage=2")


def test_every_config_key_has_a_comment_and_no_code_defaults():
  """Each key assignment in sleepnet/experiment.py carries a trailing one-line comment, and the
  library never falls back to `config.get(key, default)`."""
  base = (ROOT / "sleepnet" / "experiment.py").read_text()
  assignments = re.findall(r"^\s+(?:c|m)\.[a-z_.]+ = .*$", base, flags=re.M)
  assert len(assignments) > 40
  assert [a for a in assignments if "  # " not in a] == []
  for module in ("train", "evaluation", "checkpoint", "sharding", "metrics", "main", "evaluate"):
    source = (ROOT / "sleepnet" / f"{module}.py").read_text()
    assert not re.search(r"config[\w.]*\.get\(", source), module


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_smoke_is_small(name):
  c = load(name).get_config("smoke")
  assert c.num_steps <= 50 and c.batch_size <= 16 and c.model.d_model <= 32
  assert c.eval.num_test <= 64 and c.eval.at_end


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_task_window_override_moves_the_model_window(name):
  config = load(name).get_config("model=hybrid")
  config.lock()  # as config_flags holds it while it applies --config.task.window=...
  window = 2 * config.task.window  # wider windows fit any task's facts
  config.task.window, config.task.seq_len = window, 3 * window
  assert config.model.window == window
  model, task = run_config.resolve(config)
  assert model.window == task.window == window
  # Full attention keeps no window whatever the task's is.
  full = load(name).get_config("model=transformer_full")
  full.task.window = window
  assert full.model.window is None
