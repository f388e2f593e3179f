"""Joining the results of overlapping solve windows into one trajectory.

Each window is solved on its own, in its own world (its first keyframe's
camera) and its own metric estimate. Window ``w`` is brought into window
``w - 1``'s world by a similarity ``x -> s R x + t`` estimated on the frames
both cover: ``R`` from the cameras' orientations (chordal mean), ``s`` and
``t`` by least squares on the camera centres and the joints of the people
seen in both (``s = 1`` when the overlap gives no spread to measure). The
reference chains windows rigidly; the scale is what a monocular window gets
wrong, so it is estimated too.

Cameras and scene points take the full similarity; bodies keep their metric
size and move rigidly with their pelvis (``p -> s R p + t``, rotations ``R``).
Frames in both windows come from the earlier window up to the middle of the
overlap, from the later one after it.
"""

from __future__ import annotations

import numpy as np

from .geometry.rotations import nearest_rotation as _proj_so3
from .results import Results


def overlap_similarity(prev: Results, cur: Results) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R (3, 3), t (3,)) mapping ``cur``'s world into ``prev``'s, from their shared frames."""
    shared = np.intersect1d(prev.frame_index, cur.frame_index)
    if len(shared) == 0:
        raise ValueError("windows do not overlap: nothing to join them on")
    ip = np.searchsorted(prev.frame_index, shared)
    ic = np.searchsorted(cur.frame_index, shared)
    Tp, Tc = prev.cam_to_world[ip].astype(np.float64), cur.cam_to_world[ic].astype(np.float64)
    R = _proj_so3(np.einsum("fab,fcb->ac", Tp[:, :3, :3], Tc[:, :3, :3]))
    x, y = [Tc[:, :3, 3]], [Tp[:, :3, 3]]
    for pid in np.intersect1d(prev.person_ids, cur.person_ids):
        a = int(np.where(prev.person_ids == pid)[0][0])
        b = int(np.where(cur.person_ids == pid)[0][0])
        both = prev.visible[a, ip] & cur.visible[b, ic]
        if both.any():
            x.append(cur.joints_world[b, ic[both]].reshape(-1, 3))
            y.append(prev.joints_world[a, ip[both]].reshape(-1, 3))
    x, y = np.concatenate(x).astype(np.float64), np.concatenate(y).astype(np.float64)
    xm, ym = x.mean(0), y.mean(0)
    xr = (x - xm) @ R.T
    den = (xr**2).sum()
    s = float((xr * (y - ym)).sum() / den) if den > 1e-4 * len(x) else 1.0
    if not np.isfinite(s) or s <= 0:
        s = 1.0
    t = ym - s * R @ xm
    return s, R, t


def transform_results(res: Results, s: float, R: np.ndarray, t: np.ndarray) -> Results:
    """Apply a world similarity to results (see the module docstring for what moves how)."""
    out = res.to_dict()
    T = res.cam_to_world.astype(np.float64)
    Tn = T.copy()
    Tn[:, :3, :3] = R @ T[:, :3, :3]
    Tn[:, :3, 3] = s * T[:, :3, 3] @ R.T + t
    out["cam_to_world"] = Tn.astype(np.float32)
    out["points"] = (s * res.points.astype(np.float64) @ R.T + t).astype(np.float32)
    J = res.joints_world.astype(np.float64)  # (P, F, 24, 3)
    pelvis = J[:, :, :1]
    new_pelvis = s * pelvis @ R.T + t
    vis = res.visible[..., None, None]
    out["joints_world"] = np.where(vis, (J - pelvis) @ R.T + new_pelvis, J).astype(np.float32)
    fv = res.foot_vertices_world.astype(np.float64)
    out["foot_vertices_world"] = np.where(vis, (fv - pelvis) @ R.T + new_pelvis, fv).astype(np.float32)
    out["global_orient"] = np.where(vis, R @ res.global_orient, res.global_orient).astype(np.float32)
    # transl: the pelvis moves by (new_pelvis - pelvis); the rest offset J0 is rotation-invariant here
    # because world vertices = forward(rot, transl) places the pelvis at J0 + transl
    out["transl"] = np.where(res.visible[..., None], res.transl + (new_pelvis - pelvis)[:, :, 0], res.transl).astype(
        np.float32
    )
    return Results(**out)


def join_windows(results: list[Results]) -> tuple[Results, list[tuple[float, np.ndarray, np.ndarray]]]:
    """Join per-window results (in frame order) into one Results in the first window's world.

    Returns (joined results, per-window similarity into the first window's world).
    """
    if len(results) == 1:
        return results[0], [(1.0, np.eye(3), np.zeros(3))]
    placed = [results[0]]
    sims = [(1.0, np.eye(3), np.zeros(3))]
    for cur in results[1:]:
        s, R, t = overlap_similarity(placed[-1], cur)
        placed.append(transform_results(cur, s, R, t))
        s0, R0, t0 = sims[-1]
        sims.append((s0 * s, R0 @ R, s0 * R0 @ t + t0))
    return _merge(placed), sims


def _merge(parts: list[Results]) -> Results:
    frames = np.unique(np.concatenate([p.frame_index for p in parts]))
    F = len(frames)
    # which window supplies each frame: the earlier one up to the middle of an overlap
    owner = np.full(F, -1)
    for w, p in enumerate(parts):
        idx = np.searchsorted(frames, p.frame_index)
        if w == 0:
            owner[idx] = 0
            continue
        prev_last = parts[w - 1].frame_index[-1]
        first = p.frame_index[0]
        mid = (first + prev_last) / 2.0
        take = p.frame_index > mid
        owner[idx[take]] = w
    ids = np.unique(np.concatenate([p.person_ids for p in parts])).astype(np.int64)
    P = len(ids)
    B = next((p.betas.shape[1] for p in parts if p.betas.size), 10)
    out = dict(
        frame_index=frames.astype(np.int64),
        cam_to_world=np.zeros((F, 4, 4), np.float32),
        intrinsics=parts[0].intrinsics,
        image_size=parts[0].image_size,
        person_ids=ids,
        visible=np.zeros((P, F), bool),
        betas=np.zeros((P, B), np.float32),
        global_orient=np.tile(np.eye(3, dtype=np.float32), (P, F, 1, 1)),
        body_pose=np.tile(np.eye(3, dtype=np.float32), (P, F, 23, 1, 1)),
        transl=np.zeros((P, F, 3), np.float32),
        joints_world=np.zeros((P, F, 24, 3), np.float32),
        foot_vertices_world=np.zeros((P, F, 4, 3), np.float32),
        points=np.concatenate([p.points for p in parts]).astype(np.float32),
        point_colors=np.concatenate([p.point_colors for p in parts]).astype(np.uint8),
        body_model=parts[0].body_model,
    )
    if all(p.intrinsics_per_frame is not None for p in parts):
        out["intrinsics_per_frame"] = np.repeat(parts[0].intrinsics[None], F, 0).astype(np.float32)
    betas_set = np.zeros(P, bool)
    for w, p in enumerate(parts):
        idx = np.searchsorted(frames, p.frame_index)
        mine = owner[idx] == w
        out["cam_to_world"][idx[mine]] = p.cam_to_world[mine]
        if "intrinsics_per_frame" in out:
            out["intrinsics_per_frame"][idx[mine]] = p.intrinsics_per_frame[mine]
        for a, pid in enumerate(p.person_ids):
            q = int(np.searchsorted(ids, pid))
            if not betas_set[q] and p.visible[a].any():
                out["betas"][q] = p.betas[a]
                betas_set[q] = True
            sel = mine & p.visible[a]
            if not sel.any():
                continue
            out["visible"][q, idx[sel]] = True
            for k in ("global_orient", "body_pose", "transl", "joints_world", "foot_vertices_world"):
                out[k][q, idx[sel]] = getattr(p, k)[a, sel]
    return Results(**out)
