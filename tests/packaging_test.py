"""setup.cfg's pins agree with each other."""

import configparser
import pathlib

from packaging.requirements import Requirement

SETUP_CFG = pathlib.Path(__file__).resolve().parent.parent / "setup.cfg"


def _requirements(text: str) -> list[Requirement]:
  lines = (line.strip() for line in text.splitlines())
  return [Requirement(line) for line in lines if line and not line.startswith("#")]


def test_accelerator_extras_pin_the_jax_that_ci_tests():
  cfg = configparser.ConfigParser()
  cfg.read(SETUP_CFG)
  core = {r.name: r for r in _requirements(cfg["options"]["install_requires"])}
  extras = cfg["options.extras_require"]
  for extra, plugin in (("cuda12", "cuda12"), ("tpu", "tpu")):
    (jax_req,) = _requirements(extras[extra])
    # A different jax here would replace the tested one when a user asks for an accelerator.
    assert jax_req.name == "jax" and jax_req.extras == {plugin}
    assert jax_req.specifier == core["jax"].specifier
