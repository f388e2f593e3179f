"""The front-end bundle: everything the optimizer needs from the perception front ends.

A bundle is one folder::

    BUNDLE_DIR/
      bundle.json          # {"format": "josh-bundle", "version": 2, "body_model": ..., "windows": [...]}
      window_000.npz       # one solve window (arrays below)
      window_001.npz ...

Front ends (embedded or official ONNX) write it; ``josh_jax.solve`` reads it.
All pixel quantities are in the *working* image (the keyframes as the scene
front end saw them, e.g. long side 512); ``scale_to_original`` maps them back.

Arrays of one window (K keyframes, H x W working image, Pr ordered pairs,
C correspondences, P person tracks, V body vertices, B betas):

=====================  ==================  =====================================================
key                    shape, dtype        meaning
=====================  ==================  =====================================================
frame_index            (K,) int64          video frame of each keyframe, increasing
image_size             (2,) int64          working image W, H
scale_to_original      () float64          original pixels per working pixel
base_focal             (K,) float64        focal of each keyframe's point map (working px); the
                                           problem reads depth with the initial focal instead,
                                           as the reference (ProblemConfig.base_focal="initial")
init_focal             () float64          shared initial focal (working px)
principal_point        (2,) float64        cx, cy (working px)
depth                  (K, H, W) float32   scene depth per pixel (> 0, any global scale)
conf                   (K, H, W) float32   scene confidence; > conf_thres marks valid scene
images                 (K, H, W, 3) uint8  keyframe RGB (optional, for colours)
pair_index             (Pr, 2) int64       ordered keyframe pairs (i, j), both orders present
pair_score             (Pr,) float64       matching score of each pair (for the camera tree)
corr_pair              (C,) int64          pair of each correspondence
corr_pix               (C, 2, 2) float32   pixel (x, y) in image i and in image j
corr_conf              (C,) float32        confidence (>= 0); 0 drops the match
track_ids              (P,) int64          person id of each track
track_valid            (P, K) bool         person seen on the keyframe
track_rotmats          (P, K, 24, 3, 3)    SMPL-order local rotations, root in camera frame
track_betas            (P, K, B) float32   shape per keyframe (the solver uses the mean)
track_transl           (P, K, 3) float32   body translation in the camera frame, metres
track_contact          (P, K, V) bool      per-vertex contact labels
hmr_focal              () float64          focal the human front end assumed (working px;
                                           the image diagonal for TRAM/VIMO-style models)
focal_scale            (K,) float64        optional (version 2): each keyframe's focal / init_focal
                                           (a zooming camera); absent = ones, the shared focal of
                                           the reference. The human front end's focal of keyframe
                                           k is then hmr_focal x focal_scale[k]
cam_rotation           (K, 3, 3) float64   optional (version 2): world-from-camera rotations of a
                                           camera that only rotates (rotation-only or static
                                           clips); the solver starts from (and the demo holds)
                                           these cameras, all centred at one point
=====================  ==================  =====================================================

Version 1 bundles (no optional fields) are read unchanged.

Besides ``format``, ``version`` and ``windows``, ``bundle.json`` holds the run's
description, :class:`BundleMeta` (both front ends fill it; :func:`load` returns
it): ``camera``, the camera model ("sfm", "rotation", "static", or "point maps"
for the official front ends; bundles written before 2026-12-07 said it with
``camera_mode`` / ``static_camera``, still read), the evidence of that choice
(``camera_evidence``), ``coverage`` (which frames the windows cover and why any
were left out), the video, the working size and intrinsics, and the front ends'
seconds per stage.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError
from josh_jax.jsonfile import JsonFileError, read_json

from .npz import NpzError, read_npz

FORMAT = "josh-bundle"
VERSION = 2
READABLE_VERSIONS = (1, 2)
OPTIONAL = ("images", "focal_scale", "cam_rotation")  # fields a window may lack


class BundleError(JoshError, ValueError):
    """A bundle is missing, malformed or inconsistent; the message names the field."""


CAMERAS = ("sfm", "rotation", "static", "point maps")  # BundleMeta.camera


@dataclass(frozen=True)
class BundleMeta:
    """``bundle.json``'s description of a bundle (everything but ``format`` and ``windows``).

    ``camera``: the camera model the front ends chose: "sfm" (a moving camera), "rotation" (pan, tilt,
    zoom about one point: per-keyframe rotations and focals), "static", or "point maps" (the official
    front ends' MASt3R / Pi3 cameras). Pixels are working pixels (``work_size``), seconds per
    front-end stage in ``seconds``. Fields a writer does not know stay None."""

    camera: str = "sfm"
    body_model: str = "open"  # what the bundle's contact labels were made with
    source: str = ""  # the writer, e.g. "josh_jax.frontends (default)"
    frontends: str = "default"  # default | official
    version: int = VERSION  # the file's format version (as read; written as VERSION)
    video: str | None = None
    fps: float | None = None
    start: int | None = None  # first video frame of the clip
    num_frames: int | None = None
    work_size: tuple | None = None  # (W, H) working pixels
    focal: float | None = None  # shared focal, working px
    principal: tuple | None = None  # (cx, cy), working px
    hmr_focal: float | None = None  # the human front end's focal, working px (official front ends)
    fixed_intrinsics: bool = False  # --intrinsics without --free-intrinsics: the focal is held in the solve
    camera_evidence: dict | None = None  # why this camera model (josh_jax.frontends.camera)
    coverage: dict | None = None  # {"first", "last", "frames", "reason"}: the frames the windows cover
    keyframe_focals: tuple | None = None  # a zooming camera's focal per keyframe, working px
    registered: int | None = None  # keyframes SfM registered
    keyframes: int | None = None  # keyframes in all
    people: int | None = None  # person tracks kept
    seconds: dict = dataclasses.field(default_factory=dict)  # front-end stage -> seconds

    def __post_init__(self):
        if self.camera not in CAMERAS:
            raise BundleError(f"bundle.json: camera {self.camera!r} is not one of {', '.join(CAMERAS)}")
        for name in ("work_size", "principal", "keyframe_focals"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))

    @property
    def holds_cameras(self) -> bool:
        """The cameras are known (identical, or rotations and focals fitted to the background): the solve
        holds them (:func:`josh_jax.run.hold_cameras`)."""
        return self.camera in ("static", "rotation")

    def to_dict(self) -> dict:
        """The JSON object's fields (without ``format``, ``version`` and ``windows``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "version"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "bundle.json") -> BundleMeta:
        """From ``bundle.json``'s object; older files' ``camera_mode`` / ``static_camera`` give ``camera``,
        keys this version does not know are ignored (a newer writer's), a known key of the wrong type is
        a :class:`BundleError` naming it."""
        camera = d.get("camera") or d.get("camera_mode")
        if camera is None:
            camera = "static" if d.get("static_camera") else "point maps" if d.get("frontends") == "official" else "sfm"
        values = {"camera": camera}
        for f in fields(cls):
            if f.name == "camera" or f.name not in d or d[f.name] is None:
                continue
            v = d[f.name]
            kind = _META_KINDS[f.name]
            ok = {
                "str": isinstance(v, str),
                "int": isinstance(v, int) and not isinstance(v, bool),
                "num": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                "bool": isinstance(v, bool),
                "dict": isinstance(v, dict),
                "nums": isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
            }[kind]
            if not ok:
                raise BundleError(f"{where}: {f.name!r} must be {_META_KIND_NAMES[kind]}, got {json.dumps(v)[:60]}")
            values[f.name] = float(v) if kind == "num" else v
        return cls(**values)


_META_KINDS = {
    "camera": "str",
    "body_model": "str",
    "source": "str",
    "frontends": "str",
    "version": "int",
    "video": "str",
    "fps": "num",
    "start": "int",
    "num_frames": "int",
    "work_size": "nums",
    "focal": "num",
    "principal": "nums",
    "hmr_focal": "num",
    "fixed_intrinsics": "bool",
    "camera_evidence": "dict",
    "coverage": "dict",
    "keyframe_focals": "nums",
    "registered": "int",
    "keyframes": "int",
    "people": "int",
    "seconds": "dict",
}
_META_KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "num": "a finite number",
    "bool": "true or false",
    "dict": "an object",
    "nums": "a list of numbers",
}


