"""A differentiable joint solve: ``jax.grad`` through JOSH's optimization (implicit gradients).

:func:`solve_differentiable` runs the Gauss-Newton solve (``SolveConfig(method="gn")``, both
stages) and differentiates its stage-2 solution with the implicit function theorem instead of
unrolling the optimizer:

1. **A smooth objective.** JOSH's robust distance has slope 1 at a zero residual (a kink, like an
   L1 norm), and its solutions sit on such kinks: a body group stays exactly at the front end's
   value, a keyframe's depth scale at one contact's depth (a weighted median). There the solution
   has no derivative. The differentiable solve therefore minimises the objective with every robust
   distance smoothed at zero, ``||r|| -> sqrt(||r||^2 + delta^2)`` (``LossWeights.robust_delta``,
   set from ``DiffConfig.smoothing``; 1e-3 by default: a millimetre, a thousandth of a pixel).
2. **Polish.** ``polish_iters`` more Levenberg-Marquardt iterations (no early stop) with the root
   camera's pose (the gauge: the objective sees relative poses only), padding and every group the
   stage freezes (anchor depths; cameras or bodies the config holds) held; ``stationarity``
   reports the remaining gradient, ``converged`` whether it is small.
3. **Backward pass.** With ``x*`` the solution, ``m`` the free variables and ``L`` the stage-2
   objective, ``G(x, theta) = m grad_x L + (1 - m)(x - x0(theta))`` is zero at ``x*`` (held
   variables sit at their initial values ``x0``), so ``dx*/dtheta = -(dG/dx)^-1 dG/dtheta``. The
   VJP solves the adjoint system ``H_ff u_f = v_f`` with the exact Hessian of ``L`` (Hessian-vector
   products, forward over reverse) by conjugate gradients preconditioned with the solver's own
   structured Gauss-Newton system (camera block by Cholesky, bodies by their diagonal), sets
   ``u_z = v_z - H_zf u_f`` and returns ``-(dG/dtheta)^T u``: one linear solve and one
   second-order VJP, however many iterations the solver ran. The camera quaternions' scale
   (renormalised by the solver, invisible to the objective) is fixed in the adjoint system by a
   penalty ``alpha (|q|^2 - 1)^2 / 4`` whose gradient is zero at the solution: it changes no
   derivative, it only makes the system definite.

Differentiable inputs: every floating leaf of the :class:`~josh_jax.problem.Problem` (the body
front end's ``human.init_*``, the depths ``scene.anchor_depth`` / ``median_depth`` /
``corr_ratio``, correspondence pixels and confidences, contact weights, the initial focal, the
body model's arrays) and every :class:`~josh_jax.losses.LossWeights` field. Not differentiable
(zero gradient): integer and boolean structure (pairs, tree, masks, contact indices). ``jax.grad``,
``jax.vjp``, ``jit`` and ``vmap`` work; forward mode (``jax.jvp``) is not provided.

See docs/differentiable.md for assumptions and limits.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..losses import HumanParams, LossTerms, LossWeights, Params, init_params, total_loss
from ..problem import Problem
from . import gauss_newton as gn
from .solver import HyperParams, SolveConfig, Structure, _solve_jit


@dataclasses.dataclass(frozen=True)
class DiffConfig:
    """Settings of :func:`solve_differentiable` (static: changing one recompiles).

    ``smoothing``: ``LossWeights.robust_delta`` of the solve (the robust distances' smoothing at
    zero, in each term's units: metres, pixels; > 0, or the solution sits on kinks).
    ``polish_iters``: Levenberg-Marquardt iterations after the two stages, without early stop.
    ``newton_steps``: then Newton steps with the exact Hessian (the backward pass's linear solve;
    the longest of 1, 1/2, 1/4, 1/8 of the step that does not raise the objective): fast
    convergence to the stationary point that the implicit gradient assumes.
    ``newton_cg_iters``: conjugate-gradient iterations of each forward Newton step (fewer make an
    inexact, cheaper Newton step: 25 halves the forward time on the default window but stops
    further from stationarity; the relative residual is ``adjoint_tol``).
    ``adjoint_iters`` / ``adjoint_tol``: conjugate-gradient iterations and relative residual of
    the backward pass's linear solve. ``stationarity_tol``: ``converged`` is set when the largest
    free gradient entry is at most this times the largest one at the start of stage 2.
    """

    smoothing: float = 1e-3
    polish_iters: int = 8
    newton_steps: int = 3
    newton_cg_iters: int = 100
    adjoint_iters: int = 100
    adjoint_tol: float = 1e-6
    stationarity_tol: float = 1e-3

    def __post_init__(self):
        if not self.smoothing > 0:
            raise ValueError(f"DiffConfig.smoothing must be > 0 (the objective must be smooth), got {self.smoothing!r}")


class DiffResult(NamedTuple):
    """The solution and how much to trust its gradients."""

    params: Params  # the stage-2 solution (differentiable)
    loss: LossTerms  # stage-2 loss terms at ``params``
    converged: jax.Array  # () bool: stationarity <= DiffConfig.stationarity_tol
    stationarity: jax.Array  # () max |free gradient| / max |gradient at the start|
    free: jax.Array  # () int: free variables (the adjoint system's size)


# ------------------------------------------------------------------ masks


def _human_like(hp: HumanParams, quat, transl, body, betas) -> HumanParams:
    """A HumanParams of per-variable values broadcast from per-group ones."""
    return HumanParams(
        quat=jnp.broadcast_to(quat[..., None], hp.quat.shape).astype(hp.quat.dtype),
        transl=jnp.broadcast_to(transl[..., None], hp.transl.shape).astype(hp.transl.dtype),
        body=jnp.broadcast_to(body[..., None, None, None], hp.body.shape).astype(hp.body.dtype),
        betas=jnp.broadcast_to(betas[..., None], hp.betas.shape).astype(hp.betas.dtype),
    )


def free_mask(params: Params, problem: Problem, cfg: Structure) -> jax.Array:
    """(n,) 1 for the variables the stage-2 solution is stationary in, 0 for held ones: the
    stage's frozen groups (anchor depths; cameras or bodies where the config holds them),
    padding and the root camera's pose (the gauge: the objective sees relative poses only)."""
    x, _, lay = gn.to_vector(params)
    s, h = problem.scene, problem.human
    K = lay.K
    kf = jnp.asarray(s.kf_valid).astype(x.dtype)
    root = jax.nn.one_hot(jnp.asarray(s.tree_order)[0], K, dtype=x.dtype)
    pose = kf * (1.0 - root)
    # without contacts the scale is a gauge too: the smallest size is held (see regauge)
    smallest = jax.nn.one_hot(
        jnp.argmin(jnp.where(jnp.asarray(s.kf_valid), params.cam.log_size, jnp.inf)), K, dtype=x.dtype
    )
    size = kf * (1.0 - jnp.where(jnp.asarray(s.enforce_scale), smallest, 0.0))
    cam = jnp.concatenate([jnp.repeat(pose, 4), jnp.repeat(pose, 3), size, jnp.ones(1, x.dtype)])
    valid = jnp.asarray(h.valid)
    has = jnp.asarray(h.n_frames) > 0
    hm = _human_like(params.human, valid, valid, valid, has)
    hv, _ = ravel_pytree(hm)
    return gn.stage_mask(lay, 2, cfg).astype(x.dtype) * jnp.concatenate([cam, hv])


def regauge(params: Params, problem: Problem) -> Params:
    """The solution moved to the held gauge, an exact change of representation (the objective's
    value is unchanged) that the solver leaves free and lets drift with round-off:

    - the root camera's pose back to its initial value (the objective sees relative poses only);
    - where the scene has no contact at all (``enforce_scale``: g = 1 / the smallest depth size),
      the global scale too: every log size shifted by ``c`` and every relative translation scaled by
      ``exp(c)`` leaves the geometry as it is; ``c`` makes the smallest size 1 (held by
      :func:`free_mask`)."""
    s = problem.scene
    root = jnp.asarray(s.tree_order)[0]
    c0, c = init_params(problem).cam, params.cam
    quat = c.quat.at[root].set(c0.quat[root])
    valid = jnp.asarray(s.kf_valid)
    shift = -jnp.min(jnp.where(valid, c.log_size, jnp.inf))
    shift = jnp.where(jnp.asarray(s.enforce_scale) & jnp.isfinite(shift), shift, 0.0)
    log_size = jnp.where(valid, c.log_size + shift, c.log_size)
    trans = (c.trans * jnp.exp(shift)).at[root].set(c0.trans[root])
    return params._replace(cam=c._replace(quat=quat, trans=trans, log_size=log_size))


# ------------------------------------------------------------------ forward


def _objective(x, unflatten, problem, weights, extra):
    return total_loss(unflatten(x), problem, weights, 2, extra).total


def _quat_penalty_hvp(x, v, alpha, lay):
    """Hessian-vector product of alpha_k (|q_k|^2 - 1)^2 / 4 over the cameras at |q| = 1."""
    K = lay.K
    q, w = x[: 4 * K].reshape(K, 4), v[: 4 * K].reshape(K, 4)
    hq = 2.0 * alpha[:, None] * q * jnp.sum(q * w, -1, keepdims=True)
    return jnp.zeros_like(v).at[: 4 * K].set(hq.reshape(-1))


class _Newton(NamedTuple):
    """The exact second-order system of the stage-2 objective at ``x`` over the free variables."""

    f: object  # z -> objective
    grad: jax.Array  # (n,) gradient at x
    hess: object  # w -> H w at x (exact Hessian + the quaternion-scale penalty)
    solve: object  # b -> u with (m H m + (1 - m)) u = b, by preconditioned CG


def _newton_system(problem, weights, hp, cfg: Structure, x, m, iters: int, tol) -> _Newton:
    unflatten = _unflatten_in(problem)
    f = functools.partial(_objective, unflatten=unflatten, problem=problem, weights=weights, extra=cfg.extra_terms)
    grad_f = jax.grad(f)
    # the preconditioner: the solver's structured Gauss-Newton system at x
    ss = gn.stage_system(unflatten(x), problem, weights, 2, cfg, hp, mask=m)
    Hs, gs = ss.scene_lin(x)
    Hs = jnp.nan_to_num(Hs)
    _, precond, _, _ = ss.system(x, jnp.asarray(1e-6, x.dtype), Hs, jnp.nan_to_num(gs))
    K = ss.lay.K
    dq = jnp.diag(Hs)[: 4 * K].reshape(K, 4)
    alpha = jnp.maximum(jnp.mean(dq, -1), 1e-6 * jnp.maximum(jnp.max(jnp.diag(Hs)), 1e-30))
    g, lin = jax.linearize(grad_f, x)

    def hess(w):
        return lin(w) + _quat_penalty_hvp(x, w, alpha, ss.lay)

    def solve(b):
        def matvec(w):
            return m * hess(m * w) + (1.0 - m) * w

        def pre(r):
            return m * precond(r) + (1.0 - m) * r

        return m * gn._pcg(matvec, m * b, pre, jnp.zeros_like(x), iters, tol)

    return _Newton(f=f, grad=g, hess=hess, solve=solve)


def _forward(problem: Problem, weights: LossWeights, hp: HyperParams, cfg: Structure, dc: DiffConfig):
    res = _solve_jit.__wrapped__(problem, weights, hp, jnp.asarray(0, jnp.int32), cfg)
    p = regauge(res.params, problem)
    m = free_mask(p, problem, cfg)
    ss = gn.stage_system(p, problem, weights, 2, cfg, hp, mask=m)
    x, _, _ = gn.lm_iterations(ss, cfg, hp, dc.polish_iters, jnp.asarray(0.0, ss.x0.dtype), stage=2)

    def newton_step(_, x):
        nw = _newton_system(problem, weights, hp, cfg, x, m, dc.newton_cg_iters, dc.adjoint_tol)
        dx = -nw.solve(nw.grad)
        f0 = nw.f(x)
        # backtracking: the longest of 1, 1/2, 1/4, 1/8 of the Newton step that lowers the objective
        cands = [ss.renorm(x + t * dx) for t in (1.0, 0.5, 0.25, 0.125)]
        out = x
        for c in reversed(cands):
            f1 = nw.f(c)
            out = jnp.where(jnp.isfinite(f1) & (f1 <= f0), c, out)
        return out

    x = jax.lax.fori_loop(0, dc.newton_steps, newton_step, x)
    f = functools.partial(_objective, unflatten=ss.unflatten, problem=problem, weights=weights, extra=cfg.extra_terms)
    g_end = jnp.max(jnp.abs(jax.grad(f)(x) * m))
    g_start = jnp.max(jnp.abs(jax.grad(f)(gn.to_vector(res.stage1.params)[0]) * m))
    stat = g_end / jnp.maximum(g_start, jnp.finfo(x.dtype).tiny)
    params = ss.unflatten(x)
    out = DiffResult(
        params=params,
        loss=total_loss(params, problem, weights, 2, cfg.extra_terms),
        converged=stat <= dc.stationarity_tol,
        stationarity=stat,
        free=jnp.sum(m).astype(jnp.int32),
    )
    return out, (x, m)


def _unflatten_in(problem):
    """The vector -> Params map whose held anchor depths are ``problem``'s (traced with it)."""
    return gn.to_vector(init_params(problem))[1]


def _backward(problem, weights, hp, cfg: Structure, dc: DiffConfig, x, m, ct: DiffResult):
    """The implicit VJP from the result's cotangent ``ct`` (its params and loss terms; the anchor
    depths, held at the problem's, pass straight through). Returns those of (problem, weights)."""
    ct_loss = ct.loss
    v = jnp.asarray(gn.cam_vector(ct.params.cam), x.dtype)
    v = jnp.concatenate([v, jnp.asarray(ravel_pytree(ct.params.human)[0], x.dtype)])

    def terms_dot(z, pr, wt):  # the loss terms' cotangent as one scalar
        t = total_loss(_unflatten_in(pr)(z), pr, wt, 2, cfg.extra_terms)
        return sum(jnp.sum(jnp.asarray(c, z.dtype) * a) for c, a in zip(ct_loss, t))

    v = v + jax.grad(terms_dot)(x, problem, weights)
    nw = _newton_system(problem, weights, hp, cfg, x, m, dc.adjoint_iters, dc.adjoint_tol)
    uf = nw.solve(v)
    u = uf + (1.0 - m) * (v - nw.hess(uf))

    def G(pr, wt):
        x0, unf, _ = gn.to_vector(init_params(pr))  # the held anchor depths are the problem's
        fx = functools.partial(_objective, unflatten=unf, problem=pr, weights=wt, extra=cfg.extra_terms)
        return m * jax.grad(fx)(x) + (1.0 - m) * (x - x0), terms_dot(x, pr, wt), init_params(pr).cam.anchor_depth

    _, vjp = jax.vjp(G, problem, weights)
    return vjp((-u, jnp.ones((), x.dtype), jnp.asarray(ct.params.cam.anchor_depth, x.dtype)))


@functools.cache
def _implicit(cfg: Structure, dc: DiffConfig):
    @jax.custom_vjp
    def run(problem, weights, hp):
        return _forward(problem, weights, hp, cfg, dc)[0]

    def fwd(problem, weights, hp):
        out, (x, m) = _forward(problem, weights, hp, cfg, dc)
        return out, (problem, weights, hp, x, m)

    def bwd(saved, ct: DiffResult):
        problem, weights, hp, x, m = saved
        ct_problem, ct_weights = _backward(problem, weights, hp, cfg, dc, x, m, ct)
        return (
            _merge_float0(problem, ct_problem),
            ct_weights,
            _merge_float0(hp, jax.tree_util.tree_map(jnp.zeros_like, hp)),
        )

    run.defvjp(fwd, bwd)
    return jax.jit(run)


def _merge_float0(problem, ct):
    """Cotangents for ``problem``: ``ct``'s for floating leaves, float0 zeros for integer and
    boolean ones."""

    def fix(a, c):
        a = jnp.asarray(a)
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return c
        return np.zeros(a.shape, jax.dtypes.float0)

    return jax.tree_util.tree_map(fix, problem, ct)


def _as_arrays(tree):
    return jax.tree_util.tree_map(jnp.asarray, tree)


def solve_differentiable(
    problem: Problem,
    weights: LossWeights = LossWeights(),
    cfg: SolveConfig = SolveConfig(method="gn"),
    diff: DiffConfig = DiffConfig(),
) -> DiffResult:
    """Solve one window with Gauss-Newton and return a result ``jax.grad`` can differentiate with
    respect to the problem's floating inputs and the loss weights (implicit function theorem at
    the solution; see the module docstring). ``cfg.method`` must be "gn". jit-compiled once per
    problem bucket, :class:`~josh_jax.solve.solver.Structure` and ``diff``; vmap it for a batch.
    float64 problems (inside ``jax.enable_x64``) are solved in float64."""
    if cfg.method != "gn":
        raise ValueError("solve_differentiable needs SolveConfig(method='gn'): gradients are taken at its solution")
    return _implicit(cfg.structure(), diff)(*_prepared(problem, weights, cfg, diff))


def _prepared(problem: Problem, weights: LossWeights, cfg: SolveConfig, diff: DiffConfig):
    """(problem, weights, hyper-parameters) as the solve takes them: arrays, in the problem's float
    dtype, the weights' ``robust_delta`` set to ``diff.smoothing``."""
    dt = jnp.asarray(problem.init_focal).dtype
    hp = jax.tree_util.tree_map(lambda a: a.astype(dt) if jnp.issubdtype(a.dtype, jnp.floating) else a, cfg.hyper())
    weights = LossWeights(*(jnp.asarray(w, dt) for w in weights))._replace(robust_delta=jnp.asarray(diff.smoothing, dt))
    return _as_arrays(problem), weights, hp
