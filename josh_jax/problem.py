"""Problem building (host side, numpy): from a bundle window to fixed-size padded arrays.

This is where the ragged, branchy work of the reference happens once, before
the solve: keyframe windows, the camera tree, anchors and depth ratios, the
contact-scale / static-contact entries (SPEC "Contact entries"), smoothness
triples and the per-vertex rest data of every vertex a loss reads. Everything
is padded to size buckets with masks (weight 0 = padding), so windows of
similar size share one compiled solver.

Deviations from the reference (josh/joint_opt.py), on purpose:
- static-contact and contact-scale entries index the track's keyframe
  directly; the reference counts only keyframes that had a contact joint, so
  its indices drift after a keyframe without contacts;
- the camera tree's root is the keyframe with the largest summed pair score
  (the tree is then walked breadth first).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

import jax

from .body import BodyModel, forward
from .bundle import Window

_forward_jit = jax.jit(forward)

# ------------------------------------------------------------------ keyframes and windows


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
    starts = [0]
    while num_frames - starts[-1] >= 2 * window - 1:
        starts.append(starts[-1] + stride)
    return starts


# ------------------------------------------------------------------ buckets


def bucket(n: int, minimum: int = 8) -> int:
    """Round up to the next size of the form {1, 1.25, 1.5, 1.75} x 2^k (>= minimum)."""
    n = max(int(n), minimum)
    p = 1 << (n - 1).bit_length() - 1 if n > 1 else 1
    for m in (1.0, 1.25, 1.5, 1.75, 2.0):
        if n <= int(p * m):
            return int(p * m)
    return 2 * p  # pragma: no cover


KEYFRAME_BUCKETS = (11, 21, 41, 81)
CHUNK = 256  # correspondences per row of the dense pair layout


def keyframe_bucket(k: int) -> int:
    for b in KEYFRAME_BUCKETS:
        if k <= b:
            return b
    return bucket(k)


# ------------------------------------------------------------------ padded problem


class SceneData(NamedTuple):
    """Scene part of a problem. K keyframes (padded), A anchors, C correspondences."""

    kf_valid: np.ndarray  # (K,) bool
    anchor_depth: np.ndarray  # (K, A) anchor depths / their median (padding: 1)
    median_depth: np.ndarray  # (K,) median anchor depth, scene units
    base_focal: np.ndarray  # (K,) point-map focal per keyframe, working px
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


class HumanData(NamedTuple):
    """Human part of a problem. P tracks (padded) x K keyframe slots, U contact vertices."""

    valid: np.ndarray  # (P, K) bool: track seen on keyframe
    n_frames: np.ndarray  # (P,) keyframes per track (0 = padding)
    init_quat: np.ndarray  # (P, K, 4) root orientation wxyz (camera frame)
    init_transl: np.ndarray  # (P, K, 3) camera-frame translation, z rescaled by f_init / f_hmr
    init_body: np.ndarray  # (P, K, 23, 3, 3)
    init_betas: np.ndarray  # (P, B) mean over the track's keyframes
    J_template: np.ndarray  # (24, 3) body model rest joints
    J_shapedirs: np.ndarray  # (24, 3, B)
    vert_ids: np.ndarray  # (U,) body-model vertex id of each table row (padding: 0)
    vert_template: np.ndarray  # (U, 3) rest data of the vertices the losses read
    vert_shapedirs: np.ndarray  # (U, 3, B)
    vert_posedirs: np.ndarray  # (U, 3, Pd)
    vert_weights: np.ndarray  # (U, 24)
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
    smooth_track: np.ndarray  # (M,) smoothness triples: track
    smooth_kf: np.ndarray  # (M, 3) three consecutive keyframes of the track
    smooth_w: np.ndarray  # (M,) 1 or 0 (padding)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Problem:
    """A padded joint problem: a pytree whose leaves are arrays; ``parents`` is static."""

    scene: SceneData
    human: HumanData
    init_focal: np.ndarray  # () shared initial focal, working px
    parents: tuple = dataclasses.field(metadata=dict(static=True))  # body kinematic tree

    def _replace(self, **kw) -> "Problem":
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class ProblemConfig:
    """Host-side choices of the reference (josh/config.py)."""

    conf_thres: float = 0.1
    subsample: int = 8
    depth_filter_ratio: float = 1.01
    contact_joint_radius: float = 0.05  # metres: a contact vertex must lie this close to a joint
    init_focal: float | None = None  # override the bundle's initial focal (working px)


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
    return depth[:, s // 2::s, s // 2::s].reshape(depth.shape[0], -1)


def camera_tree(pair_index: np.ndarray, pair_score: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-score spanning tree of the keyframes -> (parent (K,), breadth-first order (K,))."""
    S = np.zeros((K, K))
    for (i, j), s in zip(pair_index, pair_score):
        S[i, j] += max(float(s), 1e-9)
        S[j, i] += max(float(s), 1e-9)
    n_comp, labels = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(S > 0), directed=False)
    if n_comp > 1:
        raise ValueError(f"the keyframes fall into {n_comp} groups with no matches between them "
                         f"(group of each keyframe: {labels.tolist()}); the scene front end found too few matches")
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
    out = _forward_jit(model, np.asarray(betas, np.float32), np.asarray(rotmats, np.float32),
                       np.asarray(transl, np.float32))
    v = np.asarray(out.vertices)
    return v, np.asarray(model.J_regressor) @ v


