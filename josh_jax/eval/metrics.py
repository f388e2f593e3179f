"""The field's world-frame metrics (WHAM / TRAM / GVHMR / JOSH definitions), in numpy.

Inputs are per-frame arrays of one person with ground truth on the same
frames, both in a world frame that starts at the first camera. Joints are
SMPL's 24 (metres).

- ``w_mpjpe``: chunks of 100 frames; a similarity (Umeyama, with scale) fitted
  on the joints of the chunk's first two frames is applied to the chunk; mean
  joint error in mm. ``wa_mpjpe``: the similarity is fitted on the whole chunk.
- ``rte``: rigid alignment (rotation + translation, no scale) of the root
  trajectory over the sequence; mean per-frame error / ground-truth path
  length, in %.
- ``jitter``: mean norm of the third finite difference of the joints x fps^3,
  in units of 10 m/s^3.
- ``foot_sliding``: on frames where a ground-truth foot marker moves < 1 cm,
  the predicted marker's displacement, mean in mm.
- ``camera_ate``: camera centres after rigid alignment (no scale), RMSE in m.
- ``path_length``: length of a polyline (a root or camera trajectory), m.
- ``pa_mpjpe`` / ``mpjpe`` / ``pve``: camera-frame errors after subtracting
  the pelvis (mean of the two hips), Procrustes-aligned for PA, mm.
- ``accel_error``: mean joint error of the second finite difference x fps^2
  (m/s^2), on the frames the reference keeps (its ``compute_error_accel``
  output without the first and last value).
"""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True):
    """Similarity (s, R, t) minimising ||s R src + t - dst||^2 over points (N, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var) if with_scale and var > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def _apply(s, R, t, x):
    return s * x @ R.T + t


def _chunks(n: int, size: int = 100):
    return [(i, min(i + size, n)) for i in range(0, n, size) if min(i + size, n) - i >= 2]


def w_mpjpe(pred: np.ndarray, gt: np.ndarray, chunk: int = 100) -> float:
    """(F, J, 3) each -> mm, similarity fitted on each chunk's first two frames."""
    errs = []
    for a, b in _chunks(len(pred), chunk):
        s, R, t = umeyama(pred[a : a + 2].reshape(-1, 3), gt[a : a + 2].reshape(-1, 3))
        errs.append(np.linalg.norm(_apply(s, R, t, pred[a:b]) - gt[a:b], axis=-1).reshape(-1))
    return float(np.concatenate(errs).mean() * 1000)


def wa_mpjpe(pred: np.ndarray, gt: np.ndarray, chunk: int = 100) -> float:
    """(F, J, 3) each -> mm, similarity fitted on each whole chunk."""
    errs = []
    for a, b in _chunks(len(pred), chunk):
        s, R, t = umeyama(pred[a:b].reshape(-1, 3), gt[a:b].reshape(-1, 3))
        errs.append(np.linalg.norm(_apply(s, R, t, pred[a:b]) - gt[a:b], axis=-1).reshape(-1))
    return float(np.concatenate(errs).mean() * 1000)


def path_length(path: np.ndarray) -> float:
    """(T, 3) points in order -> the length of the polyline through them (metres)."""
    return float(np.linalg.norm(np.diff(path, axis=0), axis=-1).sum())


def rte(pred_root: np.ndarray, gt_root: np.ndarray) -> float:
    """(F, 3) root trajectories -> % of the ground-truth path length, rigid alignment."""
    s, R, t = umeyama(pred_root, gt_root, with_scale=False)
    err = np.linalg.norm(_apply(s, R, t, pred_root) - gt_root, axis=-1).mean()
    return float(100 * err / max(path_length(gt_root), 1e-9))


def jitter(joints: np.ndarray, fps: float = 30.0) -> float:
    """(F, J, 3) -> mean ||third difference|| x fps^3 in 10 m/s^3."""
    if len(joints) < 4:
        return 0.0
    d3 = joints[3:] - 3 * joints[2:-1] + 3 * joints[1:-2] - joints[:-3]
    return float(np.linalg.norm(d3, axis=-1).mean() * fps**3 / 10.0)


