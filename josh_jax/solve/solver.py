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

METHODS = ("adam", "gn")


class HyperParams(NamedTuple):
    """Traced numeric solver settings (changing one does not recompile; like :class:`LossWeights`).

    Adam: ``lr_stage1/2`` (cosine-decayed), ``b1``, ``b2``, ``eps``; ``tol`` > 0 stops a stage
    early once the relative loss decrease over ``tol_window`` iterations falls below it (0: off, the
    reference's fixed schedule). Gauss-Newton (``method="gn"``): ``gn_tol`` relative-decrease stop
    of stage 2, ``gn_tol_stage1`` that of stage 1 (looser by default: stage 1 only warms up stage 2,
    whose objective differs, so polishing it below 1 % buys nothing stage 2 keeps),
    ``damping`` the initial Levenberg-Marquardt lambda (relative to the Hessian diagonal),
    ``cg_tol`` the inner conjugate-gradient tolerance, ``irls_eps`` the residual norm below which
    IRLS weights are capped (rho'(r) / max(r, irls_eps), finite at r = 0).
    ``progress_every`` > 0 reports progress to the host every this many iterations (0: silent).
    """

    lr_stage1: jax.Array
    lr_stage2: jax.Array
    b1: jax.Array
    b2: jax.Array
    eps: jax.Array
    tol: jax.Array
    gn_tol: jax.Array
    gn_tol_stage1: jax.Array
    damping: jax.Array
    cg_tol: jax.Array
    irls_eps: jax.Array
    progress_every: jax.Array


class Structure(NamedTuple):
    """The static part of a :class:`SolveConfig`: what changes the compiled program."""

    method: str
    iters_stage1: int
    iters_stage2: int
    gn_iters_stage1: int
    gn_iters_stage2: int
    cg_iters: int
    optimize_focal: bool
    optimize_depth: bool
    optimize_smpl: bool
    optimize_cameras: bool
    focal_updates: str
    progress: bool  # the progress callback is in the program (gn only: a program with a host callback
    # cannot go to JAX's persistent compilation cache; Adam's bars are driven from the host instead);
    # its rate and label are traced
    extra_terms: tuple = ()  # losses.HumanTerm s added to the objective (used by Adam and gn alike)


