"""Solving a window: its problem, the joint solve, the front-ends-only baseline, its results.

This is the one place a window is solved; the demo and the batch CLI (through
:mod:`josh_jax.run.stages`), ``python -m josh_jax.solve``, the synthetic demo and
``benchmarks/bench_accuracy.py`` call it. :func:`solve_window` solves one window,
:func:`solve_windows` several of one size bucket in one vmapped program (same results to float
tolerance). What the solve holds fixed for a camera model (cameras, focal) is decided here, once:
:func:`hold_cameras`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import jax

from ..losses import LossWeights
from ..objective import ObjectiveConfig, finish_results, loss_weights, problem_config
from ..problem import ProblemConfig, build_problem, problem_sizes
from ..results import build_results, check_solvable
from ..solve import SolveConfig, front_ends_only, solve, solve_batch, stack_problems


def _quiet(msg: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """How a window is solved: problem building, loss weights, solver, objective preset, and whether
    the front-ends-only baseline is solved too (``init.npz``). :meth:`of` takes them from a
    :class:`josh_jax.config.DemoConfig`."""

    problem: ProblemConfig = ProblemConfig()
    weights: LossWeights = LossWeights()
    solve: SolveConfig = SolveConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    baseline: bool = False

    @classmethod
    def of(cls, cfg) -> WindowSettings:
        """From a DemoConfig (its problem, weights, solve, objective and output.baseline)."""
        return cls(cfg.problem, cfg.weights, cfg.solve, cfg.objective, cfg.output.baseline)

    def problem_config(self) -> ProblemConfig:
        """The problem settings under the objective preset (``josh``: as given)."""
        return problem_config(self.problem, self.objective)

    def loss_weights(self) -> LossWeights:
        """The joint solve's weights under the objective preset (``josh``: as given)."""
        return loss_weights(self.weights, self.objective)

    def held_for(self, meta) -> WindowSettings:
        """These settings with the solve holding what the bundle's camera model fixed (:func:`hold_cameras`)."""
        return dataclasses.replace(self, solve=hold_cameras(self.solve, meta))


def hold_cameras(solve_cfg: SolveConfig, meta) -> SolveConfig:
    """The solver settings for a bundle (``meta``: its :class:`josh_jax.bundle.BundleMeta`): a static or rotating camera
    (cameras known, the ground plane from the metric bodies) holds the cameras and the focal, and the
    people are fitted to that scene (Adam would otherwise random-walk the cameras on the near-zero
    gradients of exact identity matches); known intrinsics (``--intrinsics`` without
    ``--free-intrinsics``) hold the focal."""
    if meta.holds_cameras:
        solve_cfg = dataclasses.replace(solve_cfg, optimize_cameras=False, optimize_focal=False)
    if meta.fixed_intrinsics:
        solve_cfg = dataclasses.replace(solve_cfg, optimize_focal=False)
    return solve_cfg


class WindowSolve(NamedTuple):
    """One solved window. ``init_problem``/``init_params``: the front-ends-only baseline's problem and
    solved parameters, or (``seconds_init`` None, no baseline) the problem and its starting point."""

    problem: object  # josh_jax.problem.Problem
    result: object  # josh_jax.solve.SolveResult of the joint solve
    init_problem: object
    init_params: object  # josh_jax.losses.Params
    seconds_joint: float  # building the problem and the joint solve (with any compile)
    seconds_init: float | None  # the baseline solve, None when not solved

    def results(self, window, model, objective: ObjectiveConfig = ObjectiveConfig()):
        """The joint result for every frame (:class:`josh_jax.results.Results`), after the objective's
        post-solve stages (josh+: the per-frame refinement)."""
        return finish_results(build_results(self.result.params, self.problem, window, model), window, model, objective)

    def init_results(self, window, model):
        """The baseline's (or the front ends' starting point's) Results for every frame."""
        return build_results(self.init_params, self.init_problem, window, model)


