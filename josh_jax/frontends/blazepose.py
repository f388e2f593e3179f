"""BlazePose (Google MediaPipe, Apache-2.0) person detection, landmarks, masks and tracking.

Runs the two ONNX models that ``scripts/export_blazepose.py`` converts from the
``mediapipe==0.10.21`` wheel; the pipeline around them is reimplemented here
(no mediapipe at run time):

1. **Detector** (``blazepose_detector.onnx``): the frame letterboxed to
   224 x 224, RGB in [-1, 1]; 2254 SSD anchors (strides 8, 16, 32, 32, 32, two
   anchors per cell, fixed size); each output row holds the box centre/size
   and 4 keypoints as offsets in 224-pixel units from the anchor centre;
   scores are logits; weighted non-maximum suppression at IoU 0.3.
2. **Region of interest**: keypoint 0 (hip centre) is the centre, keypoint 1
   fixes size (twice the distance, then x1.25) and rotation (the body axis
   made vertical); a square crop rotated by ``angle``.
3. **Landmarks** (``blazepose_landmark_full.onnx``): the 256 x 256 crop, RGB
   in [0, 1]; 39 image landmarks (33 pose + 2 for the next ROI + 4 unused)
   in crop pixels with visibility/presence logits, a presence probability,
   person segmentation logits and 39 metric "world" landmarks (metres,
   hip-centred, camera-aligned axes: x right, y down, z away from camera).
4. **Tracking**: the detector runs on every frame; tracks predict their next
   ROI from landmarks 33/34; detections are matched to tracks by box IoU;
   unmatched detections start tracks, tracks whose presence drops end, and
   tracks shorter than ``min_frames`` are dropped. Image landmarks are
   smoothed with a one-euro filter.

Pixel coordinates are (x right, y down) in the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..geometry.boxes import box_iou
from .onnx_models import check_contract, default_models_dir, load_manifest, open_session, run

DET_SIZE = 224
LM_SIZE = 256
NUM_LANDMARKS = 33
DETECTOR_FILE = "blazepose_detector.onnx"
LANDMARK_FILE = "blazepose_landmark_full.onnx"

# BlazePose landmark indices used elsewhere
NOSE, L_EAR, R_EAR = 0, 7, 8
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 23, 24, 25, 26, 27, 28
L_HEEL, R_HEEL, L_FOOT, R_FOOT = 29, 30, 31, 32


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


# ------------------------------------------------------------------ detector


def ssd_anchors(size: int = DET_SIZE, strides=(8, 16, 32, 32, 32), per_layer: int = 2) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] (x, y), in the detector's output order.

    Consecutive layers with the same stride share one grid; each cell holds
    ``per_layer`` anchors per layer (fixed anchor size: only centres matter).
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        g = int(np.ceil(size / strides[i]))
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


class Detection(NamedTuple):
    score: float
    box: np.ndarray  # (4,) xmin, ymin, xmax, ymax (pixels of the original frame)
    keypoints: np.ndarray  # (4, 2) pixels: hip centre, full-body scale point, shoulder centre, upper-body point


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, size: int = DET_SIZE):
    """Raw (N, 12) rows -> boxes (N, 4) [xmin, ymin, xmax, ymax] and keypoints (N, 4, 2), in [0, 1] units."""
    r = raw.astype(np.float64) / size
    cx, cy = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]
    return boxes, kps


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = 0.3):
    """MediaPipe's weighted NMS: each cluster (IoU > ``iou`` with its best box) is
    replaced by the score-weighted mean of its boxes and keypoints, keeping the
    best score. Returns lists (scores, boxes, keypoints), best first."""
    order = np.argsort(-scores)
    left = list(order)
    out = []
    while left:
        top = left[0]
        ov = box_iou(boxes[top][None], boxes[left])
        members = [left[k] for k in np.where(ov > iou)[0]]
        members = members or [top]
        wgt = scores[members] / scores[members].sum()
        out.append(
            (float(scores[top]), (wgt[:, None] * boxes[members]).sum(0), (wgt[:, None, None] * kps[members]).sum(0))
        )
        gone = set(members)
        left = [i for i in left if i not in gone]
    return out


def letterbox(image: np.ndarray, size: int):
    """Resize keeping the aspect ratio and pad to size x size -> (image, scale, (pad_x, pad_y)) in pixels."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.zeros((size, size, 3), image.dtype)
    out[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return out, s, (px, py)


# ------------------------------------------------------------------ regions of interest


class Roi(NamedTuple):
    """A square crop: centre (pixels), side (pixels), rotation (radians; image rotated
    by ``angle`` so that the body axis points up in the crop)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_image(self, crop_xy: np.ndarray, crop_size: int) -> np.ndarray:
        """(..., 2) crop pixels -> (..., 2) image pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        d = (crop_xy / crop_size - 0.5) * self.size
        return np.stack([c * d[..., 0] - s * d[..., 1] + self.cx, s * d[..., 0] + c * d[..., 1] + self.cy], -1)

    def crop_matrix(self, crop_size: int) -> np.ndarray:
        """2 x 3 affine mapping image pixels to crop pixels (for cv2.warpAffine)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = crop_size / self.size
        R = np.array([[c, s], [-s, c]]) * k  # inverse rotation, scaled
        t = np.array([crop_size / 2, crop_size / 2]) - R @ np.array([self.cx, self.cy])
        return np.concatenate([R, t[:, None]], 1)

    def box(self) -> np.ndarray:
        """Axis-aligned bounding box of the rotated square, [xmin, ymin, xmax, ymax]."""
        corners = self.to_image(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float), 1)
        return np.concatenate([corners.min(0), corners.max(0)])


def roi_from_points(center: np.ndarray, scale_point: np.ndarray, enlarge: float = 1.25) -> Roi:
    """MediaPipe's alignment-points rectangle: centre at ``center``, side twice the
    distance to ``scale_point`` (times ``enlarge``), rotated so that the direction
    centre -> scale_point becomes straight up."""
    d = np.asarray(scale_point, float) - np.asarray(center, float)
    angle = np.pi / 2 - np.arctan2(-d[1], d[0])
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return Roi(float(center[0]), float(center[1]), float(2 * np.hypot(*d) * enlarge), float(angle))


# ------------------------------------------------------------------ smoothing


class OneEuro:
    """One-euro filter (Casiez et al. 2012) over arrays of any shape; time in seconds.

    Speeds are divided by ``scale`` (the person's size in pixels), so the
    defaults work for any resolution: strong smoothing at rest (cutoff
    ``min_cutoff`` Hz), little lag in motion (cutoff grows by ``beta`` per
    person-size per second).
    """

    def __init__(self, min_cutoff: float = 0.5, beta: float = 20.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """Filter ``x``; ``scale`` normalises speeds (e.g. the person's size in pixels)."""
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx, self.t = x, np.zeros_like(x), t
            return x
        dt = max(t - self.t, 1e-6)
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx) / scale
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x


# ------------------------------------------------------------------ models


@dataclass
class PoseTrack:
    """One person's landmarks over the frames where the person was tracked.

    frames (n,) int; image (n, 33, 3) pixels x, y and relative depth z (pixels);
    visibility (n, 33) in [0, 1]; world (n, 33, 3) metres, hip-centred, camera
    axes; score (n,) presence probability (0 on frames the tracker interpolated across a
    short gap, :func:`.tracker.fill_gaps`); box (n, 4) pixels.
    """

    track_id: int
    frames: list = field(default_factory=list)
    image: list = field(default_factory=list)
    visibility: list = field(default_factory=list)
    world: list = field(default_factory=list)
    score: list = field(default_factory=list)
    box: list = field(default_factory=list)

    def arrays(self) -> dict:
        return {
            "frames": np.asarray(self.frames, np.int64),
            "image": np.asarray(self.image, np.float32),
            "visibility": np.asarray(self.visibility, np.float32),
            "world": np.asarray(self.world, np.float32),
            "score": np.asarray(self.score, np.float32),
            "box": np.asarray(self.box, np.float32),
        }


class BlazePose:
    """The two BlazePose ONNX sessions and the per-frame steps around them."""

    def __init__(self, models_dir: Path | None = None, device: str = "auto", threads: int | None = None):
        d = Path(models_dir) if models_dir else default_models_dir()
        self.detector = open_session(d / DETECTOR_FILE, device, threads)
        self.landmarker = open_session(d / LANDMARK_FILE, device, threads)
        manifest = load_manifest(d)
        for key, sess in (("blazepose_detector", self.detector), ("blazepose_landmark_full", self.landmarker)):
            if key in manifest:
                check_contract(sess, manifest[key], key)
        self.anchors = ssd_anchors()

    def detect(self, image: np.ndarray, min_score: float = 0.5) -> list[Detection]:
        """People in an RGB uint8 frame, best first (pixels of the frame)."""
        lb, s, (px, py) = letterbox(image, DET_SIZE)
        x = lb[None].astype(np.float32) / 127.5 - 1.0
        out = run(self.detector, x)
        raw, logits = _det_outputs(out)
        scores = sigmoid(logits[0, :, 0])
        keep = scores >= min_score
        if not keep.any():
            return []
        boxes, kps = decode_boxes(raw[0][keep], self.anchors[keep])
        dets = []
        for sc, b, k in weighted_nms(boxes, kps, scores[keep]):
            to_px = lambda v: (v * DET_SIZE - np.array([px, py])) / s
            dets.append(Detection(sc, to_px(b.reshape(2, 2)).ravel(), to_px(k)))
        return dets

    def landmarks(self, image: np.ndarray, roi: Roi, want_mask: bool = False, mask_size=None):
        """Landmarks of the person in ``roi``.

        Returns dict with image (39, 3) pixels, visibility (39,), presence (),
        world (39, 3) metres, and (if ``want_mask``) mask: person probability
        warped to the frame (or to ``mask_size`` = (w, h) of a resized frame).
        """
        M = roi.crop_matrix(LM_SIZE)
        crop = cv2.warpAffine(image, M, (LM_SIZE, LM_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out = run(self.landmarker, crop[None].astype(np.float32) / 255.0)
        lm = out["Identity"].reshape(39, 5)
        xy = roi.to_image(lm[:, :2], LM_SIZE)
        z = lm[:, 2] / LM_SIZE * roi.size
        c, s = np.cos(roi.angle), np.sin(roi.angle)
        w = out["Identity_4"].reshape(39, 3)
        world = np.stack([c * w[:, 0] - s * w[:, 1], s * w[:, 0] + c * w[:, 1], w[:, 2]], -1)
        res = {
            "image": np.concatenate([xy, z[:, None]], 1),
            "visibility": sigmoid(lm[:, 3]),
            "presence": float(np.ravel(out["Identity_1"])[0]),
            "world": world,
        }
        if want_mask:
            seg = sigmoid(out["Identity_2"][0, :, :, 0]).astype(np.float32)
            h, w_ = image.shape[:2]
            Minv = cv2.invertAffineTransform(M)
            if mask_size is not None:
                k = mask_size[0] / w_
                Minv = Minv * k
                w_, h = mask_size
            res["mask"] = cv2.warpAffine(seg, Minv, (w_, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
        return res


def _det_outputs(out: dict):
    """(boxes (1, N, 12), scores (1, N, 1)) whatever the output names."""
    vals = list(out.values())
    boxes = next(v for v in vals if v.shape[-1] == 12)
    scores = next(v for v in vals if v.shape[-1] == 1)
    return boxes, scores
