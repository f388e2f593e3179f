"""Contact labels from the fitted bodies: a stance heuristic, not a learned model.

Per frame, with ``up`` the body's up axis (the fitted root rotation's y axis):

* a foot's height is the lowest projection on ``up`` of its sole vertices;
* a foot is in stance when it is within ``stance_margin`` of the lower foot
  (both feet count when the person stands still or in double support);
* the labelled vertices are that foot's sole vertices within ``sole_band`` of
  its lowest point (heel strike, flat foot and toe-off label different parts).

Hands are never labelled (the official DECO front end labels any body part).
"""
from __future__ import annotations

import numpy as np

from ..body.model import BodyModel, forward


def stance_contacts(model: BodyModel, rotmats: np.ndarray, betas: np.ndarray, stance_margin: float = 0.03,
                    sole_band: float = 0.02) -> np.ndarray:
    """(T, 24, 3, 3) rotations + (B,) betas -> (T, V) bool per-vertex contact."""
    soles = [np.asarray(model.vertex_set(k)) for k in ("left_sole", "right_sole")]
    ids = np.concatenate(soles)
    verts = np.asarray(forward(model, betas, rotmats, vertex_ids=tuple(int(i) for i in ids)).vertices)
    up = rotmats[:, 0, :, 1]  # (T, 3) body y axis in the camera frame
    h = np.einsum("tvc,tc->tv", verts, up)
    n = len(soles[0])
    hs = [h[:, :n], h[:, n:]]
    low = np.stack([x.min(1) for x in hs], 1)  # (T, 2)
    floor = low.min(1)
    out = np.zeros((len(rotmats), model.num_vertices), bool)
    for f in range(2):
        stance = low[:, f] - floor < stance_margin
        band = hs[f] - low[:, f:f + 1] < sole_band
        lab = stance[:, None] & band
        out[:, soles[f]] = lab
    return out