@dataclasses.dataclass(frozen=True)
class SolveConfig:
    """Solver settings; defaults are the reference's (josh/config.py, josh/inference.py).

    Only the fields of :class:`Structure` (method, iteration counts, trained groups,
    ``focal_updates``) are compiled into the program; every number of
    :class:`HyperParams` (learning rates, Adam constants, tolerances, damping,
    ``progress_every``) is traced, so changing it reuses the compiled solver.

    ``method``: "adam" (default) runs the reference's fixed schedule; "gn" runs
    Levenberg-Marquardt Gauss-Newton with IRLS weights for the robust terms (see
    :mod:`josh_jax.solve.gauss_newton`), at most ``gn_iters_stage1/2`` iterations per stage.

    ``focal_updates``: "single" (default) applies the focal's Adam update once per step;
    "reference" once per keyframe per step, as the PyTorch reference does on CPU (the shared
    focal appears once per keyframe in its parameter list, so it moves about N_keyframes
    times faster). With the bodies' depth following the focal (``ProblemConfig.body_depth``)
    the reference's rule drifts the focal 3-15 % off the truth on the synthetic suite and
    makes the solve sensitive to float summation order (a vmapped window 3 cm from the same
    window alone); "single" keeps the focal within 2 % and both within 0.2 mm
    (benchmarks/README.md, issue 29). The reference's schedule exactly:
    ``SolveConfig(focal_updates="reference")`` with ``ProblemConfig.reference()``.
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
    focal_updates: str = "single"
    extra_terms: tuple = ()  # losses.HumanTerm s added to the objective, for research code (not the CLI)
    progress_every: int = 0  # > 0: progress bars (gn: every this many iterations, traced; Adam: every
    # PROGRESS_CHUNK iterations, driven from the host)
    method: str = "adam"
    tol: float = 0.0  # Adam early stop (relative decrease over tol_window iterations); 0 = off
    gn_iters_stage1: int = 12
    gn_iters_stage2: int = 12
    gn_tol: float = 1e-4
    gn_tol_stage1: float = 1e-2
    damping: float = 1e-2
    cg_iters: int = 60
    cg_tol: float = 1e-6
    irls_eps: float = 1e-6

    def __post_init__(self):
        if self.focal_updates not in ("reference", "single"):
            raise ValueError(f"focal_updates must be 'reference' or 'single', got {self.focal_updates!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        from ..losses import HumanTerm

        if not isinstance(self.extra_terms, tuple) or not all(isinstance(t, HumanTerm) for t in self.extra_terms):
            raise ValueError("extra_terms must be a tuple of josh_jax.losses.HumanTerm")
        if self.method == "gn" and self.optimize_depth:
            raise ValueError("method 'gn' does not train the anchor depths; use method 'adam' with optimize_depth")

    def structure(self) -> Structure:
        return Structure(
            **{f: getattr(self, f) for f in Structure._fields if f != "progress"}, progress=self.progress_every > 0
        )

    def hyper(self) -> HyperParams:
        return HyperParams(
            **{
                f: jnp.asarray(getattr(self, f), jnp.int32 if f == "progress_every" else jnp.float32)
                for f in HyperParams._fields
            }
        )


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
        return [
            (name, int(st.nan_at))
            for name, st in (("stage 1", self.stage1), ("stage 2", self.stage2))
            if int(st.nan_at) >= 0
        ]


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
            step = jax.tree_util.tree_map(lambda m, v: (m / (1 - b1**c)) / (jnp.sqrt(v / (1 - b2**c)) + eps), mu, nu)
            acc = jax.tree_util.tree_map(jnp.add, acc, step)
            return count, mu, nu, acc

        acc0 = jax.tree_util.tree_map(jnp.zeros_like, grads)
        count, mu, nu, acc = jax.lax.fori_loop(0, repeats, body, (state.count, state.mu, state.nu, acc0))
        return acc, _RepeatState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def _labels(params: Params, stage: int, cfg: Structure) -> Params:
    """Which optimizer each leaf uses in a stage: 'adam', 'focal' or 'frozen'."""
    pose = "adam" if cfg.optimize_cameras else "frozen"
    cam = params.cam._replace(
        quat=pose,
        trans=pose,
        log_size=pose,
        anchor_depth="adam" if (stage == 2 and cfg.optimize_depth) else "frozen",
        log_focal="focal" if (stage == 2 and cfg.optimize_focal) else "frozen",
    )
    h = "adam" if cfg.optimize_smpl else "frozen"
    human = params.human._replace(quat=h, transl=h, body=h, betas=h)
    return Params(cam=cam, human=human)


def make_optimizer(
    params: Params, problem: Problem, stage: int, cfg: Structure, hp: HyperParams
) -> optax.GradientTransformation:
    n, lr = (cfg.iters_stage1, hp.lr_stage1) if stage == 1 else (cfg.iters_stage2, hp.lr_stage2)
    schedule = cosine_lr(lr, n)
    adam = optax.adam(schedule, b1=hp.b1, b2=hp.b2, eps=hp.eps)
    repeats = jnp.sum(problem.scene.kf_valid).astype(jnp.int32) if cfg.focal_updates == "reference" else 1
    focal = optax.chain(
        repeated_adam_direction(repeats, hp.b1, hp.b2, hp.eps), optax.scale_by_schedule(schedule), optax.scale(-1.0)
    )
    return optax.multi_transform(
        {"adam": adam, "focal": focal, "frozen": optax.set_to_zero()}, _labels(params, stage, cfg)
    )


def progress_tick(cfg: Structure, hp: HyperParams, label, stage: int, it, n) -> None:
    """Report iteration ``it`` of ``n`` to the host when ``hp.progress_every`` divides it. Only
    whether the callback exists is static (``cfg.progress``); the rate and the label (an int
    from :func:`label_id`) are traced, so solves that differ in them share one program."""
    if not cfg.progress:
        return
    every = hp.progress_every
    fire = (every > 0) & ((it % jnp.maximum(every, 1) == 0) | (it == n))
    jax.lax.cond(fire, lambda: jax.debug.callback(_progress, label, stage, it, n), lambda: None)


TOL_WINDOW = 20  # Adam's early stop compares the loss with the one this many iterations back


def _stage_start(params: Params, problem: Problem, stage: int, cfg: Structure, hp: HyperParams) -> tuple:
    """A stage's loop state before its first iteration: (params, optimizer state, nan_at, done,
    the early stop's ring of recent losses, the last loss terms)."""
    opt = make_optimizer(params, problem, stage, cfg, hp)
    zero_terms = LossTerms(*([jnp.zeros((), jnp.float32)] * len(LossTerms._fields)))
    return (
        params,
        opt.init(params),
        jnp.array(-1, jnp.int32),
        jnp.array(False),
        jnp.zeros(TOL_WINDOW, jnp.float32),
        zero_terms,
    )


