"""JOSH's joint objective as public pure functions (SPEC "Loss terms").

Every function is plain JAX (no jit inside): compose it under your own
``jit`` / ``vmap`` / ``grad``. Arrays follow :mod:`josh_jax.problem`'s padded
layout: an entry with weight 0 is padding and contributes exactly zero value
and zero gradient. Units: metres for 3D, working-image pixels for 2D.

Example (a contact-style robust distance in your own code)::

    from josh_jax.losses import robust_distance
    loss = robust_distance(pred_xyz, target_xyz, gamma=1.1).mean()
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .body.model import forward
from .geometry import make_se3, quat_to_matrix
from .problem import PROBLEM_CHOICES, HumanData, Problem, SceneData

# ------------------------------------------------------------------ parameters


class CameraParams(NamedTuple):
    """Scene variables (SPEC "Variables"). K keyframes, A anchors."""

    quat: jax.Array  # (K, 4) wxyz rotation of each camera relative to its tree parent
    trans: jax.Array  # (K, 3) translation relative to the tree parent
    log_size: jax.Array  # (K,) log scale of each keyframe's depth
    anchor_depth: jax.Array  # (K, A) anchor depths / median (trained only with optimize_depth)
    log_focal: jax.Array  # () shared log focal, working px


class HumanParams(NamedTuple):
    """Human variables per track (P) and keyframe slot (K)."""

    quat: jax.Array  # (P, K, 4) root orientation wxyz in the camera frame
    transl: jax.Array  # (P, K, 3) camera-frame translation, metres
    body: jax.Array  # (P, K, 23, 3, 3) body rotations, raw 3x3 entries (not re-projected)
    betas: jax.Array  # (P, B)


class Params(NamedTuple):
    cam: CameraParams
    human: HumanParams


class LossWeights(NamedTuple):
    """Traced weights (a sweep over them does not recompile). Defaults: josh/config.py."""

    scale: float = 1.0
    prior: float = 100.0
    static: float = 0.1
    smooth: float = 0.1
    gamma_scene_3d: float = 1.1
    gamma_scene_2d: float = 0.4
    gamma_human: float = 1.1
    # every robust distance smoothed at zero: ||r|| -> sqrt(||r||^2 + delta^2) (minus its value at 0);
    # 0 (default): the reference's kernel, whose slope 1 at 0 is a kink; > 0 makes the objective
    # smooth, as the differentiable solve needs (josh_jax.solve.differentiable)
    robust_delta: float = 0.0


def init_params(problem: Problem) -> Params:
    """The reference's starting point: identity relative cameras, unit sizes, the
    initial focal, and the human front end's values (cameras given by the front end or a warm
    start, and a warm start's sizes, where the problem holds them)."""
    s, h = problem.scene, problem.human
    K = s.kf_valid.shape[0]
    # float32, or the problem's float64 when it is given in float64 (finite-difference checks)
    dt = jnp.float64 if jnp.asarray(problem.init_focal).dtype == jnp.float64 else jnp.float32
    given = s.init_cam_quat is not None  # cameras given by the front end (bundle v2)
    cam = CameraParams(
        quat=jnp.asarray(s.init_cam_quat, dt) if given else jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], dt), (K, 1)),
        trans=jnp.asarray(s.init_cam_trans, dt) if given else jnp.zeros((K, 3), dt),
        log_size=jnp.zeros((K,), dt) if s.init_log_size is None else jnp.asarray(s.init_log_size, dt),
        anchor_depth=jnp.asarray(s.anchor_depth, dt),
        log_focal=jnp.log(jnp.asarray(problem.init_focal, dt)),
    )
    human = HumanParams(
        quat=jnp.asarray(h.init_quat),
        transl=jnp.asarray(h.init_transl),
        body=jnp.asarray(h.init_body),
        betas=jnp.asarray(h.init_betas),
    )
    return Params(cam=cam, human=human)


