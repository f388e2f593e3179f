"""josh_jax: a pure-functional JAX reimplementation of JOSH (joint human-scene optimization).

Data flow (docs/architecture.md): video -> ``frontends`` -> bundle (``Window``) ->
``problem`` (``Problem``) -> ``losses`` -> ``solve`` (``SolveResult``) -> ``results``
(``Results``) -> ``join`` -> ``export``. Conventions: docs/conventions.md.

The public API is re-exported here and loaded on first use (``import josh_jax`` stays
cheap; JAX is imported by the first name that needs it)::

    import josh_jax as jj
    model = jj.load_body("open")
    meta, windows = jj.load_bundle("bundle/")
    problem = jj.build_problem(windows[0], model)
    result = jj.solve.solve(problem, jj.LossWeights(), jj.SolveConfig())
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute); a module name alone re-exports the module
_API = {
    # body layer
    "BodyModel": ("josh_jax.body", "BodyModel"),
    "load_body": ("josh_jax.body", "load"),
    "forward": ("josh_jax.body", "forward"),
    # bundle (the front ends' output, on disk)
    "Window": ("josh_jax.bundle", "Window"),
    "BundleError": ("josh_jax.bundle", "BundleError"),
    "load_bundle": ("josh_jax.bundle", "load"),
    "save_bundle": ("josh_jax.bundle", "save"),
    # problem and objective
    "Problem": ("josh_jax.problem", "Problem"),
    "ProblemConfig": ("josh_jax.problem", "ProblemConfig"),
    "build_problem": ("josh_jax.problem", "build_problem"),
    "Params": ("josh_jax.losses", "Params"),
    "LossWeights": ("josh_jax.losses", "LossWeights"),
    "LossTerms": ("josh_jax.losses", "LossTerms"),
    "init_params": ("josh_jax.losses", "init_params"),
    "total_loss": ("josh_jax.losses", "total_loss"),
    # solver (``josh_jax.solve`` is the subpackage: ``jj.solve.solve(problem)``)
    "SolveConfig": ("josh_jax.solve", "SolveConfig"),
    "SolveResult": ("josh_jax.solve", "SolveResult"),
    "solve_batch": ("josh_jax.solve", "solve_batch"),
    # results
    "Results": ("josh_jax.results", "Results"),
    "build_results": ("josh_jax.results", "build_results"),
    "load_results": ("josh_jax.results", "load_results"),
    # modules
    "losses": ("josh_jax.losses", None),
    "solve": ("josh_jax.solve", None),
    "metrics": ("josh_jax.eval.metrics", None),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'josh_jax' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