def _stage_iterations(
    carry: tuple, problem: Problem, weights: LossWeights, stage: int, cfg: Structure, hp: HyperParams, label, its
) -> tuple[tuple, LossTerms]:
    """Adam iterations ``its`` (int32 (m,)) of a stage from loop state ``carry``
    (:func:`_stage_start`); iterations at or past the stage's length are skipped (the host-driven
    chunks of :func:`_solve_chunked` pad the last chunk). Returns the new state and the per-iteration
    loss terms (each field (m,))."""
    n = cfg.iters_stage1 if stage == 1 else cfg.iters_stage2
    opt = make_optimizer(carry[0], problem, stage, cfg, hp)
    loss_fn = functools.partial(total_loss, problem=problem, weights=weights, stage=stage, extra_terms=cfg.extra_terms)

    def step(p, state, nan_at, ring, it):
        terms, grads = jax.value_and_grad(lambda q: _total_with_terms(loss_fn, q), has_aux=True)(p)
        terms = terms[1]
        finite = jnp.isfinite(terms.total) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        old = ring[it % TOL_WINDOW]
        converged = (hp.tol > 0) & (it >= TOL_WINDOW) & (old - terms.total <= hp.tol * jnp.abs(old))
        ok = finite & (nan_at < 0) & ~converged
        updates, new_state = opt.update(grads, state, p)
        new_p = optax.apply_updates(p, updates)
        q = new_p.cam.quat
        new_p = new_p._replace(cam=new_p.cam._replace(quat=q / jnp.linalg.norm(q, axis=-1, keepdims=True)))
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new_p, p)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new_state, state)
        nan_at = jnp.where((nan_at < 0) & ~finite, it, nan_at)
        ring = ring.at[it % TOL_WINDOW].set(terms.total)
        return p, state, nan_at, converged, ring, terms

    def body(carry, it):
        p, state, nan_at, done, ring, last = carry
        progress_tick(cfg, hp, label, stage, it + 1, n)
        # once converged (tol > 0), the remaining iterations are skipped (single solves; under
        # vmap both branches run and the mask keeps the state)
        p, state, nan_at, done, ring, terms = jax.lax.cond(
            done | (it >= n), lambda: (p, state, nan_at, done, ring, last), lambda: step(p, state, nan_at, ring, it)
        )
        return (p, state, nan_at, done, ring, terms), terms

    return jax.lax.scan(body, carry, its)


