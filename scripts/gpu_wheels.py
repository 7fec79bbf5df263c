r"""Gathers, on this machine, the wheels a lent GPU machine needs to run sleepnet, into .whl/.

The lent H100/H200 machines (the `device` tool) have JAX with its CUDA plugin, flax, optax and
orbax, but not ml-collections, grain, tensorflow-datasets, tensorboardX and some of their
dependencies, and they cannot reach a package index. So the wheels travel with the working tree:

  .venv/bin/python scripts/gpu_wheels.py          # here: writes .whl/ (git-ignored), ~15 MB
  # then, through the device tool, with carry=[".whl"]:
  bash scripts/gpu_slice.sh rule110 hybrid 580     # there: install them, run one gpu slice

What is carried: every distribution that setup.cfg pins, and every distribution they need in turn
(read from the metadata installed in this venv, with markers evaluated for the device's Python
3.12 on Linux), except what the device image already holds (DEVICE_HAS, from the image's package
list in the device tool's KINDS.md, read 2026-11-17). The device's own jax and jaxlib always stay:
they must match its CUDA plugin. Versions are this venv's, the ones CI tests, so a slice on the
GPU runs the framework at the versions its tests pass with, except where the device's jax cannot
import this venv's version (DEVICE_VERSIONS: flax). `scripts/gpu_rehearsal.sh` runs the test
suite and a ci-scale slice on this CPU with the device's Python, jax and these wheels; the
slice's results record the jax and flax versions it ran.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.metadata as md
import pathlib
import shutil
import subprocess
import sys
import zipfile

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The 'cuda' image of the lent GPU machines (KINDS.md, "Python packages already there").
_DEVICE_IMAGE = """
  absl-py aiofiles attrs certifi charset-normalizer chex click cloudpickle contourpy cycler einops
  etils filelock fonttools fsspec humanize idna jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
  jaxtyping kiwisolver markdown-it-py matplotlib mdurl ml-dtypes msgpack numpy opt-einsum
  packaging pillow prometheus-client protobuf psutil pyarrow pygments pyparsing python-dateutil
  pyyaml requests rich scipy simplejson six tensorstore tqdm treescope typing-extensions
  typing-inspect mypy-extensions urllib3 uvloop wrapt zipp
  """
DEVICE_HAS = frozenset(canonicalize_name(n) for n in _DEVICE_IMAGE.split())
# Never carried: the device's jax must match its CUDA plugin; these are the accelerator's stack.
NEVER_CARRY = frozenset({"jax", "jaxlib", "numpy"})
# The device's jax and numpy (KINDS.md, "pip list, as a session saw it"), for the rehearsal.
DEVICE_JAX = "0.11.2"
DEVICE_NUMPY = "2.5.2"
# Carried in place of this venv's version, because the device's jax cannot import that one:
# flax 0.12.8 (pinned here for jax 0.10.2) subclasses jax.experimental.hijax.HiPrimitive, which
# jax 0.11 renamed HiPrim, so `from flax import nnx` fails there; 0.12.9 still uses the old name,
# 0.12.10 and later only names jax 0.11.2 has. 0.12.12 is the newest: the whole test suite passes
# with it on Python 3.12 and jax 0.11.2 (CPU), by scripts/gpu_rehearsal.sh.
DEVICE_VERSIONS = {"flax": "0.12.12"}
PLATFORMS = (
  "manylinux_2_28_x86_64",
  "manylinux_2_27_x86_64",
  "manylinux_2_24_x86_64",
  "manylinux_2_17_x86_64",
  "manylinux2014_x86_64",
  "manylinux1_x86_64",
)


def pinned() -> list[Requirement]:
  """setup.cfg's install_requires."""
  cfg = configparser.ConfigParser()
  cfg.read(ROOT / "setup.cfg")
  lines = cfg["options"]["install_requires"].splitlines()
  return [Requirement(x.strip()) for x in lines if x.strip() and not x.strip().startswith("#")]


