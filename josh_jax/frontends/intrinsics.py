"""Known camera intrinsics in: ``--intrinsics fx,fy,cx,cy`` or a calibration file.

Accepted forms (pixels of the original video frames):

- ``fx,fy,cx,cy``, e.g. ``--intrinsics 1450,1450,960,540``;
- a JSON file: ``{"fx": .., "fy": .., "cx": .., "cy": ..}`` or ``{"K": [[fx,0,cx],[0,fy,cy],[0,0,1]]}``
  (also ``camera_matrix`` / ``intrinsics`` for K), optionally ``"width"``/``"height"``
  (or ``image_width``/``image_height``) of the calibrated resolution;
- an OpenCV calibration file (``cv2.FileStorage``: .yaml, .yml, .xml, .json) with
  ``camera_matrix`` (or ``K``) and optionally ``image_width``/``image_height``.

When the file gives a resolution different from the video's (same aspect
ratio), the intrinsics are scaled to the video. The front ends use them (SfM
starts from and, by default, holds them; the official path's Pi3X focal is
replaced), and the joint solve holds the focal fixed unless
``--free-intrinsics``. The solver models one focal (square pixels): with
fx != fy the mean is used and a note says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import NamedTuple

from josh_jax.frontends.onnx_models import FrontEndError

EXPECTED = (
    "--intrinsics takes fx,fy,cx,cy in original-image pixels (e.g. 1450,1450,960,540), a JSON file "
    '({"fx":..,"fy":..,"cx":..,"cy":..} or {"K": 3x3}) or an OpenCV calibration file (camera_matrix)'
)


class IntrinsicsError(FrontEndError):
    """The intrinsics given cannot be read; the message names the expected format."""


class Intrinsics(NamedTuple):
    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None  # calibrated resolution, if the file says
    height: int | None = None

    @property
    def focal(self) -> float:
        """The one focal the solver models (square pixels): the mean of fx and fy."""
        return 0.5 * (self.fx + self.fy)


MAX_FILE_BYTES = 1 << 20  # a calibration file is a few hundred bytes; anything above 1 MiB is not one
MAX_SIDE = 100_000  # pixels


def _side(v, name: str, source: str) -> int | None:
    """A calibrated width/height: absent (None, 0) or a whole number of pixels 1..MAX_SIDE."""
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(v, bool) or not math.isfinite(f) or f != int(f) or not 1 <= f <= MAX_SIDE:
        raise IntrinsicsError(f"{source}: {name} must be a whole number of pixels (1-{MAX_SIDE}), got {v!r}"[:300])
    return int(f)


def _check(vals, source: str, size=(None, None)) -> Intrinsics:
    try:
        fx, fy, cx, cy = (float(v) for v in vals)
    except (TypeError, ValueError, OverflowError):
        raise IntrinsicsError(f"{EXPECTED}; {source} is not that") from None
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise IntrinsicsError(f"{EXPECTED}; {source} has a non-positive or non-finite value")
    w, h = size
    return Intrinsics(fx, fy, cx, cy, _side(w, "width", source), _side(h, "height", source))


def _from_matrix(K, source: str, size) -> Intrinsics:
    try:
        rows = [[float(x) for x in r] for r in K]
        ok = len(rows) == 3 and all(len(r) == 3 for r in rows)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise IntrinsicsError(f"{EXPECTED}; the camera matrix in {source} is not 3x3")
    return _check((rows[0][0], rows[1][1], rows[0][2], rows[1][2]), source, size)


def _from_json(path: Path) -> Intrinsics:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise IntrinsicsError(f"{EXPECTED}; {path} is not UTF-8 text") from None
    except RecursionError:
        raise IntrinsicsError(f"{EXPECTED}; {path} is nested too deeply") from None
    if not isinstance(data, dict):
        raise IntrinsicsError(f"{EXPECTED}; {path} holds no object")
    size = (data.get("width", data.get("image_width")), data.get("height", data.get("image_height")))
    if all(k in data for k in ("fx", "fy", "cx", "cy")):
        return _check([data[k] for k in ("fx", "fy", "cx", "cy")], str(path), size)
    for k in ("K", "camera_matrix", "intrinsics"):
        if k in data:
            K = data[k]
            if isinstance(K, dict) and "data" in K:  # OpenCV's JSON layout: {"rows":3,"cols":3,"data":[9]}
                if not isinstance(K["data"], list) or len(K["data"]) != 9:
                    raise IntrinsicsError(f"{EXPECTED}; the camera matrix in {path} is not 3x3")
                K = [K["data"][i : i + 3] for i in (0, 3, 6)]
            return _from_matrix(K, str(path), size)
    raise IntrinsicsError(f"{EXPECTED}; {path} has none of fx/fy/cx/cy, K, camera_matrix")


def _from_opencv(path: Path) -> Intrinsics:
    import cv2

    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError, ValueError):
        raise IntrinsicsError(f"{EXPECTED}; OpenCV could not read {path}") from None
    try:
        if not fs.isOpened():
            raise IntrinsicsError(f"{EXPECTED}; OpenCV could not read {path}")
        K = None
        for k in ("camera_matrix", "K", "cameraMatrix"):
            node = fs.getNode(k)
            if not node.empty():
                # a matrix node says its size before its data: never let a file make OpenCV allocate more
                dims = [node.getNode(d).real() if node.isMap() else 0 for d in ("rows", "cols")]
                if dims != [3.0, 3.0]:
                    raise IntrinsicsError(f"{EXPECTED}; {path}'s {k} is not a 3x3 matrix")
                K = node.mat()
                break
        if K is None or getattr(K, "shape", None) != (3, 3):
            raise IntrinsicsError(f"{EXPECTED}; {path} has no 3x3 camera_matrix")
        size = tuple(fs.getNode(k).real() or None for k in ("image_width", "image_height"))
        return _from_matrix(K.tolist(), str(path), size)
    except (cv2.error, SystemError):
        raise IntrinsicsError(f"{EXPECTED}; OpenCV could not read {path}") from None
    finally:
        fs.release()


def parse(spec: str) -> Intrinsics:
    """``fx,fy,cx,cy`` or a calibration file path (see the module docstring) -> :class:`Intrinsics`."""
    spec = str(spec).strip()
    path = Path(spec)
    if path.is_file():
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IntrinsicsError(f"{EXPECTED}; {path} is {path.stat().st_size} bytes, not a calibration file")
        try:
            if path.suffix.lower() == ".json":
                try:
                    return _from_json(path)
                except json.JSONDecodeError:
                    return _from_opencv(path)
            return _from_opencv(path)
        except OSError as exc:
            raise IntrinsicsError(f"{path}: {exc.strerror}") from None
    parts = [p for p in spec.replace(" ", "").split(",")]
    if len(parts) != 4:
        hint = (
            "no such file"
            if any(c in spec for c in "/\\") or spec.endswith((".json", ".yaml", ".yml", ".xml"))
            else f"{len(parts)} value(s)"
        )
        raise IntrinsicsError(f"{EXPECTED}; got {spec!r} ({hint})")
    return _check(parts, repr(spec))


def to_video(intr: Intrinsics, width: int, height: int) -> Intrinsics:
    """Scale a calibration made at another resolution (same aspect ratio) to a width x height video."""
    if intr.width is None or intr.height is None or (intr.width, intr.height) == (width, height):
        return intr
    sx, sy = width / intr.width, height / intr.height
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise IntrinsicsError(
            f"the calibration is for {intr.width}x{intr.height}, the video is {width}x{height} "
            "(another aspect ratio: a crop); calibrate at the video's resolution"
        )
    return Intrinsics(intr.fx * sx, intr.fy * sy, (intr.cx + 0.5) * sx - 0.5, (intr.cy + 0.5) * sy - 0.5, width, height)


def apply_to_frontends(fe, spec: str | None, info, frontends: str = "default", free: bool = False, log=None):
    """A FrontEndConfig with the given intrinsics (working pixels) and, unless ``free``, SfM holding them.
    ``info``: the probed video (width, height, size_at). Unchanged when ``spec`` is None."""
    if not spec:
        return fe
    intr = to_video(parse(spec), info.width, info.height)
    if log and abs(intr.fx - intr.fy) > 1e-6 * intr.fx:
        log(
            f"note: fx {intr.fx:g} != fy {intr.fy:g}; the solver models square pixels and uses their mean "
            f"{intr.focal:g} px"
        )
    s, offset = working_transform(info, fe.work_side, frontends)
    return dataclasses.replace(
        fe,
        focal=intr.focal * s,
        principal=(intr.cx * s - offset[0], intr.cy * s - offset[1]),
        fixed_intrinsics=not free,
        refine_focal=free,  # --free-intrinsics: SfM starts from them and refines
    )


def apply_to_config(cfg, spec: str | None, info, frontends: str = "default", free: bool = False, log=None):
    """A DemoConfig with the intrinsics in its front ends (:func:`apply_to_frontends`) and, unless
    ``free``, the focal held in the joint solve (``solve.optimize_focal`` False)."""
    if not spec:
        return cfg
    fe = apply_to_frontends(cfg.frontends, spec, info, frontends, free, log)
    solve = dataclasses.replace(cfg.solve, optimize_focal=bool(free and cfg.solve.optimize_focal))
    return dataclasses.replace(cfg, frontends=fe, solve=solve)


def working_transform(info, work_side: int, frontends: str = "default"):
    """(scale, crop offset (2,)) from original pixels to the working image of a front-end path:
    working = original * scale - offset; the scale is the inverse of the bundle's ``scale_to_original``,
    with which results.npz maps its intrinsics back, so a held focal comes back exactly."""
    if frontends == "official":
        from josh_jax.frontends.official import images as im

        resized, work = im.mast3r_sizes(info.width, info.height, work_side)
        return resized[0] / info.width, (resized[0] // 2 - work[0] // 2, resized[1] // 2 - work[1] // 2)
    work = info.size_at(work_side)
    return max(work) / max(info.width, info.height), (0.0, 0.0)


def working_focal(focal_original: float | None, info, work_side: int = 512) -> float | None:
    """``--focal`` (pixels of the original video) -> working pixels (long side ``work_side``, the
    front ends' ``FrontEndConfig.work_side``)."""
    if focal_original is None:
        return None
    return float(focal_original) * info.size_at(work_side)[0] / info.width
