"""``overlay.mp4``: the video with the fitted bodies drawn over every frame.

Bodies come from ``results.npz`` (world frame) and are put back into each
frame's camera (``cam_to_world``, ``intrinsics``), so the overlay shows what
the joint optimization believes, not the front ends' raw fits. Drawn with the
CPU z-buffer rasterizer :func:`josh_jax.export.render.draw_meshes` (no OpenGL
needed; nearer people occlude farther ones).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import jax.numpy as jnp
import numpy as np

from josh_jax.body import BodyModel
from josh_jax.body import forward_jit as _forward
from josh_jax.export.render import draw_meshes
from josh_jax.video import VideoInfo, iter_frames

if TYPE_CHECKING:
    from josh_jax.results import Results

PALETTE = np.array([(230, 120, 60), (70, 150, 230), (90, 200, 110), (220, 80, 180), (240, 200, 60)], float)


def person_vertices(model: BodyModel, res: Results, p: int) -> np.ndarray:
    """(F, V, 3) world vertices of person ``p`` on every frame (zeros where not visible)."""
    rot = np.concatenate([res.global_orient[p][:, None], res.body_pose[p]], 1).astype(np.float32)
    out = _forward(model, jnp.asarray(res.betas[p]), jnp.asarray(rot), jnp.asarray(res.transl[p]))
    return np.asarray(out.vertices)


def write_overlay(
    res: Results,
    model: BodyModel,
    info: VideoInfo,
    path: str | Path,
    long_side: int = 960,
    alpha: float = 0.75,
    progress: bool = True,
    sample_png: dict | None = None,
) -> Path:
    """Write ``path`` (mp4) for the frames of ``res``; ``sample_png`` {frame: png path} saves stills."""
    from tqdm.auto import tqdm

    path = Path(path)
    size = info.size_at(long_side)
    k = size[0] / float(res.image_size[0])
    Kmat = res.intrinsics.astype(np.float64)
    focal, principal = Kmat[0, 0] * k, Kmat[:2, 2] * k
    frames = res.frame_index
    verts = [person_vertices(model, res, p) for p in range(len(res.person_ids))]
    faces = np.asarray(model.faces)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    pos = {int(f): i for i, f in enumerate(frames)}
    try:
        it = iter_frames(info, long_side, indices=frames)
        for fi, img in tqdm(
            it, total=len(frames), desc="overlay.mp4", disable=not progress, file=sys.stderr, leave=False
        ):
            i = pos.get(int(fi))
            if i is None:
                continue
            W2C = np.linalg.inv(res.cam_to_world[i].astype(np.float64))
            meshes = [
                (verts[p][i] @ W2C[:3, :3].T + W2C[:3, 3], PALETTE[int(res.person_ids[p]) % len(PALETTE)])
                for p in range(len(verts))
                if res.visible[p, i]
            ]
            if meshes:
                f_i = focal if res.intrinsics_per_frame is None else float(res.intrinsics_per_frame[i, 0, 0]) * k
                img = draw_meshes(img, meshes, faces, f_i, principal, alpha=alpha)
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            if sample_png and int(fi) in sample_png:
                cv2.imwrite(str(sample_png[int(fi)]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
