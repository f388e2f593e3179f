"""BVH motion files, one per person (``bvh/person_<ID>.bvh``), for retargeting tools.

The skeleton is SMPL's 24 joints with SMPL's parents and names (root
``pelvis``; listed depth first, as BVH's nesting requires, so the channel
order is not SMPL's index order),
with bone offsets from the person's fitted betas (rest pose, metres) and an
``End Site`` continuing each leaf bone (head, hands, feet) by half its length.
The root has 6 channels (``Xposition Yposition Zposition Zrotation Xrotation
Yrotation``, absolute position of the pelvis joint), the others 3; rotations
are intrinsic Z-X-Y Euler angles in degrees (R = Rz Rx Ry), the usual BVH order.
Units are metres, y-up (josh_jax's OpenCV world turned 180 degrees about x,
as in the glTF exports). ``Frame Time`` is 1 / the video's fps and frame i is
row i of results.npz (video frame ``frame_index[i]``); on frames where the
person is not placed the nearest placed pose is held.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from josh_jax._cli.atomic import write_text_atomic
from josh_jax.body import SMPL_JOINT_NAMES, SMPL_PARENTS
from josh_jax.export.motion import Motion

Y_UP = np.diag([1.0, -1.0, -1.0])
EULER = "ZXY"  # scipy's intrinsic order; BVH channels listed in this order


def _children(parents) -> dict[int, list[int]]:
    ch: dict[int, list[int]] = {i: [] for i in range(len(parents))}
    for i, p in enumerate(parents):
        if p >= 0:
            ch[p].append(i)
    return ch


def bvh_text(m: Motion, model, p: int) -> str:
    """The BVH file of person index ``p`` (see the module docstring)."""
    from scipy.spatial.transform import Rotation

    from josh_jax.body import rest_joints
    from josh_jax.export.anim import nearest_visible

    nb = min(m.betas.shape[1], model.num_betas)
    J = np.asarray(rest_joints(model, m.betas[p][:nb]), np.float64)
    ch = _children(SMPL_PARENTS)
    lines = ["HIERARCHY"]
    order: list[int] = []

    def emit(j: int, depth: int):
        ind = "  " * depth
        par = SMPL_PARENTS[j]
        off = np.zeros(3) if par < 0 else J[j] - J[par]
        lines.append(f"{ind}{'ROOT' if par < 0 else 'JOINT'} {SMPL_JOINT_NAMES[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        rot = "Zrotation Xrotation Yrotation"
        lines.append(
            f"{ind}  CHANNELS 6 Xposition Yposition Zposition {rot}" if par < 0 else f"{ind}  CHANNELS 3 {rot}"
        )
        order.append(j)
        for c in ch[j]:
            emit(c, depth + 1)
        if not ch[j]:
            end = 0.5 * (J[j] - J[par])
            lines.extend(
                [
                    f"{ind}  End Site",
                    f"{ind}  {{",
                    f"{ind}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}",
                    f"{ind}  }}",
                ]
            )
        lines.append(f"{ind}}}")

    emit(0, 0)
    rows = nearest_visible(m.visible[p])
    rot = m.rotmats[p][rows].copy()  # (F, 24, 3, 3)
    rot[:, 0] = Y_UP @ rot[:, 0]
    root = (m.transl[p][rows] + J[0]) @ Y_UP.T
    F = rot.shape[0]
    eul = Rotation.from_matrix(rot[:, order].reshape(-1, 3, 3)).as_euler(EULER, degrees=True).reshape(F, 24 * 3)
    lines += ["MOTION", f"Frames: {F}", f"Frame Time: {1.0 / m.fps:.10f}"]
    vals = np.concatenate([root, eul], 1)
    lines += [" ".join(f"{v:.6f}" for v in row) for row in vals]
    return "\n".join(lines) + "\n"


def write_bvh(m: Motion, model, folder: str | Path) -> list[Path]:
    """Write ``folder/person_<ID>.bvh`` for every person (each file atomically); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p, pid in enumerate(m.person_ids):
        path = folder / f"person_{int(pid)}.bvh"
        write_text_atomic(path, bvh_text(m, model, p))
        out.append(path)
    return out