def closure(roots: list[Requirement], python_version: str) -> dict[str, str]:
  """{distribution: version} of what the roots need and the device lacks.

  The version is the one installed here, or DEVICE_VERSIONS's; what a distribution needs is read
  from the metadata installed here (`download` checks that a DEVICE_VERSIONS wheel needs nothing
  beyond that).
  """
  env = dict(default_environment(), python_version=python_version, sys_platform="linux")
  env.update(platform_system="Linux", python_full_version=f"{python_version}.0")

  def applies(req: Requirement, extras: frozenset[str]) -> bool:
    # A requirement guarded by `extra == X` applies when its parent was asked for with X.
    if req.marker is None:
      return True
    return any(req.marker.evaluate(dict(env, extra=x)) for x in sorted(extras) or [""])

  todo = [r for r in roots if applies(r, frozenset())]
  seen: dict[tuple[str, frozenset[str]], str] = {}  # (name, extras asked for) -> version
  while todo:
    req = todo.pop()
    name = canonicalize_name(req.name)
    if name in NEVER_CARRY or name in DEVICE_HAS:
      continue  # the device's own copy (and whatever it needs) is used
    key = (name, frozenset(req.extras))
    if key in seen:
      continue
    try:
      seen[key] = DEVICE_VERSIONS.get(name) or md.version(req.name)
    except md.PackageNotFoundError as e:
      raise SystemExit(
        f"{req.name} is needed but not installed in this venv: run `pip install -e .` first"
      ) from e
    subs = (Requirement(sub) for sub in md.requires(req.name) or [])
    todo += [sub for sub in subs if applies(sub, key[1])]
  return {name: version for (name, _), version in seen.items()}


def download(dists: dict[str, str], dest: pathlib.Path, python_version: str) -> None:
  """Each distribution's wheel for CPython `python_version` on x86-64 Linux.

  A distribution published only as source (promise, which tensorflow-datasets needs) is built
  here into a wheel, which is accepted only if pure Python (it then installs on any Python).
  """
  base = [sys.executable, "-m", "pip"]
  for name, version in sorted(dists.items()):
    cmd = [*base, "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    cmd += ["--python-version", python_version, "--implementation", "cp"]
    for p in PLATFORMS:
      cmd += ["--platform", p]
    if subprocess.run([*cmd, f"{name}=={version}"], capture_output=True).returncode == 0:
      if name in DEVICE_VERSIONS:
        _check_needs(name, dest, set(dists), python_version)
      continue
    before = set(dest.glob("*.whl"))
    build = [*base, "wheel", "-q", "--no-deps", "-w", str(dest), f"{name}=={version}"]
    subprocess.run(build, check=True, capture_output=True)
    built = set(dest.glob("*.whl")) - before
    if not built or any(not w.name.endswith("-none-any.whl") for w in built):
      raise SystemExit(f"{name}=={version}: no wheel for the device and not pure Python")


def wheel_needs(wheel: pathlib.Path, python_version: str) -> set[str]:
  """The distributions a wheel requires on the device (its METADATA, extras not asked for)."""
  with zipfile.ZipFile(wheel) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
  env = dict(default_environment(), python_version=python_version, sys_platform="linux", extra="")
  reqs = [Requirement(x.split(":", 1)[1]) for x in lines if x.startswith("Requires-Dist:")]
  return {canonicalize_name(r.name) for r in reqs if r.marker is None or r.marker.evaluate(env)}


def _check_needs(name: str, dest: pathlib.Path, carried: set[str], python_version: str) -> None:
  """A DEVICE_VERSIONS wheel must need only what travels or the device has."""
  wheel = next(dest.glob(f"{name.replace('-', '_')}-{DEVICE_VERSIONS[name]}-*.whl"))
  missing = wheel_needs(wheel, python_version) - carried - DEVICE_HAS - NEVER_CARRY
  if missing:
    raise SystemExit(
      f"{wheel.name} needs {sorted(missing)}, which neither travel nor are on the device: "
      "install that version here and rerun, or add them to the closure"
    )


def main(argv: list[str] | None = None) -> int:
  """Writes .whl/ (replacing an older one) and lists what it holds."""
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--dest", type=pathlib.Path, default=ROOT / ".whl")
  p.add_argument("--python_version", default="3.12", help="the device's Python (KINDS.md)")
  p.add_argument(
    "--list", action="store_true", help="print what would be carried, download nothing"
  )
  args = p.parse_args(argv)
  dists = closure(pinned(), args.python_version)
  if args.list:
    for name, version in sorted(dists.items()):
      print(f"{name}=={version}")
    return 0
  if args.dest.exists():
    shutil.rmtree(args.dest)
  args.dest.mkdir(parents=True)
  download(dists, args.dest, args.python_version)
  wheels = sorted(args.dest.glob("*.whl"))
  size = sum(w.stat().st_size for w in wheels)
  print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.dest}:")
  for w in wheels:
    print(f"  {w.name}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