@dataclass(frozen=True)
class Window:
    """One solve window of a bundle (see the module docstring for the fields)."""

    frame_index: np.ndarray
    image_size: np.ndarray
    scale_to_original: float
    base_focal: np.ndarray
    init_focal: float
    principal_point: np.ndarray
    depth: np.ndarray
    conf: np.ndarray
    pair_index: np.ndarray
    pair_score: np.ndarray
    corr_pair: np.ndarray
    corr_pix: np.ndarray
    corr_conf: np.ndarray
    track_ids: np.ndarray
    track_valid: np.ndarray
    track_rotmats: np.ndarray
    track_betas: np.ndarray
    track_transl: np.ndarray
    track_contact: np.ndarray
    hmr_focal: float
    images: np.ndarray | None = None
    focal_scale: np.ndarray | None = None
    cam_rotation: np.ndarray | None = None

    @property
    def num_keyframes(self) -> int:
        return len(self.frame_index)

    @property
    def num_tracks(self) -> int:
        return len(self.track_ids)


_DTYPES = {
    "frame_index": np.int64,
    "image_size": np.int64,
    "scale_to_original": np.float64,
    "base_focal": np.float64,
    "init_focal": np.float64,
    "principal_point": np.float64,
    "depth": np.float32,
    "conf": np.float32,
    "pair_index": np.int64,
    "pair_score": np.float64,
    "corr_pair": np.int64,
    "corr_pix": np.float32,
    "corr_conf": np.float32,
    "track_ids": np.int64,
    "track_valid": np.bool_,
    "track_rotmats": np.float32,
    "track_betas": np.float32,
    "track_transl": np.float32,
    "track_contact": np.bool_,
    "hmr_focal": np.float64,
    "images": np.uint8,
    "focal_scale": np.float64,
    "cam_rotation": np.float64,
}


