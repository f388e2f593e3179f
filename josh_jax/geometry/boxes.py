"""Axis-aligned image boxes [xmin, ymin, xmax, ymax] (pixels or normalized), numpy."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (..., 4) and b (..., 4) [xmin, ymin, xmax, ymax], broadcast
    -> (...); a box with a negative extent has area 0."""
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)
