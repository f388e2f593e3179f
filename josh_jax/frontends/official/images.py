"""Image pre-processing of the official front ends, as the reference does it (pure numpy / OpenCV).

Sizes are (W, H); boxes are [x1, y1, x2, y2] in original pixels; frames RGB uint8.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def tram_center_scale(box: np.ndarray, dilate: float = 1.2) -> tuple[np.ndarray, float]:
    """TRAM's ``boxes_2_cs`` with its 1.2 dilation: box centre (2,) and scale = side / 200."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float32), max(x2 - x1, y2 - y1) / 200.0 * dilate


def tram_crop(frame: np.ndarray, center: np.ndarray, scale: float, res: int = 256) -> np.ndarray:
    """VIMO input (3, 256, 192): the square of side ``200 * scale`` about ``center`` warped to
    ``res`` x ``res`` (zero outside the frame), ImageNet-normalised, the 192 centre columns."""
    k = res / (200.0 * scale)
    M = np.array([[k, 0, -k * (center[0] - 100 * scale)], [0, k, -k * (center[1] - 100 * scale)]], np.float64)
    crop = cv2.warpAffine(frame, M, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    x = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1)[:, :, 32 : res - 32]


def deco_crop(frame: np.ndarray, box: np.ndarray, res: int = 256) -> np.ndarray:
    """DECO input (3, 256, 256): JOSH's ``run_deco`` crop: a square of side 1.2 x max(w, h) about the box
    centre, cut at the frame border, resized to 256 x 256 (bilinear: the reference passes
    ``cv2.INTER_CUBIC`` in the ``dst`` position, so OpenCV's default applies), BGR / 255."""
    H, W = frame.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    cx, cy, size = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.2
    a, b = max(int(cx - size / 2), 0), max(int(cy - size / 2), 0)
    c, d = min(int(cx + size / 2), W), min(int(cy + size / 2), H)
    if c <= a or d <= b:
        return np.zeros((3, res, res), np.float32)
    crop = cv2.resize(np.ascontiguousarray(frame[b:d, a:c, ::-1]), (res, res), interpolation=cv2.INTER_LINEAR)
    return crop.astype(np.float32).transpose(2, 0, 1) / 255.0


def mast3r_sizes(width: int, height: int, long_side: int = 512) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resized, working) sizes: DUSt3R's long side 512 (rounded), then the centred crop to multiples of 16."""
    s = max(width, height)
    rw, rh = (int(round(v * long_side / s)) for v in (width, height))
    cx, cy = rw // 2, rh // 2
    return (rw, rh), (((2 * cx) // 16) * 16, ((2 * cy) // 16) * 16)


def centre_crop(image: np.ndarray, size: tuple[int, int], h_axis: int = 0) -> np.ndarray:
    """Crop ``image`` (rows on ``h_axis``, columns on the next axis) about DUSt3R's centre (W // 2, H // 2)
    to ``size`` (W, H)."""
    H, W = image.shape[h_axis], image.shape[h_axis + 1]
    x0, y0 = W // 2 - size[0] // 2, H // 2 - size[1] // 2
    sl = [slice(None)] * image.ndim
    sl[h_axis], sl[h_axis + 1] = slice(y0, y0 + size[1]), slice(x0, x0 + size[0])
    return image[tuple(sl)]


def pi3x_size(width: int, height: int, pixel_limit: int = 255000) -> tuple[int, int]:
    """The reference's ``load_images_as_tensor`` size: multiples of 14, W x H <= ``pixel_limit``, aspect kept."""
    scale = math.sqrt(pixel_limit / (width * height))
    wt, ht = width * scale, height * scale
    k, m = round(wt / 14), round(ht / 14)
    while (k * 14) * (m * 14) > pixel_limit:
        if k / m > wt / ht:
            k -= 1
        else:
            m -= 1
    return max(1, k) * 14, max(1, m) * 14


def letterbox_input(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Person-segmenter input (1, 3, H, W) in [0, 1]: resized to fit ``size``, zero padded right/bottom;
    and the factor input px per frame px."""
    H, W = frame.shape[:2]
    k = min(size[0] / W, size[1] / H)
    w, h = max(1, int(round(W * k))), max(1, int(round(H * k)))
    canvas = np.zeros((size[1], size[0], 3), np.float32)
    canvas[:h, :w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR) / 255.0
    return canvas.transpose(2, 0, 1)[None], k
