"""JOSH3R, the reference's feed-forward alternative to the joint optimization (``--method josh3r``).

As the reference's ``inference_josh3r``: over the first person track's frames, pairs three frames
apart (:func:`josh_jax.frontends.official.josh3r.select_pairs`) each give the root's relative motion
in the head frame's human frame; :func:`accumulate` chains them into the root's world trajectory
(``smpl_to_w``), :func:`interpolate_se3` brings it to every tracked frame, the cameras are
``c_to_w = smpl_to_w @ inv(smpl_to_c)`` with ``smpl_to_c`` the human front end's root in the camera,
and every 10th pair's head point map (times its metric scale) is put in the world by its camera.
Other tracks are placed through these cameras (``world = c_to_w @ smpl_to_c``).

Two deliberate differences from the reference (docs/josh3r.md): the root frame is the pelvis (SMPL
rotates about the pelvis joint, so ``[R | transl]`` alone is not the body's rigid frame: with it the
body and the camera disagree whenever the root turns), and the world is then re-expressed in the
first frame's camera (the project's convention, docs/conventions.md). Metres, OpenCV camera axes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

POINT_STEP = 10  # every 10th pair's point map goes into the cloud (the reference's ``step_idx % 10``)


def accumulate(rel_R: np.ndarray, rel_t: np.ndarray) -> np.ndarray:
    """(N, 3, 3), (N, 3) relative root motions, each in the previous root's frame -> (N + 1, 4, 4) root
    poses, the first the identity: ``R_{k+1} = R_k rel_R_k``, ``t_{k+1} = t_k + R_k rel_t_k``."""
    n = len(rel_R)
    T = np.tile(np.eye(4), (n + 1, 1, 1))
    for k in range(n):
        T[k + 1, :3, :3] = T[k, :3, :3] @ rel_R[k]
        T[k + 1, :3, 3] = T[k, :3, 3] + T[k, :3, :3] @ rel_t[k]
    return T


def relative_motions(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`accumulate`: (N + 1, 4, 4) poses -> (N, 3, 3), (N, 3) relative motions."""
    R, t = T[:, :3, :3], T[:, :3, 3]
    rel_R = np.einsum("kba,kbc->kac", R[:-1], R[1:])
    rel_t = np.einsum("kba,kb->ka", R[:-1], t[1:] - t[:-1])
    return rel_R, rel_t


