"""``recording.rrd``: the reconstruction as a rerun recording (rerun-sdk, saved to a file; no server).

Open it with ``rerun recording.rrd`` (the viewer ships with ``pip install rerun-sdk``).
Logged on a ``frame`` timeline: the camera (pose, pinhole, the video frame),
every person's mesh, and the scene points (static). World = first keyframe
camera, OpenCV axes (x right, y down, z forward).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from josh_jax.body import BodyModel
from josh_jax.export.overlay import PALETTE, person_vertices
from josh_jax.video import VideoInfo, iter_frames

if TYPE_CHECKING:
    from josh_jax.results import Results


def write_rrd(
    res: Results,
    model: BodyModel,
    info: VideoInfo,
    path: str | Path,
    image_side: int = 480,
    mesh_every: int = 1,
    progress: bool = True,
) -> Path:
    import rerun as rr
    from tqdm.auto import tqdm

    path = Path(path)
    rec = rr.RecordingStream("josh_jax")
    rec.save(str(path))
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Y_DOWN, static=True)
    rec.log("world/scene", rr.Points3D(res.points, colors=res.point_colors, radii=0.01), static=True)
    size = info.size_at(image_side)
    k = size[0] / float(res.image_size[0])
    K = res.intrinsics.astype(np.float64).copy()
    K[:2] *= k
    rec.log("world/camera", rr.Pinhole(image_from_camera=K, resolution=list(size)), static=True)
    faces = np.asarray(model.faces, np.uint32)
    verts = [person_vertices(model, res, p) for p in range(len(res.person_ids))]
    for p, pid in enumerate(res.person_ids):  # topology and colour once, vertices per frame
        col = PALETTE[int(pid) % len(PALETTE)].astype(np.uint8)
        rec.log(
            f"world/person_{int(pid)}", rr.Mesh3D.from_fields(triangle_indices=faces, albedo_factor=col), static=True
        )
    pos = {int(f): i for i, f in enumerate(res.frame_index)}
    it = iter_frames(info, image_side, indices=res.frame_index)
    for fi, img in tqdm(it, total=len(pos), desc="recording.rrd", disable=not progress, file=sys.stderr, leave=False):
        i = pos.get(int(fi))
        if i is None:
            continue
        rec.set_time("frame", sequence=int(fi))
        T = res.cam_to_world[i].astype(np.float64)
        rec.log("world/camera", rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]))
        if res.intrinsics_per_frame is not None and not np.allclose(res.intrinsics_per_frame[i], res.intrinsics):
            Ki = res.intrinsics_per_frame[i].astype(np.float64).copy()  # a zooming camera
            Ki[:2] *= k
            rec.log("world/camera", rr.Pinhole(image_from_camera=Ki, resolution=list(size)))
        rec.log("world/camera/image", rr.Image(img).compress(jpeg_quality=80))
        if i % mesh_every:
            continue
        for p, pid in enumerate(res.person_ids):
            ent = f"world/person_{int(pid)}"
            pts = verts[p][i] if res.visible[p, i] else np.zeros((0, 3), np.float32)
            rec.log(ent, rr.Mesh3D.from_fields(vertex_positions=pts))
    rec.flush()
    return path
