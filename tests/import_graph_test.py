"""The package's import graph: no cycles, and every module imports on its own."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sleepnet"
# The absl entry points each define --workdir, so they cannot share one interpreter.
ENTRY_POINTS = ("sleepnet.main", "sleepnet.evaluate")


def modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(ROOT).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = path
  return out


def imports_of(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
  """Every sleepnet module `name` imports, at module level or inside functions."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
        base = base.rstrip(".")
      for alias in node.names:
        # `from sleepnet import train` imports a module; `from sleepnet.x import f` imports x.
        candidate = f"{base}.{alias.name}"
        found.add(candidate if candidate in known else base)
  return {m for m in found if m in known and m != name}


def test_no_import_cycles():
  mods = modules()
  known = set(mods)
  graph = {name: imports_of(name, path, known) for name, path in mods.items()}
  # A package's __init__ importing its own submodules is how packages expose them; a cycle
  # through it would still show up as one between the submodules themselves.
  graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
  cycles = []

  def visit(node, stack, done):
    if node in stack:
      cycles.append(" -> ".join([*stack[stack.index(node) :], node]))
      return
    if node in done:
      return
    for dep in sorted(graph[node]):
      visit(dep, [*stack, node], done)
    done.add(node)

  done: set[str] = set()
  for name in sorted(graph):
    visit(name, [], done)
  assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))
  assert graph["sleepnet.train"] and "sleepnet.train" not in graph["sleepnet.evaluation"]


def test_every_module_imports_in_a_fresh_interpreter():
  names = [n for n in modules() if n not in ENTRY_POINTS]
  for group in (names, *([e] for e in ENTRY_POINTS)):
    code = f"import importlib\nfor m in {group!r}:\n  importlib.import_module(m)\n"
    result = subprocess.run(
      [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
