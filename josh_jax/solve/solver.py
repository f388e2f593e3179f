"""The two-stage optax solve (SPEC "Schedule").

Each stage is one compiled program: a ``lax.scan`` over the iterations that
returns the per-iteration loss terms. ``solve_batch`` vmaps it over windows of
the same bucket.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..losses import LossTerms, LossWeights, Params, init_params, total_loss
from ..problem import Problem


@dataclasses.dataclass(frozen=True)
class SolveConfig:
    """Static solver settings; defaults are the reference's (josh/config.py, josh/inference.py).

    ``focal_updates``: "reference" applies the focal's Adam update once per
    keyframe per step, as the PyTorch reference does on CPU (the shared focal
    appears once per keyframe in its parameter list, so it moves about
    N_keyframes times faster); "single" applies it once.
    """

    iters_stage1: int = 500
    iters_stage2: int = 200
    lr_stage1: float = 0.07
    lr_stage2: float = 0.014
    b1: float = 0.9
    b2: float = 0.9
    eps: float = 1e-8
    optimize_focal: bool = True
    optimize_depth: bool = False
    optimize_smpl: bool = True
    optimize_cameras: bool = True  # False holds camera poses and depth sizes (static-camera bundles)
    focal_updates: str = "reference"
    progress_every: int = 0  # > 0: report progress to the host every this many iterations

    def __post_init__(self):
        if self.focal_updates not in ("reference", "single"):
            raise ValueError(f"focal_updates must be 'reference' or 'single', got {self.focal_updates!r}")


class StageResult(NamedTuple):
    params: Params
    history: LossTerms  # each field (iters,)
    nan_at: jax.Array  # () first iteration whose loss or gradient was not finite, -1 if none


class SolveResult(NamedTuple):
    params: Params
    init: Params
    stage1: StageResult
    stage2: StageResult

    def nan_stages(self) -> list[tuple[str, int]]:
        """(stage, iteration) of each stage whose loss went non-finite; updates stopped there and the
        last finite state was kept."""
        return [(name, int(st.nan_at)) for name, st in (("stage 1", self.stage1), ("stage 2", self.stage2))
                if int(st.nan_at) >= 0]


def cosine_lr(lr_base: float, n: int):
    """lr(it) = lr_base (1 + cos(pi it / n)) / 2, as the reference's schedule."""
    return lambda it: lr_base * (1.0 + jnp.cos(jnp.pi * it / n)) / 2.0


class _RepeatState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def repeated_adam_direction(repeats, b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """Adam's direction applied ``repeats`` times per step with the same gradient,
    summed (what PyTorch does for a parameter listed ``repeats`` times)."""

    def init(params):
        z = jax.tree_util.tree_map(jnp.zeros_like, params)
        return _RepeatState(count=jnp.zeros([], jnp.int32), mu=z, nu=z)

    def update(grads, state, params=None):
        def body(i, carry):
            count, mu, nu, acc = carry
            count = count + 1
            mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, mu, grads)
            nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, nu, grads)
            c = count.astype(jnp.float32)
            step = jax.tree_util.tree_map(
                lambda m, v: (m / (1 - b1**c)) / (jnp.sqrt(v / (1 - b2**c)) + eps), mu, nu)
            acc = jax.tree_util.tree_map(jnp.add, acc, step)
            return count, mu, nu, acc

        acc0 = jax.tree_util.tree_map(jnp.zeros_like, grads)
        count, mu, nu, acc = jax.lax.fori_loop(0, repeats, body, (state.count, state.mu, state.nu, acc0))
        return acc, _RepeatState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def _labels(params: Params, stage: int, cfg: SolveConfig) -> Params:
    """Which optimizer each leaf uses in a stage: 'adam', 'focal' or 'frozen'."""
    pose = "adam" if cfg.optimize_cameras else "frozen"
    cam = params.cam._replace(
        quat=pose, trans=pose, log_size=pose,
        anchor_depth="adam" if (stage == 2 and cfg.optimize_depth) else "frozen",
        log_focal="focal" if (stage == 2 and cfg.optimize_focal) else "frozen",
    )
    h = "adam" if cfg.optimize_smpl else "frozen"
    human = params.human._replace(quat=h, transl=h, body=h, betas=h)
    return Params(cam=cam, human=human)


def make_optimizer(params: Params, problem: Problem, stage: int, cfg: SolveConfig) -> optax.GradientTransformation:
    n, lr = (cfg.iters_stage1, cfg.lr_stage1) if stage == 1 else (cfg.iters_stage2, cfg.lr_stage2)
    schedule = cosine_lr(lr, n)
    adam = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    repeats = (jnp.sum(problem.scene.kf_valid).astype(jnp.int32) if cfg.focal_updates == "reference" else 1)
    focal = optax.chain(repeated_adam_direction(repeats, cfg.b1, cfg.b2, cfg.eps), optax.scale_by_schedule(schedule),
                        optax.scale(-1.0))
    return optax.multi_transform({"adam": adam, "focal": focal, "frozen": optax.set_to_zero()},
                                 _labels(params, stage, cfg))


