"""From solved keyframe variables to every frame, and the ``results.npz`` format.

``results.npz`` (also ``init.npz``, ``ground_truth.npz``), world frame = the
first keyframe's camera (OpenCV axes), metres; F frames, P people, K foot markers:

=====================  ===================  =================================================
key                    shape, dtype         meaning
=====================  ===================  =================================================
frame_index            (F,) int64           video frame of each row
cam_to_world           (F, 4, 4) float32    camera -> world, OpenCV camera axes
intrinsics             (3, 3) float32       shared K in original-image pixels
intrinsics_per_frame   (F, 3, 3) float32    K of every frame (a zooming camera: per-keyframe
                                            focals, log-linear between keyframes; else copies of
                                            ``intrinsics``). Optional on load (older files)
image_size             (2,) int64           original image W, H
person_ids             (P,) int64           track ids
visible                (P, F) bool          person placed on the frame (inside its keyframes)
betas                  (P, B) float32       one shape per person
global_orient          (P, F, 3, 3)         root rotation, world frame
body_pose              (P, F, 23, 3, 3)     local body rotations
transl                 (P, F, 3)            body translation, world (body model convention:
                                            world vertices = forward(betas, rot, transl))
joints_world           (P, F, 24, 3)        SMPL-order joints, world
foot_vertices_world    (P, F, 4, 3)         heel/toe markers (left heel, left toe, right ...)
points                 (N, 3) float32       scene points, world
point_colors           (N, 3) uint8
body_model             () str               e.g. "josh-open-body" or "smpl"
format_version         () int64             RESULTS_FORMAT_VERSION (files without it: version 1)
=====================  ===================  =================================================

In Python the file is a :class:`Results` (``Results.load(path)``,
``results.save(path)``, ``results.validate()``).

Frames where a person is not visible hold the identity/zeros and ``visible`` False.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax.errors import JoshError

from .body import BodyModel, forward, rest_joints
from .bundle import Window
from .geometry import matrix_slerp, quat_to_matrix, se3_interpolate
from .geometry.rotations import nearest_rotation
from .losses import Params, body_translation, scene_geometry
from .problem import Problem, anchor_depths, pixel_anchor

RESULT_KEYS = (
    "frame_index",
    "cam_to_world",
    "intrinsics",
    "image_size",
    "person_ids",
    "visible",
    "betas",
    "global_orient",
    "body_pose",
    "transl",
    "joints_world",
    "foot_vertices_world",
    "points",
    "point_colors",
    "body_model",
)
#: optional fields: absent (None) in older files and in ground truths
OPTIONAL_KEYS = ("intrinsics_per_frame",)
RESULTS_FORMAT_VERSION = 1
#: the largest image side a results file may declare (pixels)
MAX_IMAGE_SIDE = 100_000


class ResultsError(JoshError, ValueError):
    """A results file or object is missing a field or has a bad one; the message names the field."""


# field -> (dtype kind: f float, i integer, b bool, u uint8, U str; shape with named axes)
_SPEC = {
    "frame_index": ("i", ("F",)),
    "cam_to_world": ("f", ("F", 4, 4)),
    "intrinsics": ("f", (3, 3)),
    "image_size": ("i", (2,)),
    "person_ids": ("i", ("P",)),
    "visible": ("b", ("P", "F")),
    "betas": ("f", ("P", "B")),
    "global_orient": ("f", ("P", "F", 3, 3)),
    "body_pose": ("f", ("P", "F", 23, 3, 3)),
    "transl": ("f", ("P", "F", 3)),
    "joints_world": ("f", ("P", "F", 24, 3)),
    "foot_vertices_world": ("f", ("P", "F", 4, 3)),
    "points": ("f", ("N", 3)),
    "point_colors": ("u", ("N", 3)),
    "body_model": ("U", ()),
}


@dataclasses.dataclass(frozen=True)
class Results:
    """The per-frame reconstruction of ``results.npz`` (fields: the table in the module docstring).

    World frame = the first keyframe's camera (OpenCV axes), metres; F frames,
    P people. ``save`` writes the npz layout (plus ``format_version``) atomically,
    ``load`` reads and validates it. Fields are attributes (``res.points``); a mapping in
    the same layout (a synthetic ground truth) becomes one with :func:`as_results`, and
    :meth:`to_dict` gives the plain dict of the file.
    """

    frame_index: np.ndarray
    cam_to_world: np.ndarray
    intrinsics: np.ndarray
    image_size: np.ndarray
    person_ids: np.ndarray
    visible: np.ndarray
    betas: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    joints_world: np.ndarray
    foot_vertices_world: np.ndarray
    points: np.ndarray
    point_colors: np.ndarray
    body_model: np.ndarray
    intrinsics_per_frame: np.ndarray | None = None  # (F, 3, 3) or None (optional, see OPTIONAL_KEYS)

    @property
    def num_frames(self) -> int:
        return len(self.frame_index)

    @property
    def num_people(self) -> int:
        return len(self.person_ids)

    def field_names(self) -> tuple:
        """The fields this result holds: every required one, and the optional ones that are set."""
        return RESULT_KEYS + tuple(k for k in OPTIONAL_KEYS if getattr(self, k) is not None)

    def to_dict(self) -> dict:
        """The fields as a plain dict (the layout of results.npz, without ``format_version``)."""
        return {k: getattr(self, k) for k in self.field_names()}

    def replace(self, **fields) -> Results:
        return dataclasses.replace(self, **fields)

    @classmethod
    def from_dict(cls, d, source: str = "results") -> Results:
        """From a mapping with (at least) every field; validated."""
        missing = [k for k in RESULT_KEYS if k not in d]
        if missing:
            raise ResultsError(f"{source} is not a josh_jax results file: missing {', '.join(missing)}")
        opt = {k: np.asarray(d[k]) for k in OPTIONAL_KEYS if k in d and d[k] is not None}
        return cls(**{k: np.asarray(d[k]) for k in RESULT_KEYS}, **opt).validate(source)

    def validate(self, source: str = "results") -> Results:
        """Check every field's dtype kind, shape (F, P, B, N consistent) and finiteness;
        returns ``self`` or raises :class:`ResultsError` naming the field."""
        axes: dict[str, int] = {}
        for key, (kind, shape) in _SPEC.items():
            a = np.asarray(getattr(self, key))
            ok_kind = {
                "f": a.dtype.kind == "f",
                "i": a.dtype.kind in "iu",
                "b": a.dtype.kind == "b",
                "u": a.dtype == np.uint8,
                "U": a.dtype.kind in "US",
            }[kind]
            if not ok_kind:
                raise ResultsError(f"{source} field {key!r}: dtype {a.dtype} is not {_KIND_NAMES[kind]}")
            if a.ndim != len(shape):
                raise ResultsError(f"{source} field {key!r}: shape {a.shape}, expected {_shape_text(shape)}")
            for n, want in zip(a.shape, shape):
                if isinstance(want, str):
                    want = axes.setdefault(want, n)
                if n != want:
                    raise ResultsError(f"{source} field {key!r}: shape {a.shape}, expected {_shape_text(shape, axes)}")
            if kind == "f" and not np.all(np.isfinite(a)):
                raise ResultsError(f"{source} field {key!r}: holds NaN or inf")
        if axes["F"] < 1:
            raise ResultsError(f"{source} field 'frame_index': holds no frames")
        size = np.asarray(self.image_size)
        if not np.all((size >= 1) & (size <= MAX_IMAGE_SIDE)):
            raise ResultsError(
                f"{source} field 'image_size': {size.tolist()} is not a size in pixels (1-{MAX_IMAGE_SIDE})"
            )
        K = np.asarray(self.intrinsics)
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise ResultsError(
                f"{source} field 'intrinsics': the focal lengths {K[0, 0]:g}, {K[1, 1]:g} are not positive"
            )
        if self.intrinsics_per_frame is not None:
            a = np.asarray(self.intrinsics_per_frame)
            if a.dtype.kind != "f" or a.shape != (axes["F"], 3, 3):
                raise ResultsError(
                    f"{source} field 'intrinsics_per_frame': shape {a.shape} dtype {a.dtype}, "
                    f"expected float (F={axes['F']}, 3, 3)"
                )
            if not np.all(np.isfinite(a)):
                raise ResultsError(f"{source} field 'intrinsics_per_frame': holds NaN or inf")
        return self

    def save(self, path: str | Path) -> Path:
        """Write ``results.npz`` atomically (validated first)."""
        self.validate(str(path))
        return save_npz(path, {**self.to_dict(), "format_version": np.array(RESULTS_FORMAT_VERSION, np.int64)})

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read and validate a ``results.npz``-layout file."""
        path = Path(path)
        if path.is_dir():
            raise ResultsError(f"{path} is a folder; give the results.npz file inside it")
        if not path.is_file():
            raise ResultsError(f"{path} does not exist")
        from .npz import NpzError, read_npz

        try:
            d = read_npz(path, what="results.npz")
        except NpzError as exc:
            raise ResultsError(str(exc)) from None
        except OSError as exc:
            raise ResultsError(f"{path} cannot be read ({exc.strerror or exc})") from None
        version = int(d.pop("format_version", 1))
        if version > RESULTS_FORMAT_VERSION:
            raise ResultsError(
                f"{path} has results format version {version}; this josh_jax reads up to "
                f"{RESULTS_FORMAT_VERSION}: upgrade josh_jax"
            )
        return cls.from_dict(d, str(path))


