"""How well a result's bodies sit on the people in the video: 2D alignment against the tracker.

For every person and frame where both the result and the track have the person, the result's
world joints are projected with that frame's camera and intrinsics, and five of them are
compared with the track's own BlazePose landmarks (the front end's 2D evidence):

=========================  =====================================
SMPL joint (results)       BlazePose landmark (tracks)
=========================  =====================================
0 pelvis                   mean of 23, 24 (hips)
16, 17 shoulders           11, 12
7, 8 ankles                27, 28
=========================  =====================================

A frame's error is the mean pixel distance of the five, as a percentage of the person's box
height on that frame (the landmarks' vertical extent), so that near and far people, small and
large videos compare. :func:`alignment` gives per person the median and the 90th percentile
over frames. It needs no ground truth: it measures the picture a user sees in ``overlay.mp4``,
and a joint result clearly worse than the front ends alone (the bodies as fitted, drawn with the
starting focal; the ``--baseline`` solve's ``init.npz`` when there is one) means the solve moved
the people off themselves (the demo warns, summary.json records it).

Pixels: the results' intrinsics are in the video's pixels; the landmarks are in working pixels
(``scale_to_original`` video px per working px). Frames: the results' ``frame_index`` and the
tracks' ``frames`` count from the clip's first frame (``--start``).
"""

from __future__ import annotations

import numpy as np

#: (SMPL joint, BlazePose landmarks averaged) pairs compared
JOINT_PAIRS = ((0, (23, 24)), (16, (11,)), (17, (12,)), (7, (27,)), (8, (28,)))

#: the console warns when the joint result's median is this many points worse than the front ends'
WORSE_BY = 1.0


def project_joints(res, person: int, rows: np.ndarray, joints: tuple[int, ...]) -> np.ndarray:
    """(len(rows), J, 2) video pixels of ``joints`` of person row ``person`` on result rows ``rows``."""
    X = np.asarray(res.joints_world, np.float64)[person, rows][:, list(joints)]  # (n, J, 3) world
    T = np.asarray(res.cam_to_world, np.float64)[rows]
    R, t = T[:, :3, :3], T[:, :3, 3]
    Xc = np.einsum("nab,nja->njb", R, X - t[:, None])  # R^T (X - t)
    if res.intrinsics_per_frame is not None:
        K = np.asarray(res.intrinsics_per_frame, np.float64)[rows]
    else:  # older files: the shared K
        K = np.repeat(np.asarray(res.intrinsics, np.float64)[None], len(rows), 0)
    z = np.maximum(Xc[..., 2], 1e-6)
    u = K[:, None, 0, 0] * Xc[..., 0] / z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * Xc[..., 1] / z + K[:, None, 1, 2]
    return np.stack([u, v], -1)


def person_errors(res, person: int, track, scale_to_original: float) -> np.ndarray:
    """Per-frame error (% of box height) of result row ``person`` against ``track``
    (:class:`josh_jax.frontends.pipeline.TrackFit` with landmarks); empty when nothing overlaps."""
    if track.landmarks is None:
        return np.zeros(0)
    frames = np.asarray(res.frame_index)
    vis = np.asarray(res.visible)[person]
    pos = {int(f): i for i, f in enumerate(np.asarray(track.frames))}
    rows = [r for r in np.where(vis)[0] if int(frames[r]) in pos]
    if not rows:
        return np.zeros(0)
    rows = np.asarray(rows)
    lm = np.asarray(track.landmarks, np.float64)[[pos[int(frames[r])] for r in rows]][..., :2] * scale_to_original
    uv = project_joints(res, person, rows, tuple(j for j, _ in JOINT_PAIRS))
    target = np.stack([lm[:, list(ids)].mean(1) for _, ids in JOINT_PAIRS], 1)  # (n, 5, 2)
    err = np.linalg.norm(uv - target, axis=-1).mean(1)
    height = lm[:, :, 1].max(1) - lm[:, :, 1].min(1)
    ok = np.isfinite(err) & (height > 1.0)
    return 100.0 * err[ok] / height[ok]


def _stats(e: np.ndarray) -> dict | None:
    if len(e) == 0:
        return None
    return {"median": round(float(np.median(e)), 2), "p90": round(float(np.percentile(e, 90)), 2), "frames": len(e)}


def alignment(res, tracks: dict, scale_to_original: float, init=None) -> dict:
    """{person id: {"joint": stats, "init": stats or None}} with stats = median and p90 (% of the box
    height) and the number of frames; ``tracks`` {id: TrackFit}, ``init`` the front-ends-only result."""
    out = {}
    for p, pid in enumerate(np.asarray(res.person_ids)):
        track = tracks.get(int(pid))
        if track is None:
            continue
        entry = {"joint": _stats(person_errors(res, p, track, scale_to_original)), "init": None}
        if init is not None:
            ids = [int(i) for i in np.asarray(init.person_ids)]
            if int(pid) in ids:
                entry["init"] = _stats(person_errors(init, ids.index(int(pid)), track, scale_to_original))
        out[str(int(pid))] = entry
    return out


def worse_people(table: dict, by: float = WORSE_BY) -> list[str]:
    """Person ids whose joint result's median is more than ``by`` points worse than the front ends'."""
    bad = []
    for pid, e in table.items():
        j, i = e.get("joint"), e.get("init")
        if j and i and j["median"] > i["median"] + by:
            bad.append(pid)
    return bad