# ------------------------------------------------------------------ robust distance


def _safe_sqrt(sq: jax.Array) -> jax.Array:
    """sqrt with gradient 0 (not NaN) at 0; NaN stays NaN (double where)."""
    nz = sq != 0
    return jnp.where(nz, jnp.sqrt(jnp.where(nz, sq, 1.0)), 0.0)


def safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm whose gradient at 0 is 0 (not NaN); NaN input stays NaN."""
    return _safe_sqrt(jnp.sum(x * x, axis=axis))


def _robust_from_sq(sq: jax.Array, gamma, delta=0.0) -> jax.Array:
    """rho_gamma from a squared distance (safe at 0, NaN stays NaN); ``delta`` > 0 smooths it at 0:
    rho(sqrt(sq + delta^2)) - rho(delta) (delta = 0: exactly rho(sqrt(sq)))."""
    delta = jnp.asarray(delta, sq.dtype)
    n = _safe_sqrt(sq + delta * delta)
    gamma = jnp.asarray(gamma, sq.dtype)
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    return (n + c) ** gamma - (delta + c) ** gamma


def robust_distance(a: jax.Array, b: jax.Array, gamma: float) -> jax.Array:
    """rho_gamma(a, b) = (||a - b|| + c)^gamma - c^gamma, c = (1/gamma)^(1/(gamma-1)).

    The norm is over the last axis; pass scalars as shape (..., 1) or use
    :func:`robust_scalar`. Its slope at 0 is 1, like an L1 distance.
    """
    d = a - b
    return _robust_from_sq(jnp.sum(d * d, axis=-1), gamma)


def robust_scalar(a: jax.Array, b: jax.Array, gamma: float) -> jax.Array:
    """rho_gamma on scalars: |a - b| instead of a norm."""
    return robust_distance(a[..., None], b[..., None], gamma)


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """sum(w v) / sum(w), and 0 when every weight is 0 (the reference returns 0 there)."""
    total = jnp.sum(weights)
    return jnp.where(total > 0, jnp.sum(values * weights) / jnp.where(total > 0, total, 1.0), 0.0)


def segment_mean(values: jax.Array, weights: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
    """Per-segment weighted mean, (N,) -> (num_segments,), 0 for empty segments."""
    num = jax.ops.segment_sum(values * weights, segments, num_segments)
    den = jax.ops.segment_sum(weights, segments, num_segments)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


# ------------------------------------------------------------------ scene geometry


class SceneGeometry(NamedTuple):
    K: jax.Array  # (3, 3) shared intrinsics, working px
    focal: jax.Array  # () clipped focal
    cam_to_world: jax.Array  # (K, 4, 4) OpenCV camera -> world (world = tree root before normalisation)
    anchor_depth: jax.Array  # (K, A) metric-scene depth of each anchor
    focal_k: jax.Array | None = None  # (K,) per-keyframe focal (zoom, bundle v2); None: ``focal`` for all


def chain_cameras(rel: jax.Array, parent: jax.Array, order: jax.Array) -> jax.Array:
    """Compose relative poses along the camera tree: T_world_j = T_world_parent(j) @ rel_j.

    rel (K, 4, 4), parent (K,), order (K,) breadth first, root first (its parent is itself).
    """
    parent, order = jnp.asarray(parent), jnp.asarray(order)
    root = order[0]
    init = jnp.broadcast_to(jnp.eye(4, dtype=rel.dtype), rel.shape).at[root].set(rel[root])

    def step(T, j):
        return T.at[j].set(T[parent[j]] @ rel[j]), None

    T, _ = jax.lax.scan(step, init, order[1:])
    return T


def scene_geometry(cam: CameraParams, scene: SceneData) -> SceneGeometry:
    """Cameras and anchor depths from the variables (SPEC "From variables to geometry")."""
    W, H = scene.image_size[0], scene.image_size[1]
    diag = jnp.sqrt(W * W + H * H)
    f = jnp.clip(jnp.exp(cam.log_focal), 0.25 * diag, 10.0 * diag)
    pp_px = scene.pp * scene.image_size
    K = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], f.dtype)
    K = K.at[0, 0].set(f).at[1, 1].set(f).at[0, 2].set(pp_px[0]).at[1, 2].set(pp_px[1])

    sizes = jnp.exp(cam.log_size)
    min_size = jnp.min(jnp.where(scene.kf_valid, sizes, jnp.inf))
    g = jnp.where(scene.enforce_scale, 1.0 / min_size, 1.0)
    fk = f if scene.focal_scale is None else f * scene.focal_scale  # () shared, or (K,) per keyframe
    z = sizes * scene.median_depth * fk / scene.base_focal  # (K,) camera to focal plane

    rel = make_se3(quat_to_matrix(cam.quat), cam.trans)
    T = chain_cameras(rel, scene.tree_parent, scene.tree_order)
    offset = z[:, None] * jnp.concatenate(
        [
            jnp.broadcast_to(
                scene.image_size[None] / jnp.reshape(fk, (-1, 1)) * (0.5 - scene.pp)[None], (z.shape[0], 2)
            ),
            jnp.ones_like(z)[:, None],
        ],
        1,
    )
    R = T[:, :3, :3]
    t = g * (T[:, :3, 3] - (R @ offset[..., None])[..., 0])
    cam_to_world = make_se3(R, t)
    depth = g * (z[:, None] + (cam.anchor_depth - 1.0) * (scene.median_depth * sizes)[:, None])
    return SceneGeometry(
        K=K, focal=f, cam_to_world=cam_to_world, anchor_depth=depth, focal_k=None if scene.focal_scale is None else fk
    )


def _pair_focal(geo: SceneGeometry, scene: SceneData):
    """Focal of each side of each pair, (2, Pr, 1), or the shared scalar focal."""
    return geo.focal if geo.focal_k is None else geo.focal_k[scene.pair_img.T][:, :, None]


def _camera_points(geo: SceneGeometry, scene: SceneData) -> jax.Array:
    """Camera-frame points of every correspondence in each of its two images.

    Returns (3, 2, Pr, M): xyz first, then the image side, so that the long M axis
    is innermost (XLA's CPU loops vectorise over it). depth = anchor depth x
    (1 + (ratio - 1) x base_focal / f); point = depth K^-1 [p, 1].
    """
    img = scene.pair_img.T  # (2, Pr)
    A = geo.anchor_depth.shape[1]
    d = jnp.take(geo.anchor_depth.reshape(-1), img[:, :, None] * A + scene.corr_anchor)  # (2, Pr, M)
    bf = scene.base_focal[img][:, :, None]  # (2, Pr, 1)
    f = _pair_focal(geo, scene)
    depth = d * (1.0 + (scene.corr_ratio - 1.0) * bf / f)
    c = geo.K[:2, 2]
    x = (scene.corr_pix[:, 0] - c[0]) / f * depth
    y = (scene.corr_pix[:, 1] - c[1]) / f * depth
    return jnp.stack([x, y, depth])


def _rotate_soa(R: jax.Array, t: jax.Array, p: jax.Array) -> jax.Array:
    """R p + t with R (Pr, 3, 3), t (Pr, 3) per pair and p (3, Pr, M) -> (3, Pr, M)."""
    R = R[:, :, :, None]
    return jnp.stack([R[:, a, 0] * p[0] + R[:, a, 1] * p[1] + R[:, a, 2] * p[2] + t[:, a, None] for a in range(3)])


def correspondence_points(geo: SceneGeometry, scene: SceneData) -> jax.Array:
    """World points of every correspondence as seen from each of its two images: (Pr, M, 2, 3)."""
    x = _camera_points(geo, scene)  # (3, 2, Pr, M)
    T = geo.cam_to_world[scene.pair_img]  # (Pr, 2, 4, 4)
    X = jnp.stack([_rotate_soa(T[:, k, :3, :3], T[:, k, :3, 3], x[:, k]) for k in range(2)], 1)  # (3, 2, Pr, M)
    return jnp.transpose(X, (2, 3, 1, 0))


def _partner_in_own_frame(geo: SceneGeometry, scene: SceneData):
    """Each image's points and its partner's points moved into its camera frame.

    Returns (x, y), each (3, 2, Pr, M): y[:, 0] = T_i^-1 T_j x_j and y[:, 1] = T_j^-1 T_i x_i.
    Rigid motions keep distances, so ||x_i - y_i|| = ||X_i - X_j|| in the world: the 3D
    term is unchanged, and the 2D term projects y directly. One relative pose per pair
    (instead of a world transform per match) halves the work and keeps gradients per pair.
    """
    x = _camera_points(geo, scene)
    T = geo.cam_to_world[scene.pair_img]  # (Pr, 2, 4, 4)
    Ri, Rj = T[:, 0, :3, :3], T[:, 1, :3, :3]
    ti, tj = T[:, 0, :3, 3], T[:, 1, :3, 3]
    R_ij = jnp.swapaxes(Ri, -1, -2) @ Rj  # camera j -> camera i
    t_ij = (jnp.swapaxes(Ri, -1, -2) @ (tj - ti)[..., None])[..., 0]
    R_ji = jnp.swapaxes(R_ij, -1, -2)
    t_ji = -(R_ji @ t_ij[..., None])[..., 0]
    y = jnp.stack([_rotate_soa(R_ij, t_ij, x[:, 1]), _rotate_soa(R_ji, t_ji, x[:, 0])], 1)
    return x, y


# ------------------------------------------------------------------ scene terms


def scene_matching_3d(geo: SceneGeometry, scene: SceneData, gamma: float = 1.1, delta: float = 0.0) -> jax.Array:
    """Stage-1 term: confidence-weighted mean of rho(X_i, X_j) over correspondences
    (X the world points of :func:`correspondence_points`, compared in image i's frame)."""
    x, y = _partner_in_own_frame(geo, scene)
    d = x[:, 0] - y[:, 0]  # (3, Pr, M)
    return weighted_mean(_robust_from_sq(jnp.sum(d * d, 0), gamma, delta), scene.corr_w)


def _pixels(geo: SceneGeometry, p: jax.Array, focal=None) -> jax.Array:
    """Camera-frame points (3, ...) -> pixels (2, ...); as the reference: depth clipped at
    1e-3, pixels clipped to [-1000, 2000]. ``focal`` broadcasts against (...) (default: shared)."""
    z = jnp.maximum(p[2], 1e-3)
    c = geo.K[:2, 2]
    f = geo.focal if focal is None else focal
    uv = jnp.stack([f * p[0] / z + c[0], f * p[1] / z + c[1]])
    return jnp.clip(uv, -1000.0, 2000.0)


def project(geo: SceneGeometry, cam: jax.Array, X: jax.Array) -> jax.Array:
    """Project world points X (..., 3) into keyframes ``cam`` (...) -> pixels (..., 2)."""
    T_cw = geo.cam_to_world[cam]
    R = T_cw[..., :3, :3]
    Xc = (jnp.swapaxes(R, -1, -2) @ (X - T_cw[..., :3, 3])[..., None])[..., 0]
    f = None if geo.focal_k is None else geo.focal_k[cam]
    return jnp.moveaxis(_pixels(geo, jnp.moveaxis(Xc, -1, 0), f), 0, -1)


def scene_reprojection_2d(geo: SceneGeometry, scene: SceneData, gamma: float = 0.4, delta: float = 0.0) -> jax.Array:
    """Stage-2 term: each image's correspondence pixels against the projection of the
    partner image's 3D point; one confidence-weighted mean over both directions."""
    _, y = _partner_in_own_frame(geo, scene)
    uv = _pixels(geo, y, None if geo.focal_k is None else _pair_focal(geo, scene))  # (2 [u, v], 2 [side], Pr, M)
    du = scene.corr_pix[:, 0] - uv[0]
    dv = scene.corr_pix[:, 1] - uv[1]
    r = _robust_from_sq(du * du + dv * dv, gamma, delta)  # (2, Pr, M)
    return weighted_mean(r, jnp.broadcast_to(scene.corr_w, r.shape))


# ------------------------------------------------------------------ bodies


class PosedBodies(NamedTuple):
    joints_cam: jax.Array  # (P, K, 24, 3) camera frame
    verts_cam: jax.Array  # (P, K, U, 3) the contact-vertex table, camera frame


def pose_bodies(hp: HumanParams, human: HumanData, parents: tuple | None = None) -> PosedBodies:
    """Forward kinematics + skinning of only the vertices the losses read.

    One call of :func:`josh_jax.body.forward` on the problem's body-model view
    (``human.body``, a :meth:`~josh_jax.body.BodyModel.subset` on the U contact
    vertices): the same code the body layer's smplx checks run. ``parents`` is
    accepted for compatibility and must equal ``human.body.parents`` when given.
    """
    if parents is not None and tuple(parents) != tuple(human.body.parents):
        raise ValueError("pose_bodies: parents differ from the problem's body model")
    R_root = quat_to_matrix(hp.quat)[..., None, :, :]  # (P, K, 1, 3, 3)
    rot = jnp.concatenate([R_root, hp.body], -3)  # (P, K, 24, 3, 3)
    out = forward(human.body, hp.betas[:, None, :], rot, hp.transl)
    return PosedBodies(joints_cam=out.joints, verts_cam=out.vertices)


def body_translation(transl: jax.Array, focal, init_focal, body_depth: str = "focal") -> jax.Array:
    """The posed bodies' camera-frame translation (..., 3), metres: the one definition.

    The variable ``transl`` is the body's translation under the initial focal ``init_focal``
    (the front end's z rescaled from the HMR focal to f_init, SPEC "Variables"). With
    ``body_depth="focal"`` (josh_jax's default) its z follows the solved focal ``focal``:
    z x f / f_init, so that a body keeps its place in the image when the focal moves and the
    scene (whose depths scale with f as well) keeps its place under the body. With
    ``"reference"`` the variable is used as it is, as the reference does (only its contact-scale
    term rescales the body's depth, so the drawn bodies drift when the focal moves).
    """
    if body_depth == "reference":
        return transl
    if body_depth != "focal":
        raise ValueError(f"body_depth must be one of {PROBLEM_CHOICES['body_depth']}, got {body_depth!r}")
    s = jnp.asarray(focal / init_focal, transl.dtype)
    return jnp.concatenate([transl[..., :2], transl[..., 2:] * s], -1)


def bodies_focal(problem: Problem, focal):
    """The focal under which the posed bodies' depths are expressed: the current ``focal`` when
    the depth follows it (``body_depth="focal"``), the initial focal for the reference. The
    contact-scale term rescales vertex depths by focal / this (1 when they already follow)."""
    return focal if problem.body_depth == "focal" else problem.init_focal


def pose_problem_bodies(params: Params, problem: Problem, geo: SceneGeometry) -> PosedBodies:
    """:func:`pose_bodies` with the translation of :func:`body_translation` (the problem's
    ``body_depth``): what every term, solver and result poses."""
    hp = params.human
    t = body_translation(hp.transl, geo.focal, problem.init_focal, problem.body_depth)
    return pose_bodies(hp._replace(transl=t), problem.human, problem.parents)


def to_world(cam_to_world: jax.Array, x_cam: jax.Array) -> jax.Array:
    """(K, 4, 4) and (P, K, N, 3) camera-frame points -> world points (P, K, N, 3)."""
    R, t = cam_to_world[:, :3, :3], cam_to_world[:, :3, 3]
    return jnp.einsum("kab,pknb->pkna", R, x_cam) + t[None, :, None, :]


# ------------------------------------------------------------------ human terms: residual rows, once


class Residuals(NamedTuple):
    """The rows of one robust term: the term is ``sum_rows c * rho_gamma(||r||)``, split by track.

    Every human term is written once as rows (:data:`HUMAN_TERMS`); its per-track value
    (:func:`per_track`), the scalar loss (:func:`total_loss`) and the Gauss-Newton linearisation
    (:func:`josh_jax.solve.gauss_newton.human_groups`) are all derived from them. Padding rows have
    ``c = 0`` (zero value, zero gradient)."""

    r: jax.Array  # (G, d) residual vectors
    c: jax.Array  # (G,) each row's weight inside its track's term (a weighted mean's weights)
    track: jax.Array  # (G,) int, the track each row belongs to
    gamma: jax.Array  # () the robust kernel's exponent
    delta: jax.Array | float = 0.0  # () its smoothing at 0 (LossWeights.robust_delta; set by human_term_rows)


def rho_rows(res: Residuals) -> jax.Array:
    """(G,) ``c * rho_gamma(||r||)`` of each row."""
    return res.c * _robust_from_sq(jnp.sum(res.r * res.r, -1), res.gamma, res.delta)


def per_track(rows, num_tracks: int) -> jax.Array:
    """(P,) the term's value per track: the rows' ``c * rho`` summed by track."""
    return sum(jax.ops.segment_sum(rho_rows(res), res.track, num_tracks) for res in rows)


def mean_weights(w: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
    """The row weights of a per-segment weighted mean: w / (its segment's sum of w), 0 in empty segments."""
    den = jax.ops.segment_sum(w, segments, num_segments)[segments]
    return jnp.where(den > 0, w / jnp.where(den > 0, den, 1.0), 0.0)


def _rows(r, w, track, num_tracks: int, gamma) -> Residuals:
    return Residuals(r, mean_weights(w, track, num_tracks), track, jnp.asarray(gamma, r.dtype))


def contact_scale_rows(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, init_focal, gamma=1.1) -> list:
    """Contact scale: a contact vertex's depth (x f / ``init_focal``) against the scene's depth at
    its anchor pixel (times the stored ratio), weighted mean per track."""
    scene_d = geo.anchor_depth[human.scale_kf, human.scale_anchor] * human.scale_ratio
    vz = bodies.verts_cam[human.scale_track, human.scale_kf, human.scale_vert, 2]
    r = (scene_d - vz * geo.focal / init_focal)[:, None]
    return [_rows(r, human.scale_w, human.scale_track, human.valid.shape[0], gamma)]


def prior_rows(hp: HumanParams, human: HumanData, gamma=1.1) -> list:
    """Prior: quaternion, translation and the flattened 23x9 body rotations against the front end's,
    a mean over each track's keyframes each; the betas once per track with a keyframe."""
    P, K = human.valid.shape
    w = human.valid.astype(hp.quat.dtype).reshape(-1)
    track = jnp.broadcast_to(jnp.arange(P)[:, None], (P, K)).reshape(-1)
    out = [
        _rows((x - x0).reshape(P * K, -1), w, track, P, gamma)
        for x, x0 in ((hp.quat, human.init_quat), (hp.transl, human.init_transl), (hp.body, human.init_body))
    ]
    has = (human.n_frames > 0).astype(hp.betas.dtype)
    out.append(Residuals(hp.betas - human.init_betas, has, jnp.arange(P), jnp.asarray(gamma, hp.betas.dtype)))
    return out


def static_rows(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, gamma=1.1) -> list:
    """Static contact: a static vertex's world position against the previous keyframe's, weighted mean per track."""
    vw = to_world(geo.cam_to_world, bodies.verts_cam)
    a = vw[human.static_track, human.static_kf, human.static_vert]
    b = vw[human.static_track, human.static_kf_prev, human.static_vert]
    return [_rows(a - b, human.static_w, human.static_track, human.valid.shape[0], gamma)]


def smooth_rows(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, gamma=1.1) -> list:
    """Smoothness: the change of each world joint's velocity (per frame gap) over a keyframe triple;
    weighted mean over triples, plain mean over joints, per track."""
    jw = to_world(geo.cam_to_world, bodies.joints_cam)  # (P, K, 24, 3)
    p = human.smooth_track
    k0, k1, k2 = human.smooth_kf[:, 0], human.smooth_kf[:, 1], human.smooth_kf[:, 2]
    gap1 = jnp.maximum(k1 - k0, 1).astype(jw.dtype)[:, None, None]
    gap2 = jnp.maximum(k2 - k1, 1).astype(jw.dtype)[:, None, None]
    r = (jw[p, k2] - jw[p, k1]) / gap2 - (jw[p, k1] - jw[p, k0]) / gap1  # (Ms, J, 3)
    J = r.shape[1]
    c = jnp.repeat(mean_weights(human.smooth_w, p, human.valid.shape[0]) / J, J)
    return [Residuals(r.reshape(-1, 3), c, jnp.repeat(p, J), jnp.asarray(gamma, r.dtype))]


def track_scale_weights(human: HumanData):
    """(P,) each track's weight on its contact-scale term (``HumanData.scale_track_w``; 1 without it)."""
    return 1.0 if human.scale_track_w is None else human.scale_track_w


class HumanTerm(NamedTuple):
    """One term of the objective over the bodies (and cameras): written once, used by every solver.

    ``rows(params, problem, geo, bodies, gamma)`` gives its :class:`Residuals`; ``track_w(human)``
    a per-track factor (P,) (or a scalar) applied when the tracks are combined; ``weight`` names a
    :class:`LossWeights` field, or is the term's weight itself (a term added from outside the
    package, e.g. ``SolveConfig(extra_terms=(HumanTerm(...),))``). :func:`total_loss` adds
    ``weight * sum_k n_k track_w_k term_k / sum_k n_k``; Gauss-Newton linearises the same rows."""

    name: str
    rows: object  # (Params, Problem, SceneGeometry, PosedBodies, gamma) -> list[Residuals]
    weight: str | float
    track_w: object = None  # HumanData -> (P,) or scalar; None: 1


def _scale_rows(params, problem, geo, bodies, gamma):
    return contact_scale_rows(geo, bodies, problem.human, bodies_focal(problem, geo.focal), gamma)


def _prior_rows(params, problem, geo, bodies, gamma):
    return prior_rows(params.human, problem.human, gamma)


def _static_rows(params, problem, geo, bodies, gamma):
    return static_rows(geo, bodies, problem.human, gamma)


def _smooth_rows(params, problem, geo, bodies, gamma):
    return smooth_rows(geo, bodies, problem.human, gamma)


def _smooth_track_w(human: HumanData):
    return (human.n_frames > 2).astype(human.n_frames.dtype)  # the term needs more than two keyframes


#: the objective's human terms (LossTerms' fields after ``scene``, in this order)
HUMAN_TERMS = (
    HumanTerm("scale", _scale_rows, "scale", track_scale_weights),
    HumanTerm("prior", _prior_rows, "prior"),
    HumanTerm("static", _static_rows, "static"),
    HumanTerm("smooth", _smooth_rows, "smooth", _smooth_track_w),
)


def term_weight(term: HumanTerm, weights: LossWeights):
    return getattr(weights, term.weight) if isinstance(term.weight, str) else term.weight


def track_combination(human: HumanData) -> jax.Array:
    """(P,) n_k / sum_k n_k: how the per-track terms are combined (each track by its keyframe count)."""
    n = human.n_frames
    return n / jnp.maximum(jnp.sum(n), 1.0)


def human_term_rows(params: Params, problem: Problem, weights: LossWeights, geo: SceneGeometry, terms=HUMAN_TERMS):
    """[(term, rows, per-track factor)] of ``terms`` at ``params``: the one evaluation every solver uses."""
    bodies = pose_problem_bodies(params, problem, geo)
    g = weights.gamma_human
    out = []
    for t in terms:
        tw = 1.0 if t.track_w is None else t.track_w(problem.human)
        rows = [res._replace(delta=weights.robust_delta) for res in t.rows(params, problem, geo, bodies, g)]
        out.append((t, rows, tw))
    return out


# the per-track terms, by name (signatures and values as before: derived from the rows)


def contact_scale(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, init_focal, gamma=1.1) -> jax.Array:
    """Per-track (P,) weighted mean of rho(anchor depth x ratio, vertex z x f / f_init).

    ``init_focal`` is the focal the bodies' depths are expressed under (:func:`bodies_focal`):
    the initial focal for the reference's bodies, the current focal (factor 1) for bodies whose
    depth already follows the focal."""
    return per_track(contact_scale_rows(geo, bodies, human, init_focal, gamma), human.valid.shape[0])


def static_contact(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, gamma=1.1) -> jax.Array:
    """Per-track (P,) mean of rho(v_world(t), v_world(t_prev)) over static entries."""
    return per_track(static_rows(geo, bodies, human, gamma), human.valid.shape[0])


def prior(hp: HumanParams, human: HumanData, gamma=1.1) -> jax.Array:
    """Per-track (P,) sum of means of rho to the front-end values: quaternion,
    translation, flattened 23x9 body rotations (per keyframe) and betas."""
    return per_track(prior_rows(hp, human, gamma), human.valid.shape[0])


def smoothness(geo: SceneGeometry, bodies: PosedBodies, human: HumanData, gamma=1.1) -> jax.Array:
    """Per-track (P,) mean over triples and joints of rho(v(k+1)/gap, v(k)/gap) of world joints."""
    return per_track(smooth_rows(geo, bodies, human, gamma), human.valid.shape[0])


# ------------------------------------------------------------------ total


class LossTerms(NamedTuple):
    total: jax.Array
    scene: jax.Array
    scale: jax.Array  # per-track terms combined with the n_k weighting (no loss weight)
    prior: jax.Array
    static: jax.Array
    smooth: jax.Array


def total_loss(
    params: Params, problem: Problem, weights: LossWeights = LossWeights(), stage: int = 1, extra_terms: tuple = ()
) -> LossTerms:
    """The joint objective of one stage.

    total = scene term + sum_k n_k (w_scale L_scale + w_prior L_prior + w_static L_static
    + w_smooth L_smooth)_k / sum_k n_k, with the 3D matching term in stage 1 and the
    2D reprojection term in stage 2 (``stage`` is static). The human terms come from
    :data:`HUMAN_TERMS` (plus ``extra_terms``, :class:`HumanTerm` s whose values enter the total
    only).
    """
    scene, human = problem.scene, problem.human
    geo = scene_geometry(params.cam, scene)
    if stage == 1:
        s = scene_matching_3d(geo, scene, weights.gamma_scene_3d, weights.robust_delta)
    else:
        s = scene_reprojection_2d(geo, scene, weights.gamma_scene_2d, weights.robust_delta)
    comb = track_combination(human)
    P = human.valid.shape[0]
    values, total = {}, s
    for t, rows, tw in human_term_rows(params, problem, weights, geo, HUMAN_TERMS + tuple(extra_terms)):
        v = jnp.sum(comb * per_track(rows, P) * tw)
        values[t.name] = v
        total = total + term_weight(t, weights) * v
    return LossTerms(total=total, scene=s, **{t.name: values[t.name] for t in HUMAN_TERMS})
