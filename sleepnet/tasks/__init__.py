"""Synthetic tasks for sleeping language models: Rule 110, Depo and GSM-Infinite-style problems.

Each task is a pure generator ``generate(config, seed, index, split) -> Example`` with its own
small tokenizer; the facts fill the earliest windows and the question comes after they are evicted
(see `sleepnet.tasks.base` for the layout and loss conventions). ``python -m
sleepnet.tasks.export`` writes examples as JSON lines.
"""

from sleepnet.tasks.base import (
  Example,
  Role,
  TaskConfig,
  Tokenizer,
  collate,
  render_text,
  role_windows,
  split_of,
)
from sleepnet.tasks.depo import DepoConfig
from sleepnet.tasks.gsm_realistic import GsmRealisticConfig
from sleepnet.tasks.gsm_symbolic import GsmSymbolicConfig
from sleepnet.tasks.registry import TASKS, TaskSpec, config_from_overrides, get_task
from sleepnet.tasks.rule110 import Rule110Config

__all__ = [
  "TASKS",
  "DepoConfig",
  "Example",
  "GsmRealisticConfig",
  "GsmSymbolicConfig",
  "Role",
  "Rule110Config",
  "TaskConfig",
  "TaskSpec",
  "Tokenizer",
  "collate",
  "config_from_overrides",
  "get_task",
  "render_text",
  "role_windows",
  "split_of",
]