def build_problem(w: Window, model: BodyModel, cfg: ProblemConfig = ProblemConfig(), sizes: dict | None = None) -> Problem:
    """Turn one bundle window into a padded :class:`Problem`.

    ``sizes`` can force bucket sizes (keys K, Pr, M, P, E, S, Ms, U); by default
    each is rounded up to its bucket.
    """
    s = cfg.subsample
    K0 = w.num_keyframes
    W, H = (int(x) for x in w.image_size)
    f_init = float(cfg.init_focal or w.init_focal)

    # ---- scene
    anchors = anchor_depths(w.depth, s)
    median = np.median(anchors, axis=1)
    anchor_norm = anchors / median[:, None]
    parent, order = camera_tree(w.pair_index, w.pair_score, K0)

    keep = w.corr_conf > 0
    pi = w.pair_index[w.corr_pair[keep]]  # (C, 2)
    pix = w.corr_pix[keep].astype(np.float64)
    cw = w.corr_conf[keep].astype(np.float64)
    anc = np.stack([pixel_anchor(pix[:, k, 0], pix[:, k, 1], H, W, s) for k in range(2)], 1)
    ratio = np.empty_like(cw, shape=(len(cw), 2))
    for k in range(2):
        xi = np.clip(np.round(pix[:, k, 0]).astype(int), 0, W - 1)
        yi = np.clip(np.round(pix[:, k, 1]).astype(int), 0, H - 1)
        ratio[:, k] = w.depth[pi[:, k], yi, xi] / anchors[pi[:, k], anc[:, k]]

    # ---- humans: contact entries (SPEC "Contact entries")
    P0 = w.num_tracks
    valid = w.track_valid.copy()
    transl = w.track_transl.astype(np.float64).copy()
    transl[..., 2] *= f_init / w.hmr_focal
    K_init = np.array([[f_init, 0, w.principal_point[0]], [0, f_init, w.principal_point[1]], [0, 0, 1.0]])
    vert_ids: dict[int, int] = {}
    scale_rows, static_rows, smooth_rows = [], [], []
    masks = w.conf > cfg.conf_thres
    nearest_cache: dict[int, np.ndarray] = {}
    for p in range(P0):
        kfs = np.where(valid[p])[0]
        prev_kept: list[int] = []
        prev_k = -1
        for k in kfs:
            kept: list[int] = []
            cids = np.where(w.track_contact[p, k])[0]
            if len(cids):
                v, joints = _pose_np(model, w.track_betas[p, k], w.track_rotmats[p, k], transl[p, k])
                pts = v[cids]
                d = np.linalg.norm(joints[:, None] - pts[None], axis=-1)  # (24, n)
                best = d.argmin(1)
                kept = [int(cids[b]) for j, b in enumerate(best) if d[j, b] < cfg.contact_joint_radius]
            for vid in kept:
                if prev_k >= 0 and vid in prev_kept:
                    static_rows.append((p, k, prev_k, vert_ids.setdefault(vid, len(vert_ids))))
                x = (K_init if w.focal_scale is None else K_init @ np.diag([w.focal_scale[k], w.focal_scale[k], 1.0])
                     ) @ v[vid]  # per-keyframe focal (zoom): scales x, y before the principal point
                if x[2] <= 0:
                    continue
                u, vv = x[0] / x[2], x[1] / x[2]
                if not (0 <= u < W and 0 <= vv < H) or not masks[k].any():
                    continue
                ui, vi = int(u), int(vv)
                if masks[k][vi, ui]:
                    continue  # projects onto valid scene: no entry (reference)
                if k not in nearest_cache:
                    _, idx = scipy.ndimage.distance_transform_edt(~masks[k], return_indices=True)
                    nearest_cache[k] = idx
                py, px = (int(a) for a in nearest_cache[k][:, vi, ui])
                a = int(pixel_anchor(np.array([px]), np.array([py]), H, W, s)[0])
                pts_z, human_z = w.depth[k, py, px], w.depth[k, vi, ui]
                if max(human_z / pts_z, pts_z / human_z) > cfg.depth_filter_ratio:
                    continue
                scale_rows.append((p, k, a, pts_z / anchors[k, a], float(w.conf[k, py, px]),
                                   vert_ids.setdefault(vid, len(vert_ids))))
            if kept:
                prev_kept = kept
            prev_k = k
            # note: a keyframe without kept contacts resets nothing, as in the reference
        for t in range(len(kfs) - 2):
            smooth_rows.append((p, kfs[t], kfs[t + 1], kfs[t + 2]))

    # ---- sizes: correspondences in a dense (pair, slot) layout, so that per-pair camera
    # parameters broadcast over a pair's matches instead of being gathered per match
    # parameters broadcast over a pair's matches instead of being gathered per match.
    # A pair longer than CHUNK slots spans several rows, which keeps padding small.
    pair_ids, pair_of = np.unique(pi[:, 0] * K0 + pi[:, 1], return_inverse=True)
    counts = np.bincount(pair_of, minlength=len(pair_ids))
    M = min(CHUNK, bucket(counts.max() if len(counts) else 1, 16))
    rows = int(np.ceil(counts / M).sum())
    sz = dict(K=keyframe_bucket(K0), Pr=bucket(rows, 16), M=M, P=bucket(max(P0, 1), 1),
              E=bucket(len(scale_rows), 16), S=bucket(len(static_rows), 16), Ms=bucket(len(smooth_rows), 16),
              U=bucket(len(vert_ids), 16))
    if sizes:
        sz.update(sizes)
    K, P = sz["K"], sz["P"]
    if K < K0 or P < P0:
        raise ValueError(f"sizes {sz} are smaller than the window (K={K0}, P={P0})")

    kf_valid = _pad(np.ones(K0, bool), K, False)
    tree_parent = np.concatenate([parent, np.full(K - K0, order[0], np.int32)])
    tree_order = np.concatenate([order, np.arange(K0, K, dtype=np.int32)])
    scene = SceneData(
        kf_valid=kf_valid,
        anchor_depth=_pad(anchor_norm, K, 1.0).astype(np.float32),
        median_depth=_pad(median, K, 1.0).astype(np.float32),
        base_focal=_pad(w.base_focal, K, f_init).astype(np.float32),
        image_size=np.array([W, H], np.float32),
        pp=(np.asarray(w.principal_point) / np.array([W, H])).astype(np.float32),
        tree_parent=tree_parent.astype(np.int32),
        tree_order=tree_order.astype(np.int32),
        **_pair_layout(pair_ids, pair_of, K0, pix, anc, ratio, cw, sz["Pr"], sz["M"]),
        enforce_scale=np.array(len(scale_rows) == 0),
        **_given_cameras(w, parent, order, median, f_init, K),
    )

    B = w.track_betas.shape[-1] if P0 else model.num_betas
    eye = np.broadcast_to(np.eye(3), (P, K, 23, 3, 3))
    rot = np.asarray(w.track_rotmats, np.float64) if P0 else np.zeros((0, K0, 24, 3, 3))
    valid_p = _pad(np.pad(valid, ((0, 0), (0, K - K0))), P, False) if P0 else np.zeros((P, K), bool)
    quat = _pad(np.pad(_rotmat_to_quat_np(rot[:, :, 0]), ((0, 0), (0, K - K0), (0, 0))), P) if P0 else np.zeros((P, K, 4))
    quat[~valid_p] = [1, 0, 0, 0]
    body = np.array(eye)
    if P0:
        body[:P0, :K0] = rot[:, :, 1:]
        body[~valid_p] = np.eye(3)
    tr = _pad(np.pad(transl, ((0, 0), (0, K - K0), (0, 0))), P) if P0 else np.zeros((P, K, 3))
    tr[~valid_p] = [0, 0, 1.0]  # keep padded bodies in front of the camera
    n_frames = valid_p.sum(1)
    betas = np.zeros((P, B))
    for p in range(P0):
        betas[p] = w.track_betas[p][valid[p]].mean(0) if valid[p].any() else 0.0

    vids = np.array(sorted(vert_ids, key=vert_ids.get), dtype=np.int64)
    U = sz["U"]
    vt = np.asarray(model.v_template)[vids] if len(vids) else np.zeros((0, 3))
    Bm = model.num_betas
    if B > Bm:
        raise ValueError(f"the bundle has {B} betas, the body model {model.name!r} {Bm}")
    human = HumanData(
        valid=valid_p,
        n_frames=n_frames.astype(np.float32),
        init_quat=quat.astype(np.float32),
        init_transl=tr.astype(np.float32),
        init_body=body.astype(np.float32),
        init_betas=betas.astype(np.float32),
        J_template=np.asarray(model.J_template, np.float32),
        J_shapedirs=np.asarray(model.J_shapedirs, np.float32)[..., :B],
        vert_ids=_pad(vids, U).astype(np.int32),
        vert_template=_pad(vt, U).astype(np.float32),
        vert_shapedirs=_pad(np.asarray(model.shapedirs)[vids][..., :B], U).astype(np.float32),
        vert_posedirs=_pad(np.asarray(model.posedirs)[vids], U).astype(np.float32),
        vert_weights=_pad(np.asarray(model.weights)[vids], U).astype(np.float32),
        **_entries(scale_rows, static_rows, smooth_rows, sz),
    )
    return Problem(scene=scene, human=human, init_focal=np.array(f_init, np.float32), parents=model.parents)