#: plausible focal lengths, as multiples of the working image's long side
FOCAL_RANGE = (0.05, 50.0)


def _bad(field: str, why: str) -> BundleError:
    return BundleError(f"bundle field {field!r}: {why}")


def validate(w: Window, num_vertices: int | None = None) -> Window:
    """Check shapes, dtypes, finiteness, index ranges and value ranges; returns ``w`` or raises BundleError."""
    fi = np.asarray(w.frame_index)
    if fi.ndim != 1:
        raise _bad("frame_index", f"shape {fi.shape}, expected (K,): one video frame per keyframe")
    K = len(fi)
    if K < 2:
        raise _bad("frame_index", f"needs at least 2 keyframes, got {K}")
    if fi.min() < 0:
        raise _bad("frame_index", f"video frames must be >= 0, got {int(fi.min())}")
    if np.any(np.diff(fi) <= 0):
        raise _bad("frame_index", "must be strictly increasing")
    if np.shape(w.image_size) != (2,):
        raise _bad("image_size", f"shape {np.shape(w.image_size)}, expected (2,): the working image W, H")
    if np.any(np.asarray(w.image_size) < 1):
        raise _bad("image_size", f"W and H must be >= 1, got {np.asarray(w.image_size).tolist()}")
    W, H = (int(x) for x in w.image_size)
    shapes = {
        "image_size": (2,),
        "base_focal": (K,),
        "principal_point": (2,),
        "depth": (K, H, W),
        "conf": (K, H, W),
        "pair_score": (len(w.pair_index),),
        "corr_pix": (len(w.corr_pair), 2, 2),
        "corr_conf": (len(w.corr_pair),),
    }
    P = len(w.track_ids)
    if P:
        shapes.update({"track_valid": (P, K), "track_rotmats": (P, K, 24, 3, 3), "track_transl": (P, K, 3)})
        if w.track_betas.shape[:2] != (P, K):
            raise _bad("track_betas", f"shape {w.track_betas.shape}, expected ({P}, {K}, B)")
        if w.track_contact.shape[:2] != (P, K):
            raise _bad("track_contact", f"shape {w.track_contact.shape}, expected ({P}, {K}, V)")
        if num_vertices is not None and w.track_contact.shape[2] != num_vertices:
            raise _bad(
                "track_contact",
                f"has {w.track_contact.shape[2]} vertices but the body model has "
                f"{num_vertices}: the bundle was made for another body model",
            )
    if w.images is not None:
        shapes["images"] = (K, H, W, 3)
    if w.focal_scale is not None:
        shapes["focal_scale"] = (K,)
    if w.cam_rotation is not None:
        shapes["cam_rotation"] = (K, 3, 3)
    for key, shape in shapes.items():
        got = np.shape(getattr(w, key))
        if got != shape:
            raise _bad(key, f"shape {got}, expected {shape}")
    if w.pair_index.ndim != 2 or w.pair_index.shape[1] != 2:
        raise _bad("pair_index", f"shape {w.pair_index.shape}, expected (Pr, 2)")
    for f in fields(w):
        v = getattr(w, f.name)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise _bad(
                f.name, f"{int(np.size(v) - np.isfinite(v).sum())} non-finite values (NaN/inf from a front end?)"
            )
    for key in ("init_focal", "hmr_focal", "scale_to_original"):
        v = getattr(w, key)
        if not np.isfinite(v) or v <= 0:
            raise _bad(key, f"must be a positive finite number, got {v}")
    if w.focal_scale is not None and np.any(w.focal_scale <= 0):
        raise _bad("focal_scale", "must be positive")
    if w.cam_rotation is not None:
        R = w.cam_rotation
        err = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(initial=0.0)
        if err > 1e-4 or np.any(np.linalg.det(R) < 0):
            raise _bad("cam_rotation", f"must hold rotation matrices (orthonormal, det +1; off by {err:.2g})")
    if np.any(w.base_focal <= 0):
        raise _bad("base_focal", "must be positive")
    side = max(W, H)
    for key in ("init_focal", "hmr_focal", "base_focal"):
        v = np.asarray(getattr(w, key))
        if np.any(v < FOCAL_RANGE[0] * side) or np.any(v > FOCAL_RANGE[1] * side):
            raise _bad(
                key,
                f"a focal length of {float(v.max() if np.any(v > FOCAL_RANGE[1] * side) else v.min()):g} "
                f"px is implausible for a {W}x{H} working image (expected {FOCAL_RANGE[0]:g} to "
                f"{FOCAL_RANGE[1]:g} x the long side); focals are in working pixels",
            )
    if P:
        if len(np.unique(w.track_ids)) != P:
            raise _bad("track_ids", "holds duplicate person ids; each track needs its own id")
        R = w.track_rotmats[w.track_valid].astype(np.float64)
        if len(R):
            err = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-1, -2))
            det = np.linalg.det(R)
            if np.any(err > 1e-2) or np.any(det < 0.9):
                raise _bad(
                    "track_rotmats",
                    f"{int(np.sum((err > 1e-2) | (det < 0.9)))} entries on valid keyframes "
                    "are not rotation matrices (orthonormal, determinant +1)",
                )
    if np.any(w.depth <= 0):
        raise _bad("depth", "must be positive everywhere (fill invalid pixels and lower their conf)")
    if len(w.pair_index) and (w.pair_index.min() < 0 or w.pair_index.max() >= K):
        raise _bad("pair_index", f"indices must lie in [0, {K})")
    if np.any(w.pair_index[:, 0] == w.pair_index[:, 1]):
        raise _bad("pair_index", "a pair joins a keyframe to itself")
    if len(w.corr_pair) and (w.corr_pair.min() < 0 or w.corr_pair.max() >= len(w.pair_index)):
        raise _bad("corr_pair", f"indices must lie in [0, {len(w.pair_index)})")
    px = w.corr_pix
    if len(px) and (
        px[..., 0].min() < 0 or px[..., 0].max() > W - 1 or px[..., 1].min() < 0 or px[..., 1].max() > H - 1
    ):
        raise _bad("corr_pix", f"pixels must lie inside the {W}x{H} working image")
    if np.any(w.corr_conf < 0):
        raise _bad("corr_conf", "must be >= 0")
    return w


