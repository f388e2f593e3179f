"""Running josh_jax on a video: the run's specification, its methods, solving windows, and the stages.

- :class:`RunSpec` (:mod:`.spec`): one video's run, typed and JSON-serialisable;
- :data:`METHODS` (:mod:`.methods`): josh, josh3r, josh3r+joint as one table;
- :func:`solve_window` / :func:`solve_windows` (:mod:`.window`): the one place a window is solved
  (problem, joint solve, baseline), one window or several vmapped; :class:`WindowSettings`,
  :func:`hold_cameras`;
- :mod:`.stages`: prepare, front ends, solve each window, finish, as ``python -m josh_jax.demo``
  runs them in order and ``python -m josh_jax.batch`` runs them as Ray tasks.
"""

from importlib import import_module

#: public name -> submodule (re-exported lazily: importing the spec or the methods loads no JAX)
_WHERE = {
    "METHODS": "methods",
    "Method": "methods",
    "MethodError": "methods",
    "method": "methods",
    "RunSpec": "spec",
    "RunSpecError": "spec",
    "WindowSettings": "window",
    "WindowSolve": "window",
    "hold_cameras": "window",
    "solve_window": "window",
    "solve_windows": "window",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
