"""``python -m josh_jax.eval.emdb DATA_ROOT RESULTS_ROOT --smpl-dir DIR [--json OUT] [--all]``.

EMDB layout (as released, https://eth-ait.github.io/emdb): DATA_ROOT/<P>/<sequence>/
<sequence>_data.pkl (or one level flatter, DATA_ROOT/<sequence>/, as the reference's
data/EMDB2), each a dict with ``n_frames``, ``gender``, ``good_frames_mask`` (N,) bool,
``smpl.{poses_root (N, 3), poses_body (N, 69), betas (10,), trans (N, 3)}`` and
``camera.extrinsics`` (N, 4, 4) world->camera. Sequences whose pickle says
``emdb2: False`` are left out unless ``--all`` (the reference evaluates the EMDB2
subset). Frame n = image n of the sequence's images/ folder; 30 fps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .common import Protocol, SequenceTruth, run_cli
from .safe_pickle import DatasetError, load_pickle

PROTOCOL = Protocol(fps=30.0, local=True, ate="mean")


def _get(d, path: str, src: Path):
    cur = d
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise DatasetError(f"{src} is not an EMDB annotation file: missing {path}")
        cur = cur[key]
    return cur


def read_sequence(pkl: Path) -> SequenceTruth:
    """One EMDB ``*_data.pkl`` -> :class:`SequenceTruth` (rows = every frame)."""
    a = load_pickle(pkl)
    if not isinstance(a, dict):
        raise DatasetError(f"{pkl} is not an EMDB annotation file (not a dict)")
    root = np.asarray(_get(a, "smpl.poses_root", pkl), np.float64).reshape(-1, 3)
    body = np.asarray(_get(a, "smpl.poses_body", pkl), np.float64).reshape(len(root), -1)
    if body.shape[1] != 69:
        raise DatasetError(f"{pkl}: smpl.poses_body has {body.shape[1]} values per frame, expected 69")
    n = len(root)
    ext = np.asarray(_get(a, "camera.extrinsics", pkl), np.float64)
    mask = np.asarray(_get(a, "good_frames_mask", pkl), bool).reshape(-1)
    trans = np.asarray(_get(a, "smpl.trans", pkl), np.float64).reshape(n, 3)
    if ext.shape != (n, 4, 4) or mask.shape != (n,):
        raise DatasetError(
            f"{pkl}: camera.extrinsics {ext.shape} / good_frames_mask {mask.shape} do not match {n} frames"
        )
    return SequenceTruth(
        name=pkl.parent.name,
        gender=str(_get(a, "gender", pkl)),
        frames=np.arange(n),
        poses=np.concatenate([root, body], 1),
        betas=np.asarray(_get(a, "smpl.betas", pkl), np.float64).reshape(1, -1),
        trans=trans,
        world_to_cam=ext,
        eval_mask=mask,
    )


def reader(data_root: Path, args):
    pkls = sorted(set(data_root.glob("*/*_data.pkl")) | set(data_root.glob("*/*/*_data.pkl")))
    for pkl in pkls:
        if not getattr(args, "all", False):
            a = load_pickle(pkl)
            if isinstance(a, dict) and "emdb2" in a and not bool(a["emdb2"]):
                continue
        yield read_sequence(pkl)


reader.add_arguments = lambda ap: ap.add_argument(  # type: ignore[attr-defined]
    "--all", action="store_true", help="every sequence, not only the EMDB2 subset"
)


def main(argv=None) -> int:
    return run_cli("EMDB", reader, PROTOCOL, argv, prog="python -m josh_jax.eval.emdb", doc=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
