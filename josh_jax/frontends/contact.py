"""Contact labels for the embedded front ends: stance detection, a heuristic (not a learned model).

Which foot is on the ground, per keyframe:

* **with a moving camera** (structure from motion available): a foot is in
  stance when it stays put in the world. Its heel and toe landmarks on
  keyframe ``k`` are lifted with the scene depth there (the depth of the
  ground next to the foot), moved into keyframe ``k +- 1`` with the
  reconstructed cameras, and compared with where the landmarks really are;
  a residual below ``static_frac`` of the person's height in pixels (for the
  heel or the toe: a rolling foot keeps one of them planted) means stance.
  Scale-free: only the reconstruction's own cameras and depths are used.
* **otherwise** (static camera, or frames between keyframes): the lower foot
  along the body's up axis, both when within ``stance_margin``.

The labelled vertices are the stance foot's sole vertices within
``sole_band`` of its lowest point (heel strike, flat foot and toe-off label
different parts). Hands are never labelled (the official DECO front end can
label any body part).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..body.model import BodyModel, forward
from ..geometry.pinhole import project_K
from . import blazepose as bp

FOOT_POINTS = ((bp.L_HEEL, bp.L_FOOT), (bp.R_HEEL, bp.R_FOOT))  # (heel, toe) of the left, right foot


_FRAMES = 64  # frames go through in chunks of this many (the last one padded): one compiled program


@partial(jax.jit, static_argnames=("ids",))
def _heights(model: BodyModel, betas, rotmats, ids: tuple):
    """(T, n) heights of the vertices ``ids`` along the body's up axis (its y axis in the camera frame)."""
    verts = forward(model, betas, rotmats, vertex_ids=ids).vertices
    return jnp.einsum("tvc,tc->tv", verts, rotmats[:, 0, :, 1])


def _sole_heights(model: BodyModel, rotmats: np.ndarray, betas: np.ndarray):
    soles = [np.asarray(model.vertex_set(k)) for k in ("left_sole", "right_sole")]
    ids = tuple(int(i) for i in np.concatenate(soles))
    T = len(rotmats)
    pad = np.broadcast_to(np.eye(3, dtype=np.float32), (-T % _FRAMES, 24, 3, 3))
    rot = np.concatenate([np.asarray(rotmats, np.float32), pad])
    b = jnp.asarray(betas, jnp.float32)
    h = np.concatenate([np.asarray(_heights(model, b, rot[s : s + _FRAMES], ids)) for s in range(0, T, _FRAMES)])[:T]
    n = len(soles[0])
    return soles, [h[:, :n], h[:, n:]]


def _stance_by_height(hs, stance_margin: float) -> np.ndarray:
    low = np.stack([x.min(1) for x in hs], 1)
    return low - low.min(1, keepdims=True) < stance_margin


def _labels(model: BodyModel, soles, hs, stance: np.ndarray, sole_band: float) -> np.ndarray:
    out = np.zeros((len(stance), model.num_vertices), bool)
    for f in range(2):
        band = hs[f] - hs[f].min(1, keepdims=True) < sole_band
        out[:, soles[f]] = stance[:, f : f + 1] & band
    return out


def height_stance(model: BodyModel, rotmats: np.ndarray, betas: np.ndarray, stance_margin: float = 0.03) -> np.ndarray:
    """(T, 2) bool: left/right foot within ``stance_margin`` of the lower foot along the body's up axis."""
    return _stance_by_height(_sole_heights(model, rotmats, betas)[1], stance_margin)


def label_soles(
    model: BodyModel, rotmats: np.ndarray, betas: np.ndarray, stance: np.ndarray, sole_band: float = 0.02
) -> np.ndarray:
    """(T, 2) stance -> (T, V) bool per-vertex contact on the stance feet's lowest sole vertices."""
    soles, hs = _sole_heights(model, rotmats, betas)
    return _labels(model, soles, hs, stance, sole_band)


def stance_contacts(
    model: BodyModel, rotmats: np.ndarray, betas: np.ndarray, stance_margin: float = 0.03, sole_band: float = 0.02
) -> np.ndarray:
    """(T, 24, 3, 3) rotations + (B,) betas -> (T, V) bool contact by the height rule."""
    soles, hs = _sole_heights(model, rotmats, betas)  # one skinning pass for both steps
    return _labels(model, soles, hs, _stance_by_height(hs, stance_margin), sole_band)


def _reproject(px: np.ndarray, depth: np.ndarray, K: np.ndarray, T_a: np.ndarray, T_b: np.ndarray) -> np.ndarray:
    """Pixels (n, 2) of keyframe a with its depth map -> pixels in keyframe b (cam_from_world 3x4 each)."""
    h, w = depth.shape
    xi = np.clip(np.round(px[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(px[:, 1]).astype(int), 0, h - 1)
    z = depth[yi, xi]
    Xa = np.c_[(px[:, 0] - K[0, 2]) / K[0, 0], (px[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(px))] * z[:, None]
    Xw = (Xa - T_a[:, 3]) @ T_a[:, :3]  # R^T (X - t)
    Xb = Xw @ T_b[:, :3].T + T_b[:, 3]
    return project_K(Xb, K)


def motion_stance(
    landmarks: dict, depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, static_frac: float = 0.04
) -> np.ndarray:
    """(Kf, 2) bool stance of the left/right foot on each keyframe (see the module docstring).

    landmarks: {keyframe position: (33, 2) pixels of the person in the working image};
    depth (Kf, H, W); K (3, 3); cam_from_world (Kf, 3, 4). Keyframes without
    landmarks, or without a neighbour with landmarks, are False for both feet.
    """
    Kf = len(depth)
    out = np.zeros((Kf, 2), bool)
    for k, lm in landmarks.items():
        size = np.ptp(lm[:, 1])  # person height in pixels
        for n in (k - 1, k + 1):
            if n not in landmarks or not 0 <= n < Kf:
                continue
            for f, pts in enumerate(FOOT_POINTS):
                pred = _reproject(lm[list(pts)], depth[k], K, cam_from_world[k], cam_from_world[n])
                res = np.linalg.norm(pred - landmarks[n][list(pts)], axis=1).min()
                if res < static_frac * size:
                    out[k, f] = True
    return out