def interpolate_se3(T: np.ndarray, times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(K, 4, 4) poses at increasing ``times`` -> (Q, 4, 4) at ``query`` (inside [times[0], times[-1]]):
    linear translation, slerp rotation (as the reference's ``interpolate_se3``)."""
    from scipy.spatial.transform import Rotation, Slerp

    times = np.asarray(times, np.float64)
    query = np.asarray(query, np.float64)
    out = np.tile(np.eye(4), (len(query), 1, 1))
    if len(times) == 1:
        out[:] = T[0]
        return out
    out[:, :3, 3] = np.stack([np.interp(query, times, T[:, i, 3]) for i in range(3)], -1)
    out[:, :3, :3] = Slerp(times, Rotation.from_matrix(T[:, :3, :3]))(query).as_matrix()
    return out


def root_poses(model, rotmats: np.ndarray, transl: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 4, 4) the root (pelvis) frame in the camera: rotation = the root rotation, origin = the
    pelvis ``J0 + transl`` (SMPL rotates about J0)."""
    import jax.numpy as jnp

    from .body import rest_joints

    J0 = np.asarray(rest_joints(model, jnp.asarray(betas, jnp.float32)))[0].astype(np.float64)
    T = np.tile(np.eye(4), (len(rotmats), 1, 1))
    T[:, :3, :3] = rotmats[:, 0]
    T[:, :3, 3] = np.asarray(transl, np.float64) + J0
    return T


def mean_betas(betas: np.ndarray, num_betas: int) -> np.ndarray:
    b = np.asarray(betas, np.float64)
    b = b.mean(0) if b.ndim == 2 else b
    out = np.zeros(num_betas)
    out[: min(num_betas, len(b))] = b[:num_betas]
    return out


class Motion(NamedTuple):
    """JOSH3R's per-pair outputs over one track, ready to turn into results."""

    pair_frames: np.ndarray  # (N + 1,) clip frames of the pair heads (and the last tail)
    rel_R: np.ndarray  # (N, 3, 3)
    rel_t: np.ndarray  # (N, 3) metres
    points: list  # [(clip frame, (M, 3) points in that frame's camera, (M, 3) uint8 colours)]
    median_depth: np.ndarray | None = None  # (N,) median z of each head's metric point map (its 0.5 crop), m
    lead: int = 0  # the track id the motion was run on


def save_motion(path, motion: Motion) -> None:
    """``motion`` -> one npz (the work folder's ``josh3r_motion.npz``, so a resumed run skips the pairs)."""
    from .results import save_npz

    arrays = {"pair_frames": motion.pair_frames, "rel_R": motion.rel_R, "rel_t": motion.rel_t}
    arrays["lead"] = np.array(motion.lead)
    if motion.median_depth is not None:
        arrays["median_depth"] = motion.median_depth
    arrays["point_frames"] = np.array([f for f, _, _ in motion.points], np.int64)
    for i, (_, X, c) in enumerate(motion.points):
        arrays[f"points_{i}"], arrays[f"colors_{i}"] = X, c
    save_npz(path, arrays)


def load_motion(path) -> Motion:
    from .npz import read_npz

    z = read_npz(path, what="JOSH3R motion file")
    pts = [(int(f), z[f"points_{i}"], z[f"colors_{i}"]) for i, f in enumerate(z["point_frames"])]
    return Motion(z["pair_frames"], z["rel_R"], z["rel_t"], pts, z.get("median_depth"), int(z["lead"]))


def cameras_from_motion(motion: Motion, frames: np.ndarray, smpl_to_c: np.ndarray) -> np.ndarray:
    """(T, 4, 4) camera -> world on the track's ``frames`` (T,): the accumulated root trajectory
    interpolated to them, times ``inv(smpl_to_c)`` (T, 4, 4). World = the first root frame."""
    smpl_to_w = interpolate_se3(accumulate(motion.rel_R, motion.rel_t), motion.pair_frames, frames)
    return smpl_to_w @ np.linalg.inv(smpl_to_c)


def build_results(motion: Motion, tracks: dict, model, K: np.ndarray, image_size, lead: int | None = None):
    """:class:`josh_jax.results.Results` of JOSH3R's motion.

    ``tracks``: {id: :class:`josh_jax.frontends.TrackFit`} (camera frame, metres); ``lead`` the track the
    motion was run on (default: the lowest id); ``K`` (3, 3) intrinsics in original pixels,
    ``image_size`` original (W, H). Rows: every frame from the lead track's first to its last; the
    cameras between its tracked frames are interpolated (SE(3)); world = the first row's camera."""
    import jax.numpy as jnp

    from .body import forward
    from .results import Results, empty_people, interpolate_cameras

    ids = sorted(tracks)
    lead = ids[0] if lead is None else lead
    tr0 = tracks[lead]
    f0 = np.asarray(tr0.frames, np.int64)
    b0 = mean_betas(tr0.betas, model.num_betas)
    c2w_tracked = cameras_from_motion(motion, f0, root_poses(model, tr0.rotmats, tr0.transl, b0))
    frames = np.arange(f0[0], f0[-1] + 1)
    c2w = interpolate_cameras(c2w_tracked, f0, frames).astype(np.float64)
    fix = np.linalg.inv(c2w[0])
    c2w = fix @ c2w
    row = {int(f): i for i, f in enumerate(frames)}
    P, F = len(ids), len(frames)
    out = empty_people(P, F)
    markers = model.vertex_set("foot_markers")
    betas = np.zeros((P, model.num_betas))
    for p, tid in enumerate(ids):
        tr = tracks[tid]
        betas[p] = b = mean_betas(tr.betas, model.num_betas)
        fr = np.asarray(tr.frames, np.int64)
        keep = np.array([int(f) in row for f in fr], bool)
        if not keep.any():
            continue
        idx = np.array([row[int(f)] for f in fr[keep]])
        s2c = root_poses(model, tr.rotmats[keep], tr.transl[keep], b)
        s2w = c2w[idx] @ s2c  # the lead track: smpl_to_w (re-expressed in the first camera)
        J0 = s2c[0, :3, 3] - np.asarray(tr.transl[keep][0], np.float64)
        rot = np.concatenate([s2w[:, None, :3, :3], np.asarray(tr.rotmats[keep][:, 1:], np.float64)], 1)
        t_w = s2w[:, :3, 3] - J0
        posed = forward(
            model, jnp.asarray(b, jnp.float32), jnp.asarray(rot, jnp.float32), jnp.asarray(t_w, jnp.float32), markers
        )
        out["visible"][p, idx] = True
        out["global_orient"][p, idx] = rot[:, 0]
        out["body_pose"][p, idx] = rot[:, 1:]
        out["transl"][p, idx] = t_w
        out["joints_world"][p, idx] = np.asarray(posed.joints)
        out["foot_vertices_world"][p, idx] = np.asarray(posed.vertices)
    pts, cols = [np.zeros((0, 3), np.float32)], [np.zeros((0, 3), np.uint8)]
    for f, X, c in motion.points:
        if int(f) in row:
            T = c2w[row[int(f)]]
            pts.append((X @ T[:3, :3].T + T[:3, 3]).astype(np.float32))
            cols.append(np.asarray(c, np.uint8))
    K = np.asarray(K, np.float32)
    f32 = lambda a: np.asarray(a, np.float32)
    return Results(
        frame_index=frames.astype(np.int64),
        cam_to_world=f32(c2w),
        intrinsics=K,
        intrinsics_per_frame=np.repeat(K[None], F, 0),
        image_size=np.asarray(image_size, np.int64),
        person_ids=np.asarray(ids, np.int64),
        betas=f32(betas),
        points=np.concatenate(pts),
        point_colors=np.concatenate(cols),
        body_model=np.array(model.name),
        **{k: (v if v.dtype == bool else f32(v)) for k, v in out.items()},
    ).validate("josh3r results")


def track_boxes(tr, scale_to_original: float) -> np.ndarray:
    """(T, 4) person boxes in original pixels: the official front ends' boxes, else the box of the
    embedded front end's BlazePose landmarks (working px times ``scale_to_original``)."""
    if tr.boxes is not None:
        return np.asarray(tr.boxes, np.float64)[:, :4]
    if tr.landmarks is None:
        raise ValueError("the track has neither boxes nor landmarks")
    xy = np.asarray(tr.landmarks, np.float64)[..., :2] * scale_to_original
    return np.concatenate([xy.min(1), xy.max(1)], -1)


def run_pairs(
    session, info, track, scale_to_original: float, point_stride: int = 4, lead: int = 0, log=print
) -> Motion:
    """Decode the pair frames of ``track`` (:class:`josh_jax.frontends.TrackFit`) from ``info``'s clip
    and run ``session`` (:class:`josh_jax.frontends.official.josh3r.Josh3rSession`) on every pair.
    ``point_stride``: keep every n-th pixel (both axes) of a point map (the reference keeps all)."""
    from tqdm.auto import tqdm

    from .frontends.official import josh3r as j3
    from .video import iter_frames

    frames = np.asarray(track.frames, np.int64)
    pairs = j3.select_pairs(frames)
    if not pairs:
        raise ValueError(f"the person track has {len(frames)} frame(s); JOSH3R needs at least two")
    size, sf = j3.proc_size(info.width, info.height)
    session.check_size(size)
    boxes = track_boxes(track, scale_to_original) * sf
    need = sorted({int(frames[i]) for pr in pairs for i in pr})
    imgs = {f: j3.preprocess(img, size) for f, img in iter_frames(info, indices=need)}
    gone = [f for f in need if f not in imgs]
    if gone:
        raise ValueError(f"frame {gone[0]} of the clip could not be decoded")
    rel_R, rel_t, points, med = [], [], [], []
    for step, (h, t) in enumerate(tqdm(pairs, desc="JOSH3R pairs", leave=False)):
        o = session.pair(imgs[int(frames[h])], imgs[int(frames[t])], boxes[h], boxes[t])
        rel_R.append(o.rel_R)
        rel_t.append(o.rel_t)
        med.append(float(np.median(o.points[..., 2])))
        if step % POINT_STEP == 0:
            s = slice(None, None, point_stride)
            points.append((int(frames[h]), o.points[s, s].reshape(-1, 3), o.colors[s, s].reshape(-1, 3)))
    pair_frames = np.array([frames[pairs[0][0]]] + [frames[t] for _, t in pairs], np.int64)
    return Motion(pair_frames, np.stack(rel_R), np.stack(rel_t), points, np.array(med), lead)


# ------------------------------------------------------------------ josh3r+joint: the warm start


def keyframe_cameras(motion: Motion, window, model, f_init: float, lead_row: int = 0) -> np.ndarray:
    """(K0, 4, 4) JOSH3R's camera -> world at ``window``'s keyframes (metres, world = the first root
    frame): the root trajectory at the keyframes where the lead track (row ``lead_row`` of the window's
    tracks) is seen, times the inverse of its camera-frame root there (translations with z rescaled to
    the initial focal ``f_init``, as the problem reads them); SE(3)-interpolated between (and held
    beyond) those keyframes."""
    from .problem import camera_frame_translations
    from .results import interpolate_cameras

    kf = np.asarray(window.frame_index, np.int64)
    seen = np.where(window.track_valid[lead_row])[0]
    if len(seen) == 0:
        raise ValueError("the lead person is not seen on any keyframe of the window")
    tr = camera_frame_translations(window, f_init)[lead_row, seen]
    b = mean_betas(window.track_betas[lead_row][seen], model.num_betas)
    s2c = root_poses(model, np.asarray(window.track_rotmats[lead_row][seen], np.float64), tr, b)
    f = np.clip(kf[seen], motion.pair_frames[0], motion.pair_frames[-1])
    c2w = cameras_from_motion(motion, f, s2c)
    return interpolate_cameras(c2w, kf[seen], np.clip(kf, kf[seen][0], kf[seen][-1])).astype(np.float64)


def keyframe_scales(motion: Motion, window) -> np.ndarray:
    """(K0,) metres per scene depth unit of each keyframe: JOSH3R's metric median depth of the nearest
    pair head over the window's median depth of the same 0.5 centre crop."""
    from .frontends.official.josh3r import CROP_SCALE

    if motion.median_depth is None:
        raise ValueError("the motion has no point-map depths")
    K0, H, W = window.depth.shape
    h, w = int(H * CROP_SCALE), int(W * CROP_SCALE)
    y0, x0 = (H - h) // 2, (W - w) // 2
    heads = np.asarray(motion.pair_frames[:-1])
    out = np.ones(K0)
    for k, f in enumerate(window.frame_index):
        d = window.depth[k, y0 : y0 + h, x0 : x0 + w]
        ok = window.conf[k, y0 : y0 + h, x0 : x0 + w] > 0
        scene = float(np.median(d[ok] if ok.any() else d))
        out[k] = float(motion.median_depth[int(np.abs(heads - f).argmin())]) / scene
    return out


def default_start(problem) -> object:
    """``problem`` with the reference's start written out (identity relative cameras, zero
    translations, unit sizes; the front end's cameras kept where it gave them): the same start as
    None fields give in :func:`josh_jax.losses.init_params`, with the pytree structure of
    :func:`warm_start`'s problems, so that warmed and unwarmed windows stack in one vmapped solve."""
    s = problem.scene
    K = s.kf_valid.shape[0]
    quat = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (K, 1))
    scene = s._replace(
        init_cam_quat=quat if s.init_cam_quat is None else s.init_cam_quat,
        init_cam_trans=np.zeros((K, 3), np.float32) if s.init_cam_trans is None else s.init_cam_trans,
        init_log_size=np.zeros(K, np.float32) if s.init_log_size is None else s.init_log_size,
    )
    return problem._replace(scene=scene)


def warm_start(problem, window, cam_to_world: np.ndarray, scale) -> object:
    """``problem`` starting at the metric cameras ``cam_to_world`` (K0, 4, 4) (any world, metres) with
    depth sizes that make each keyframe's scene metric (``scale``: metres per scene depth unit, (K0,)
    or a number), instead of the reference's identity cameras and unit sizes.

    In :func:`josh_jax.losses.scene_geometry` keyframe k's camera centre is g (T_k.t - R_k offset_k),
    offset_k = z_k [image_size / f (0.5 - pp), 1], z_k = size_k x median_k x f / base_focal_k (its
    median depth); so size_k = scale_k base_focal_k / f makes z_k metric, and T_k = [R_k | c_k +
    R_k offset_k], chained along the problem's camera tree (relative poses), puts the centres at g c_k,
    in the world unit of the depths (g x metres; g = 1 without the contact-scale entries)."""
    from .problem import _rotmat_to_quat_np

    s = problem.scene
    K0 = window.num_keyframes
    K = s.kf_valid.shape[0]
    f = float(np.asarray(problem.init_focal))
    Wimg, Himg = (float(x) for x in np.asarray(s.image_size))
    diag = np.hypot(Wimg, Himg)
    f = float(np.clip(f, 0.25 * diag, 10.0 * diag))
    fs = np.ones(K) if s.focal_scale is None else np.asarray(s.focal_scale, np.float64)
    bf = np.asarray(s.base_focal, np.float64)
    med = np.asarray(s.median_depth, np.float64)
    size = np.ones(K)
    size[:K0] = np.broadcast_to(np.asarray(scale, np.float64), (K0,)) * bf[:K0] / (f * fs[:K0])
    if not np.all(np.isfinite(size) & (size > 0)):
        raise ValueError("the warm start's scene scales must be positive and finite")
    fk = f * fs
    z = size * med * fk / bf
    pp = np.asarray(s.pp, np.float64)
    img = np.array([Wimg, Himg])
    offset = z[:, None] * np.concatenate([img[None] / fk[:, None] * (0.5 - pp), np.ones((K, 1))], 1)
    T = np.tile(np.eye(4), (K, 1, 1))
    T[:K0, :3, :3] = cam_to_world[:, :3, :3]
    # the anchor depths come out g x metric (z_k = scale_k x median_k), so the centres must be g x c_k:
    # scene_geometry's g (T_k.t - R_k offset_k) with T_k.t = c_k + R_k offset_k (whatever the base focal)
    T[:K0, :3, 3] = cam_to_world[:, :3, 3] + np.einsum("kab,kb->ka", cam_to_world[:, :3, :3], offset[:K0])
    parent, order = np.asarray(s.tree_parent), np.asarray(s.tree_order)
    rel = np.tile(np.eye(4), (K, 1, 1))
    for j in order[:K0]:
        j = int(j)
        rel[j] = T[j] if j == int(order[0]) else np.linalg.inv(T[int(parent[j])]) @ T[j]
    scene = s._replace(
        init_cam_quat=_rotmat_to_quat_np(rel[:, :3, :3]).astype(np.float32),
        init_cam_trans=rel[:, :3, 3].astype(np.float32),
        init_log_size=np.log(size).astype(np.float32),
    )
    return problem._replace(scene=scene)
