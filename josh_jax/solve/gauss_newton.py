"""Levenberg-Marquardt Gauss-Newton with IRLS on the JOSH objective (``SolveConfig(method="gn")``).

Each loss term is written as robust distances of residual vectors,
``term = sum_g c_g rho_gamma(||r_g||)`` (``c_g`` the term's linear weights: loss weight,
per-track n_k weighting and the weighted means). Iteratively reweighted least squares
replaces rho by the quadratic ``c_g w_g ||r_g||^2 / 2`` with ``w_g = rho'(n) / max(n, eps)``
(n = ||r_g||, finite at n = 0), which touches rho from above at the current point (rho
is concave in n^2 for every gamma used here), so a step that lowers it lowers the loss.
The Gauss-Newton matrix ``H = J^T W J`` is built from the structure instead of a dense
Jacobian:

- scene terms (each correspondence touches one pair's relative pose, the depth scales of
  its two keyframes and the focal): per-match Jacobians over those 17 local variables
  (forward mode, vmapped over matches), summed per pair row into 17 x 17 blocks, chained
  to the two keyframes' world poses and the focal (29 variables), scattered into a small
  keyframe matrix and chained once through the camera tree to the camera parameters
  (a dense (14 K + 1) x (8 K + 1) Jacobian of the cheap pose chain);
- human terms (cheap): matrix-free products ``J^T W J v`` through ``jax.linearize`` of
  the weighted residuals, plus their explicit camera block (one forward tangent per
  camera parameter).

The damped system ``(H + lambda D) dx = -g`` is solved by conjugate gradients
preconditioned with the exact camera block (Cholesky) and the human diagonal; lambda
adapts per step (accepted: / 3, rejected: x 4); a stage stops at a relative decrease
below ``gn_tol`` or after ``gn_iters_stage*`` iterations (a fixed-size ``lax.scan`` whose
finished iterations are skipped, so the solve stays one program and still vmaps).
Camera quaternions are renormalised after each step; frozen groups keep dx = 0.

The human terms are not restated here: :func:`human_groups` takes the rows of
:data:`josh_jax.losses.HUMAN_TERMS` (the same evaluation :func:`josh_jax.losses.total_loss`
sums), so a term added there (or passed as ``SolveConfig.extra_terms``) is linearised too.
The scene term's structured linearisation (:func:`scene_rows`, :func:`keyframe_locals`)
restates its geometry in local variables for speed (the depth formula g (z + (a - 1) median
size) of ``scene_geometry`` included); the tests check it against a dense ``jax.jacfwd``
``J^T W J`` and :func:`scene_groups` against the scalar scene terms.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..losses import (
    HUMAN_TERMS,
    CameraParams,
    LossTerms,
    LossWeights,
    Params,
    _pair_focal,
    _partner_in_own_frame,
    _pixels,
    _robust_from_sq,
    _safe_sqrt,
    human_term_rows,
    scene_geometry,
    term_weight,
    total_loss,
    track_combination,
)
from ..problem import Problem

# ------------------------------------------------------------------ IRLS


def _c_of(gamma):
    return (1.0 / gamma) ** (1.0 / (gamma - 1.0))


def rho_from_sq(sq, gamma, delta=0.0):
    """rho_gamma(sqrt(sq)) = (n + c)^gamma - c^gamma (the losses' robust distance, the same function;
    ``delta`` its smoothing, LossWeights.robust_delta)."""
    return _robust_from_sq(sq, gamma, delta)


def irls_weight(sq, gamma, eps, delta=0.0):
    """IRLS weight rho'(n) / max(n, eps) of a residual with squared norm ``sq``: finite at
    n = 0 (where it is rho'(0) / eps = 1 / eps), exact above eps. With the smoothing ``delta``,
    n = sqrt(sq + delta^2) (the smoothed kernel's weight, exact)."""
    delta = jnp.asarray(delta, sq.dtype)
    n = _safe_sqrt(sq + delta * delta)
    c = _c_of(gamma)
    return gamma * (n + c) ** (gamma - 1.0) / jnp.maximum(n, eps)


class Group(NamedTuple):
    """Residuals of one robust term: ``sum_g c[g] rho_gamma(||r[g]||)``."""

    r: jax.Array  # (G, d)
    c: jax.Array  # (G,) linear weight of each residual in the total loss
    gamma: jax.Array  # ()
    delta: jax.Array | float = 0.0  # () the kernel's smoothing at 0 (LossWeights.robust_delta)


def human_groups_by_term(
    params: Params, problem: Problem, weights: LossWeights, geo, extra_terms: tuple = ()
) -> list[tuple[str, list[Group]]]:
    """[(term name, its groups)] of the human terms of :func:`josh_jax.losses.total_loss` (the rows
    of :data:`~josh_jax.losses.HUMAN_TERMS` plus ``extra_terms``, with each row's total weight:
    loss weight x n_k / sum n x the term's per-track factor x the row's weight in its track)."""
    human = problem.human
    P = human.valid.shape[0]
    comb = track_combination(human)
    out = []
    for t, rows, tw in human_term_rows(params, problem, weights, geo, HUMAN_TERMS + tuple(extra_terms)):
        per = term_weight(t, weights) * comb * jnp.broadcast_to(jnp.asarray(tw, comb.dtype), (P,))
        out.append((t.name, [Group(res.r, per[res.track] * res.c, res.gamma, res.delta) for res in rows]))
    return out


def human_groups(params: Params, problem: Problem, weights: LossWeights, geo, extra_terms: tuple = ()) -> list[Group]:
    """The human terms of :func:`josh_jax.losses.total_loss` as residual groups (loss weights included)."""
    return [g for _, groups in human_groups_by_term(params, problem, weights, geo, extra_terms) for g in groups]


def scene_groups(params: Params, problem: Problem, weights: LossWeights, stage: int, geo=None) -> list[Group]:
    """The scene term of one stage as residual groups (dense; for checks and small problems)."""
    scene = problem.scene
    geo = scene_geometry(params.cam, scene) if geo is None else geo
    x, y = _partner_in_own_frame(geo, scene)
    cw = scene.corr_w.reshape(-1)
    if stage == 1:
        r = (x[:, 0] - y[:, 0]).reshape(3, -1).T
        tot = jnp.sum(cw)
        return [
            Group(
                r,
                jnp.where(tot > 0, cw / jnp.where(tot > 0, tot, 1.0), 0.0),
                weights.gamma_scene_3d,
                weights.robust_delta,
            )
        ]
    uv = _pixels(geo, y, None if geo.focal_k is None else _pair_focal(geo, scene))
    r = (scene.corr_pix - jnp.swapaxes(uv, 0, 1)).reshape(2, 2, -1)  # (side, xy, Pr M)
    r = jnp.moveaxis(r, 1, -1).reshape(-1, 2)
    tot = 2 * jnp.sum(cw)
    c = jnp.tile(jnp.where(tot > 0, cw / jnp.where(tot > 0, tot, 1.0), 0.0), 2)
    return [Group(r, c, weights.gamma_scene_2d, weights.robust_delta)]


def groups_loss(groups: list[Group]) -> jax.Array:
    return sum(jnp.sum(gr.c * rho_from_sq(jnp.sum(gr.r * gr.r, -1), gr.gamma, gr.delta)) for gr in groups)


# ------------------------------------------------------------------ variables


class Layout(NamedTuple):
    """Flat variable vector: camera block (quat 4K, trans 3K, log_size K, log_focal 1), then humans."""

    K: int
    n_cam: int
    n: int


def cam_vector(cam: CameraParams) -> jax.Array:
    return jnp.concatenate([cam.quat.reshape(-1), cam.trans.reshape(-1), cam.log_size, cam.log_focal[None]])


def cam_from_vector(v: jax.Array, like: CameraParams) -> CameraParams:
    K = like.quat.shape[0]
    return like._replace(
        quat=v[: 4 * K].reshape(K, 4),
        trans=v[4 * K : 7 * K].reshape(K, 3),
        log_size=v[7 * K : 8 * K],
        log_focal=v[8 * K],
    )


def to_vector(params: Params):
    hv, unravel = ravel_pytree(params.human)
    cv = cam_vector(params.cam)
    K = params.cam.quat.shape[0]

    def unflatten(x):
        return Params(cam=cam_from_vector(x[: cv.shape[0]], params.cam), human=unravel(x[cv.shape[0] :]))

    return jnp.concatenate([cv, hv]), unflatten, Layout(K=K, n_cam=cv.shape[0], n=cv.shape[0] + hv.shape[0])


def stage_mask(lay: Layout, stage: int, cfg) -> jax.Array:
    """1 for the variables trained in this stage (the Adam solver's groups), else 0."""
    K = lay.K
    pose = 1.0 if cfg.optimize_cameras else 0.0
    focal = 1.0 if (stage == 2 and cfg.optimize_focal) else 0.0
    h = 1.0 if cfg.optimize_smpl else 0.0
    return jnp.concatenate([jnp.full(8 * K, pose), jnp.full(1, focal), jnp.full(lay.n - lay.n_cam, h)]).astype(
        jnp.float32
    )


# ------------------------------------------------------------------ scene normal equations


def keyframe_locals(cam: CameraParams, scene) -> jax.Array:
    """Per-keyframe quantities the scene residuals read: (K, 14) = world rotation (9), world
    translation (3), a, b with metric anchor depth = a + (anchor_depth - 1) b; then the focal.
    Returns (14 K + 1,)."""
    geo = scene_geometry(cam, scene)
    sizes = jnp.exp(cam.log_size)
    min_size = jnp.min(jnp.where(scene.kf_valid, sizes, jnp.inf))
    g = jnp.where(scene.enforce_scale, 1.0 / min_size, 1.0)
    fk = geo.focal if geo.focal_k is None else geo.focal_k  # () shared, or (K,) per keyframe (zoom)
    a = g * sizes * scene.median_depth * fk / scene.base_focal
    b = g * scene.median_depth * sizes
    T = geo.cam_to_world
    u = jnp.concatenate([T[:, :3, :3].reshape(-1, 9), T[:, :3, 3], a[:, None], b[:, None]], 1)
    return jnp.concatenate([u.reshape(-1), geo.focal[None]])


def _pair_locals(u29):
    """(u_i (14), u_j (14), f) -> relative pose j -> i (9 + 3), a_i, b_i, a_j, b_j, f (17)."""
    Ri, ti, Rj, tj = u29[:9].reshape(3, 3), u29[9:12], u29[14:23].reshape(3, 3), u29[23:26]
    R = Ri.T @ Rj
    t = Ri.T @ (tj - ti)
    return jnp.concatenate([R.reshape(-1), t, u29[12:14], u29[26:28], u29[28:29]])


def _rows_residuals(v, dv, rows: SceneRows, stage: int):
    """Residuals of every pair row, SoA (matches innermost): (nr, Pr, M), nr = 3 (stage 1:
    x_i - (R x_j + t)) or 4 (stage 2: u, v of side i, then of side j; pixels minus projection).

    ``v`` (Pr, 17): each row's locals (relative pose j -> i: R (9), t (3); a_i, b_i, a_j, b_j;
    f); ``dv`` (Pr, 11): a perturbation (omega (3): R (I + [omega]_x), tau (3): t + tau,
    then the 5 scalars added), evaluated at dv = 0 for the value and differentiated for
    the per-match Jacobians.
    """
    R = v[:, :9].reshape(-1, 3, 3)
    w = dv[:, :3]
    zero = jnp.zeros_like(w[:, 0])
    W = jnp.stack(
        [
            jnp.stack([zero, -w[:, 2], w[:, 1]], -1),
            jnp.stack([w[:, 2], zero, -w[:, 0]], -1),
            jnp.stack([-w[:, 1], w[:, 0], zero], -1),
        ],
        -2,
    )
    R = R + R @ W
    t = v[:, 9:12] + dv[:, 3:6]
    sc = v[:, 12:17] + dv[:, 6:11]
    fsh = sc[:, 4][:, None]  # the shared focal; side s sees fsh x fs[:, s] (per-keyframe zoom, else 1)
    fside = [fsh * rows.fs[:, s_, None] for s_ in range(2)]
    c = rows.c
    xs = []
    for s_, (a, b) in enumerate(((sc[:, 0], sc[:, 1]), (sc[:, 2], sc[:, 3]))):
        f = fside[s_]
        d = (a[:, None] + (rows.ad[:, s_] - 1.0) * b[:, None]) * (
            1.0 + (rows.ratio[:, s_] - 1.0) * rows.bf[:, s_, None] / f
        )
        xs.append(jnp.stack([(rows.pix[:, s_, 0] - c[0]) / f * d, (rows.pix[:, s_, 1] - c[1]) / f * d, d]))
    Rm = R[:, :, :, None]
    xj = xs[1]
    y0 = jnp.stack([Rm[:, k, 0] * xj[0] + Rm[:, k, 1] * xj[1] + Rm[:, k, 2] * xj[2] + t[:, k, None] for k in range(3)])
    if stage == 1:
        return xs[0] - y0

    def px(p, f):
        z = jnp.maximum(p[2], 1e-3)
        return jnp.clip(jnp.stack([f * p[0] / z + c[0], f * p[1] / z + c[1]]), -1000.0, 2000.0)

    e = xs[0] - t.T[:, :, None]
    y1 = jnp.stack([Rm[:, 0, k] * e[0] + Rm[:, 1, k] * e[1] + Rm[:, 2, k] * e[2] for k in range(3)])
    return jnp.concatenate(
        [rows.pix[:, 0].transpose(1, 0, 2) - px(y0, fside[0]), rows.pix[:, 1].transpose(1, 0, 2) - px(y1, fside[1])]
    )


class SceneRows(NamedTuple):
    """Per-row data of the scene term (precomputed once per stage)."""

    pix: jax.Array  # (Pr, 2 side, 2 xy, M)
    ad: jax.Array  # (Pr, 2, M) anchor depth / median of each match's anchor (held)
    ratio: jax.Array  # (Pr, 2, M)
    bf: jax.Array  # (Pr, 2)
    fs: jax.Array  # (Pr, 2) each side's focal / the shared focal (bundle v2 zoom; else ones)
    c: jax.Array  # (2,)
    w: jax.Array  # (Pr, M) linear weight of each match (corr_w / total)
    idx: jax.Array  # (Pr, 29) keyframe-local indices of each row


def scene_rows(params: Params, problem: Problem, stage: int) -> SceneRows:
    s = problem.scene
    img = s.pair_img  # (Pr, 2)
    ad = params.cam.anchor_depth
    ad_sel = jnp.stack([ad[img[:, k][:, None], s.corr_anchor[k]] for k in range(2)], 1)
    tot = jnp.sum(s.corr_w) * (1.0 if stage == 1 else 2.0)
    w = jnp.where(tot > 0, s.corr_w / jnp.where(tot > 0, tot, 1.0), 0.0)
    K = s.kf_valid.shape[0]
    base = img[:, :, None] * 14 + jnp.arange(14)[None, None]  # (Pr, 2, 14)
    idx = jnp.concatenate([base.reshape(-1, 28), jnp.full((img.shape[0], 1), 14 * K)], 1)
    return SceneRows(
        pix=jnp.moveaxis(s.corr_pix, 2, 0),
        ad=ad_sel,
        ratio=jnp.moveaxis(s.corr_ratio, 1, 0),
        bf=s.base_focal[img],
        fs=jnp.ones(img.shape, s.base_focal.dtype) if s.focal_scale is None else jnp.asarray(s.focal_scale)[img],
        c=s.pp * s.image_size,
        w=w,
        idx=idx,
    )


def _tangent_chain(v, E17):
    """d(11 tangent locals) / d(29 keyframe locals) from d(17 locals) / d(29): omega = vee(R^T dR)."""
    R = v[:, :9].reshape(-1, 3, 3)
    dR = E17[:, :9].reshape(-1, 3, 3, E17.shape[-1])
    A = jnp.einsum("pba,pbcj->pacj", R, dR)  # R^T dR, skew to first order
    om = 0.5 * jnp.stack([A[:, 2, 1] - A[:, 1, 2], A[:, 0, 2] - A[:, 2, 0], A[:, 1, 0] - A[:, 0, 1]], 1)
    return jnp.concatenate([om, E17[:, 9:]], 1)  # (Pr, 11, 29)


CHUNK_BYTES = 1 << 21  # per-match Jacobian bytes of one chunk of pair rows (sized to stay in the CPU caches)


def _row_blocks(v, rows: SceneRows, stage: int, gamma, eps, delta=0.0):
    """Per pair row: the 11 x 11 IRLS block sum_m J^T W J, the 11-gradient J^T W r and the
    term's value, for a chunk of rows (v (c, 17), rows' per-row fields (c, ...))."""
    c = v.shape[0]
    dv0 = jnp.zeros((c, 11), v.dtype)
    r, lin = jax.linearize(lambda dv: _rows_residuals(v, dv, rows, stage), dv0)
    J = jax.vmap(lambda e: lin(jnp.broadcast_to(e, (c, 11))))(jnp.eye(11, dtype=v.dtype))  # (11, nr, c, M)
    nr = r.shape[0]
    sides = 1 if stage == 1 else 2
    rs = r.reshape(sides, nr // sides, *r.shape[1:])
    sq = jnp.sum(rs * rs, 1)  # (sides, c, M)
    loss = jnp.sum(rows.w * rho_from_sq(sq, gamma, delta), (0, 2))
    wt = jnp.repeat(rows.w * irls_weight(sq, gamma, eps, delta), nr // sides, axis=0)  # (nr, c, M)
    Jw = J * wt
    return jnp.einsum("arpm,brpm->pab", Jw, J), jnp.einsum("arpm,rpm->pa", Jw, r), loss


def _over_row_chunks(fn, v, rows: SceneRows, chunk: int):
    """``fn(v, rows)`` over chunks of ``chunk`` pair rows (a ``lax.scan``; the rows are padded by
    repeating the last one with zero weight), outputs concatenated back to (Pr, ...)."""
    Pr = v.shape[0]
    n = -(-Pr // chunk)
    pad = n * chunk - Pr
    per_row = rows._replace(c=None, idx=None)

    def split(a, zero=False):
        if pad:
            tail = jnp.zeros_like(a[-1:]) if zero else a[-1:]
            a = jnp.concatenate([a, jnp.broadcast_to(tail, (pad, *a.shape[1:]))])
        return a.reshape(n, chunk, *a.shape[1:])

    xs = (
        split(v),
        per_row._replace(
            **{k: split(getattr(per_row, k), zero=(k == "w")) for k in ("pix", "ad", "ratio", "bf", "fs", "w")}
        ),
    )
    _, ys = jax.lax.scan(lambda _, x: (None, fn(x[0], x[1]._replace(c=rows.c))), None, xs)
    return jax.tree_util.tree_map(lambda y: y.reshape(n * chunk, *y.shape[2:])[:Pr], ys)


def scene_normal_equations(cam: CameraParams, problem: Problem, rows: SceneRows, gamma, eps, stage: int, delta=0.0):
    """IRLS Gauss-Newton matrix and gradient of the scene term w.r.t. the camera vector:
    (H (n_cam, n_cam), g (n_cam,), loss ())."""
    scene = problem.scene
    cv = cam_vector(cam)
    u_of = lambda v: keyframe_locals(cam_from_vector(v, cam), scene)  # noqa: E731
    u = u_of(cv)
    C = jax.jacfwd(u_of)(cv)  # (14K+1, n_cam)
    K = scene.kf_valid.shape[0]
    u29 = jnp.take(u, rows.idx)  # (Pr, 29)
    v, E17 = jax.vmap(lambda z: (_pair_locals(z), jax.jacfwd(_pair_locals)(z)))(u29)  # (Pr, 17), (Pr, 17, 29)
    E = _tangent_chain(v, E17)
    Pr, M = rows.w.shape
    nr = 3 if stage == 1 else 4
    chunk = int(max(1, min(Pr, CHUNK_BYTES // (11 * nr * M * v.dtype.itemsize))))
    H11, g11, lrow = _over_row_chunks(lambda vc, rc: _row_blocks(vc, rc, stage, gamma, eps, delta), v, rows, chunk)
    loss = jnp.sum(lrow)
    H29 = jnp.einsum("pai,pab,pbj->pij", E, H11, E)
    g29 = jnp.einsum("pai,pa->pi", E, g11)
    nu = 14 * K + 1
    Hu = jnp.zeros((nu, nu), H29.dtype).at[rows.idx[:, :, None], rows.idx[:, None, :]].add(H29)
    gu = jnp.zeros((nu,), g29.dtype).at[rows.idx].add(g29)
    return C.T @ Hu @ C, C.T @ gu, loss


# ------------------------------------------------------------------ the LM stage


def _weighted_residuals(groups: list[Group], sw: list[jax.Array]) -> jax.Array:
    return jnp.concatenate([(gr.r * s[:, None]).reshape(-1) for gr, s in zip(groups, sw)])


def _pcg(matvec, b, precond, x0, iters: int, tol):
    """Preconditioned conjugate gradients, at most ``iters`` iterations (while_loop).

    Stops early at the relative residual ``tol``, and before an update that would use a
    non-positive or non-finite curvature p^T A p or a non-finite residual (float32 round-off
    can make a barely damped Gauss-Newton matrix indefinite along some direction; a CG
    update there diverges). The iterate returned is then the last good one: finite, and
    for a symmetric positive definite A each CG iterate from x0 = 0 lowers the quadratic model."""
    r = b - matvec(x0)
    z = precond(r)
    p = z
    rz = jnp.vdot(r, z)
    bnorm = jnp.maximum(jnp.vdot(b, b), 1e-30)

    def cond(st):
        i, x, r, z, p, rz, ok = st
        return ok & (i < iters) & (jnp.vdot(r, r) > tol * tol * bnorm)

    def body(st):
        i, x, r, z, p, rz, _ = st
        Ap = matvec(p)
        pAp = jnp.vdot(p, Ap)
        alpha = rz / jnp.where(pAp > 0, pAp, 1.0)
        x_new = x + alpha * p
        r_new = r - alpha * Ap
        z_new = precond(r_new)
        rz_new = jnp.vdot(r_new, z_new)
        good = (pAp > 0) & jnp.isfinite(pAp) & jnp.isfinite(rz_new) & jnp.all(jnp.isfinite(x_new))
        p_new = z_new + (rz_new / jnp.where(rz != 0, rz, 1.0)) * p
        keep = lambda a, b: jnp.where(good, a, b)  # noqa: E731
        return i + 1, keep(x_new, x), keep(r_new, r), keep(z_new, z), keep(p_new, p), keep(rz_new, rz), good

    ok0 = jnp.isfinite(rz) & (rz > 0)
    _, x, *_ = jax.lax.while_loop(cond, body, (jnp.array(0), x0, r, z, p, rz, ok0))
    return x


class StageSystem(NamedTuple):
    """The pieces of one LM stage (functions closed over the problem), for the solver and the tests."""

    x0: jax.Array
    unflatten: object
    lay: Layout
    mask: jax.Array
    loss_terms: object  # x -> LossTerms
    scene_lin: object  # x -> (H_scene (nc, nc), g_scene (nc,))
    human_lin: object  # x -> (r0, jvp, vjp, diag_h)
    system: object  # (x, lam, Hs, gs) -> (matvec, precond, g, finite)
    renorm: object


def stage_system(
    params: Params, problem: Problem, weights: LossWeights, stage: int, cfg, hp, mask: jax.Array | None = None
) -> StageSystem:
    """The LM pieces of one stage at ``params``; ``mask`` (n,) overrides the stage's trained
    variables (1 trained, 0 held; the differentiable solve holds more)."""
    x0, unflatten, lay = to_vector(params)
    mask = stage_mask(lay, stage, cfg).astype(x0.dtype) if mask is None else mask.astype(x0.dtype)
    rows = scene_rows(params, problem, stage)
    gamma_s = weights.gamma_scene_3d if stage == 1 else weights.gamma_scene_2d
    eps = hp.irls_eps
    nc = lay.n_cam
    K = lay.K

    extra = cfg.extra_terms

    def loss_terms(x):
        return total_loss(unflatten(x), problem, weights, stage, extra)

    def renorm(x):
        q = x[: 4 * K].reshape(K, 4)
        return x.at[: 4 * K].set((q / jnp.linalg.norm(q, axis=-1, keepdims=True)).reshape(-1))

    def human_lin(x):
        """Human IRLS pieces at x: weighted residuals (weights frozen), their linear map and transpose."""
        p = unflatten(x)
        named = human_groups_by_term(p, problem, weights, scene_geometry(p.cam, problem.scene), extra)
        groups = [g for _, gs in named for g in gs]
        first = 0  # the prior's groups (quat, transl, body, betas): their identity Jacobian gives diag_h
        for name, gs in named:
            if name == "prior":
                break
            first += len(gs)
        sw = [
            jax.lax.stop_gradient(jnp.sqrt(gr.c * irls_weight(jnp.sum(gr.r * gr.r, -1), gr.gamma, eps, gr.delta)))
            for gr in groups
        ]

        def rw(z):
            pz = unflatten(z)
            return _weighted_residuals(
                human_groups(pz, problem, weights, scene_geometry(pz.cam, problem.scene), extra), sw
            )

        r0, jvp = jax.linearize(rw, x)
        vjp = jax.linear_transpose(jvp, x)
        # exact diagonal of the prior part (identity Jacobian): the human variables' damping scale
        pri = [s * s for s in sw[first : first + 4]]
        diag_h = jnp.concatenate([jnp.repeat(w, groups[first + i].r.shape[1]) for i, w in enumerate(pri)])
        return r0, jvp, vjp, diag_h

    def scene_lin(x):
        p = unflatten(x)
        H, g, _ = scene_normal_equations(p.cam, problem, rows, gamma_s, eps, stage, weights.robust_delta)
        return H, g

    def system(x, lam, Hs, gs):
        r0, jvp, vjp, diag_h = human_lin(x)
        (gh,) = vjp(r0)
        g = (jnp.concatenate([gs, jnp.zeros(lay.n - nc, gs.dtype)]) + gh) * mask
        # explicit camera block of the human part: one tangent per camera variable
        basis = jnp.eye(lay.n, nc, dtype=x.dtype)
        Jc = jax.vmap(jvp, in_axes=1, out_axes=1)(basis)  # (nres_h, nc)
        Hcc = Hs + Jc.T @ Jc
        # the camera block's diagonal, clamped at 0: along gauge directions (the root camera's pose,
        # seen only through relative poses) the exact value is ~0 and float32 round-off in the
        # chained C^T H C can make it slightly negative (a NaN Jacobi scale stalled stage 2 there)
        dc = jnp.maximum(jnp.diag(Hcc), 0.0)
        floor_c = 1e-6 * jnp.maximum(jnp.max(dc), 1e-30)
        floor_h = 1e-6 * jnp.maximum(jnp.max(diag_h), 1e-30)
        D = jnp.concatenate([dc + floor_c, diag_h + floor_h])
        mc, mh = mask[:nc], mask[nc:]

        def matvec(v):
            v = v * mask
            (hv,) = vjp(jvp(v))
            hv = hv + jnp.concatenate([Hs @ v[:nc], jnp.zeros(lay.n - nc, v.dtype)]) + lam * D * v
            return hv * mask + (1.0 - mask) * v

        # camera block of the preconditioner: Cholesky of the Jacobi-scaled damped block (unit
        # diagonal + lambda, well conditioned in float32); a failed factorisation falls back to Jacobi
        sc = mc / jnp.sqrt(dc + floor_c)
        A = Hcc * (sc[:, None] * sc[None, :]) + jnp.diag(lam * mc + (1.0 - mc) + 1e-6)
        chol = jnp.linalg.cholesky(A)
        chol_ok = jnp.all(jnp.isfinite(chol))
        chol = jnp.where(chol_ok, chol, jnp.eye(nc, dtype=chol.dtype))
        dcl = jnp.where(chol_ok, 1.0, 1.0 + lam)
        dh = (diag_h + floor_h) * (1.0 + lam)

        def precond(rv):
            zc = sc * jax.scipy.linalg.cho_solve((chol, True), sc * rv[:nc]) / dcl
            return jnp.concatenate([zc, rv[nc:] / jnp.where(mh > 0, dh, 1.0)])

        return matvec, precond, g, jnp.all(jnp.isfinite(g))

    return StageSystem(
        x0=x0,
        unflatten=unflatten,
        lay=lay,
        mask=mask,
        loss_terms=loss_terms,
        scene_lin=scene_lin,
        human_lin=human_lin,
        system=system,
        renorm=renorm,
    )


def run_stage_gn(params: Params, problem: Problem, weights: LossWeights, stage: int, cfg, hp, label=0):
    """One stage of Levenberg-Marquardt Gauss-Newton (same frozen groups and terms as Adam's).
    The history holds the loss at the start and after each iteration (``gn_iters + 1`` entries)."""
    from .solver import StageResult

    n_it = cfg.gn_iters_stage1 if stage == 1 else cfg.gn_iters_stage2
    tol = hp.gn_tol_stage1 if stage == 1 else hp.gn_tol
    ss = stage_system(params, problem, weights, stage, cfg, hp)
    x, history, nan_at = lm_iterations(ss, cfg, hp, n_it, tol, label, stage)
    return StageResult(params=ss.unflatten(x), history=history, nan_at=nan_at)


def lm_iterations(ss: StageSystem, cfg, hp, n_it: int, tol, label=0, stage: int = 2, damping=None):
    """``n_it`` Levenberg-Marquardt iterations of the system ``ss`` from ``ss.x0`` (a fixed-size
    ``lax.scan``; iterations after the relative-decrease stop ``tol`` are skipped). Returns the
    final vector, the loss history (``n_it + 1`` entries) and the first non-finite iteration (-1)."""
    from .solver import progress_tick

    x0, mask, loss_terms = ss.x0, ss.mask, ss.loss_terms
    nc = ss.lay.n_cam

    def step(x, f, lam, Hs, gs, stale, it):
        Hs, gs = jax.lax.cond(stale, lambda: ss.scene_lin(x), lambda: (Hs, gs))
        # a non-finite entry in the linearisation or the step is zeroed (the step is still checked
        # against the true loss, which only accepts decreases) and reported through nan_at
        finite_lin = jnp.all(jnp.isfinite(Hs)) & jnp.all(jnp.isfinite(gs))
        Hs, gs = (
            jnp.nan_to_num(Hs, nan=0.0, posinf=0.0, neginf=0.0),
            jnp.nan_to_num(gs, nan=0.0, posinf=0.0, neginf=0.0),
        )
        matvec, precond, g, finite_g = ss.system(x, lam, Hs, gs)
        finite_g = finite_g & finite_lin
        g = jnp.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        dx = _pcg(matvec, -g, precond, jnp.zeros_like(x), cfg.cg_iters, hp.cg_tol) * mask
        finite_g = finite_g & jnp.all(jnp.isfinite(dx))
        dx = jnp.where(jnp.isfinite(dx), dx, 0.0)
        x_new = ss.renorm(x + dx)
        return x_new, loss_terms(x_new), Hs, gs, finite_g

    f0_terms = loss_terms(x0)

    def body(carry, it):
        x, terms, lam, Hs, gs, stale, done, nan_at = carry
        progress_tick(cfg, hp, label, stage, it + 1, n_it)

        def do():
            x_new, t_new, Hs2, gs2, finite_g = step(x, terms.total, lam, Hs, gs, stale, it)
            f, f_new = terms.total, t_new.total
            ok = jnp.isfinite(f_new) & (f_new < f)
            rel = (f - f_new) / jnp.maximum(jnp.abs(f), 1e-30)
            x2 = jnp.where(ok, x_new, x)
            t2 = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), t_new, terms)
            lam2 = jnp.where(ok, jnp.maximum(lam / 3.0, 1e-9), lam * 4.0)
            done2 = (ok & (rel < tol)) | (lam2 > 1e9)
            nan2 = jnp.where((nan_at < 0) & ~finite_g, it, nan_at)
            return x2, t2, lam2, Hs2, gs2, ok, done2, nan2

        new = jax.lax.cond(done, lambda: (x, terms, lam, Hs, gs, stale, done, nan_at), do)
        return new, new[1]

    init = (
        x0,
        f0_terms,
        jnp.asarray(hp.damping if damping is None else damping, x0.dtype),
        jnp.zeros((nc, nc), x0.dtype),
        jnp.zeros((nc,), x0.dtype),
        jnp.array(True),
        ~jnp.isfinite(f0_terms.total),
        jnp.where(jnp.isfinite(f0_terms.total), -1, 0).astype(jnp.int32),
    )
    (x, _, _, _, _, _, _, nan_at), history = jax.lax.scan(body, init, jnp.arange(n_it, dtype=jnp.int32))
    history = jax.tree_util.tree_map(lambda h0, h: jnp.concatenate([h0[None], h]), f0_terms, history)
    return x, LossTerms(*history), nan_at
