"""The GPU slice tooling: which wheels travel to a lent GPU machine, and the slice command's usage.

The device-side run itself needs a GPU and is not run here; on this CPU it was checked by hand in
a venv holding only the device image's packages (WORKSPACE.md, "Running the gpu scale").
"""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_wheels  # noqa: E402


def test_wheels_carry_every_pin_the_device_lacks_and_never_its_jax():
  carried = gpu_wheels.closure(gpu_wheels.pinned(), "3.12")
  pins = {canonicalize_name(r.name) for r in gpu_wheels.pinned()}
  lacking = pins - gpu_wheels.DEVICE_HAS - gpu_wheels.NEVER_CARRY
  assert lacking <= set(carried)
  assert {"tensorflow-datasets", "grain", "ml-collections", "tensorboardx"} <= lacking
  assert not set(carried) & (gpu_wheels.NEVER_CARRY | gpu_wheels.DEVICE_HAS)
  # Dependencies of dependencies travel too (tensorflow-datasets -> promise; grain -> portpicker).
  assert {"promise", "portpicker", "dm-tree"} <= set(carried)
  # The versions are the ones installed here (the ones CI tests), pinned ones as pinned, except
  # the few the device's jax needs in another version.
  for r in gpu_wheels.pinned():
    name = canonicalize_name(r.name)
    if name in gpu_wheels.DEVICE_VERSIONS:
      assert carried[name] == gpu_wheels.DEVICE_VERSIONS[name]
    elif name in carried:
      assert r.specifier.contains(carried[name]), (name, carried[name], r)


def test_device_versions_replace_pinned_packages_only():
  pins = {canonicalize_name(r.name) for r in gpu_wheels.pinned()}
  assert set(gpu_wheels.DEVICE_VERSIONS) <= pins - gpu_wheels.NEVER_CARRY


def test_wheel_needs_reads_the_requirements_that_apply_on_the_device(tmp_path):
  wheel = tmp_path / "demo-1.0-py3-none-any.whl"
  metadata = "\n".join(
    [
      "Metadata-Version: 2.1",
      "Name: demo",
      "Version: 1.0",
      "Requires-Dist: jax>=0.11.1",
      "Requires-Dist: Tree_Scope>=0.1.7",
      'Requires-Dist: colorama; sys_platform == "win32"',
      'Requires-Dist: jaxtyping; extra == "testing"',
      'Requires-Dist: tomli; python_version < "3.11"',
    ]
  )
  with zipfile.ZipFile(wheel, "w") as z:
    z.writestr("demo-1.0.dist-info/METADATA", metadata)
  assert gpu_wheels.wheel_needs(wheel, "3.12") == {"jax", "tree-scope"}
  assert gpu_wheels.wheel_needs(wheel, "3.10") == {"jax", "tree-scope", "tomli"}


def test_wheel_markers_are_evaluated_for_the_devices_python():
  # A requirement that holds only below Python 3.9 is not carried to a 3.12 machine.
  only_old = Requirement('tensorboardx; python_version < "3.9"')
  assert gpu_wheels.closure([only_old], "3.12") == {}
  assert "tensorboardx" in gpu_wheels.closure([Requirement("tensorboardx")], "3.12")


def test_slice_command_names_its_arguments():
  p = subprocess.run(
    ["bash", str(ROOT / "scripts" / "gpu_slice.sh"), "rule110"], capture_output=True, text=True
  )
  assert p.returncode == 2 and "usage: bash scripts/gpu_slice.sh STUDY VARIANTS" in p.stderr


def test_rehearsal_needs_the_devices_python():
  script = str(ROOT / "scripts" / "gpu_rehearsal.sh")
  p = subprocess.run(["bash", script], capture_output=True, text=True)
  assert p.returncode == 2 and "usage: bash scripts/gpu_rehearsal.sh PYTHON3.12" in p.stderr
  # This interpreter is not 3.12 in CI (3.11); a 3.12 one would start building the venv.
  if sys.version_info[:2] != (3, 12):
    p = subprocess.run(["bash", script, sys.executable], capture_output=True, text=True)
    assert p.returncode == 2 and "the device runs 3.12" in p.stderr


def _git(repo, *args):
  return subprocess.run(
    ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
  ).stdout


def test_run_tarballs_are_kept_on_a_side_branch_and_restored(tmp_path):
  # A throwaway repository with one commit on main, and a tarball as gpu_slice.sh returns it.
  repo = tmp_path / "repo"
  repo.mkdir()
  env = dict(
    os.environ,
    REPO=str(repo),
    GIT_AUTHOR_NAME="t",
    GIT_AUTHOR_EMAIL="t@t",
    GIT_COMMITTER_NAME="t",
    GIT_COMMITTER_EMAIL="t@t",
  )
  subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
  (repo / "README").write_text("x\n")
  _git(repo, "add", "README")
  subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=env)
  head = _git(repo, "rev-parse", "HEAD")
  run_dir = repo / "runs" / "rule110" / "gpu" / "hybrid" / "seed0" / "checkpoints" / "1000"
  run_dir.mkdir(parents=True)
  (run_dir / "state").write_text("step 1000\n")
  name = "run-rule110-gpu-hybrid-seed0.tgz"
  subprocess.run(["tar", "-czf", str(tmp_path / name), "runs"], cwd=repo, check=True)
  shutil.rmtree(repo / "runs")

  def runs(*args, cwd=tmp_path):
    return subprocess.run(
      ["bash", str(ROOT / "scripts" / "gpu_runs.sh"), *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
    )

  assert "nothing kept" in runs("list").stdout
  kept = runs("keep", name)  # a path relative to the caller's directory
  assert kept.returncode == 0, kept.stderr
  # main, its index and the checkout are untouched; the branch holds the tarball.
  assert _git(repo, "rev-parse", "HEAD") == head
  assert _git(repo, "status", "--porcelain") == ""
  assert _git(repo, "ls-tree", "--name-only", "gpu-runs").split() == [name]
  assert name in runs("list").stdout
  restored = runs("restore", "rule110")
  assert restored.returncode == 0 and f"restored {name}" in restored.stdout
  assert (run_dir / "state").read_text() == "step 1000\n"
  assert runs("restore", "depo").returncode == 1  # holds no depo run
  # One variant at a time (what one call can carry): another variant's runs stay packed.
  shutil.rmtree(repo / "runs")
  assert runs("restore", "rule110", "sleep4").returncode == 1
  assert not (repo / "runs").exists()
  assert runs("restore", "rule110", "hybrid").returncode == 0
  assert (run_dir / "state").read_text() == "step 1000\n"
  # A file that is not a run tarball is refused; drop forgets a kept one.
  (tmp_path / "notes.tgz").write_text("x")
  bad = runs("keep", "notes.tgz")
  assert bad.returncode == 2 and "not a run tarball" in bad.stderr
  assert runs("drop", name).returncode == 0
  assert _git(repo, "ls-tree", "--name-only", "gpu-runs") == ""
  assert runs("drop", name).returncode == 2
