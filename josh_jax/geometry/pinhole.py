"""The pinhole projection of the numpy side (renderers, synthetic ground truth, front-end checks).

Camera frame: OpenCV (x right, y down, z forward), metres; pixels: x right, y down. The solver's
differentiable projection (with per-keyframe focal and clipping) is ``losses.project``.
"""

from __future__ import annotations

import numpy as np


def project(points: np.ndarray, focal, principal, min_depth: float | None = 1e-6) -> np.ndarray:
    """(..., 3) camera-frame points (metres) -> (..., 2) pixels: ``xy / z * focal + principal``.

    focal: px, a scalar or (2,) [fx, fy]; principal: (2,) px [cx, cy]; depths below ``min_depth``
    are clamped to it (None: no clamp; points behind the camera then project mirrored).
    """
    points = np.asarray(points)
    z = points[..., 2:3]
    if min_depth is not None:
        z = np.maximum(z, min_depth)
    return points[..., :2] / z * focal + np.asarray(principal, float)


def project_K(points: np.ndarray, K: np.ndarray, min_depth: float | None = 1e-6) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels with intrinsics K (3, 3) (no skew)."""
    return project(points, [K[0, 0], K[1, 1]], K[:2, 2], min_depth)