def _to_window(arrays: dict, where: str) -> Window:
    kw = {}
    for f in fields(Window):
        if f.name not in arrays:
            if f.name in OPTIONAL:
                continue
            raise BundleError(f"{where}: bundle field {f.name!r} is missing")
        v = np.asarray(arrays[f.name])
        want = np.dtype(_DTYPES[f.name])
        if v.dtype.kind not in "biuf":
            raise _bad(f.name, f"holds {v.dtype} data, expected {want} numbers")
        if want.kind in "iu" and v.dtype.kind == "f":
            if not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
                raise _bad(f.name, "must hold whole numbers (no NaN, no fractions)")
        if want.kind in "iu" and v.size and (v.min() < -(2**62) or v.max() > 2**62):
            raise _bad(f.name, "values out of range")
        try:
            v = v.astype(want, copy=False)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _bad(f.name, f"cannot be read as {want}") from exc
        if f.name in ("scale_to_original", "init_focal", "hmr_focal") and v.ndim != 0:
            raise _bad(f.name, f"shape {v.shape}, expected a scalar")
        kw[f.name] = float(v) if v.ndim == 0 and f.name in ("scale_to_original", "init_focal", "hmr_focal") else v
    return Window(**kw)


def window_from_arrays(**arrays) -> Window:
    """Build and validate a Window from keyword arrays (dtypes are coerced)."""
    return validate(_to_window(arrays, "arrays"))