def foot_sliding(pred_feet: np.ndarray, gt_feet: np.ndarray, thresh: float = 0.01) -> float:
    """(F, M, 3) foot markers -> mm moved by the prediction where ground truth stands still."""
    gt_d = np.linalg.norm(np.diff(gt_feet, axis=0), axis=-1)
    pr_d = np.linalg.norm(np.diff(pred_feet, axis=0), axis=-1)
    still = gt_d < thresh
    return float(pr_d[still].mean() * 1000) if still.any() else 0.0


def camera_ate(pred_pos: np.ndarray, gt_pos: np.ndarray) -> float:
    """(F, 3) camera centres -> RMSE in m after rigid alignment (no scale)."""
    s, R, t = umeyama(pred_pos, gt_pos, with_scale=False)
    return float(np.sqrt((np.linalg.norm(_apply(s, R, t, pred_pos) - gt_pos, axis=-1) ** 2).mean()))


def _pelvis_centred(x: np.ndarray, joints: np.ndarray) -> np.ndarray:
    return x - joints[..., 1:3, :].mean(-2, keepdims=True)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """(F, J, 3) camera-frame joints -> mm after subtracting the pelvis."""
    return float(np.linalg.norm(_pelvis_centred(pred, pred) - _pelvis_centred(gt, gt), axis=-1).mean() * 1000)


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """(F, J, 3) -> mm after a per-frame Procrustes (similarity) alignment."""
    errs = []
    for p, g in zip(pred, gt):
        s, R, t = umeyama(p, g)
        errs.append(np.linalg.norm(_apply(s, R, t, p) - g, axis=-1))
    return float(np.mean(errs) * 1000)


def pve(pred_verts: np.ndarray, gt_verts: np.ndarray, pred_joints: np.ndarray, gt_joints: np.ndarray) -> float:
    """(F, V, 3) camera-frame vertices -> mm after subtracting each pelvis."""
    a = pred_verts - pred_joints[:, 1:3].mean(1, keepdims=True)
    b = gt_verts - gt_joints[:, 1:3].mean(1, keepdims=True)
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000)


def accel_error(pred: np.ndarray, gt: np.ndarray, fps: float = 30.0) -> float:
    """(F, J, 3) each -> mean ||a_pred - a_gt|| in m/s^2 over frames 2..F-3, a = second difference x fps^2.

    The reference (JOSH / WHAM ``compute_error_accel(...)[1:-1] * fps**2``) drops the
    first and last of its F-2 per-frame values; so does this. NaN for F < 5."""
    if len(pred) < 5:
        return float("nan")
    a_p = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    a_g = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    return float(np.linalg.norm(a_p - a_g, axis=-1).mean(-1)[1:-1].mean() * fps**2)


def evaluate(results, gt, fps: float = 30.0) -> dict:
    """Metrics of :class:`~josh_jax.results.Results` against a ground truth in the same
    layout (a ``Results`` or a mapping with its keys, e.g. ``josh_jax.synthetic.worlds``'s), over the
    frames both have and each person visible in both."""
    from josh_jax.results import as_results

    results, gt = as_results(results), as_results(gt, "ground truth")
    common, ri, gi = np.intersect1d(results.frame_index, gt.frame_index, return_indices=True)
    out: dict = {"frames": int(len(common)), "people": []}
    per = []
    for p, pid in enumerate(gt.person_ids):
        rp = np.where(results.person_ids == pid)[0]
        if len(rp) == 0:
            continue
        rp = int(rp[0])
        vis = results.visible[rp, ri] & gt.visible[p, gi]
        if vis.sum() < 4:
            continue
        pj, gj = results.joints_world[rp, ri][vis], gt.joints_world[p, gi][vis]
        pf, gf = results.foot_vertices_world[rp, ri][vis], gt.foot_vertices_world[p, gi][vis]
        m = {
            "person": int(pid),
            "frames": int(vis.sum()),
            "w_mpjpe100": w_mpjpe(pj, gj),
            "wa_mpjpe100": wa_mpjpe(pj, gj),
            "rte": rte(pj[:, 0], gj[:, 0]),
            "jitter": jitter(pj, fps),
            "foot_sliding": foot_sliding(pf, gf),
        }
        per.append(m)
    out["people"] = per
    for k in ("w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "foot_sliding"):
        out[k] = float(np.mean([m[k] for m in per])) if per else float("nan")
    out["camera_ate"] = camera_ate(results.cam_to_world[ri, :3, 3], gt.cam_to_world[gi, :3, 3])
    return out