def run_stage(
    params: Params, problem: Problem, weights: LossWeights, stage: int, cfg: Structure, hp: HyperParams, label=0
) -> StageResult:
    """One stage: fresh optimizer state, ``lax.scan`` over iterations; quaternions of
    the cameras renormalised after each step; a non-finite loss stops all updates.
    With ``hp.tol`` > 0 updates also stop once the loss decreased by less than ``tol``
    (relative) over the last ``TOL_WINDOW`` iterations (the history keeps its length)."""
    n = cfg.iters_stage1 if stage == 1 else cfg.iters_stage2
    carry = _stage_start(params, problem, stage, cfg, hp)
    (p, _, nan_at, _, _, _), history = _stage_iterations(
        carry, problem, weights, stage, cfg, hp, label, jnp.arange(n, dtype=jnp.int32)
    )
    return StageResult(params=p, history=history, nan_at=nan_at)


#: Adam with progress bars runs each stage as host-driven chunks of this many iterations (one compiled
#: program per stage, no host callback inside, so it goes to JAX's persistent compilation cache)
PROGRESS_CHUNK = 50


@functools.partial(jax.jit, static_argnames=("stage", "cfg"))
def _adam_start(params: Params, problem: Problem, hp: HyperParams, stage: int, cfg: Structure) -> tuple:
    return _stage_start(params, problem, stage, cfg, hp)


@functools.partial(jax.jit, static_argnames=("stage", "cfg"))
def _adam_chunk(carry, problem: Problem, weights: LossWeights, hp: HyperParams, it0, stage: int, cfg: Structure):
    its = it0 + jnp.arange(PROGRESS_CHUNK, dtype=jnp.int32)
    return _stage_iterations(carry, problem, weights, stage, cfg, hp, 0, its)


def _solve_chunked(problem: Problem, weights: LossWeights, hp: HyperParams, label: str, cfg: Structure) -> SolveResult:
    """The Adam schedule with progress bars driven from the host: each stage runs in chunks of
    :data:`PROGRESS_CHUNK` iterations (the same iterations as :func:`_solve_jit`, results equal to
    float round-off); once the early stop fires (``tol`` > 0) the remaining chunks are not run and
    the history repeats the last loss, as in the single program."""
    from tqdm.auto import tqdm

    cfg = cfg._replace(progress=False)
    p0 = _init_jit(problem)
    params, stages = p0, []
    for stage, n in ((1, cfg.iters_stage1), (2, cfg.iters_stage2)):
        carry = _adam_start(params, problem, hp, stage, cfg)
        chunks: list = []
        with tqdm(total=n, desc=f"{label + ': ' if label else ''}stage {stage}", unit="it", leave=True) as bar:
            for it0 in range(0, n, PROGRESS_CHUNK):
                carry, terms = _adam_chunk(carry, problem, weights, hp, jnp.asarray(it0, jnp.int32), stage, cfg)
                chunks.append(terms)
                done = bool(carry[3])  # waits for the chunk: the bar shows finished work
                bar.update(min(PROGRESS_CHUNK, n - it0))
                if done and it0 + PROGRESS_CHUNK < n:
                    last = jax.tree_util.tree_map(lambda h: h[-1], terms)
                    rest = n - it0 - PROGRESS_CHUNK
                    chunks.append(jax.tree_util.tree_map(lambda x: jnp.full((rest,), x), last))
                    bar.update(rest)
                    break
        history = jax.tree_util.tree_map(lambda *hs: jnp.concatenate(hs)[:n], *chunks)
        stages.append(StageResult(params=carry[0], history=history, nan_at=carry[2]))
        params = carry[0]
    return SolveResult(params=params, init=p0, stage1=stages[0], stage2=stages[1])


class _Bars:
    """Host-side progress bars, one per (label, stage), driven by ``jax.debug.callback``;
    labels are passed to the program as ints (data, not a compile-time constant)."""

    bars: dict = {}
    labels: list = [""]
    label: str = ""  # default label of solves called without one; set with progress_label()


@contextlib.contextmanager
def progress_label(label: str):
    """Within the block, the solver's progress bars read ``LABEL: stage N`` (the demo and the solve CLI
    say which window and which solve, joint or front ends only, a bar belongs to)."""
    old, _Bars.label = _Bars.label, label
    try:
        yield
    finally:
        _Bars.label = old


