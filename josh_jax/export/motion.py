"""One place where the viewer and the animated exports read a result.

``josh_jax.view``, ``josh_jax.export.anim`` and ``josh_jax.export.bvh`` read results
only through :func:`motion_of` / :func:`load_motion`, so a change of the
results container (today the ``results.npz`` dict of
:func:`josh_jax.results.load_results`) is one edit here.

:class:`Motion` holds numpy arrays, world frame = first keyframe camera
(OpenCV axes: x right, y down, z forward), metres; F frames, P people.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

DEFAULT_FPS = 30.0


class Motion(NamedTuple):
    frame_index: np.ndarray  # (F,) int64 video frame of each row
    cam_to_world: np.ndarray  # (F, 4, 4) float64, OpenCV camera axes
    intrinsics: np.ndarray  # (3, 3) float64, original pixels
    image_size: np.ndarray  # (2,) int64, W, H
    person_ids: np.ndarray  # (P,) int64
    visible: np.ndarray  # (P, F) bool
    betas: np.ndarray  # (P, B) float32
    rotmats: np.ndarray  # (P, F, 24, 3, 3) float64: root (world) then the 23 local body rotations
    transl: np.ndarray  # (P, F, 3) float64, body-model translation (world)
    joints_world: np.ndarray  # (P, F, 24, 3) float64
    points: np.ndarray  # (N, 3) float32 scene points
    point_colors: np.ndarray  # (N, 3) uint8
    body_model: str  # e.g. "josh-open-body" or "smpl"
    fps: float  # video frames per second (summary.json beside the results, else DEFAULT_FPS)


def _get(res, key: str):
    return res[key] if isinstance(res, dict) else getattr(res, key)


def motion_of(res, fps: float | None = None) -> Motion:
    """A :class:`Motion` from a results dict (``load_results``) or an object with the same fields."""
    go = np.asarray(_get(res, "global_orient"), np.float64)
    bp = np.asarray(_get(res, "body_pose"), np.float64)
    rot = np.concatenate([go[:, :, None], bp], 2) if go.size else np.zeros(go.shape[:2] + (24, 3, 3))
    return Motion(
        frame_index=np.asarray(_get(res, "frame_index"), np.int64),
        cam_to_world=np.asarray(_get(res, "cam_to_world"), np.float64),
        intrinsics=np.asarray(_get(res, "intrinsics"), np.float64),
        image_size=np.asarray(_get(res, "image_size"), np.int64),
        person_ids=np.asarray(_get(res, "person_ids"), np.int64),
        visible=np.asarray(_get(res, "visible"), bool),
        betas=np.asarray(_get(res, "betas"), np.float32),
        rotmats=rot,
        transl=np.asarray(_get(res, "transl"), np.float64),
        joints_world=np.asarray(_get(res, "joints_world"), np.float64),
        points=np.asarray(_get(res, "points"), np.float32).reshape(-1, 3),
        point_colors=np.asarray(_get(res, "point_colors"), np.uint8).reshape(-1, 3),
        body_model=str(_get(res, "body_model")),
        fps=float(fps or DEFAULT_FPS),
    )


def results_path(path: str | Path, name: str = "results.npz") -> Path:
    """``DIR`` -> ``DIR/name``; a file path is returned as is."""
    path = Path(path)
    return path / name if path.is_dir() else path


def video_fps(folder: Path) -> float | None:
    """The fps recorded in ``summary.json`` of an output folder; None when there is none.

    Raises :class:`josh_jax.jsonfile.JsonFileError` (a ValueError, one line) when summary.json is
    damaged or its fps is not a number in (0, 1000]."""
    from josh_jax.jsonfile import positive_number, read_json

    s = Path(folder) / "summary.json"
    if not s.is_file():
        return None
    fix = "pass --fps, or run the demo again"
    fps = read_json(s, "summary.json", fix).get("fps")
    return None if fps is None else positive_number(fps, "fps", str(s), high=1000.0, fix=fix)


def load_motion(path: str | Path, fps: float | None = None) -> Motion:
    """Read ``results.npz`` (or ``DIR/results.npz``); fps from the argument, summary.json, or 30.

    Raises ValueError / OSError with a one-line message on a missing or foreign file.
    """
    from josh_jax.results import load_results

    p = results_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found (expected a josh_jax output folder or its results.npz)")
    return motion_of(load_results(p), fps or video_fps(p.parent))


def body_model_for(m: Motion, override=None):
    """The body model a result was made with ('open' is embedded; SMPL needs its file)."""
    from josh_jax import body as jbody

    if override:
        return jbody.load(override)
    if m.body_model == "josh-open-body":
        return jbody.load("open")
    raise jbody.BodyModelError(
        f"these results were made with body model {m.body_model!r}; pass its file with --body-model PATH"
    )