def run_stage(params: Params, problem: Problem, weights: LossWeights, stage: int, cfg: SolveConfig) -> StageResult:
    """One stage: fresh optimizer state, ``lax.scan`` over iterations; quaternions of
    the cameras renormalised after each step; a non-finite loss stops all updates."""
    n = cfg.iters_stage1 if stage == 1 else cfg.iters_stage2
    opt = make_optimizer(params, problem, stage, cfg)
    loss_fn = functools.partial(total_loss, problem=problem, weights=weights, stage=stage)

    def body(carry, it):
        p, state, nan_at = carry
        if cfg.progress_every > 0:
            jax.lax.cond((it + 1) % cfg.progress_every == 0,
                         lambda: jax.debug.callback(_progress, stage, it + 1, n), lambda: None)
        terms, grads = jax.value_and_grad(lambda q: _total_with_terms(loss_fn, q), has_aux=True)(p)
        terms = terms[1]
        finite = jnp.isfinite(terms.total) & jnp.all(jnp.array(
            [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
        ok = finite & (nan_at < 0)
        updates, new_state = opt.update(grads, state, p)
        new_p = optax.apply_updates(p, updates)
        q = new_p.cam.quat
        new_p = new_p._replace(cam=new_p.cam._replace(quat=q / jnp.linalg.norm(q, axis=-1, keepdims=True)))
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new_p, p)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new_state, state)
        nan_at = jnp.where((nan_at < 0) & ~finite, it, nan_at)
        return (p, state, nan_at), terms

    (p, _, nan_at), history = jax.lax.scan(body, (params, opt.init(params), jnp.array(-1, jnp.int32)),
                                           jnp.arange(n, dtype=jnp.int32))
    return StageResult(params=p, history=history, nan_at=nan_at)


class _Bars:
    """Host-side progress bars, one per stage, driven by ``jax.debug.callback``."""

    bars: dict = {}
    label: str = ""  # names the bars (e.g. "window 1/2 joint"); set with progress_label()


@contextlib.contextmanager
def progress_label(label: str):
    """Within the block, the solver's progress bars read ``LABEL: stage N`` (the demo and the solve CLI
    say which window and which solve, joint or front ends only, a bar belongs to)."""
    old, _Bars.label = _Bars.label, label
    try:
        yield
    finally:
        _Bars.label = old


def _progress(stage, it, n) -> None:
    from tqdm.auto import tqdm

    stage, it, n = int(np.max(stage)), int(np.max(it)), int(np.max(n))
    bar = _Bars.bars.get(stage)
    if bar is None or bar.n > it:
        desc = f"{_Bars.label}: stage {stage}" if _Bars.label else f"stage {stage}"
        bar = _Bars.bars[stage] = tqdm(total=n, desc=desc, unit="it", leave=True)
    bar.update(it - bar.n)
    if it >= n:
        bar.close()
        _Bars.bars.pop(stage, None)


def _total_with_terms(loss_fn, params):
    terms = loss_fn(params)
    return terms.total, terms


@functools.partial(jax.jit, static_argnames=("cfg",))
def _solve_jit(problem: Problem, weights: LossWeights, cfg: SolveConfig) -> SolveResult:
    p0 = init_params(problem)
    s1 = run_stage(p0, problem, weights, 1, cfg)
    s2 = run_stage(s1.params, problem, weights, 2, cfg)
    return SolveResult(params=s2.params, init=p0, stage1=s1, stage2=s2)


def front_ends_only(problem: Problem, weights: LossWeights = LossWeights()) -> tuple[Problem, LossWeights]:
    """The front-end-only baseline (``init.npz``): the scene term alone at the depth
    model's own scale (g = 1 / min size, as the reference without contacts) and
    bodies held by the prior at the human front end's values. Same compiled program
    as the joint solve (only data and traced weights differ)."""
    base = problem._replace(scene=problem.scene._replace(enforce_scale=np.array(True)))
    return base, weights._replace(scale=0.0, static=0.0, smooth=0.0)


def _as_jax(problem: Problem) -> Problem:
    return jax.tree_util.tree_map(jnp.asarray, problem)


def solve(problem: Problem, weights: LossWeights = LossWeights(), cfg: SolveConfig = SolveConfig()) -> SolveResult:
    """Solve one window (both stages, one compiled program per bucket and config)."""
    return _solve_jit(_as_jax(problem), LossWeights(*(jnp.asarray(x, jnp.float32) for x in weights)), cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _solve_batch_jit(problems: Problem, weights: LossWeights, cfg: SolveConfig) -> SolveResult:
    return jax.vmap(lambda pr: _solve_jit.__wrapped__(pr, weights, cfg))(problems)


def stack_problems(problems: list[Problem]) -> Problem:
    """Stack problems of one bucket along a new leading axis (for :func:`solve_batch`)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *problems)


def solve_batch(problems: Problem, weights: LossWeights = LossWeights(), cfg: SolveConfig = SolveConfig()) -> SolveResult:
    """vmap the solve over a stacked batch of windows (see :func:`stack_problems`)."""
    return _solve_batch_jit(problems, LossWeights(*(jnp.asarray(x, jnp.float32) for x in weights)), cfg)
