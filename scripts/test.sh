#!/usr/bin/env bash
# Sets up .venv (if needed) and runs everything CI runs: ruff format check, ruff lint, pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff format --check .
.venv/bin/ruff check .
if [ "$#" -eq 0 ]; then
  # The adversarial recurrence tests switch JAX to float64 for their oracle (jax.enable_x64).
  # Run after the rest of the suite in one process, XLA:CPU crashed there on a fresh clone
  # (a segfault while compiling, an abort while serializing); alone they pass, so they get a
  # process of their own.
  .venv/bin/python -m pytest --ignore=tests/recurrence_adversarial_test.py
  .venv/bin/python -m pytest tests/recurrence_adversarial_test.py
else
  .venv/bin/python -m pytest "$@"
fi