def as_results(x, source: str = "results") -> Results:
    """A :class:`Results` as is; a mapping in the results layout (e.g. a synthetic
    ground truth with extra keys) converted and validated."""
    return x if isinstance(x, Results) else Results.from_dict(x, source)


_KIND_NAMES = {"f": "a float", "i": "an integer", "b": "bool", "u": "uint8", "U": "a string"}


def _shape_text(shape, axes=None) -> str:
    return "(" + ", ".join(str((axes or {}).get(n, n)) for n in shape) + ")"


def _bracket(keys: np.ndarray, frames: np.ndarray):
    """For each frame: index of the keyframe at or before it, and the blend weight to the next."""
    i0 = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 1)
    i1 = np.clip(i0 + 1, 0, len(keys) - 1)
    span = np.maximum(keys[i1] - keys[i0], 1)
    a = np.where(i1 > i0, (frames - keys[i0]) / span, 0.0)
    return i0, i1, a


# one compiled program each instead of op-by-op dispatch (the first build_results of a process spent
# ~9 s compiling single operations)
_se3_interpolate = jax.jit(se3_interpolate)
_matrix_slerp = jax.jit(matrix_slerp)
_scene_geometry = jax.jit(scene_geometry)
_quat_to_matrix = jax.jit(quat_to_matrix)


