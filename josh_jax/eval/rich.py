"""``python -m josh_jax.eval.rich DATA_ROOT RESULTS_ROOT --smpl-dir DIR [--json OUT]``.

RICH layout, as the reference reads it (RICH from https://rich.is.tue.mpg.de with
its SMPL fits): DATA_ROOT/<sequence>/images/<frame id>_<cam>.<ext> and, for the
frames with ground truth, DATA_ROOT/<sequence>/<frame id>/*_smpl.pkl (a dict with
``global_orient`` (3,), ``body_pose`` (69,), ``betas`` (10,), ``transl`` (3,),
any leading 1-axis). Frame n = the n-th image by name; the neutral SMPL; 30 fps.
The reference scores RICH in its world frame without cameras: W-MPJPE100,
WA-MPJPE100, RTE, accel, jitter and foot sliding (PA-MPJPE, MPJPE, PVE and ATE
print as "-"). Accel is taken after one similarity carrying the prediction's
world onto RICH's (the reference differences the two worlds unaligned).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .common import Protocol, SequenceTruth, run_cli
from .safe_pickle import DatasetError, load_pickle

PROTOCOL = Protocol(fps=30.0, local=False, accel_world=True, ate=None)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def read_sequence(folder: Path) -> SequenceTruth:
    images = sorted(p.name for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
    frames, poses, betas, trans = [], [], [], []
    for idx, name in enumerate(images):
        gt_dir = folder / name.split("_")[0]
        if not gt_dir.is_dir():
            continue
        files = sorted(gt_dir.glob("*_smpl.pkl"))
        if not files:
            raise DatasetError(f"{gt_dir} has no *_smpl.pkl")
        d = load_pickle(files[0])
        try:
            go, bp, b, t = (
                np.asarray(d[k], np.float64).reshape(-1) for k in ("global_orient", "body_pose", "betas", "transl")
            )
        except (KeyError, TypeError):
            raise DatasetError(
                f"{files[0]} is not a RICH SMPL fit: needs global_orient, body_pose, betas, transl"
            ) from None
        if go.size != 3 or bp.size != 69 or t.size != 3:
            raise DatasetError(
                f"{files[0]}: global_orient/body_pose/transl have {go.size}/{bp.size}/{t.size} values, expected 3/69/3"
            )
        frames.append(idx)
        poses.append(np.concatenate([go, bp]))
        betas.append(b)
        trans.append(t)
    if not frames:
        raise DatasetError(f"{folder} has no ground-truth frame folders next to images/")
    return SequenceTruth(
        name=folder.name,
        gender="neutral",
        frames=np.array(frames),
        poses=np.stack(poses),
        betas=np.stack(betas),
        trans=np.stack(trans),
        world_to_cam=None,
        eval_mask=np.ones(len(frames), bool),
    )


def reader(data_root: Path, args):
    for folder in sorted(p for p in data_root.iterdir() if (p / "images").is_dir()):
        yield read_sequence(folder)


def main(argv=None) -> int:
    return run_cli("RICH", reader, PROTOCOL, argv, prog="python -m josh_jax.eval.rich", doc=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
