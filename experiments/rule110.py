r"""Rule 110 with eviction: roll a 16-cell automaton t steps after its initial state was evicted.

The initial state x⁰ fills the first window; the question (t) and the answer (x^t) come in the next
one, so x⁰ is reachable only through the GDN fast weights. Difficulty = t.

Train, then evaluate at several N (the README's main command is the smoke run):

  python -m sleepnet.main --config experiments/rule110.py:smoke --workdir /tmp/r110
  python -m sleepnet.evaluate --workdir /tmp/r110 --sleep_passes 1,4

Realistic runs (about 5 min for N = 1 and 12-14 min for N = 4 on a 2-core CPU):

  python -m sleepnet.main --config experiments/rule110.py:model=hybrid --workdir /tmp/n1
  python -m sleepnet.main --config experiments/rule110.py:model=sleep,passes=4 --workdir /tmp/n4
  python -m sleepnet.main --config experiments/rule110.py:model=deep,passes=4 --workdir /tmp/d16

Two-stage training (stage 1 with N = 1, then N = 4 from its weights):

  python -m sleepnet.main --config experiments/rule110.py:stage=1 --workdir /tmp/r110_s1
  python -m sleepnet.main --config experiments/rule110.py:stage=2,init_from=/tmp/r110_s1 \
      --workdir /tmp/r110_s2

Arguments (`:key=value,...`): model (transformer, transformer_full, hybrid, sleep, deep), passes
(N of `sleep`, depth factor of `deep`), stage (0, 1, 2), init_from (a workdir), smoke. Any key can
also be overridden on the command line, e.g. `--config.model.sleep_passes=2`.
"""

import ml_collections

from sleepnet import experiment as base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The Rule 110 experiment; see the module docstring for `arg`."""
  args = base.parse_arg(arg, model="sleep", passes=4, stage=0, init_from="", smoke=False)
  config = base.base_config()
  config.task_name = "rule110"
  if args.smoke:  # 8 cells, t <= 2: two windows of L = 9
    config.task = base.task_config("rule110", window=9, seq_len=18, width=8, t_min=1, t_max=2)
  else:  # W = 16 cells, L = W + 1 = 17, t in 1..8
    config.task = base.task_config("rule110", window=17, seq_len=34, width=16, t_min=1, t_max=8)
  width, heads = (32, 2) if args.smoke else (64, 4)
  config.model_kind = args.model
  config.model = base.model_config(
    args.model, "rule110", config.task, d_model=width, num_heads=heads, passes=args.passes
  )
  base.apply_stage(config, args)
  if args.smoke:
    base.apply_smoke(config)
  return config
