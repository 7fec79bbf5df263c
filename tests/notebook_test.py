"""The tour notebook runs top to bottom as plain Python, and is committed without outputs."""

import json
import pathlib
import tempfile

import matplotlib

matplotlib.use("Agg")  # before the notebook imports pyplot: no display in CI
import matplotlib.pyplot as plt

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "sleepnet_tour.ipynb"


def _code_cells() -> list[dict]:
  notebook = json.loads(NOTEBOOK.read_text())
  assert notebook["nbformat"] == 4
  return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_tour_notebook_is_committed_clean():
  cells = _code_cells()
  assert len(cells) >= 6
  for i, cell in enumerate(cells):
    # Outputs would go stale silently: the committed notebook carries code only.
    assert cell["outputs"] == [] and cell["execution_count"] is None, f"code cell {i} has outputs"
    # No IPython magics, so that it runs as plain Python (this test, `python` on the cells).
    magics = [line for line in cell["source"] if line.lstrip().startswith(("!", "%"))]
    assert not magics, f"code cell {i} uses IPython syntax: {magics}"
    # It imports the installed package and loads experiment files by path: no path edits.
    assert not any("sys.path" in line for line in cell["source"]), f"code cell {i} edits sys.path"


def test_tour_notebook_runs_every_cell(monkeypatch, tmp_path):
  monkeypatch.setenv("SLEEPNET_REPO", str(REPO))
  monkeypatch.setenv("SLEEPNET_TOUR_STEPS", "40")  # the workflow, not the learning
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its run directories land here
  namespace: dict = {"__name__": "__main__"}
  try:
    for i, cell in enumerate(_code_cells()):
      # The cells assert the mechanics themselves (N-independent first window, streaming).
      exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}:code cell {i}", "exec"), namespace)
  finally:
    plt.close("all")
  reports = namespace["reports"]
  assert sorted(reports) == ["hybrid, N=1", "sleep, N=4"]
  for report in reports.values():
    assert report["step"] == 40
    assert sorted(report["results"], key=int) == ["1", "2", "4"]
    assert report["results"]["4"]["num_examples"] == 256
  assert namespace["err"] < 1e-4
  assert namespace["run"].step == 40 and isinstance(namespace["pred"].correct, bool)
  assert list(tmp_path.glob("sleepnet_tour_*/smoke_model-hybrid/checkpoints"))