class _Compiled:
    """Problem sizes and solver settings this process has compiled the solver for (for the notice)."""

    seen: set = set()


def compile_notice(problem, scfg: SolveConfig, log: Callable[[str], None]) -> None:
    """Say so before the solver compiles for a new size (the first solve of a size waits ~30 s on CPU)."""
    key = (tuple(problem_sizes(problem)), scfg)
    if key not in _Compiled.seen:
        _Compiled.seen.add(key)
        log("compiling the solver for this size (once per size) ...")


def window_problem(window, model, settings: WindowSettings, where: str = "window", log=_quiet, start=None):
    """The padded problem of ``window``; a window that would solve to nothing meaningful is refused
    (:func:`josh_jax.results.check_solvable`), warnings go to ``log``. ``start`` (problem, window) ->
    problem changes the starting point (``--method josh3r+joint``)."""
    pcfg = settings.problem_config()
    problem = build_problem(window, model, pcfg)
    for line in check_solvable(problem, window, pcfg.conf_thres, where):
        log(f"warning: {line}")
    return problem if start is None else start(problem, window)


def solve_window(
    window, model, settings: WindowSettings, label: str = "", start=None, progress: bool = True, log=_quiet
) -> WindowSolve:
    """Solve one window: the joint solve, then with ``settings.baseline`` the front-ends-only one (the
    same compiled program: only data and traced weights differ). ``label`` names the progress bars
    (Adam's, driven from the host so that the program stays in the persistent cache; Gauss-Newton runs
    without); ``start``: see :func:`window_problem`."""
    t0 = time.perf_counter()
    problem = window_problem(window, model, settings, label or "window", log, start)
    scfg = dataclasses.replace(settings.solve, progress_every=25 if progress and settings.solve.method == "adam" else 0)
    compile_notice(problem, scfg, log)
    res = jax.block_until_ready(solve(problem, settings.loss_weights(), scfg, label=f"{label} joint".strip()))
    t1 = time.perf_counter()
    if not settings.baseline:
        return WindowSolve(problem, res, problem, res.init, t1 - t0, None)
    base_problem, base_w = front_ends_only(problem, settings.weights)
    base = jax.block_until_ready(solve(base_problem, base_w, scfg, label=f"{label} front ends only".strip()))
    return WindowSolve(problem, res, base_problem, base.params, t1 - t0, time.perf_counter() - t1)


def solve_windows(items: list, model, settings: WindowSettings, log=_quiet) -> list[WindowSolve]:
    """Several windows of one size bucket in one vmapped solve (:func:`josh_jax.solve.solve_batch`),
    and with ``settings.baseline`` one for their baselines. ``items``: (window, label, start) triples
    (``start`` None or as in :func:`window_problem`); returns their solves in order, each with an equal
    share of the seconds. Agrees with :func:`solve_window` to float tolerance."""
    t0 = time.perf_counter()
    problems = [window_problem(w, model, settings, label, log, start) for w, label, start in items]
    scfg = dataclasses.replace(settings.solve, progress_every=0)
    res = jax.block_until_ready(solve_batch(stack_problems(problems), settings.loss_weights(), scfg))
    t1 = time.perf_counter()
    n = len(items)
    pick = lambda tree, k: jax.tree_util.tree_map(lambda x: x[k], tree)
    if settings.baseline:
        bases = [front_ends_only(pr, settings.weights) for pr in problems]
        base = jax.block_until_ready(solve_batch(stack_problems([b for b, _ in bases]), bases[0][1], scfg))
        t2 = time.perf_counter()
        return [
            WindowSolve(pr, pick(res, k), bases[k][0], pick(base.params, k), (t1 - t0) / n, (t2 - t1) / n)
            for k, pr in enumerate(problems)
        ]
    return [WindowSolve(pr, pick(res, k), pr, pick(res.init, k), (t1 - t0) / n, None) for k, pr in enumerate(problems)]
