r"""GSM-Infinite-style problems: compute a quantity defined by equations that were evicted.

The equations (symbolic: "A = B + 3 ;", realistic: English sentences) fill the first windows; the
question comes after they are evicted. Difficulty = the number of operations. `variant` picks the
task: symbolic (gsm_symbolic) or realistic (gsm_realistic).

  python -m sleepnet.main --config experiments/gsm_infinite.py:smoke --workdir /tmp/gsm
  python -m sleepnet.evaluate --workdir /tmp/gsm --sleep_passes 1,4
  python -m sleepnet.main --config experiments/gsm_infinite.py:variant=realistic,model=sleep \
      --workdir /tmp/gsm_real

Two-stage training:

  python -m sleepnet.main --config experiments/gsm_infinite.py:stage=1 --workdir /tmp/gsm_s1
  python -m sleepnet.main --config experiments/gsm_infinite.py:stage=2,init_from=/tmp/gsm_s1 \
      --workdir /tmp/gsm_s2

Arguments (`:key=value,...`): variant (symbolic, realistic), model (transformer,
transformer_full, hybrid, sleep, deep), passes, stage (0, 1, 2), init_from, smoke; see
sleepnet/experiment.py.
"""

import ml_collections

from sleepnet import experiment as base

VARIANTS = {"symbolic": "gsm_symbolic", "realistic": "gsm_realistic"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The GSM-Infinite experiment; see the module docstring for `arg`."""
  args = base.parse_arg(
    arg, variant="symbolic", model="sleep", passes=4, stage=0, init_from="", smoke=False
  )
  if args.variant not in VARIANTS:
    raise ValueError(f"unknown variant {args.variant!r}; valid variants: {', '.join(VARIANTS)}")
  task = VARIANTS[args.variant]
  config = base.base_config()
  config.task_name = task
  small = dict(ops_min=1, ops_max=2, max_value=9, max_constant=9)  # one- or two-step problems
  if args.smoke and args.variant == "symbolic":
    config.task = base.task_config(task, window=16, seq_len=48, max_operands=2, **small)
  elif args.smoke:
    config.task = base.task_config(task, window=64, seq_len=192, **small)
  else:  # the tasks' defaults: 2-6 operations, values up to 99
    config.task = base.task_config(task)
  width, heads = (32, 2) if args.smoke else (128, 4)
  config.model_kind = args.model
  config.model = base.model_config(
    args.model, task, config.task, d_model=width, num_heads=heads, passes=args.passes
  )
  base.apply_stage(config, args)
  if args.smoke:
    base.apply_smoke(config)
  return config
