"""Errors of a demo run against a rendered camera-motion clip's truth (issue 14's "done when").

``clip_errors(results, summary, gt)``: the camera mode chosen, the camera rotation error (degrees,
every covered frame, both sides relative to the first covered frame), the focal error (relative, every
covered frame), the person's world root path length against the truth (both sampled every
``step`` frames, the keyframe spacing, so that per-frame jitter does not count as path) and the world
root position error after a similarity alignment (metres, mean and max over the person's frames).
Used by tests/test_camera_motion.py and benchmarks/camera_clips.py.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from josh_jax.eval.metrics import path_length, umeyama


def clip_errors(res: dict, summary: dict, gt: dict, step: int = 5) -> dict:
    fr = res.frame_index.astype(int)
    T_gt = np.asarray(gt["cam_to_world"], np.float64)
    R_gt = np.linalg.inv(T_gt[fr[0]])[:3, :3] @ T_gt[fr, :3, :3]
    R_est = res.cam_to_world[:, :3, :3].astype(np.float64)
    R_est = np.linalg.inv(R_est[0]) @ R_est
    rot_err = np.degrees(np.linalg.norm(Rotation.from_matrix(np.swapaxes(R_gt, 1, 2) @ R_est).as_rotvec(), axis=1))
    scale = res.image_size[0] / float(gt.get("width", res.image_size[0]))
    f_gt = np.broadcast_to(np.asarray(gt["focal"], np.float64), (len(T_gt),))[fr] * scale
    K = (
        res.intrinsics_per_frame
        if res.intrinsics_per_frame is not None
        else np.repeat(res.intrinsics[None], len(fr), 0)
    )
    f_err = np.abs(K[:, 0, 0] / f_gt - 1.0)
    out = {
        "camera_mode": summary.get("camera", {}).get("mode"),
        "expected_mode": str(gt.get("camera_mode", "")),
        "covered_frames": [int(fr[0]), int(fr[-1])],
        "rotation_error_max_deg": float(rot_err.max()),
        "rotation_error_mean_deg": float(rot_err.mean()),
        "focal_error_max": float(f_err.max()),
    }
    if len(res.person_ids):
        p = int(np.argmax(res.visible.sum(1)))
        vis = res.visible[p]
        est = res.joints_world[p, vis, 0].astype(np.float64)
        true = np.asarray(gt["joints"], np.float64)[fr[vis], 0]
        s, R, t = umeyama(est, true)
        err = np.linalg.norm(s * est @ R.T + t - true, axis=1)
        sub = slice(None, None, step)
        length = lambda x: path_length(x[sub])  # noqa: E731
        # path length in metres of the reconstruction's own scale (no alignment)
        out.update(
            {
                "person_frames": int(vis.sum()),
                "root_path_m": length(est),
                "true_root_path_m": length(true),
                "root_path_ratio": length(est) / max(length(true), 1e-9),
                "root_error_mean_m": float(err.mean()),
                "root_error_max_m": float(err.max()),
            }
        )
    return out
