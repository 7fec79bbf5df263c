"""Reading traced programs in tests: the matrix products a function runs, nested ones included."""

import jax


def dot_generals(fn, *args) -> list[tuple[str, object]]:
  """(operand dtype, precision) of every dot_general in fn's jaxpr, inside scans, remat and
  other nested jaxprs too."""
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "dot_general":
        found.append((str(eqn.invars[0].aval.dtype), eqn.params["precision"]))
      for p in eqn.params.values():
        for inner in p if isinstance(p, tuple | list) else (p,):
          if hasattr(inner, "jaxpr") and hasattr(inner.jaxpr, "eqns"):
            walk(inner.jaxpr)
          elif hasattr(inner, "eqns"):
            walk(inner)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found
