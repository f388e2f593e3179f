"""``python -m josh_jax.eval.sloper4d DATA_ROOT RESULTS_ROOT --smpl-dir DIR [--json OUT]``.

SLOPER4D layout (as released, http://www.lidarhumanmotion.net/sloper4d):
DATA_ROOT/<sequence>/<sequence>_labels.pkl, a dict with ``total_frames`` (or
``frame_num``, a list), ``second_person.{opt_pose (N, 72), opt_trans (N, 3),
beta (10,), gender}`` and ``RGB_frames.cam_pose`` (N, 4, 4) world->camera per RGB
frame. Frame n = RGB frame n; 20 fps. As the reference: every frame the results
hold is evaluated; RTE carries the ground truth's camera-frame translation to the
world with the predicted cameras (it scores the cameras); ATE is an RMSE and is
not computed for seq009.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .common import Protocol, SequenceTruth, run_cli
from .safe_pickle import DatasetError, load_pickle

PROTOCOL = Protocol(fps=20.0, local=True, rte_gt_in_pred_cameras=True, ate="rmse", ate_skip=("seq009",))


def read_sequence(pkl: Path) -> SequenceTruth:
    d = load_pickle(pkl)
    try:
        sp, rgb = d["second_person"], d["RGB_frames"]
        n = int(d["total_frames"]) if "total_frames" in d else len(d["frame_num"])
        pose = np.asarray(sp["opt_pose"], np.float64)[:n].reshape(-1, 72)
        trans = np.asarray(sp["opt_trans"], np.float64)[:n].reshape(-1, 3)
        betas = np.asarray(sp["beta"], np.float64).reshape(1, -1)
        gender = str(sp["gender"])
        cams = np.asarray(rgb["cam_pose"], np.float64)[:n]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{pkl} is not a SLOPER4D labels file with RGB_frames.cam_pose and second_person "
            f"SMPL fits ({type(exc).__name__}: {exc})"
        ) from None
    n = min(len(pose), len(trans), len(cams))
    if cams.shape[1:] != (4, 4):
        raise DatasetError(f"{pkl}: RGB_frames.cam_pose has shape {cams.shape}, expected (N, 4, 4)")
    return SequenceTruth(
        name=pkl.parent.name,
        gender=gender,
        frames=np.arange(n),
        poses=pose[:n],
        betas=betas,
        trans=trans[:n],
        world_to_cam=cams[:n],
        eval_mask=np.ones(n, bool),
    )


def reader(data_root: Path, args):
    for pkl in sorted(data_root.glob("*/*_labels.pkl")):
        yield read_sequence(pkl)


def main(argv=None) -> int:
    return run_cli(
        "SLOPER4D", reader, PROTOCOL, argv, prog="python -m josh_jax.eval.sloper4d", doc=__doc__.split("\n\n")[0]
    )


if __name__ == "__main__":
    sys.exit(main())
