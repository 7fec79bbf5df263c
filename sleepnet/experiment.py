"""Shared pieces of every experiment config, as functions (no inheritance).

An experiment file (experiments/rule110.py, depo.py, gsm_infinite.py) defines `get_config(arg)`
with these functions (imported as `from sleepnet import experiment as base`):

  args = base.parse_arg(arg, model="sleep", passes=4, smoke=False, ...)  # ":model=deep,smoke"
  config = base.base_config()                      # every training key, with its default
  config.task_name, config.task = ..., base.task_config(name, window=..., ...)
  config.model = base.model_config(args.model, name, config.task, passes=args.passes, ...)
  base.apply_stage(config, args)                   # two-stage training
  if args.smoke: base.apply_smoke(config)          # train and evaluate in seconds on a CPU

Every key of the returned ConfigDict has a one-line comment here, and every default lives here:
the library reads keys, it never supplies defaults.

Model kinds (`model=`):
  transformer       windowed attention only: forgets each evicted window completely
  transformer_full  attention over the whole sequence, no eviction (the upper bound)
  hybrid            GDN + attention, N = 1 (the paper's main baseline)
  sleep             GDN + attention that sleeps: N = passes (wake pass included)
  deep              depth-matched hybrid: as many layers as the sleeping model runs per window
                    (len(blocks) * passes, alternating gdn/attn), with N = 1

Two-stage training (`stage=`): stage 1 trains the sleep model with N = 1; stage 2 continues from
stage 1's parameters (`init_from=<stage-1 workdir>`, fresh optimizer) with N = passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import ml_collections
from ml_collections import config_dict

from sleepnet.tasks import get_task

MODEL_KINDS = ("transformer", "transformer_full", "hybrid", "sleep", "deep")
HYBRID = ("gdn", "attn", "gdn", "attn")  # the paper's block pattern


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """Parses a config argument such as "model=sleep,passes=4,smoke" (big_vision-style).

  Args:
    arg: the text after ":" in `--config file.py:arg`; None or "" gives the defaults.
    **defaults: every accepted key and its default; values are parsed to the default's type. A
      bare key sets a bool to True.

  Returns:
    A ConfigDict of all keys.

  Raises:
    ValueError: an unknown key (the valid ones are listed) or a value that does not parse.
  """
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, has_value, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; valid: {', '.join(defaults)}")
    want = type(defaults[key])
    if want is bool:
      if has_value and text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={text!r} is not a boolean")
      out[key] = not has_value or text.lower() in ("true", "1")
    elif not has_value:
      raise ValueError(f"config argument {key!r} needs a value ({key}=...)")
    else:
      try:
        out[key] = want(text)
      except ValueError:
        raise ValueError(f"config argument {key}={text!r} is not a {want.__name__}") from None
  return ml_collections.ConfigDict(out)


def task_config(name: str, **overrides: Any) -> ml_collections.ConfigDict:
  """Every field of task `name`'s config: its defaults, then `overrides` (checked now)."""
  spec = get_task(name)
  fields = dataclasses.asdict(spec.config_cls(**overrides))  # validates the combination
  return ml_collections.ConfigDict(fields)


def model_config(
  kind: str,
  task_name: str,
  task: ml_collections.ConfigDict,
  *,
  d_model: int,
  num_heads: int,
  passes: int,
  blocks: Sequence[str] = HYBRID,
) -> ml_collections.ConfigDict:
  """The `sleepnet.ModelConfig` fields of a model kind, matched to the task's window and vocab.

  Raises:
    ValueError: an unknown kind (the valid kinds are listed).
  """
  if kind not in MODEL_KINDS:
    raise ValueError(f"unknown model kind {kind!r}; valid model kinds: {', '.join(MODEL_KINDS)}")
  if passes < 1:
    raise ValueError(f"passes={passes} must be >= 1")
  blocks, window, n = tuple(blocks), task.window, 1
  if kind in ("transformer", "transformer_full"):
    blocks = ("attn",) * len(blocks)
    window = task.window if kind == "transformer" else None
  elif kind == "sleep":
    n = passes
  elif kind == "deep":
    blocks = blocks * passes  # e.g. 4 layers x 4 passes = 16 layers, N = 1
  m = ml_collections.ConfigDict()
  m.vocab_size = get_task(task_name).tokenizer.vocab_size  # the task tokenizer's vocabulary
  m.d_model = d_model  # width of the residual stream
  m.num_heads = num_heads  # attention heads, and GDN heads
  m.blocks = blocks  # the block pattern, one kind ("gdn" or "attn") per layer
  # A reference to task.window, so that one --config.task.window override moves both.
  ref = config_dict.FieldReference(None, int) if window is None else task.get_ref("window")
  m.window = ref  # L = eviction period, tied to task.window; None: never evicts (full attention)
  m.sleep_passes = n  # N, passes over each evicted window, wake pass included (1: no sleep)
  m.sleep_input = "hidden"  # what sleep passes 2..N read: "hidden" (recurrent depth) or "tokens"
  m.sleep_start = "carry"  # each sleep pass starts from the previous pass's fast weights
  m.sleep_final_window = False  # the last window of a sequence does not sleep (logits unchanged)
  m.num_kv_heads = config_dict.placeholder(int)  # grouped-query attention; None: num_heads
  m.head_dim = config_dict.placeholder(int)  # per-head width; None: d_model // num_heads
  m.gdn_value_dim = config_dict.placeholder(int)  # GDN value width per head; None: head_dim
  m.mlp_dim = config_dict.placeholder(int)  # SwiGLU hidden width; None: 4 * d_model, 0: no MLP
  m.conv_kernel = 4  # width of the GDN's causal depthwise convolution
  m.rope_base = 10_000.0  # RoPE frequency base
  m.position_embedding = "none"  # "window": learned in-window positions added to the embeddings
  m.norm_eps = 1e-6  # epsilon of every RMSNorm
  m.max_len = 4096  # KV-cache capacity for streaming when window is None
  m.gdn_impl = "chunked"  # "chunked" (matmul form, for training) or "reference" (per-token scan)
  m.gdn_chunk_size = 64  # chunk length of the chunked delta rule
  m.remat = True  # checkpoint every window pass: memory grows with N only by the carries
  m.tie_embeddings = False  # separate LM head
  m.dtype = "float32"  # matmuls and activations; "bfloat16": mixed precision (S, gates, logits f32)
  m.param_dtype = "float32"  # parameters and optimizer moments
  return m