@functools.partial(jax.jit, static_argnames=("vertex_ids",))
def _posed(model: BodyModel, betas, rot, transl, vertex_ids: tuple):
    return forward(model, betas, rot, transl, vertex_ids=np.asarray(vertex_ids))


def interpolate_cameras(T_kf: np.ndarray, kf_frames: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """SE(3) interpolation (slerp rotation, linear position) of (K, 4, 4) keyframe poses."""
    i0, i1, a = _bracket(kf_frames, frames)
    return np.asarray(_se3_interpolate(jnp.asarray(T_kf[i0]), jnp.asarray(T_kf[i1]), jnp.asarray(a, jnp.float32)))


def scene_points(
    window: Window,
    problem: Problem,
    geo,
    T_fix: np.ndarray,
    conf_thres: float = 0.1,
    subsample: int = 8,
    stride: int = 2,
    max_points: int = 200_000,
):
    """Coloured world points from the confident pixels of every keyframe (optimised anchors)."""
    W, H = (int(x) for x in window.image_size)
    f = float(geo.focal)
    c = np.asarray(geo.K)[:2, 2]
    anchors = anchor_depths(window.depth, subsample)
    pts, cols = [], []
    yy, xx = np.mgrid[0:H:stride, 0:W:stride]
    for k in range(window.num_keyframes):
        ok = window.conf[k][yy, xx] > conf_thres
        x, y = xx[ok], yy[ok]
        a = pixel_anchor(x, y, H, W, subsample)
        ratio = window.depth[k][y, x] / anchors[k, a]
        d = np.asarray(geo.anchor_depth)[k, a] * (1 + (ratio - 1) * problem.scene.base_focal[k] / f)
        Xc = np.stack([(x - c[0]) / f * d, (y - c[1]) / f * d, d], 1)
        T = T_fix @ np.asarray(geo.cam_to_world)[k]
        pts.append(Xc @ T[:3, :3].T + T[:3, 3])
        cols.append(window.images[k][y, x] if window.images is not None else np.full((len(x), 3), 160, np.uint8))
    pts, cols = np.concatenate(pts), np.concatenate(cols)
    if len(pts) > max_points:
        keep = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
        pts, cols = pts[keep], cols[keep]
    return pts.astype(np.float32), cols.astype(np.uint8)


#: bytes the per-frame results take per person and frame (float64 work arrays, their float32 copies and
#: the JAX temporaries of interpolation and skinning; ~3.6 kB measured in numpy alone), and per frame
RESULT_BYTES_PER_PERSON_FRAME = 8192
RESULT_BYTES_PER_FRAME = 1024
#: the per-frame results may take at most this many times the padded problem's memory (or MEMORY_FLOOR)
MEMORY_FACTOR = 4
MEMORY_FLOOR = 64 * 2**20


def check_result_size(problem: Problem, window: Window) -> int:
    """Refuse (BundleError) a window whose frame span would make the per-frame results allocate more
    than :data:`MEMORY_FACTOR` x the padded problem's bytes, or :data:`MEMORY_FLOOR` for small problems
    (e.g. ``frame_index`` [0, 5, 10, 2e9]);
    returns the estimated bytes. Called before the solve and again by :func:`build_results`."""
    from .bundle import BundleError

    span = int(window.frame_index[-1] - window.frame_index[0] + 1)
    need = span * (window.num_tracks * RESULT_BYTES_PER_PERSON_FRAME + RESULT_BYTES_PER_FRAME)
    have = sum(int(x.nbytes) for x in jax.tree_util.tree_leaves(problem) if hasattr(x, "nbytes"))
    if need > max(MEMORY_FACTOR * have, MEMORY_FLOOR):
        gap = int(np.diff(window.frame_index).max())
        raise BundleError(
            f"bundle field 'frame_index': keyframes {int(window.frame_index[0])}..."
            f"{int(window.frame_index[-1])} span {span} frames (largest gap {gap}) for "
            f"{window.num_keyframes} keyframes; per-frame results would need {need / 2**20:.0f} MiB, "
            f"more than {MEMORY_FACTOR}x the problem's {have / 2**20:.1f} MiB; keyframes must be "
            "consecutive samples of one clip (a few frames apart)"
        )
    return need


def check_solvable(problem: Problem, window: Window, conf_thres: float, where: str = "window") -> list[str]:
    """Refuse (BundleError) a window whose solve would be meaningless: no scene pixel above
    ``conf_thres`` or no live scene correspondence; also the memory bound of :func:`check_result_size`.
    Returns warnings (e.g. no contact-scale entry: the metric scale then rests on nothing)."""
    from .bundle import BundleError
    from .problem import entry_counts

    check_result_size(problem, window)
    if not np.any(window.conf > conf_thres):
        raise BundleError(
            f"{where}: no scene pixel has confidence above conf_thres={conf_thres:g} (all of 'conf' "
            "is at or below it); the scene term would be empty: check the scene front end's output"
        )
    counts = entry_counts(problem)
    if counts["scene_entries"] == 0:
        raise BundleError(
            f"{where}: no usable scene entries (no correspondence with confidence > 0); the camera "
            "path would be meaningless: check the matcher's output (corr_pair, corr_conf)"
        )
    warn = []
    if window.num_tracks and counts["contact_scale_entries"] == 0:
        warn.append(
            f"{where}: no contact-scale entry (no labelled contact lies on confident scene); the metric "
            "scale is not constrained by the people"
        )
    return warn


def empty_people(P: int, F: int) -> dict:
    """The per-person arrays of :class:`Results` for P people over F frames, nobody visible yet:
    identity rotations, zero translations / joints (metres)."""
    return dict(
        visible=np.zeros((P, F), bool),
        global_orient=np.tile(np.eye(3), (P, F, 1, 1)),
        body_pose=np.tile(np.eye(3), (P, F, 23, 1, 1)),
        transl=np.zeros((P, F, 3)),
        joints_world=np.zeros((P, F, 24, 3)),
        foot_vertices_world=np.zeros((P, F, 4, 3)),
    )


def build_results(params: Params, problem: Problem, window: Window, model: BodyModel) -> Results:
    """Keyframe variables -> per-frame :class:`Results`."""
    check_result_size(problem, window)
    scene = jax.tree_util.tree_map(jnp.asarray, problem.scene)
    geo = _scene_geometry(params.cam, scene)
    K0 = window.num_keyframes
    T_kf = np.asarray(geo.cam_to_world, np.float64)[:K0]
    T_fix = np.linalg.inv(T_kf[0])  # world = first keyframe's camera
    T_kf = T_fix @ T_kf
    kf = window.frame_index
    frames = np.arange(kf[0], kf[-1] + 1)
    cams = interpolate_cameras(T_kf, kf, frames)
    s = window.scale_to_original
    Kmat = np.asarray(geo.K, np.float64).copy()
    Kmat[:2] *= s
    fk = np.full(K0, float(geo.focal)) if geo.focal_k is None else np.asarray(geo.focal_k, np.float64)[:K0]
    K_frames = np.repeat(Kmat[None], len(frames), 0)
    if geo.focal_k is not None:
        f_frames = np.exp(np.interp(frames, kf, np.log(fk))) * s
        K_frames[:, 0, 0] = K_frames[:, 1, 1] = f_frames

    P = window.num_tracks
    hp = params.human
    # the bodies' camera-frame translation as the objective poses them (depth under the solved focal)
    transl_c = np.asarray(body_translation(hp.transl, geo.focal, problem.init_focal, problem.body_depth))
    betas = np.asarray(hp.betas)[:P]
    F = len(frames)
    out = empty_people(P, F)
    marker_ids = tuple(int(i) for i in np.asarray(model.vertex_set("foot_markers")))
    for p in range(P):
        vk = np.where(window.track_valid[p])[0]
        if len(vk) == 0:
            continue
        J0 = np.asarray(rest_joints(model, jnp.asarray(betas[p])))[0]
        R_root_c = np.asarray(_quat_to_matrix(hp.quat[p]))[vk]
        t_c = transl_c[p][vk]
        R_wc, c_w = T_kf[vk, :3, :3], T_kf[vk, :3, 3]
        R_root_w = R_wc @ R_root_c
        t_w = np.einsum("kab,kb->ka", R_wc, J0 + t_c) + c_w - J0
        body = np.asarray(hp.body[p])[vk]
        # project the raw 3x3 body entries back onto SO(3) for export
        body = nearest_rotation(body)
        keys = kf[vk]
        sel = (frames >= keys[0]) & (frames <= keys[-1])
        fr = frames[sel]
        i0, i1, a = _bracket(keys, fr)
        aj = jnp.asarray(a, jnp.float32)
        go = np.asarray(_matrix_slerp(jnp.asarray(R_root_w[i0]), jnp.asarray(R_root_w[i1]), aj))
        bp = np.asarray(_matrix_slerp(jnp.asarray(body[i0]), jnp.asarray(body[i1]), aj[:, None]))
        tr = (1 - a)[:, None] * t_w[i0] + a[:, None] * t_w[i1]
        rot = np.concatenate([go[:, None], bp], 1).astype(np.float32)
        posed = _posed(
            model, jnp.asarray(betas[p]), jnp.asarray(rot), jnp.asarray(tr, jnp.float32), vertex_ids=marker_ids
        )
        idx = np.where(sel)[0]
        out["visible"][p, idx] = True
        out["global_orient"][p, idx] = go
        out["body_pose"][p, idx] = bp
        out["transl"][p, idx] = tr
        out["joints_world"][p, idx] = np.asarray(posed.joints)
        out["foot_vertices_world"][p, idx] = np.asarray(posed.vertices)

    pts, cols = scene_points(window, problem, geo, T_fix)
    res = dict(
        frame_index=frames.astype(np.int64),
        cam_to_world=cams.astype(np.float32),
        intrinsics=Kmat.astype(np.float32),
        intrinsics_per_frame=K_frames.astype(np.float32),
        image_size=np.round(np.asarray(window.image_size) * s).astype(np.int64),
        person_ids=np.asarray(window.track_ids, np.int64),
        betas=betas.astype(np.float32),
        points=pts,
        point_colors=cols,
        body_model=np.array(model.name),
        **out,
    )
    for k in ("global_orient", "body_pose", "transl", "joints_world", "foot_vertices_world"):
        res[k] = res[k].astype(np.float32)
    return Results(**res)


def save_npz(path: str | Path, arrays: dict) -> Path:
    """Write an npz atomically (:func:`josh_jax._cli.atomic.write_text_atomic`: temp file, then rename)."""
    from josh_jax._cli.atomic import write_text_atomic

    return write_text_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def load_results(path: str | Path) -> Results:
    """``Results.load`` (kept as a function for older callers)."""
    return Results.load(path)