def pair_fields(matches) -> dict:
    """The pair and correspondence fields of a window from unordered matches.

    ``matches``: (i, j, pix_i (C, 2), pix_j (C, 2), conf (C,)) per keyframe pair. Each becomes the
    ordered pairs (i, j) and (j, i), both scored by the number of matches (the weight of the
    reference's camera spanning tree). Returns pair_index, pair_score, corr_pair, corr_pix, corr_conf.
    """
    pair_index, pair_score, corr_pair, corr_pix, corr_conf = [], [], [], [], []
    for i, j, pi, pj, c in matches:
        for a, b, pa, pb in ((i, j, pi, pj), (j, i, pj, pi)):
            corr_pair.append(np.full(len(c), len(pair_index), np.int64))
            corr_pix.append(np.stack([pa, pb], 1))
            corr_conf.append(c)
            pair_index.append((a, b))
            pair_score.append(float(len(c)))
    cat = lambda parts, empty, dtype: (np.concatenate(parts) if parts else np.zeros(empty)).astype(dtype)  # noqa: E731
    return dict(
        pair_index=np.asarray(pair_index, np.int64).reshape(-1, 2),
        pair_score=np.asarray(pair_score, np.float64),
        corr_pair=cat(corr_pair, 0, np.int64),
        corr_pix=cat(corr_pix, (0, 2, 2), np.float32),
        corr_conf=cat(corr_conf, 0, np.float32),
    )


def save(
    bundle_dir: str | Path, windows: list[Window], meta: BundleMeta | dict | None = None, extras: dict | None = None
) -> Path:
    """Write a bundle folder atomically (a temp folder moved into place). ``meta``: the bundle's
    :class:`BundleMeta` (a dict of its fields is converted and checked).

    ``extras`` maps further file names in the folder to dicts of arrays saved
    as npz (e.g. the embedded front ends' per-frame ``tracks.npz``); loaders
    ignore them.
    """
    from josh_jax._cli.atomic import atomic_folder

    bundle_dir = Path(bundle_dir)
    if not isinstance(meta, BundleMeta):
        meta = BundleMeta.from_dict(meta or {}, "bundle metadata")
    with atomic_folder(bundle_dir, "bundle") as tmp:
        names = []
        for i, w in enumerate(windows):
            validate(w)
            name = f"window_{i:03d}.npz"
            arrays = {f.name: getattr(w, f.name) for f in fields(w) if getattr(w, f.name) is not None}
            np.savez_compressed(tmp / name, **arrays)
            names.append({"file": name, "first_frame": int(w.frame_index[0]), "last_frame": int(w.frame_index[-1])})
        for name, arrays in (extras or {}).items():
            np.savez_compressed(tmp / name, **arrays)
        info = {"format": FORMAT, "version": VERSION, "windows": names, **meta.to_dict()}
        (tmp / "bundle.json").write_text(json.dumps(info, indent=1))
    return bundle_dir


def load(bundle_dir: str | Path, num_vertices: int | None = None) -> tuple[BundleMeta, list[Window]]:
    """Read and validate a bundle folder -> (its :class:`BundleMeta`, windows)."""
    bundle_dir = Path(bundle_dir)
    meta_path = bundle_dir / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(
            f"{bundle_dir} is not a bundle folder (no bundle.json); "
            "make one with `python -m josh_jax.frontends VIDEO --out DIR` or `python -m josh_jax.synthetic.worlds DIR`"
        )
    try:
        meta = read_json(
            meta_path, "bundle.json", "write the bundle again with python -m josh_jax.frontends", top=object
        )
    except JsonFileError as exc:
        raise BundleError(str(exc)) from None
    except OSError as exc:
        raise BundleError(f"{meta_path} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(meta, dict):
        raise BundleError(
            f'{meta_path}: the top level must be an object with "format", "version" and '
            f'"windows", got a {type(meta).__name__}'
        )
    if meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") not in READABLE_VERSIONS:
        raise BundleError(
            f"{meta_path}: version {meta.get('version')} is not supported (this josh_jax reads "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    entries = meta.get("windows", [])
    if not isinstance(entries, list):
        raise BundleError(
            f'{meta_path}: "windows" must be a list of {{"file": "window_000.npz"}} '
            f"entries, got a {type(entries).__name__}"
        )
    windows = []
    for n, entry in enumerate(entries):
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise BundleError(
                f'{meta_path}: window entry {n} needs a "file" naming an .npz in the bundle folder, got {entry!r}'[:300]
            )
        path = bundle_dir / name
        try:
            arrays = read_npz(path, what="bundle window")
        except FileNotFoundError:
            raise BundleError(f"{path}: listed in bundle.json but missing") from None
        except NpzError as exc:
            raise BundleError(str(exc)) from None
        except Exception as exc:
            raise BundleError(
                f"{path}: cannot read as .npz ({type(exc).__name__}); the bundle is corrupt, write it again"
            ) from None
        try:
            windows.append(validate(_to_window(arrays, str(path)), num_vertices))
        except BundleError as exc:
            raise BundleError(f"{path}: {exc}") from exc
    if not windows:
        raise BundleError(f"{meta_path} lists no windows")
    return BundleMeta.from_dict(meta, str(meta_path)), windows