def base_config() -> ml_collections.ConfigDict:
  """Every training key with its default (the realistic Rule 110 setting of this
  project's first CPU prototype).

  The experiment sets `task_name`, `task` and `model`.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0  # parameter init and the training example stream
  c.task_name = ""  # a registered task: rule110, depo, gsm_symbolic, gsm_realistic
  c.task = ml_collections.ConfigDict()  # every field of the task's config (window, seq_len, ...)
  c.model_kind = "sleep"  # one of MODEL_KINDS, recorded for tables (config.model is what runs)
  c.model = ml_collections.ConfigDict()  # sleepnet.ModelConfig fields (see model_config)
  c.stage = 0  # two-stage training: 0 single stage, 1 (N = 1), 2 (N > 1 from init_from)
  c.init_from = ""  # workdir whose latest parameters start this run ("": random init)
  c.train_sleep_passes = ()  # N drawn per step from these (e.g. (1, 2, 4)); (): model's N

  c.batch_size = 64  # global batch, split over the "data" and "fsdp" mesh axes and the processes
  c.grad_accum_steps = 1  # k > 1: each update runs as k microbatches of batch_size / k, in turn
  c.num_steps = 4000  # optimizer steps
  c.optimizer = ml_collections.ConfigDict()  # AdamW with warmup-cosine and global-norm clipping
  c.optimizer.lr = 1e-3  # peak learning rate, reached after the warmup
  c.optimizer.end_lr = 1e-4  # learning rate at the last step (cosine decay)
  c.optimizer.warmup_steps = 200  # linear warmup from 0
  c.optimizer.b1 = 0.9  # Adam first-moment decay
  c.optimizer.b2 = 0.999  # Adam second-moment decay
  c.optimizer.eps = 1e-8  # Adam denominator epsilon
  c.optimizer.weight_decay = 0.01  # decoupled, on matrices only (not norms, biases, gates)
  c.optimizer.grad_clip = 1.0  # global gradient-norm clip

  c.data_threads = 2  # threads generating training examples ahead of the step
  c.data_prefetch = 8  # batches prepared ahead of the step

  c.log_every = 50  # steps between log lines / metrics.jsonl / TensorBoard records
  c.eval_every = 0  # steps between held-out evaluations while training (0: none; see eval.*)
  c.checkpoint_every = 500  # steps between checkpoints (the last step is always saved)
  c.max_to_keep = 3  # checkpoints kept in DIR/checkpoints (older ones are deleted)

  c.mesh = (("data", -1), ("model", 1))  # mesh axes, sizes (-1: the rest); may add ("fsdp", n)
  c.sharding = ml_collections.ConfigDict()  # where parameters live (see sleepnet/sharding.py)
  c.sharding.rules = (("embedding|kernel", "model"), (".*", "replicate"))  # (regex, tactic)
  c.sharding.min_size = 2**14  # arrays with fewer elements are replicated whatever the rule
  c.distributed = False  # call jax.distributed.initialize() (multi-host; see sleepnet/main.py)

  c.data_dir = ""  # where the fixed evaluation sets are prepared ("": DIR/data)
  c.eval = ml_collections.ConfigDict()  # the fixed evaluation set and how to run it
  c.eval.at_end = True  # evaluate the final checkpoint when training ends (writes DIR/eval.json)
  c.eval.sleep_passes = (1, 4)  # N values to evaluate at (any N works with any trained model)
  c.eval.split = "test"  # "test" (held-out contents) or "train" (training distribution)
  c.eval.seed = 1234  # example stream of the evaluation set
  c.eval.num_test = 2048  # examples in the test split of the evaluation set
  c.eval.num_train = 512  # examples in its train split
  c.eval.batch_size = 256  # global evaluation batch (the last one is padded)
  return c


def apply_stage(config: ml_collections.ConfigDict, args: ml_collections.ConfigDict) -> None:
  """Two-stage training from `args.stage` (0, 1 or 2) and `args.init_from`.

  Stage 1 trains with N = 1; stage 2 continues from stage 1's parameters with N = passes. The
  model weights never depend on N, so stage 2 loads stage 1's checkpoint as it is.
  """
  if args.stage not in (0, 1, 2):
    raise ValueError(f"stage={args.stage} must be 0 (single stage), 1 or 2")
  if args.stage and args.model != "sleep":
    raise ValueError(f"stage={args.stage} is two-stage training of model=sleep, not {args.model}")
  config.stage = args.stage
  config.init_from = args.init_from
  if args.stage == 1:
    config.model.sleep_passes = 1


def apply_smoke(config: ml_collections.ConfigDict) -> None:
  """Shrinks training and evaluation so a run trains and evaluates in seconds on one CPU core."""
  config.batch_size = 16
  config.num_steps = 40
  config.optimizer.lr = 3e-3
  config.optimizer.warmup_steps = 5
  config.log_every = 10
  config.checkpoint_every = 20
  config.eval.num_test = 64
  config.eval.num_train = 32
  config.eval.batch_size = 32
