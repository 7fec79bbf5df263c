"""sleepnet: language models that sleep.

A hybrid of windowed attention and Gated DeltaNet layers keeps a KV cache only for the current
window of L tokens; when the window is full the model sleeps, making N passes over it that write
it into the GDN fast weights, then clears the cache and goes on.

The public names are imported lazily, so that light entry points (`python -m sleepnet.tasks.export`)
do not pay for importing JAX and Flax.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
  "ModelConfig": "sleepnet.config",
  "preset": "sleepnet.config",
  "Model": "sleepnet.model",
  "ModelState": "sleepnet.model",
  "gated_delta_rule": "sleepnet.recurrence",
  "generate": "sleepnet.sampling",
  "load_run": "sleepnet.trained",
  "predict": "sleepnet.trained",
  "TrainedRun": "sleepnet.trained",
  "from_pretrained": "sleepnet.pretrained",
  "save_pretrained": "sleepnet.pretrained",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f"module 'sleepnet' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted([*globals(), *_EXPORTS])
