"""Evaluates a trained run: `python -m sleepnet.evaluate --workdir DIR [--sleep_passes 1,2,4,8]`.

Loads the latest checkpoint and the config of DIR, measures exact match and answer-token accuracy
on the task's fixed evaluation set by difficulty and by the number of sleep passes N (any N, not
only the trained one), writes DIR/eval.json and prints the markdown table. The logic lives in
`sleepnet.evaluation.evaluate`, callable from Python.
"""

import sys

from absl import app, flags

from sleepnet import checkpoint, evaluation, metrics, run_config, scoring, sharding

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by sleepnet.main.")
_SLEEP_PASSES = flags.DEFINE_list(
  "sleep_passes", None, "N values to evaluate at, e.g. 1,2,4,8 (default: config.eval)."
)
_SPLIT = flags.DEFINE_enum("split", None, ["test", "train"], "Split (default: config.eval).")
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  passes = _SLEEP_PASSES.value
  if passes is not None and not all(n.isdigit() and int(n) > 0 for n in passes):
    raise app.UsageError(f"--sleep_passes must be positive integers, got {','.join(passes)}")
  metrics.quiet_library_logs()
  try:
    config = checkpoint.load_config(_WORKDIR.value)
    sharding.initialize_distributed(config.distributed)  # before any other JAX call
    report = evaluation.evaluate(
      _WORKDIR.value,
      sleep_passes=[int(n) for n in passes] if passes else None,
      split=_SPLIT.value,
      config=config,
      log_table=False,  # printed below, to stdout
    )
  except (run_config.ConfigError, checkpoint.CheckpointError) as e:
    # Problems with the inputs, not bugs: say what is wrong, without a traceback.
    sys.exit(f"error: {e}")
  print(scoring.markdown_table(report))


if __name__ == "__main__":
  app.run(main)
