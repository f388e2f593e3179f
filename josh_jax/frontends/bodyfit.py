"""Body fit: the body model (SMPL or the open body) fitted to BlazePose landmarks.

Per person track, one jitted Adam solve over all its frames at once:

* pose (per frame, 24 local rotations as 6D) and shape (one beta vector per
  track) from the 33 metric *world* landmarks (hip-centred, camera axes):
  squared distance between hip-centred model joints and the matching
  landmarks, weighted by landmark visibility; plus a weak pose prior (toward
  the rest pose), a shape prior, and a temporal term on joint velocities;
* camera-frame translation per frame in closed form: the linear least-squares
  translation that puts the fitted joints on the 2D landmarks under the given
  pinhole camera, then smoothed over time.

Frames are padded to a size bucket with a mask, so clips of similar length
share one compiled program. Units: metres, radians; camera frame x right,
y down, z forward.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage

from ..body.model import BodyModel, forward
from ..geometry.rotations import matrix_to_rot6d, rot6d_to_matrix
from ..windows import bucket

# (SMPL joint, BlazePose landmarks averaged, weight)
JOINT_MAP = (
    (1, (23,), 1.0),
    (2, (24,), 1.0),
    (4, (25,), 1.0),
    (5, (26,), 1.0),
    (7, (27,), 1.0),
    (8, (28,), 1.0),
    (10, (31,), 0.5),
    (11, (32,), 0.5),
    (16, (11,), 1.0),
    (17, (12,), 1.0),
    (18, (13,), 1.0),
    (19, (14,), 1.0),
    (20, (15,), 1.0),
    (21, (16,), 1.0),
    (15, (7, 8), 0.5),
    (22, (17, 19), 0.3),
    (23, (18, 20), 0.3),
)
SMPL_IDS = np.array([j for j, _, _ in JOINT_MAP])
JOINT_W = np.array([w for _, _, w in JOINT_MAP], np.float32)


def landmarks_to_joints(lm: np.ndarray, vis: np.ndarray | None = None):
    """(..., 33, D) BlazePose landmarks -> (..., J, D) targets of SMPL_IDS and (..., J) visibility."""
    tgt = np.stack([lm[..., list(ids), :].mean(-2) for _, ids, _ in JOINT_MAP], -2)
    if vis is None:
        return tgt, None
    v = np.stack([vis[..., list(ids)].min(-1) for _, ids, _ in JOINT_MAP], -1)
    return tgt, v


def root_from_landmarks(world: np.ndarray) -> np.ndarray:
    """(T, 33, 3) world landmarks -> (T, 3, 3) body-to-camera rotation (SMPL axes:
    x to the body's left, y up, z forward) from the hips and shoulders."""
    x = world[:, 23] - world[:, 24]  # right hip -> left hip: the body's +x
    up = 0.5 * (world[:, 11] + world[:, 12]) - 0.5 * (world[:, 23] + world[:, 24])
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
    y = up - (up * x).sum(-1, keepdims=True) * x
    y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-9)
    z = np.cross(x, y)
    return np.stack([x, y, z], -1)


class FitWeights(NamedTuple):
    pose_prior: float = 1e-4  # x mean squared deviation of the 23 local rotations from rest
    shape_prior: float = 1e-4  # x |betas|^2
    smooth: float = 0.05  # x mean squared joint displacement between neighbouring frames (m^2)


class FitResult(NamedTuple):
    rotmats: np.ndarray  # (T, 24, 3, 3)
    betas: np.ndarray  # (B,)
    transl: np.ndarray  # (T, 3) camera frame, metres
    joint_error: np.ndarray  # (T,) mean landmark distance after the fit, metres


