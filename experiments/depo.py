r"""Depo: follow k successor links through a graph whose edges were evicted.

The edges ("name → name") fill the first windows; the question (a start node and k) comes after
they are evicted, and the answer is the node k hops away. Difficulty = k.

  python -m sleepnet.main --config experiments/depo.py:smoke --workdir /tmp/depo
  python -m sleepnet.evaluate --workdir /tmp/depo --sleep_passes 1,2,4
  python -m sleepnet.main --config experiments/depo.py:model=sleep,passes=4 --workdir /tmp/depo4
  python -m sleepnet.main --config experiments/depo.py:model=deep,passes=4 --workdir /tmp/depo_d

Two-stage training:

  python -m sleepnet.main --config experiments/depo.py:stage=1 --workdir /tmp/depo_s1
  python -m sleepnet.main --config experiments/depo.py:stage=2,init_from=/tmp/depo_s1 \
      --workdir /tmp/depo_s2

Arguments (`:key=value,...`): model (transformer, transformer_full, hybrid, sleep, deep), passes,
stage (0, 1, 2), init_from, smoke; see sleepnet/experiment.py.
"""

import ml_collections

from sleepnet import experiment as base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The Depo experiment; see the module docstring for `arg`."""
  args = base.parse_arg(arg, model="sleep", passes=4, stage=0, init_from="", smoke=False)
  config = base.base_config()
  config.task_name = "depo"
  if args.smoke:  # 3-4 one-syllable nodes, k <= 2: two fact windows of 16, one question window
    config.task = base.task_config(
      "depo", window=16, seq_len=48, n_min=3, n_max=4, k_min=1, k_max=2,
      syllables_min=1, syllables_max=1,
    )  # fmt: skip
  else:  # the task's defaults: 8-16 nodes, k in 1..8, L = 64, T = 256
    config.task = base.task_config("depo", window=64, seq_len=256, k_min=1, k_max=8)
  width, heads = (32, 2) if args.smoke else (128, 4)
  config.model_kind = args.model
  config.model = base.model_config(
    args.model, "depo", config.task, d_model=width, num_heads=heads, passes=args.passes
  )
  base.apply_stage(config, args)
  if args.smoke:
    base.apply_smoke(config)
  return config
