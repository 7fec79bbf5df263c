"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert len(blocks) >= 2
  namespace: dict = {}
  for block in blocks:  # Later blocks use names defined by earlier ones, as a reader would.
    exec(compile(block, str(README), "exec"), namespace)
  assert namespace["logits"].shape == (2, 64, 64)
  assert namespace["out"].tokens.shape[0] == 2
