"""People of the official front ends: segmenter detections -> tracks; VIMO windows -> per-frame SMPL.

Boxes are [x1, y1, x2, y2] in original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ...geometry.boxes import box_iou

SEQ = 16  # VIMO's window


def detections(out: dict, k: float, frame_size: tuple[int, int], min_score: float = 0.7):
    """Segmenter outputs -> boxes (n, 4) in frame pixels, scores (n,), masks (n, h, w) in input pixels
    (cropped to the frame's part of the padded input). ``k`` = input px per frame px."""
    W, H = frame_size
    boxes = np.asarray(out["boxes"], np.float32).reshape(-1, 4)
    scores = np.asarray(out["scores"], np.float32).reshape(-1)
    masks = np.asarray(out["masks"], np.float32)
    keep = scores >= min_score
    h, w = int(round(H * k)), int(round(W * k))
    b = boxes[keep] / k
    b[:, 0::2] = b[:, 0::2].clip(0, W)
    b[:, 1::2] = b[:, 1::2].clip(0, H)
    ok = (b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)
    return b[ok], scores[keep][ok], masks[keep][ok][:, :h, :w]


def union_mask(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Union of person probability masks (n, h, w) > 0.5, resized to ``size`` (W, H); bool (H, W)."""
    if len(masks) == 0:
        return np.zeros(size[::-1], bool)
    return cv2.resize((masks > 0.5).any(0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


@dataclass
class IouTracker:
    """Greedy IoU linking of per-frame boxes into tracks (ids from 0).

    A detection joins the track whose last box (seen at most ``max_gap`` frames ago) overlaps it most,
    if IoU >= ``min_iou``; otherwise it starts a track.
    """

    min_iou: float = 0.3
    max_gap: int = 5
    frames: dict = field(default_factory=dict)  # id -> [frame]
    boxes: dict = field(default_factory=dict)  # id -> [box]

    def update(self, t: int, boxes: np.ndarray) -> list[int]:
        live = [i for i, fr in self.frames.items() if t - fr[-1] <= self.max_gap]
        ids = [-1] * len(boxes)
        if live and len(boxes):
            iou = box_iou(np.asarray(boxes)[:, None], np.stack([self.boxes[i][-1] for i in live])[None])
            while True:
                d, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[d, j] < self.min_iou:
                    break
                ids[d] = live[j]
                iou[d, :] = -1
                iou[:, j] = -1
        for d, box in enumerate(boxes):
            if ids[d] < 0:
                ids[d] = len(self.frames)
                self.frames[ids[d]], self.boxes[ids[d]] = [], []
            self.frames[ids[d]].append(int(t))
            self.boxes[ids[d]].append(np.asarray(box, np.float32))
        return ids


def chunks(frames: np.ndarray, min_len: int = SEQ) -> list[np.ndarray]:
    """TRAM's ``parse_chunks``: positions of runs of consecutive frames, runs shorter than ``min_len`` dropped."""
    frames = np.asarray(frames)
    cut = np.flatnonzero(np.diff(frames) != 1) + 1
    return [r for r in np.split(np.arange(len(frames)), cut) if len(r) >= min_len]


def window_picks(n: int) -> list[tuple[int, np.ndarray]]:
    """TRAM's sliding 16-frame windows over a chunk of ``n`` >= 16 frames: (window start, rows kept).

    One window when n == 16 (all rows); else the first keeps rows 0-8, the last rows 8-15 and every
    other row 8, so each frame is predicted once, near the middle of a window where possible.
    """
    if n < SEQ:
        return []
    if n == SEQ:
        return [(0, np.arange(SEQ))]
    picks = [(0, np.arange(9))]
    picks += [(s, np.array([8])) for s in range(1, n - SEQ)]
    picks.append((n - SEQ, np.arange(8, SEQ)))
    return picks


def vimo_track(
    run_temporal,
    features: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    focal: float,
    img_center: np.ndarray,
    windows_per_call: int = 8,
) -> dict:
    """Per-frame SMPL of one chunk of consecutive frames from its backbone features (n, 1280, 16, 12).

    ``run_temporal(**feeds)`` runs ``vimo_temporal``. Returns rotmat (n, 24, 3, 3), betas (n, 10),
    transl (n, 3).
    """
    n = len(features)
    picks = window_picks(n)
    out = {
        "rotmat": np.zeros((n, 24, 3, 3), np.float32),
        "betas": np.zeros((n, 10), np.float32),
        "transl": np.zeros((n, 3), np.float32),
    }
    for s in range(0, len(picks), windows_per_call):
        group = picks[s : s + windows_per_call]
        rows = np.concatenate([np.arange(st, st + SEQ) for st, _ in group])
        m = len(rows)
        res = run_temporal(
            feature=features[rows].astype(np.float32),
            center=centers[rows],
            scale=scales[rows],
            img_focal=np.full(m, focal, np.float32),
            img_center=np.repeat(np.asarray(img_center, np.float32)[None], m, 0),
        )
        for g, (st, keep) in enumerate(group):
            for k in out:
                out[k][st + keep] = res[k][g * SEQ + keep]
    return out
