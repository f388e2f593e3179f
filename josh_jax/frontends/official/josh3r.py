"""JOSH3R's ONNX model on frame pairs, as the reference's ``inference_josh3r`` feeds it (numpy / OpenCV).

The pieces of the reference's per-pair loop: the pair selection (each head frame with the first
tracked frame at least 3 frames later), ``preprocess_image``'s size (long side 512, each side
``round(x * 512 / S) // 16 * 16``) and factor ``512 / S``, the 0.5 centre crop with its box
transform, the [-1, 1] normalisation, one ONNX call per pair and the 6D -> rotation conversion.
The accumulation into a trajectory is :mod:`josh_jax.josh3r`.

Sizes are (W, H); boxes [x1, y1, x2, y2]; images RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..onnx_models import FrontEndError, check_contract, default_models_dir, load_manifest, open_session
from .contracts import CONTRACTS

LONG_SIDE = 512
PAIR_GAP = 3  # frames between the two images of a pair (the reference's ``frame[tail] - frame[head] < 3``)
CROP_SCALE = 0.5
EXPORT_COMMAND = "python scripts/export_josh3r.py --repo JOSH_CHECKOUT --checkpoint JOSH3R_CKPT --out {dir}"


def josh3r_path(models_dir: str | Path | None = None) -> Path:
    """``josh3r.onnx`` of ``models_dir`` (else the default models folder), refused in one line with
    the export command when it is missing."""
    d = Path(models_dir) if models_dir else default_models_dir()
    path = d / CONTRACTS["josh3r"]["file"]
    if not path.is_file():
        raise FrontEndError(
            f"--method josh3r and josh3r+joint need {path.name} in {d} (missing); export it with "
            + EXPORT_COMMAND.format(dir=d)
            + " (docs/josh3r.md)"
        )
    return path


def proc_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[tuple[int, int], float]:
    """``preprocess_image``'s size (W, H) for a (width, height) frame and its factor ``long_side / S``."""
    s = max(width, height)
    return tuple(int(round(v * long_side / s)) // 16 * 16 for v in (width, height)), long_side / s


def preprocess(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H0, W0, 3) uint8 RGB -> (H, W, 3) float32 in [0, 1] at ``size`` (area resampling when
    shrinking, the reference: PIL Lanczos; bicubic when enlarging, as the reference)."""
    H0, W0 = frame.shape[:2]
    interp = cv2.INTER_AREA if max(W0, H0) > LONG_SIDE else cv2.INTER_CUBIC
    img = cv2.resize(frame, size, interpolation=interp) if (W0, H0) != tuple(size) else frame
    return np.clip(img.astype(np.float32) / 255.0, 0.0, 1.0)


def crop_box(box: np.ndarray, width: int, height: int, scale: float = CROP_SCALE) -> np.ndarray:
    """The reference's ``center_crop_image`` box transform: ``box`` (4,) in the (width x height)
    image's pixels, clipped to the image, minus the crop's corner ``((W - int(W s)) // 2, ...)``, over
    ``scale`` -> pixels of the crop resized back to width x height."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    cx, cy = (width - int(width * scale)) // 2, (height - int(height * scale)) // 2
    return np.array(
        [
            (max(x1, 0.0) - cx) / scale,
            (max(y1, 0.0) - cy) / scale,
            (min(x2, width) - cx) / scale,
            (min(y2, height) - cy) / scale,
        ],
        np.float32,
    )


def crop_image(img: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """(H, W, C) -> the centre ``int(W s) x int(H s)`` crop resized back to W x H (bilinear, half-pixel
    centres as torchvision's ``resize``)."""
    H, W = img.shape[:2]
    w, h = int(W * scale), int(H * scale)
    x0, y0 = (W - w) // 2, (H - h) // 2
    return cv2.resize(np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w]), (W, H), interpolation=cv2.INTER_LINEAR)


def select_pairs(frames: np.ndarray, gap: int = PAIR_GAP) -> list[tuple[int, int]]:
    """The reference's pairs over a track's sorted frames: (head, tail) row indices, tail the first row
    with ``frames[tail] - frames[head] >= gap`` (or the last row), then head = tail."""
    frames = np.asarray(frames)
    pairs, head, tail, n = [], 0, 0, len(frames)
    while head < n - 1:
        while tail < n - 1 and frames[tail] - frames[head] < gap:
            tail += 1
        pairs.append((head, tail))
        head = tail
    return pairs


def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt of the two 3-vectors, which become the matrix's first two
    *rows* (the third their cross product), the convention of JOSH's ``rot_utils``."""
    d6 = np.asarray(d6, np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-2)


class PairOutput(NamedTuple):
    """What one pair gives (head frame's human frame; metres)."""

    rel_R: np.ndarray  # (3, 3) root rotation head -> tail
    rel_t: np.ndarray  # (3,) root translation head -> tail
    points: np.ndarray  # (H, W, 3) the head image's points in the head camera, times scale1 (metres)
    colors: np.ndarray  # (H, W, 3) uint8, the cropped head image the points belong to


class Josh3rSession:
    """``josh3r.onnx`` opened and checked against its contract (the folder's manifest entry when there is
    one); :meth:`pair` runs one frame pair."""

    def __init__(self, models_dir: str | Path | None = None, device: str = "auto", threads: int | None = None):
        path = josh3r_path(models_dir)
        entry = load_manifest(path.parent).get("josh3r", CONTRACTS["josh3r"])
        self.session = open_session(path, device, threads, remake=EXPORT_COMMAND.format(dir=path.parent))
        check_contract(self.session, entry, "josh3r")
        h, w = self.session.get_inputs()[0].shape[-2:]
        self.fixed = (w, h) if isinstance(w, int) and isinstance(h, int) else None

    def check_size(self, size: tuple[int, int]) -> None:
        if self.fixed is not None and tuple(self.fixed) != tuple(size):
            raise FrontEndError(
                f"josh3r.onnx was exported for {self.fixed[0]}x{self.fixed[1]} images, but this video needs "
                f"{size[0]}x{size[1]}: re-export it with scripts/export_josh3r.py --size {size[0]}x{size[1]}"
            )

    def pair(self, img1: np.ndarray, img2: np.ndarray, box1: np.ndarray, box2: np.ndarray) -> PairOutput:
        """``img1`` / ``img2``: (H, W, 3) float32 [0, 1] at the processing size; boxes (4,) in its pixels
        (the human front end's box times the factor). Crops, normalises and runs the model."""
        H, W = img1.shape[:2]
        c1, c2 = crop_image(img1), crop_image(img2)
        imgs = np.stack([c1, c2]).transpose(0, 3, 1, 2)[None] * 2.0 - 1.0  # (1, 2, 3, H, W), mean = std = 0.5
        bbox = np.stack([crop_box(box1, W, H), crop_box(box2, W, H)])[None]
        outs = self.session.run(None, {"imgs": imgs.astype(np.float32), "bbox": bbox.astype(np.float32)})
        o = {x.name: v for x, v in zip(self.session.get_outputs(), outs)}
        pts = np.asarray(o["X11"], np.float64)[0].reshape(H, W, 3) * float(np.asarray(o["scale1"]).reshape(-1)[0])
        return PairOutput(
            rel_R=rotation_6d_to_matrix(np.asarray(o["rel_rot"])[0]),
            rel_t=np.asarray(o["rel_trans"], np.float64)[0],
            points=pts,
            colors=np.clip(np.round(c1 * 255), 0, 255).astype(np.uint8),
        )