@partial(jax.jit, static_argnames=("iters",))
def _fit(model: BodyModel, target, vis, mask, rot0, weights: FitWeights, iters: int = 300, lr: float = 0.03):
    params = {"rot": matrix_to_rot6d(rot0), "betas": jnp.zeros(model.num_betas, target.dtype)}
    w = vis * jnp.asarray(JOINT_W) * mask[:, None]

    def joints_of(p):
        R = rot6d_to_matrix(p["rot"])
        out = forward(model, p["betas"], R, vertex_ids=())
        J = out.joints[:, SMPL_IDS]
        hip = 0.5 * (out.joints[:, 1] + out.joints[:, 2])
        return J - hip[:, None], R

    def loss(p):
        J, R = joints_of(p)
        data = (w * ((J - target) ** 2).sum(-1)).sum() / jnp.maximum(w.sum(), 1e-6)
        eye = jnp.eye(3, dtype=R.dtype)
        prior = (((R[:, 1:] - eye) ** 2).sum((-1, -2, -3)) * mask).sum() / jnp.maximum(mask.sum(), 1)
        pair = mask[1:] * mask[:-1]
        vel = (((J[1:] - J[:-1]) ** 2).sum((-1, -2)) * pair).sum() / jnp.maximum(pair.sum(), 1)
        return data + weights.pose_prior * prior + weights.shape_prior * (p["betas"] ** 2).sum() + weights.smooth * vel

    opt = optax.adam(optax.cosine_decay_schedule(lr, iters, 0.05))
    state = opt.init(params)

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    (params, _), _ = jax.lax.scan(step, (params, state), None, length=iters)
    J, R = joints_of(params)
    err = jnp.sqrt(((J - target) ** 2).sum(-1)).mean(-1)
    out = forward(model, params["betas"], R, vertex_ids=())
    return R, params["betas"], out.joints, err


def camera_translation(
    joints: np.ndarray, pix: np.ndarray, w: np.ndarray, focal: float, principal: np.ndarray
) -> np.ndarray:
    """Least-squares t (3,) with project(joints + t) = pix under a pinhole camera.

    joints (J, 3) model joints without translation, pix (J, 2) pixels, w (J,) weights.
    Each joint gives f (X + tx) - (u - cx)(Z + tz) = 0 and the same for y: linear in t.
    """
    du = pix[:, 0] - principal[0]
    dv = pix[:, 1] - principal[1]
    X, Y, Z = joints[:, 0], joints[:, 1], joints[:, 2]
    zeros = np.zeros_like(du)
    A = np.concatenate(
        [np.stack([np.full_like(du, focal), zeros, -du], 1), np.stack([zeros, np.full_like(dv, focal), -dv], 1)]
    )
    b = np.concatenate([du * Z - focal * X, dv * Z - focal * Y])
    sw = np.sqrt(np.concatenate([w, w]))
    t, *_ = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)
    return t


def fit_track(
    model: BodyModel,
    world: np.ndarray,
    image: np.ndarray,
    visibility: np.ndarray,
    focal: float,
    principal: np.ndarray,
    weights: FitWeights = FitWeights(),
    iters: int = 400,
    smooth_sigma: float = 1.5,
) -> FitResult:
    """Fit one track.

    world (T, 33, 3) metres; image (T, 33, >=2) pixels of the camera given by
    ``focal``/``principal`` (``focal`` a float, or (T,) per frame for a zooming camera);
    visibility (T, 33) in [0, 1]. Frames are consecutive
    samples of one track (gaps allowed; smoothing treats them as adjacent).
    """
    T = len(world)
    Tp = bucket(T, 16)
    tgt, vis = landmarks_to_joints(world.astype(np.float32), visibility.astype(np.float32))
    hip = 0.5 * (world[:, 23] + world[:, 24])
    tgt = tgt - hip[:, None]
    rot0 = np.tile(np.eye(3, dtype=np.float32), (T, 24, 1, 1))
    rot0[:, 0] = root_from_landmarks(world)
    pad = lambda a, v=0.0: np.concatenate([a, np.full((Tp - T,) + a.shape[1:], v, a.dtype)]) if Tp > T else a
    rot0p = pad(rot0)
    if Tp > T:
        rot0p[T:] = np.eye(3, dtype=np.float32)
    mask = pad(np.ones(T, np.float32))
    R, betas, joints, err = _fit(
        model, jnp.asarray(pad(tgt)), jnp.asarray(pad(vis)), jnp.asarray(mask), jnp.asarray(rot0p), weights, iters=iters
    )
    R, betas, joints, err = (np.asarray(x) for x in (R, betas, joints, err))
    R, joints, err = R[:T], joints[:T], err[:T]
    pix, pvis = landmarks_to_joints(image[..., :2].astype(np.float64), visibility)
    focal_t = np.broadcast_to(np.asarray(focal, np.float64), (T,))
    transl = np.stack(
        [
            camera_translation(joints[t, SMPL_IDS], pix[t], pvis[t] * JOINT_W, float(focal_t[t]), principal)
            for t in range(T)
        ]
    )
    if smooth_sigma > 0 and T > 2:
        transl = scipy.ndimage.gaussian_filter1d(transl, smooth_sigma, axis=0, mode="nearest")
    return FitResult(R.astype(np.float32), betas.astype(np.float32), transl.astype(np.float32), err)
