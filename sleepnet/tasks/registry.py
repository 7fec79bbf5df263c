"""The task registry: task name -> config class, generator and tokenizer."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

from sleepnet.tasks import base, depo, gsm_realistic, gsm_symbolic, rule110


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """Everything needed to generate and read one task.

  Attributes:
    name: the registry name.
    config_cls: the frozen config dataclass; its defaults are the default task.
    generate: ``generate(config, seed, index, split="train") -> Example``, a pure function.
    tokenizer: the task's tokenizer (fixed vocabulary, independent of the config).
  """

  name: str
  config_cls: type[base.TaskConfig]
  generate: Callable[..., base.Example]
  tokenizer: base.Tokenizer

  def default_config(self) -> base.TaskConfig:
    """Returns the config with every default."""
    return self.config_cls()

  def text(self, example: base.Example) -> str:
    """Returns the example as a person reads it (PAD and FILL dropped)."""
    return base.render_text(example, self.tokenizer)


TASKS: Mapping[str, TaskSpec] = types.MappingProxyType(
  {
    spec.name: spec
    for spec in (
      TaskSpec(rule110.NAME, rule110.Rule110Config, rule110.generate, rule110.TOKENIZER),
      TaskSpec(depo.NAME, depo.DepoConfig, depo.generate, depo.TOKENIZER),
      TaskSpec(
        gsm_symbolic.NAME,
        gsm_symbolic.GsmSymbolicConfig,
        gsm_symbolic.generate,
        gsm_symbolic.TOKENIZER,
      ),
      TaskSpec(
        gsm_realistic.NAME,
        gsm_realistic.GsmRealisticConfig,
        gsm_realistic.generate,
        gsm_realistic.TOKENIZER,
      ),
    )
  }
)


def get_task(name: str) -> TaskSpec:
  """Returns the registered task `name`.

  Raises:
    ValueError: `name` is not registered (the message lists the valid names).
  """
  try:
    return TASKS[name]
  except KeyError:
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def config_from_overrides(name: str, overrides: Mapping[str, Any]) -> base.TaskConfig:
  """Returns the config of task `name` with `overrides` applied (strings parsed to field types).

  Example: ``config_from_overrides("depo", {"k_max": "16", "window": "128"})``.

  Raises:
    ValueError: unknown task, unknown keys (named, with the valid keys listed), unparsable values
      or a config that fails validation.
  """
  return base.parse_config(get_task(name).config_cls, overrides)