def label_id(label: str) -> int:
    """The int a progress label travels as through the compiled program."""
    if label not in _Bars.labels:
        _Bars.labels.append(label)
    return _Bars.labels.index(label)


def _progress(label, stage, it, n) -> None:
    from tqdm.auto import tqdm

    label, stage, it, n = int(np.max(label)), int(np.max(stage)), int(np.max(it)), int(np.max(n))
    key = (label, stage)
    bar = _Bars.bars.get(key)
    if bar is None or bar.n > it:
        name = _Bars.labels[label] if label < len(_Bars.labels) else ""
        bar = _Bars.bars[key] = tqdm(total=n, desc=f"{name + ': ' if name else ''}stage {stage}", unit="it", leave=True)
    bar.update(it - bar.n)
    if it >= n:
        bar.close()
        _Bars.bars.pop(key, None)


def _total_with_terms(loss_fn, params):
    terms = loss_fn(params)
    return terms.total, terms


def _stage(params, problem, weights, stage, cfg: Structure, hp: HyperParams, label) -> StageResult:
    if cfg.method == "gn":
        from .gauss_newton import run_stage_gn

        return run_stage_gn(params, problem, weights, stage, cfg, hp, label)
    return run_stage(params, problem, weights, stage, cfg, hp, label)


_init_jit = jax.jit(init_params)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _solve_jit(problem: Problem, weights: LossWeights, hp: HyperParams, label, cfg: Structure) -> SolveResult:
    p0 = init_params(problem)
    s1 = _stage(p0, problem, weights, 1, cfg, hp, label)
    s2 = _stage(s1.params, problem, weights, 2, cfg, hp, label)
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


def _weights(weights: LossWeights) -> LossWeights:
    return LossWeights(*(jnp.asarray(x, jnp.float32) for x in weights))


def solve(
    problem: Problem, weights: LossWeights = LossWeights(), cfg: SolveConfig = SolveConfig(), label: str = ""
) -> SolveResult:
    """Solve one window (both stages, one compiled program per bucket and :class:`Structure`).

    ``label`` names the progress bars (shown when ``cfg.progress_every`` > 0); it is data,
    so solves that differ only in label, progress, weights or hyper-parameters share a program.
    Adam with progress runs each stage as host-driven chunks of :data:`PROGRESS_CHUNK` iterations
    (:func:`_solve_chunked`: same iterations, no host callback in the program, so a second run of
    the same size loads it from JAX's persistent cache); gn's bars are a callback inside its program.
    """
    if cfg.method == "adam" and cfg.progress_every > 0:
        return _solve_chunked(_as_jax(problem), _weights(weights), cfg.hyper(), label or _Bars.label, cfg.structure())
    return _solve_jit(
        _as_jax(problem),
        _weights(weights),
        cfg.hyper(),
        jnp.asarray(label_id(label or _Bars.label), jnp.int32),
        cfg.structure(),
    )


@functools.partial(jax.jit, static_argnames=("cfg",))
def _solve_batch_jit(problems: Problem, weights: LossWeights, hp: HyperParams, label, cfg: Structure) -> SolveResult:
    return jax.vmap(lambda pr: _solve_jit.__wrapped__(pr, weights, hp, label, cfg))(problems)


def stack_problems(problems: list[Problem]) -> Problem:
    """Stack problems of one bucket along a new leading axis (for :func:`solve_batch`)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *problems)


def solve_batch(
    problems: Problem, weights: LossWeights = LossWeights(), cfg: SolveConfig = SolveConfig(), label: str = ""
) -> SolveResult:
    """vmap the solve over a stacked batch of windows (see :func:`stack_problems`)."""
    return _solve_batch_jit(
        problems,
        _weights(weights),
        cfg.hyper(),
        jnp.asarray(label_id(label or _Bars.label), jnp.int32),
        cfg.structure(),
    )
