"""How a clip is cut into windows and keyframes (SPEC 5), and the size buckets that
padded arrays round up to. Used by the front ends (which windows to build) and by
problem building (how large to pad), so it sits before both in the flow."""

from __future__ import annotations

import numpy as np


def keyframe_indices(num_frames: int, start_frame: int = 0, opt_interval: int = 5, window: int = 101) -> np.ndarray:
    """Keyframes of one window (SPEC 5): every ``opt_interval`` frames from ``start_frame``
    plus the window's last frame; the window spans ``window`` frames when at least
    ``2 * window - 1`` frames remain, else the rest of the clip."""
    remaining = num_frames - start_frame
    if remaining < 2:
        raise ValueError(f"a window needs at least 2 frames, {remaining} remain after frame {start_frame}")
    span = window if remaining >= 2 * window - 1 else remaining
    last = start_frame + span - 1
    kf = list(range(start_frame, last + 1, opt_interval))
    if kf[-1] != last:
        kf.append(last)
    return np.asarray(kf, np.int64)


def window_starts(num_frames: int, window: int = 101, stride: int = 100) -> list[int]:
    """Starts of the windows of a long video: a new window every ``stride`` frames
    while the current one does not take the rest of the clip (neighbours share
    one frame, since window = stride + 1)."""
    if stride < 1 or window < 2:
        raise ValueError(f"window_starts: stride must be >= 1 and window >= 2, got stride {stride}, window {window}")
    starts = [0]
    while num_frames - starts[-1] >= 2 * window - 1:
        starts.append(starts[-1] + stride)
    return starts


def bucket(n: int, minimum: int = 8) -> int:
    """Round up to the next size of the form {1, 1.25, 1.5, 1.75} x 2^k (>= minimum)."""
    n = max(int(n), minimum)
    p = 1 << (n - 1).bit_length() - 1 if n > 1 else 1
    for m in (1.0, 1.25, 1.5, 1.75, 2.0):
        if n <= int(p * m):
            return int(p * m)
    return 2 * p  # pragma: no cover
