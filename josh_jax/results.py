"""From solved keyframe variables to every frame, and the ``results.npz`` format.

``results.npz`` (also ``init.npz``, ``ground_truth.npz``), world frame = the
first keyframe's camera (OpenCV axes), metres; F frames, P people, K foot markers:

=====================  ===================  =================================================
key                    shape, dtype         meaning
=====================  ===================  =================================================
frame_index            (F,) int64           video frame of each row
cam_to_world           (F, 4, 4) float32    camera -> world, OpenCV camera axes
intrinsics             (3, 3) float32       shared K in original-image pixels
intrinsics_per_frame   (F, 3, 3) float32    K of every frame (a zooming camera: per-keyframe
                                            focals, log-linear between keyframes; else copies of
                                            ``intrinsics``). Optional on load (older files)
image_size             (2,) int64           original image W, H
person_ids             (P,) int64           track ids
visible                (P, F) bool          person placed on the frame (inside its keyframes)
betas                  (P, B) float32       one shape per person
global_orient          (P, F, 3, 3)         root rotation, world frame
body_pose              (P, F, 23, 3, 3)     local body rotations
transl                 (P, F, 3)            body translation, world (body model convention:
                                            world vertices = forward(betas, rot, transl))
joints_world           (P, F, 24, 3)        SMPL-order joints, world
foot_vertices_world    (P, F, 4, 3)         heel/toe markers (left heel, left toe, right ...)
points                 (N, 3) float32       scene points, world
point_colors           (N, 3) uint8
body_model             () str               e.g. "josh-open-body" or "smpl"
=====================  ===================  =================================================

Frames where a person is not visible hold the identity/zeros and ``visible`` False.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .body import BodyModel, forward, rest_joints
from .bundle import Window
from .geometry import quat_to_matrix, se3_interpolate, matrix_slerp
from .losses import Params, scene_geometry
from .problem import Problem, anchor_depths, pixel_anchor

RESULT_KEYS = ("frame_index", "cam_to_world", "intrinsics", "image_size", "person_ids", "visible", "betas",
               "global_orient", "body_pose", "transl", "joints_world", "foot_vertices_world", "points",
               "point_colors", "body_model")


def _bracket(keys: np.ndarray, frames: np.ndarray):
    """For each frame: index of the keyframe at or before it, and the blend weight to the next."""
    i0 = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 1)
    i1 = np.clip(i0 + 1, 0, len(keys) - 1)
    span = np.maximum(keys[i1] - keys[i0], 1)
    a = np.where(i1 > i0, (frames - keys[i0]) / span, 0.0)
    return i0, i1, a


def interpolate_cameras(T_kf: np.ndarray, kf_frames: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """SE(3) interpolation (slerp rotation, linear position) of (K, 4, 4) keyframe poses."""
    i0, i1, a = _bracket(kf_frames, frames)
    return np.asarray(se3_interpolate(jnp.asarray(T_kf[i0]), jnp.asarray(T_kf[i1]), jnp.asarray(a, jnp.float32)))


def scene_points(window: Window, problem: Problem, geo, T_fix: np.ndarray, conf_thres: float = 0.1,
                 subsample: int = 8, stride: int = 2, max_points: int = 200_000):
    """Coloured world points from the confident pixels of every keyframe (optimised anchors)."""
    W, H = (int(x) for x in window.image_size)
    f = float(geo.focal)
    c = np.asarray(geo.K)[:2, 2]
    anchors = anchor_depths(window.depth, subsample)
    pts, cols = [], []
    yy, xx = np.mgrid[0:H:stride, 0:W:stride]
    for k in range(window.num_keyframes):
        ok = window.conf[k][yy, xx] > conf_thres
        x, y = xx[ok], yy[ok]
        a = pixel_anchor(x, y, H, W, subsample)
        ratio = window.depth[k][y, x] / anchors[k, a]
        d = np.asarray(geo.anchor_depth)[k, a] * (1 + (ratio - 1) * problem.scene.base_focal[k] / f)
        Xc = np.stack([(x - c[0]) / f * d, (y - c[1]) / f * d, d], 1)
        T = T_fix @ np.asarray(geo.cam_to_world)[k]
        pts.append(Xc @ T[:3, :3].T + T[:3, 3])
        cols.append(window.images[k][y, x] if window.images is not None else np.full((len(x), 3), 160, np.uint8))
    pts, cols = np.concatenate(pts), np.concatenate(cols)
    if len(pts) > max_points:
        keep = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
        pts, cols = pts[keep], cols[keep]
    return pts.astype(np.float32), cols.astype(np.uint8)


def build_results(params: Params, problem: Problem, window: Window, model: BodyModel) -> dict:
    """Keyframe variables -> per-frame results dict (keys of RESULT_KEYS)."""
    scene = jax.tree_util.tree_map(jnp.asarray, problem.scene)
    geo = scene_geometry(params.cam, scene)
    K0 = window.num_keyframes
    T_kf = np.asarray(geo.cam_to_world, np.float64)[:K0]
    T_fix = np.linalg.inv(T_kf[0])  # world = first keyframe's camera
    T_kf = T_fix @ T_kf
    kf = window.frame_index
    frames = np.arange(kf[0], kf[-1] + 1)
    cams = interpolate_cameras(T_kf, kf, frames)
    s = window.scale_to_original
    Kmat = np.asarray(geo.K, np.float64).copy()
    Kmat[:2] *= s
    fk = np.full(K0, float(geo.focal)) if geo.focal_k is None else np.asarray(geo.focal_k, np.float64)[:K0]
    K_frames = np.repeat(Kmat[None], len(frames), 0)
    if geo.focal_k is not None:
        f_frames = np.exp(np.interp(frames, kf, np.log(fk))) * s
        K_frames[:, 0, 0] = K_frames[:, 1, 1] = f_frames

    P = window.num_tracks
    hp = params.human
    betas = np.asarray(hp.betas)[:P]
    F = len(frames)
    out = dict(
        visible=np.zeros((P, F), bool), global_orient=np.tile(np.eye(3), (P, F, 1, 1)),
        body_pose=np.tile(np.eye(3), (P, F, 23, 1, 1)), transl=np.zeros((P, F, 3)),
        joints_world=np.zeros((P, F, 24, 3)), foot_vertices_world=np.zeros((P, F, 4, 3)),
    )
    markers = model.vertex_set("foot_markers")
    for p in range(P):
        vk = np.where(window.track_valid[p])[0]
        if len(vk) == 0:
            continue
        J0 = np.asarray(rest_joints(model, jnp.asarray(betas[p])))[0]
        R_root_c = np.asarray(quat_to_matrix(hp.quat[p]))[vk]
        t_c = np.asarray(hp.transl[p])[vk]
        R_wc, c_w = T_kf[vk, :3, :3], T_kf[vk, :3, 3]
        R_root_w = R_wc @ R_root_c
        t_w = np.einsum("kab,kb->ka", R_wc, J0 + t_c) + c_w - J0
        body = np.asarray(hp.body[p])[vk]
        # project the raw 3x3 body entries back onto SO(3) for export
        u, _, vt = np.linalg.svd(body)
        body = u @ vt * np.where(np.linalg.det(u @ vt) < 0, -1, 1)[..., None, None]
        keys = kf[vk]
        sel = (frames >= keys[0]) & (frames <= keys[-1])
        fr = frames[sel]
        i0, i1, a = _bracket(keys, fr)
        aj = jnp.asarray(a, jnp.float32)
        go = np.asarray(matrix_slerp(jnp.asarray(R_root_w[i0]), jnp.asarray(R_root_w[i1]), aj))
        bp = np.asarray(matrix_slerp(jnp.asarray(body[i0]), jnp.asarray(body[i1]), aj[:, None]))
        tr = (1 - a)[:, None] * t_w[i0] + a[:, None] * t_w[i1]
        rot = np.concatenate([go[:, None], bp], 1).astype(np.float32)
        posed = forward(model, jnp.asarray(betas[p]), jnp.asarray(rot), jnp.asarray(tr, jnp.float32), vertex_ids=markers)
        idx = np.where(sel)[0]
        out["visible"][p, idx] = True
        out["global_orient"][p, idx] = go
        out["body_pose"][p, idx] = bp
        out["transl"][p, idx] = tr
        out["joints_world"][p, idx] = np.asarray(posed.joints)
        out["foot_vertices_world"][p, idx] = np.asarray(posed.vertices)

    pts, cols = scene_points(window, problem, geo, T_fix)
    res = dict(
        frame_index=frames.astype(np.int64), cam_to_world=cams.astype(np.float32), intrinsics=Kmat.astype(np.float32),
        intrinsics_per_frame=K_frames.astype(np.float32),
        image_size=np.round(np.asarray(window.image_size) * s).astype(np.int64),
        person_ids=np.asarray(window.track_ids, np.int64), betas=betas.astype(np.float32),
        points=pts, point_colors=cols, body_model=np.array(model.name), **out,
    )
    for k in ("global_orient", "body_pose", "transl", "joints_world", "foot_vertices_world"):
        res[k] = res[k].astype(np.float32)
    return res


def save_npz(path: str | Path, arrays: dict) -> Path:
    """Write an npz atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_results(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in RESULT_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path} is not a josh_jax results file: missing {', '.join(missing)}")
        return {k: z[k] for k in z.files}
