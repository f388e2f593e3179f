"""Problem building (host side, numpy): from a bundle window to fixed-size padded arrays.

This is where the ragged, branchy work of the reference happens once, before
the solve: keyframe windows, the camera tree, anchors and depth ratios, the
contact-scale / static-contact entries (SPEC "Contact entries"), smoothness
triples and the per-vertex rest data of every vertex a loss reads. Everything
is padded to size buckets with masks (weight 0 = padding), so windows of
similar size share one compiled solver.

``build_problem`` runs the named pieces below in order: :func:`scene_anchors`,
:func:`correspondences`, :func:`contact_entries`, :func:`smooth_triples`,
:func:`bucket_sizes` (a :class:`Sizes`), then :func:`scene_data` and
:func:`human_data` pad and assemble.

By default every choice follows the reference (josh/joint_opt.py and
josh/utils/josh_utils.py): the lower median of the anchor depths, the nearest
valid pixel from the exact projected point, the depth-ratio filter on the
relative depth map, the initial focal as every keyframe's base focal
(:class:`ProblemConfig` switches keep the alternatives). Deviations, on purpose:
- static-contact and contact-scale entries index the track's keyframe
  directly; the reference counts only keyframes that had a contact joint, so
  its indices drift after a keyframe without contacts;
- the camera tree's root is the keyframe with the largest summed pair score
  (the tree is then walked breadth first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

from .body import BodyModel
from .body import forward_jit as _forward_jit
from .bundle import Window
from .windows import bucket, keyframe_indices, window_starts  # noqa: F401  (re-exported)

# ------------------------------------------------------------------ keyframes and windows


KEYFRAME_BUCKETS = (11, 21, 41, 81)
CHUNK = 256  # correspondences per row of the dense pair layout


def keyframe_bucket(k: int) -> int:
    for b in KEYFRAME_BUCKETS:
        if k <= b:
            return b
    return bucket(k)


# ------------------------------------------------------------------ padded problem


class SceneData(NamedTuple):
    """Scene part of a problem. K keyframes (padded), A anchors, Pr pair rows of M slots."""

    kf_valid: np.ndarray  # (K,) bool
    anchor_depth: np.ndarray  # (K, A) anchor depths / their median (padding: 1)
    median_depth: np.ndarray  # (K,) median anchor depth, scene units
    base_focal: np.ndarray  # (K,) focal the depth maps are read with, working px (ProblemConfig.base_focal)
    image_size: np.ndarray  # (2,) W, H working px
    pp: np.ndarray  # (2,) principal point as a fraction of W, H
    tree_parent: np.ndarray  # (K,) parent keyframe in the camera tree (root: itself)
    tree_order: np.ndarray  # (K,) keyframes in breadth-first order, root first
    pair_img: np.ndarray  # (Pr, 2) keyframes i, j of each ordered pair
    # correspondences of each pair in M slots; small axes first so that M is innermost:
    corr_pix: np.ndarray  # (2 [in i, in j], 2 [x, y], Pr, M) pixels
    corr_anchor: np.ndarray  # (2, Pr, M) anchor index in i, in j
    corr_ratio: np.ndarray  # (2, Pr, M) depth / anchor depth in i, in j
    corr_w: np.ndarray  # (Pr, M) confidence weight (0 = padding)
    enforce_scale: np.ndarray  # () bool: no contact entry at all -> g = 1 / min size
    # ---- cameras given by the front end (bundle v2, rotation-only / static clips); None: the reference
    focal_scale: np.ndarray | None = None  # (K,) each keyframe's focal / the shared focal (zoom); padding 1
    init_cam_quat: np.ndarray | None = None  # (K, 4) initial relative camera rotations (wxyz) along the tree
    init_cam_trans: np.ndarray | None = None  # (K, 3) initial relative translations: all centres at one point
    # ---- a warm start (``--method josh3r+joint``, :func:`josh_jax.josh3r.warm_start`); None: sizes 1
    init_log_size: np.ndarray | None = None  # (K,) initial log depth sizes (metric scene); padding 0


class HumanData(NamedTuple):
    """Human part of a problem. P tracks (padded) x K keyframe slots, U contact vertices."""

    valid: np.ndarray  # (P, K) bool: track seen on keyframe
    n_frames: np.ndarray  # (P,) keyframes per track (0 = padding)
    init_quat: np.ndarray  # (P, K, 4) root orientation wxyz (camera frame)
    init_transl: np.ndarray  # (P, K, 3) camera-frame translation, z rescaled by f_init / f_hmr
    init_body: np.ndarray  # (P, K, 23, 3, 3)
    init_betas: np.ndarray  # (P, B) mean over the track's keyframes
    body: BodyModel  # the body model's view on the U vertices the losses read (BodyModel.subset)
    vert_ids: np.ndarray  # (U,) body-model vertex id of each table row (padding: 0)
    scale_track: np.ndarray  # (E,) contact-scale entries: track
    scale_kf: np.ndarray  # (E,) keyframe
    scale_anchor: np.ndarray  # (E,) anchor in that keyframe
    scale_ratio: np.ndarray  # (E,) depth ratio of the nearest valid scene pixel
    scale_vert: np.ndarray  # (E,) index into the vertex table
    scale_w: np.ndarray  # (E,) confidence (0 = padding)
    static_track: np.ndarray  # (S,) static-contact entries: track
    static_kf: np.ndarray  # (S,) keyframe t
    static_kf_prev: np.ndarray  # (S,) previous keyframe of the track
    static_vert: np.ndarray  # (S,) index into the vertex table
    static_w: np.ndarray  # (S,) 1 or 0 (padding)
    smooth_track: np.ndarray  # (Ms,) smoothness triples: track
    smooth_kf: np.ndarray  # (Ms, 3) three consecutive keyframes of the track
    smooth_w: np.ndarray  # (Ms,) 1 or 0 (padding)
    # (P,) each track's weight on its contact-scale term (ProblemConfig.contact_consensus; 1: the reference)
    scale_track_w: np.ndarray | None = None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Problem:
    """A padded joint problem: a pytree whose leaves are arrays; ``parents`` is static."""

    scene: SceneData
    human: HumanData
    init_focal: np.ndarray  # () shared initial focal, working px
    parents: tuple = dataclasses.field(metadata=dict(static=True))  # body kinematic tree
    # how the bodies' camera-frame depth relates to the focal (ProblemConfig.body_depth; static)
    body_depth: str = dataclasses.field(default="focal", metadata=dict(static=True))

    def _replace(self, **kw) -> Problem:
        return dataclasses.replace(self, **kw)


class Sizes(NamedTuple):
    """Bucket sizes of a padded problem (the leading axis of each padded table)."""

    keyframes: int  # K
    pair_rows: int  # Pr: rows of the dense pair layout
    row_slots: int  # M: correspondence slots per pair row
    tracks: int  # P
    scale_entries: int  # E: contact-scale entries
    static_entries: int  # S: static-contact entries
    smooth_triples: int  # Ms: smoothness triples
    contact_vertices: int  # U: rows of the contact-vertex table


PROBLEM_CHOICES = {
    "median": ("lower", "mean"),
    "nearest_valid": ("exact", "pixel"),
    "depth_filter": ("relative", "absolute"),
    "base_focal": ("initial", "bundle"),
    "static_entries": ("nearest", "shared"),
    "body_depth": ("focal", "reference"),
}

#: ``static_entries="shared"``: at most this many static entries per (track, keyframe), evenly spread
STATIC_SHARED_MAX = 16


@dataclass(frozen=True)
class ProblemConfig:
    """Host-side choices of the reference (josh/config.py, josh/joint_opt.py).

    The four reference switches below default to the reference; the other value of each
    is josh_jax's earlier convention, kept for comparison:

    - ``median``: "lower" takes the lower middle anchor depth of a keyframe for
      an even count, as ``torch.median``; "mean" averages the two (``np.median``).
    - ``nearest_valid``: "exact" searches the nearest confident scene pixel of a
      contact vertex from its exact projected point (the reference's
      ``find_closest_valid``, first minimum in row-major order); "pixel" from the
      truncated integer pixel (Euclidean distance transform).
    - ``depth_filter``: the contact entry's depth-ratio filter compares the human
      pixel with the nearest valid pixel on the "relative" depth map (each pixel's
      depth / the depth at its anchor's centre, the reference's canonical
      ``canon2``) or on the "absolute" depth map.
    - ``base_focal``: "initial" reads every keyframe's depth with the initial
      shared focal (the reference overwrites its base focals with it before the
      problem is built); "bundle" with the bundle's per-keyframe point-map focals.
    - ``static_entries`` (not a reference switch; ``josh+``): "nearest" (the
      reference) makes a static-contact entry of a contact vertex kept (nearest a
      joint) on a keyframe and on the track's previous keyframe with contacts;
      "shared" of every vertex labelled in contact on both a keyframe and the
      track's previous keyframe (at most :data:`STATIC_SHARED_MAX`, evenly spread),
      so that a rolling foot still gives entries.
    - ``body_depth`` (josh_jax's default differs from the reference): "focal" makes every
      body's camera-frame depth follow the solved focal (z x f / f_init, in every term, both
      solvers, josh+'s refinement, the results and JOSH3R's warm start:
      :func:`josh_jax.losses.body_translation`), so that the bodies stay on the people when the
      focal moves; "reference" keeps the reference's model exactly (the translation variable is
      used as it is and only the contact-scale term rescales its depth by f / f_init).
    - ``contact_consensus`` (josh_jax's default 0.1; the reference: 0): each track's contact-scale
      term is weighted by how well its people's depth agrees with the others' about the scene's
      scale (:func:`consensus_weights`), so that one mismatched person does not move everyone.

    :meth:`ProblemConfig.reference` gives the reference's problem exactly (both josh_jax defaults off).
    """

    conf_thres: float = 0.1
    subsample: int = 8
    depth_filter_ratio: float = 1.01
    contact_joint_radius: float = 0.05  # metres: a contact vertex must lie this close to a joint
    init_focal: float | None = None  # override the bundle's initial focal (working px)
    median: str = "lower"
    nearest_valid: str = "exact"
    depth_filter: str = "relative"
    base_focal: str = "initial"
    static_entries: str = "nearest"
    body_depth: str = "focal"
    contact_consensus: float = 0.1  # per-track contact-scale weights (consensus_weights); 0: the reference

    @classmethod
    def reference(cls, **kw) -> ProblemConfig:
        """The reference's problem exactly: its body depth and no per-track contact weights."""
        return cls(**{"body_depth": "reference", "contact_consensus": 0.0, **kw})

    def __post_init__(self):
        for name, allowed in PROBLEM_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {self.subsample}")
        if not self.contact_consensus >= 0:
            raise ValueError(f"contact_consensus must be >= 0 (0: off), got {self.contact_consensus}")
        if self.init_focal is not None and not self.init_focal > 0:
            raise ValueError(f"init_focal must be positive (working px), got {self.init_focal}")
        if self.init_focal is not None:
            object.__setattr__(self, "init_focal", float(self.init_focal))  # e.g. 400 from --set


def anchor_grid_shape(H: int, W: int, s: int) -> tuple[int, int]:
    return len(range(s // 2, H, s)), len(range(s // 2, W, s))


def pixel_anchor(px: np.ndarray, py: np.ndarray, H: int, W: int, s: int) -> np.ndarray:
    """Anchor of a pixel: the s x s block it lies in (reference core_idx)."""
    H2, W2 = anchor_grid_shape(H, W, s)
    ax = np.clip(np.floor(px).astype(np.int64) // s, 0, W2 - 1)
    ay = np.clip(np.floor(py).astype(np.int64) // s, 0, H2 - 1)
    return ay * W2 + ax


def anchor_depths(depth: np.ndarray, s: int) -> np.ndarray:
    """(K, H, W) -> (K, A) depth at the anchor centres (grid from s // 2, every s)."""
    return depth[:, s // 2 :: s, s // 2 :: s].reshape(depth.shape[0], -1)


def median_lower(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``torch.median``: the lower of the two middle values for an even count."""
    n = x.shape[axis]
    return np.take(np.partition(x, (n - 1) // 2, axis=axis), (n - 1) // 2, axis=axis)


def relative_depth(depth: np.ndarray, s: int) -> np.ndarray:
    """(K, H, W) -> (K, H, W) each pixel's depth / the depth at its anchor's centre
    (the reference's canonical relative map ``canon2`` for a single point map)."""
    K, H, W = depth.shape
    yy, xx = np.mgrid[0:H, 0:W]
    a = pixel_anchor(xx, yy, H, W, s)
    return depth / anchor_depths(depth, s)[:, a]


def camera_tree(pair_index: np.ndarray, pair_score: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score spanning tree of the keyframes -> (parent (K,), breadth-first order (K,))."""
    S = np.zeros((K, K))
    for (i, j), s in zip(pair_index, pair_score):
        S[i, j] += max(float(s), 1e-9)
        S[j, i] += max(float(s), 1e-9)
    n_comp, labels = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(S > 0), directed=False)
    if n_comp > 1:
        raise ValueError(
            f"the keyframes fall into {n_comp} groups with no matches between them "
            f"(group of each keyframe: {labels.tolist()}); the scene front end found too few matches"
        )
    cost = np.where(S > 0, S.max() + 1.0 - S, 0.0)  # min spanning tree of (max + 1 - score)
    mst = scipy.sparse.csgraph.minimum_spanning_tree(scipy.sparse.csr_matrix(cost))
    root = int(np.argmax(S.sum(1)))
    order, pred = scipy.sparse.csgraph.breadth_first_order(mst, root, directed=False)
    parent = np.where(pred < 0, np.arange(K), pred).astype(np.int32)
    parent[root] = root
    return parent, order.astype(np.int32)


def _pad(a: np.ndarray, n: int, value=0) -> np.ndarray:
    a = np.asarray(a)
    if len(a) > n:
        raise ValueError(f"cannot pad {len(a)} entries into {n}")
    pad = [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, pad, constant_values=value)


def _rotmat_to_quat_np(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()  # xyzw
    q = np.concatenate([q[:, 3:], q[:, :3]], 1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(R.shape[:-2] + (4,))


def _pose_np(model: BodyModel, betas, rotmats, transl) -> tuple[np.ndarray, np.ndarray]:
    """Pose one body on the host: vertices (V, 3) and joints regressed from them (24, 3)."""
    out = _forward_jit(
        model, np.asarray(betas, np.float32), np.asarray(rotmats, np.float32), np.asarray(transl, np.float32)
    )
    v = np.asarray(out.vertices)
    return v, np.asarray(model.J_regressor) @ v


# ------------------------------------------------------------------ the pieces of build_problem


class SceneAnchors(NamedTuple):
    """Anchor depths of every keyframe (K keyframes, A anchors)."""

    depth: np.ndarray  # (K, A) depth at the anchor centres, scene units
    median: np.ndarray  # (K,) median of each keyframe's anchor depths (ProblemConfig.median)
    normalized: np.ndarray  # (K, A) depth / median


class Correspondences(NamedTuple):
    """The live correspondences of a window, flat (C matches with confidence > 0)."""

    pairs: np.ndarray  # (C, 2) keyframes i, j
    pix: np.ndarray  # (C, 2 [in i, in j], 2 [x, y]) pixels, float64
    anchor: np.ndarray  # (C, 2) anchor of the pixel in i, in j
    ratio: np.ndarray  # (C, 2) depth at the rounded pixel / its anchor's depth
    conf: np.ndarray  # (C,) confidence, float64


class ScaleEntries(NamedTuple):
    """Contact-scale entries, one per (track, keyframe, contact vertex) kept (E,)."""

    track: np.ndarray  # (E,) int
    keyframe: np.ndarray  # (E,) int
    anchor: np.ndarray  # (E,) anchor of the nearest valid scene pixel
    ratio: np.ndarray  # (E,) depth there / its anchor's depth
    conf: np.ndarray  # (E,) scene confidence there
    vertex: np.ndarray  # (E,) row of the contact-vertex table
    log_depth_ratio: np.ndarray | None = None  # (E,) log(scene depth / body vertex depth) at the start


class StaticEntries(NamedTuple):
    """Static-contact entries: a contact vertex kept on a keyframe and the one before (S,)."""

    track: np.ndarray  # (S,) int
    keyframe: np.ndarray  # (S,) keyframe t
    keyframe_prev: np.ndarray  # (S,) the track's previous keyframe
    vertex: np.ndarray  # (S,) row of the contact-vertex table


class SmoothTriples(NamedTuple):
    """Smoothness triples: three consecutive keyframes of a track (Ms,)."""

    track: np.ndarray  # (Ms,) int
    keyframes: np.ndarray  # (Ms, 3) int


class ContactEntries(NamedTuple):
    """What :func:`contact_entries` selects: the entry tables and the vertex table's ids."""

    scale: ScaleEntries
    static: StaticEntries
    vertex_ids: np.ndarray  # (U,) body-model vertex of each table row, in order of first use


def scene_anchors(depth: np.ndarray, subsample: int, median: str = "lower") -> SceneAnchors:
    """(K, H, W) depth -> anchor depths, their per-keyframe median and the normalised anchors."""
    a = anchor_depths(depth, subsample)
    med = median_lower(a, axis=1) if median == "lower" else np.median(a, axis=1)
    return SceneAnchors(depth=a, median=med, normalized=a / med[:, None])


def correspondences(w: Window, anchors: np.ndarray, subsample: int) -> Correspondences:
    """The window's live matches (confidence > 0) with their anchors and depth ratios."""
    W, H = (int(x) for x in w.image_size)
    keep = w.corr_conf > 0
    pi = w.pair_index[w.corr_pair[keep]]  # (C, 2)
    pix = w.corr_pix[keep].astype(np.float64)
    cw = w.corr_conf[keep].astype(np.float64)
    anc = np.stack([pixel_anchor(pix[:, k, 0], pix[:, k, 1], H, W, subsample) for k in range(2)], 1)
    ratio = np.empty_like(cw, shape=(len(cw), 2))
    for k in range(2):
        xi = np.clip(np.round(pix[:, k, 0]).astype(int), 0, W - 1)
        yi = np.clip(np.round(pix[:, k, 1]).astype(int), 0, H - 1)
        ratio[:, k] = w.depth[pi[:, k], yi, xi] / anchors[pi[:, k], anc[:, k]]
    return Correspondences(pairs=pi, pix=pix, anchor=anc, ratio=ratio, conf=cw)


def initial_focal(w: Window, cfg: ProblemConfig) -> float:
    """The shared initial focal (working px): ``cfg.init_focal`` or the bundle's."""
    return float(cfg.init_focal or w.init_focal)


def camera_frame_translations(w: Window, f_init: float) -> np.ndarray:
    """(P, K, 3) track translations with z rescaled from the human front end's focal to f_init."""
    transl = w.track_transl.astype(np.float64).copy()
    transl[..., 2] *= f_init / w.hmr_focal
    return transl


def contact_joint_vertices(model: BodyModel, betas, rotmats, transl, contact: np.ndarray, radius: float):
    """Contact vertices kept on one keyframe: for each joint, the nearest labelled
    vertex if closer than ``radius`` (reference). Returns (kept vertex ids, posed vertices (V, 3))."""
    cids = np.where(contact)[0]
    if not len(cids):
        return [], None
    v, joints = _pose_np(model, betas, rotmats, transl)
    d = np.linalg.norm(joints[:, None] - v[cids][None], axis=-1)  # (24, n)
    best = d.argmin(1)
    return [int(cids[b]) for j, b in enumerate(best) if d[j, b] < radius], v


def nearest_valid_pixel(valid_yx: np.ndarray, u: float, v: float) -> tuple[int, int]:
    """The reference's ``find_closest_valid``: the valid pixel (x, y) nearest to the
    exact point (u, v), squared distances in float32 and the first minimum in
    row-major order. ``valid_yx`` (N, 2) is ``np.argwhere(mask)``."""
    dy = valid_yx[:, 0].astype(np.float32) - np.float32(v)
    dx = valid_yx[:, 1].astype(np.float32) - np.float32(u)
    d = dy * dy + dx * dx
    i = int(np.argmin(d))
    return int(valid_yx[i, 1]), int(valid_yx[i, 0])


class _KeyframeScene:
    """Per-keyframe lookups of the contact-entry selection, computed once per keyframe."""

    def __init__(self, w: Window, cfg: ProblemConfig):
        self.w, self.cfg = w, cfg
        self.masks = w.conf > cfg.conf_thres
        self.rel = relative_depth(w.depth, cfg.subsample) if cfg.depth_filter == "relative" else None
        self._valid_yx: dict[int, np.ndarray] = {}
        self._edt: dict[int, np.ndarray] = {}

    def nearest(self, k: int, u: float, v: float) -> tuple[int, int]:
        if self.cfg.nearest_valid == "exact":
            if k not in self._valid_yx:
                self._valid_yx[k] = np.argwhere(self.masks[k])
            return nearest_valid_pixel(self._valid_yx[k], u, v)
        if k not in self._edt:
            _, self._edt[k] = scipy.ndimage.distance_transform_edt(~self.masks[k], return_indices=True)
        py, px = (int(a) for a in self._edt[k][:, int(v), int(u)])
        return px, py

    def depth_for_filter(self, k: int) -> np.ndarray:
        return self.rel[k] if self.rel is not None else self.w.depth[k]


def contact_entries(
    w: Window, model: BodyModel, cfg: ProblemConfig, f_init: float, anchors: np.ndarray
) -> ContactEntries:
    """Contact-scale and static-contact entries of every track (SPEC "Contact entries").

    On each keyframe of a track, the contact vertices nearest a joint are kept
    (:func:`contact_joint_vertices`). A kept vertex also kept on the track's
    previous keyframe with contacts gives a static entry (indexed by the track's
    previous keyframe). A kept vertex that projects (initial focal, principal
    point) inside the image onto a pixel that is not confident scene gives a
    contact-scale entry at the nearest confident pixel, unless the depth ratio of
    the two pixels exceeds ``cfg.depth_filter_ratio``.
    """
    s = cfg.subsample
    W, H = (int(x) for x in w.image_size)
    transl = camera_frame_translations(w, f_init)
    K_init = np.array([[f_init, 0, w.principal_point[0]], [0, f_init, w.principal_point[1]], [0, 0, 1.0]])
    ks = _KeyframeScene(w, cfg)
    vert_ids: dict[int, int] = {}
    scale_rows, static_rows = [], []
    for p in range(w.num_tracks):
        kfs = np.where(w.track_valid[p])[0]
        prev_kept: list[int] = []
        prev_k = -1
        for k in kfs:
            kept, v = contact_joint_vertices(
                model,
                w.track_betas[p, k],
                w.track_rotmats[p, k],
                transl[p, k],
                w.track_contact[p, k],
                cfg.contact_joint_radius,
            )
            if cfg.static_entries == "shared" and prev_k >= 0:
                shared = np.where(w.track_contact[p, k] & w.track_contact[p, prev_k])[0]
                if len(shared) > STATIC_SHARED_MAX:
                    shared = shared[np.round(np.linspace(0, len(shared) - 1, STATIC_SHARED_MAX)).astype(int)]
                static_rows += [(p, k, prev_k, vert_ids.setdefault(int(vid), len(vert_ids))) for vid in shared]
            for vid in kept:
                if cfg.static_entries == "nearest" and prev_k >= 0 and vid in prev_kept:
                    static_rows.append((p, k, prev_k, vert_ids.setdefault(vid, len(vert_ids))))
                x = (
                    K_init if w.focal_scale is None else K_init @ np.diag([w.focal_scale[k], w.focal_scale[k], 1.0])
                ) @ v[vid]  # per-keyframe focal (zoom): scales x, y before the principal point
                if x[2] <= 0:
                    continue
                u, vv = x[0] / x[2], x[1] / x[2]
                if not (0 <= u < W and 0 <= vv < H) or not ks.masks[k].any():
                    continue
                ui, vi = int(u), int(vv)
                if ks.masks[k][vi, ui]:
                    continue  # projects onto valid scene: no entry (reference)
                px, py = ks.nearest(k, u, vv)
                a = int(pixel_anchor(np.array([px]), np.array([py]), H, W, s)[0])
                dmap = ks.depth_for_filter(k)
                pts_z, human_z = dmap[py, px], dmap[vi, ui]
                if max(human_z / pts_z, pts_z / human_z) > cfg.depth_filter_ratio:
                    continue
                scale_rows.append(
                    (
                        p,
                        k,
                        a,
                        w.depth[k, py, px] / anchors[k, a],
                        float(w.conf[k, py, px]),
                        vert_ids.setdefault(vid, len(vert_ids)),
                        np.log(max(float(w.depth[k, py, px]), 1e-9) / float(v[vid][2])),
                    )
                )
            if kept:
                prev_kept = kept
            prev_k = k
            # note: a keyframe without kept contacts resets nothing, as in the reference
    sc = np.array(scale_rows, np.float64).reshape(-1, 7)
    st = np.array(static_rows, np.int64).reshape(-1, 4)
    scale = ScaleEntries(
        track=sc[:, 0].astype(np.int64),
        keyframe=sc[:, 1].astype(np.int64),
        anchor=sc[:, 2].astype(np.int64),
        ratio=sc[:, 3],
        conf=sc[:, 4],
        vertex=sc[:, 5].astype(np.int64),
        log_depth_ratio=sc[:, 6],
    )
    static = StaticEntries(track=st[:, 0], keyframe=st[:, 1], keyframe_prev=st[:, 2], vertex=st[:, 3])
    vids = np.array(sorted(vert_ids, key=vert_ids.get), dtype=np.int64)
    return ContactEntries(scale=scale, static=static, vertex_ids=vids)


def consensus_weights(scale: ScaleEntries, num_tracks: int, sigma: float) -> np.ndarray:
    """(P,) each track's weight on its contact-scale term: how well its people's depth agrees with
    the other people's about the scene's scale (``ProblemConfig.contact_consensus``).

    Every contact-scale entry says how deep the scene is under a body vertex relative to the body's
    own depth (``log_depth_ratio``: log scene / body depth at the start; the scene's unknown scale is
    the same for everyone). A track's median of these is its vote for the scale; the consensus is the
    median of the votes; a track whose vote differs from it by x (log units) gets the Cauchy weight
    1 / (1 + (x / sigma)^2): one person whose feet sit 23 % deeper than the scene under them (a far
    pedestrian's body fit) weighs 0.18 at sigma 0.1 and cannot drag the shared scene and focal that
    the others agree on. Tracks without entries, one track alone, ``sigma`` <= 0: weight 1."""
    w = np.ones(num_tracks)
    if sigma <= 0 or scale.log_depth_ratio is None or not len(scale.track):
        return w
    votes = {p: float(np.median(scale.log_depth_ratio[scale.track == p])) for p in np.unique(scale.track)}
    if len(votes) < 2:
        return w
    centre = float(np.median(list(votes.values())))
    for p, v in votes.items():
        w[int(p)] = 1.0 / (1.0 + ((v - centre) / sigma) ** 2)
    return w


def smooth_triples(track_valid: np.ndarray) -> SmoothTriples:
    """Every three consecutive keyframes of each track (its valid keyframes in order)."""
    rows = []
    for p in range(len(track_valid)):
        kfs = np.where(track_valid[p])[0]
        rows += [(p, kfs[t], kfs[t + 1], kfs[t + 2]) for t in range(len(kfs) - 2)]
    sm = np.array(rows, np.int64).reshape(-1, 4)
    return SmoothTriples(track=sm[:, 0], keyframes=sm[:, 1:])


def bucket_sizes(
    num_keyframes: int, num_tracks: int, corr: Correspondences, contacts: ContactEntries, smooth: SmoothTriples
) -> Sizes:
    """Each table's length rounded up to its bucket. Correspondences use a dense
    (pair row, slot) layout, so that per-pair camera parameters broadcast over a
    pair's matches instead of being gathered per match; a pair longer than CHUNK
    slots spans several rows, which keeps padding small."""
    counts = np.bincount(_pair_rows(corr.pairs, num_keyframes)[1]) if len(corr.pairs) else np.zeros(0, np.int64)
    M = min(CHUNK, bucket(counts.max() if len(counts) else 1, 16))
    rows = int(np.ceil(counts / M).sum())
    return Sizes(
        keyframes=keyframe_bucket(num_keyframes),
        pair_rows=bucket(rows, 16),
        row_slots=M,
        tracks=bucket(max(num_tracks, 1), 1),
        scale_entries=bucket(len(contacts.scale.track), 16),
        static_entries=bucket(len(contacts.static.track), 16),
        smooth_triples=bucket(len(smooth.track), 16),
        contact_vertices=bucket(len(contacts.vertex_ids), 16),
    )


def _pair_rows(pairs: np.ndarray, K0: int):
    """(C, 2) keyframe pairs -> (unique pair ids i * K0 + j, pair of each match)."""
    return np.unique(pairs[:, 0] * K0 + pairs[:, 1], return_inverse=True)


def _given_cameras(w: Window, parent, order, median, f_init: float, K: int, base_focal=None) -> dict:
    """Bundle v2: per-keyframe focal scales, and the relative camera variables that reproduce
    ``w.cam_rotation`` with every camera centre at one point (a camera that only rotates).

    In :func:`josh_jax.losses.scene_geometry` a camera with relative pose (R, t) sits at
    t - R offset, offset = z [image_size / f (0.5 - pp), 1], z = median depth x f_k / base_focal_k
    (sizes 1 at the start); choosing T_k.t = R_k offset_k puts every centre at the origin.
    Returns {} for a bundle without these fields (the reference's identity start)."""
    out = {}
    K0 = w.num_keyframes
    fs = np.ones(K0) if w.focal_scale is None else np.asarray(w.focal_scale, np.float64)
    if w.focal_scale is not None:
        out["focal_scale"] = _pad(fs, K, 1.0).astype(np.float32)
    if w.cam_rotation is None:
        return out
    W, H = (float(x) for x in w.image_size)
    size = np.array([W, H])
    pp = np.asarray(w.principal_point) / size
    fk = f_init * fs
    z = median * fk / (w.base_focal if base_focal is None else np.asarray(base_focal, np.float64))
    offset = z[:, None] * np.concatenate([size / fk[:, None] * (0.5 - pp), np.ones((K0, 1))], 1)
    R = np.asarray(w.cam_rotation, np.float64)
    rel_R = np.tile(np.eye(3), (K, 1, 1))
    rel_t = np.zeros((K, 3))
    root = int(order[0])
    for j in order:
        j = int(j)
        if j == root:
            rel_R[j], rel_t[j] = R[j], R[j] @ offset[j]
        else:
            p = int(parent[j])
            rel_R[j] = R[p].T @ R[j]
            rel_t[j] = R[p].T @ (R[j] @ offset[j] - R[p] @ offset[p])
    out["init_cam_quat"] = _rotmat_to_quat_np(rel_R).astype(np.float32)
    out["init_cam_trans"] = rel_t.astype(np.float32)
    return out


def pair_layout(corr: Correspondences, K0: int, Pr: int, M: int) -> dict:
    """Flat correspondences -> dense (row, slot) arrays, each row one pair's next M
    matches; padding has weight 0. Returns SceneData's pair_img, corr_* fields."""
    pair_ids, pair_of = _pair_rows(corr.pairs, K0)
    order = np.argsort(pair_of, kind="stable")
    starts = np.searchsorted(pair_of[order], np.arange(len(pair_ids)))
    idx_in_pair = np.empty(len(order), np.int64)
    idx_in_pair[order] = np.arange(len(order)) - starts[pair_of[order]]
    counts = np.bincount(pair_of, minlength=len(pair_ids))
    row_start = np.concatenate([[0], np.cumsum(np.ceil(counts / M).astype(np.int64))])
    if row_start[-1] > Pr:
        raise ValueError(f"cannot pad {row_start[-1]} rows of {M} matches into {Pr}")
    row_pair = np.repeat(np.arange(len(pair_ids)), np.diff(row_start))
    row = row_start[pair_of] + idx_in_pair // M  # the row of each match
    slot = idx_in_pair % M
    pair_ids = pair_ids[row_pair]
    out = dict(
        pair_img=np.zeros((Pr, 2), np.int32),
        corr_pix=np.zeros((2, 2, Pr, M), np.float32),
        corr_anchor=np.zeros((2, Pr, M), np.int32),
        corr_ratio=np.ones((2, Pr, M), np.float32),
        corr_w=np.zeros((Pr, M), np.float32),
    )
    out["pair_img"][: len(pair_ids)] = np.stack([pair_ids // K0, pair_ids % K0], 1)
    out["corr_pix"][:, :, row, slot] = corr.pix.transpose(1, 2, 0)
    out["corr_anchor"][:, row, slot] = corr.anchor.T
    out["corr_ratio"][:, row, slot] = corr.ratio.T
    out["corr_w"][row, slot] = corr.conf
    return out


def padded_entries(contacts: ContactEntries, smooth: SmoothTriples, sz: Sizes) -> dict:
    """Entry tables padded to their buckets (weight 0 = padding): HumanData's scale_*, static_*, smooth_*."""
    sc, st, sm = contacts.scale, contacts.static, smooth
    E, S, Ms = sz.scale_entries, sz.static_entries, sz.smooth_triples
    return dict(
        scale_track=_pad(sc.track, E).astype(np.int32),
        scale_kf=_pad(sc.keyframe, E).astype(np.int32),
        scale_anchor=_pad(sc.anchor, E).astype(np.int32),
        scale_ratio=_pad(sc.ratio, E, 1.0).astype(np.float32),
        scale_w=_pad(sc.conf, E).astype(np.float32),
        scale_vert=_pad(sc.vertex, E).astype(np.int32),
        static_track=_pad(st.track, S).astype(np.int32),
        static_kf=_pad(st.keyframe, S).astype(np.int32),
        static_kf_prev=_pad(st.keyframe_prev, S).astype(np.int32),
        static_vert=_pad(st.vertex, S).astype(np.int32),
        static_w=_pad(np.ones(len(st.track)), S).astype(np.float32),
        smooth_track=_pad(sm.track, Ms).astype(np.int32),
        smooth_kf=_pad(sm.keyframes, Ms).astype(np.int32),
        smooth_w=_pad(np.ones(len(sm.track)), Ms).astype(np.float32),
    )


def scene_data(
    w: Window,
    anchors: SceneAnchors,
    corr: Correspondences,
    f_init: float,
    base_focal: str,
    enforce_scale: bool,
    sz: Sizes,
) -> SceneData:
    """Assemble the padded scene part (camera tree, anchors, pair layout)."""
    K0, K = w.num_keyframes, sz.keyframes
    W, H = (int(x) for x in w.image_size)
    parent, order = camera_tree(w.pair_index, w.pair_score, K0)
    bf = np.full(K0, f_init) if base_focal == "initial" else w.base_focal
    return SceneData(
        kf_valid=_pad(np.ones(K0, bool), K, False),
        anchor_depth=_pad(anchors.normalized, K, 1.0).astype(np.float32),
        median_depth=_pad(anchors.median, K, 1.0).astype(np.float32),
        base_focal=_pad(bf, K, f_init).astype(np.float32),
        image_size=np.array([W, H], np.float32),
        pp=(np.asarray(w.principal_point) / np.array([W, H])).astype(np.float32),
        tree_parent=np.concatenate([parent, np.full(K - K0, order[0], np.int32)]).astype(np.int32),
        tree_order=np.concatenate([order, np.arange(K0, K, dtype=np.int32)]).astype(np.int32),
        **pair_layout(corr, K0, sz.pair_rows, sz.row_slots),
        enforce_scale=np.array(enforce_scale),
        **_given_cameras(w, parent, order, anchors.median, f_init, K, bf),
    )


def human_data(
    w: Window,
    model: BodyModel,
    f_init: float,
    contacts: ContactEntries,
    smooth: SmoothTriples,
    sz: Sizes,
    consensus: float = 0.0,
) -> HumanData:
    """Assemble the padded human part: front-end values per (track, keyframe) slot,
    the body model's view on the contact vertices, the entry tables."""
    P0, K0 = w.num_tracks, w.num_keyframes
    P, K = sz.tracks, sz.keyframes
    B = w.track_betas.shape[-1] if P0 else model.num_betas
    if B > model.num_betas:
        raise ValueError(f"the bundle has {B} betas, the body model {model.name!r} {model.num_betas}")
    valid = w.track_valid
    eye = np.broadcast_to(np.eye(3), (P, K, 23, 3, 3))
    rot = np.asarray(w.track_rotmats, np.float64) if P0 else np.zeros((0, K0, 24, 3, 3))
    valid_p = _pad(np.pad(valid, ((0, 0), (0, K - K0))), P, False) if P0 else np.zeros((P, K), bool)
    if P0:
        quat = _pad(np.pad(_rotmat_to_quat_np(rot[:, :, 0]), ((0, 0), (0, K - K0), (0, 0))), P)
    else:
        quat = np.zeros((P, K, 4))
    quat[~valid_p] = [1, 0, 0, 0]
    body = np.array(eye)
    if P0:
        body[:P0, :K0] = rot[:, :, 1:]
        body[~valid_p] = np.eye(3)
    transl = camera_frame_translations(w, f_init)
    tr = _pad(np.pad(transl, ((0, 0), (0, K - K0), (0, 0))), P) if P0 else np.zeros((P, K, 3))
    tr[~valid_p] = [0, 0, 1.0]  # keep padded bodies in front of the camera
    betas = np.zeros((P, B))
    for p in range(P0):
        betas[p] = w.track_betas[p][valid[p]].mean(0) if valid[p].any() else 0.0
    vids = _pad(contacts.vertex_ids, sz.contact_vertices)
    return HumanData(
        valid=valid_p,
        n_frames=valid_p.sum(1).astype(np.float32),
        init_quat=quat.astype(np.float32),
        init_transl=tr.astype(np.float32),
        init_body=body.astype(np.float32),
        init_betas=betas.astype(np.float32),
        body=model.subset(vids),
        vert_ids=vids.astype(np.int32),
        **padded_entries(contacts, smooth, sz),
        scale_track_w=_pad(consensus_weights(contacts.scale, w.num_tracks, consensus), P, 1.0).astype(np.float32),
    )


def build_problem(
    w: Window, model: BodyModel, cfg: ProblemConfig = ProblemConfig(), sizes: Sizes | Mapping | None = None
) -> Problem:
    """Turn one bundle window into a padded :class:`Problem`.

    Steps: :func:`scene_anchors`, :func:`correspondences`, :func:`contact_entries`,
    :func:`smooth_triples`, :func:`bucket_sizes`, then :func:`scene_data` and
    :func:`human_data` pad and assemble. ``sizes`` forces bucket sizes (a
    :class:`Sizes`, or a mapping of some of its field names); by default each
    table is rounded up to its bucket.
    """
    f_init = initial_focal(w, cfg)
    anchors = scene_anchors(w.depth, cfg.subsample, cfg.median)
    corr = correspondences(w, anchors.depth, cfg.subsample)
    contacts = contact_entries(w, model, cfg, f_init, anchors.depth)
    smooth = smooth_triples(w.track_valid)
    sz = bucket_sizes(w.num_keyframes, w.num_tracks, corr, contacts, smooth)
    if isinstance(sizes, Sizes):
        sz = sizes
    elif sizes:
        unknown = set(sizes) - set(Sizes._fields)
        if unknown:
            raise ValueError(f"unknown size names {sorted(unknown)}; known: {', '.join(Sizes._fields)}")
        sz = sz._replace(**sizes)
    if sz.keyframes < w.num_keyframes or sz.tracks < w.num_tracks:
        raise ValueError(f"sizes {sz} are smaller than the window (keyframes={w.num_keyframes}, tracks={w.num_tracks})")
    scene = scene_data(w, anchors, corr, f_init, cfg.base_focal, len(contacts.scale.track) == 0, sz)
    human = human_data(w, model, f_init, contacts, smooth, sz, cfg.contact_consensus)
    return Problem(
        scene=scene,
        human=human,
        init_focal=np.array(f_init, np.float32),
        parents=model.parents,
        body_depth=cfg.body_depth,
    )


def problem_sizes(problem: Problem) -> Sizes:
    """The bucket sizes of a problem (stack problems of equal sizes to vmap them)."""
    s, h = problem.scene, problem.human
    return Sizes(
        keyframes=len(s.kf_valid),
        pair_rows=s.corr_w.shape[0],
        row_slots=s.corr_w.shape[1],
        tracks=len(h.n_frames),
        scale_entries=len(h.scale_w),
        static_entries=len(h.static_w),
        smooth_triples=len(h.smooth_w),
        contact_vertices=len(h.vert_ids),
    )


def entry_counts(problem: Problem) -> dict:
    """Live (non-padding) human entries: contact-scale and static-contact terms."""
    h = problem.human
    return dict(
        contact_scale_entries=int((h.scale_w > 0).sum()),
        static_entries=int((h.static_w > 0).sum()),
        scene_entries=int((problem.scene.corr_w > 0).sum()),
    )