def _given_cameras(w: Window, parent, order, median, f_init: float, K: int) -> dict:
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
    z = median * fk / w.base_focal
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


def _pair_layout(pair_ids, pair_of, K0, pix, anc, ratio, cw, Pr, M) -> dict:
    """Flat correspondences -> dense (row, slot) arrays, each row one pair's next M
    matches; padding has weight 0."""
    order = np.argsort(pair_of, kind="stable")
    starts = np.searchsorted(pair_of[order], np.arange(len(pair_ids)))
    idx_in_pair = np.empty(len(order), np.int64)
    idx_in_pair[order] = np.arange(len(order)) - starts[pair_of[order]]
    counts = np.bincount(pair_of, minlength=len(pair_ids))
    row_start = np.concatenate([[0], np.cumsum(np.ceil(counts / M).astype(np.int64))])
    if row_start[-1] > Pr:
        raise ValueError(f"cannot pad {row_start[-1]} rows of {M} matches into {Pr}")
    row_pair = np.repeat(np.arange(len(pair_ids)), np.diff(row_start))
    pair_of = row_start[pair_of] + idx_in_pair // M  # now: the row of each match
    slot = idx_in_pair % M
    pair_ids = pair_ids[row_pair]
    out = dict(pair_img=np.zeros((Pr, 2), np.int32), corr_pix=np.zeros((2, 2, Pr, M), np.float32),
               corr_anchor=np.zeros((2, Pr, M), np.int32), corr_ratio=np.ones((2, Pr, M), np.float32),
               corr_w=np.zeros((Pr, M), np.float32))
    out["pair_img"][:len(pair_ids)] = np.stack([pair_ids // K0, pair_ids % K0], 1)
    out["corr_pix"][:, :, pair_of, slot] = pix.transpose(1, 2, 0)
    out["corr_anchor"][:, pair_of, slot] = anc.T
    out["corr_ratio"][:, pair_of, slot] = ratio.T
    out["corr_w"][pair_of, slot] = cw
    return out


def _entries(scale_rows, static_rows, smooth_rows, sz) -> dict:
    sc = np.array(scale_rows, np.float64).reshape(-1, 6)
    st = np.array(static_rows, np.int64).reshape(-1, 4)
    sm = np.array(smooth_rows, np.int64).reshape(-1, 4)
    E, S, M = sz["E"], sz["S"], sz["Ms"]
    return dict(
        scale_track=_pad(sc[:, 0], E).astype(np.int32), scale_kf=_pad(sc[:, 1], E).astype(np.int32),
        scale_anchor=_pad(sc[:, 2], E).astype(np.int32), scale_ratio=_pad(sc[:, 3], E, 1.0).astype(np.float32),
        scale_w=_pad(sc[:, 4], E).astype(np.float32), scale_vert=_pad(sc[:, 5], E).astype(np.int32),
        static_track=_pad(st[:, 0], S).astype(np.int32), static_kf=_pad(st[:, 1], S).astype(np.int32),
        static_kf_prev=_pad(st[:, 2], S).astype(np.int32), static_vert=_pad(st[:, 3], S).astype(np.int32),
        static_w=_pad(np.ones(len(st)), S).astype(np.float32),
        smooth_track=_pad(sm[:, 0], M).astype(np.int32), smooth_kf=_pad(sm[:, 1:], M).astype(np.int32),
        smooth_w=_pad(np.ones(len(sm)), M).astype(np.float32),
    )


def problem_sizes(problem: Problem) -> dict:
    """The bucket sizes of a problem (stack problems of equal sizes to vmap them)."""
    s, h = problem.scene, problem.human
    return dict(K=len(s.kf_valid), Pr=s.corr_w.shape[0], M=s.corr_w.shape[1], P=len(h.n_frames), E=len(h.scale_w),
                S=len(h.static_w), Ms=len(h.smooth_w), U=len(h.vert_template))


def entry_counts(problem: Problem) -> dict:
    """Live (non-padding) human entries: contact-scale and static-contact terms."""
    h = problem.human
    return dict(contact_scale_entries=int((h.scale_w > 0).sum()), static_entries=int((h.static_w > 0).sum()))
