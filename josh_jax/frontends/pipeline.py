"""The embedded default front ends, end to end: video -> front-end bundle.

Stages (each timed, with a progress bar): people tracking on every frame
(SSDLite person boxes and BlazePose landmarks, global assignment; see
:mod:`.tracker`) -> structure from motion on the keyframes with people masked (or the
static-camera scene) -> body fit per track -> stance contacts (feet that stay put in
the reconstructed world; see :mod:`.contact`) -> one bundle
window per solve window. The whole clip shares one reconstruction, so windows
of a long video see one scene.

Besides the windows, :func:`run_frontends` returns the per-frame fits of every
track (``tracks.npz`` in the bundle folder): what the overlay draws between
keyframes.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..body.model import BodyModel
from ..bundle import Window, pair_fields
from ..problem import keyframe_indices, window_starts
from . import blazepose as bp
from .bodyfit import FitResult, fit_track
from .contact import label_soles, motion_stance, stance_contacts
from .onnx_models import FrontEndError
from .person_detector import PersonDetector
from .sfm import depth_and_conf, run_sfm, scene_arrays
from .tracker import track_people
from .video import VideoInfo, iter_frames


@dataclass(frozen=True)
class FrontEndConfig:
    """Choices of the embedded front ends (all overridable from the CLIs)."""

    work_side: int = 512  # long side of the working images (scene, bundle pixels)
    pose_side: int = 1280  # long side of the frames given to BlazePose
    opt_interval: int = 5  # frames between keyframes (reference: 5)
    window: int = 101  # frames per solve window (reference: 101)
    stride: int = 90  # first frames of consecutive windows; 90 shares 3 keyframes with the next window
    # for the similarity that joins them (the reference uses 100: one shared frame, rigid chain)
    max_people: int = 4
    min_track_frames: int = 15
    static_camera: bool = False  # skip SfM: fixed camera, ground plane from the feet
    focal: float | None = None  # working px; default: SfM's, or 1.2 x long side for a static camera
    principal: tuple | None = None  # (cx, cy) working px (from --intrinsics); default: the image centre
    fixed_intrinsics: bool = False  # SfM holds focal and principal (--intrinsics without --free-intrinsics)
    device: str = "auto"  # onnxruntime: auto | cpu | gpu
    models_dir: str | None = None
    threads: int | None = None
    fit_iters: int = 400
    mask_dilate: int = 7  # working px added around person masks
    sfm_overlap: int = 10  # SfM matches each keyframe with this many following ones
    pair_window: int = 10  # keyframe pairs up to this far apart give correspondences (reference: window-10)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")


def clip_keyframes(num_frames: int, cfg: FrontEndConfig) -> list[np.ndarray]:
    """Keyframes (clip frame indices) of every solve window."""
    return [keyframe_indices(num_frames, s, cfg.opt_interval, cfg.window)
            for s in window_starts(num_frames, cfg.window, cfg.stride)]


@dataclass
class FrontEndOutput:
    windows: list
    tracks: dict  # track id -> dict(frames, rotmats, betas, transl, contact, landmarks), every tracked frame
    meta: dict
    seconds: dict


def _static_scene(kf: np.ndarray, size, focal: float, fits: dict, model: BodyModel, contacts: dict,
                  person: np.ndarray, grid: int = 16) -> dict:
    """Static camera: one pose for all keyframes, the ground plane under the feet as the scene depth,
    and identity pixel matches between neighbouring keyframes."""
    from ..body.model import forward

    w, h = size
    K = len(kf)
    pts, ups = [], []
    for tid, f in fits.items():
        c = contacts[tid]
        verts = np.asarray(forward(model, f.betas, f.rotmats, f.transl).vertices)
        for t in range(len(verts)):
            if c[t].any():
                pts.append(verts[t][c[t]])
                ups.append(f.rotmats[t, 0, :, 1])
    if not pts:
        raise FrontEndError("static-camera mode needs a person with feet on the ground to place the ground plane; "
                            "none was found")
    up = np.mean(ups, 0)
    up /= np.linalg.norm(up)
    height = np.median(np.concatenate(pts) @ up)
    gy, gx = np.mgrid[0:h, 0:w]
    rays = np.stack([(gx - w / 2) / focal, (gy - h / 2) / focal, np.ones_like(gx, float)], -1)
    denom = rays @ up
    with np.errstate(divide="ignore", invalid="ignore"):
        z = height / denom
    far = 30.0
    hit = np.isfinite(z) & (z > 0) & (z < far)
    depth = np.where(hit, z, far).astype(np.float32)
    conf = np.where(hit, 1.0, 0.5).astype(np.float32)
    depth = np.broadcast_to(depth, (K, h, w)).copy()
    conf = np.broadcast_to(conf, (K, h, w)).copy()
    conf[person] = 0.0
    ys, xs = np.mgrid[grid // 2:h:grid, grid // 2:w:grid]
    xy = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    matches = []
    for i in range(K - 1):
        ok = ~person[i][xy[:, 1].astype(int), xy[:, 0].astype(int)] & ~person[i + 1][xy[:, 1].astype(int), xy[:, 0].astype(int)]
        matches.append((i, i + 1, xy[ok], xy[ok], np.ones(int(ok.sum()), np.float32)))
    arrays = dict(depth=depth, conf=conf, **pair_fields(matches))
    return arrays


def run_frontends(info: VideoInfo, model: BodyModel, cfg: FrontEndConfig = FrontEndConfig(),
                  progress: bool = True, log=print) -> FrontEndOutput:
    """Run the embedded front ends on a checked clip (see :func:`josh_jax.frontends.video.probe`)."""
    T = info.num_frames
    if T < 2 * cfg.opt_interval + 1:
        raise FrontEndError(f"the clip has {T} frames; a window needs at least {2 * cfg.opt_interval + 1} "
                            f"(3 keyframes, one every {cfg.opt_interval} frames)")
    windows_kf = clip_keyframes(T, cfg)
    all_kf = np.unique(np.concatenate(windows_kf))
    work = info.size_at(cfg.work_side)
    pose = info.size_at(cfg.pose_side)
    to_work = work[0] / pose[0]
    seconds = {}

    # ---- people
    t0 = time.perf_counter()
    model_bp = bp.BlazePose(cfg.models_dir, cfg.device, cfg.threads)
    detector = PersonDetector(cfg.models_dir, cfg.device, cfg.threads)
    with _bar(T, "people (SSDLite + BlazePose)", progress) as bar:
        frames = (im for _, im in iter_frames(info, cfg.pose_side))
        tracks, masks = track_people(model_bp, detector, frames, info.fps, cfg.max_people, cfg.min_track_frames,
                                     mask_frames=set(int(k) for k in all_kf), mask_size=work, progress=bar.update)
    seconds["people"] = time.perf_counter() - t0
    if not tracks:
        raise FrontEndError(f"no person was found in {info.path.name} (a person must be seen whole, at least "
                            f"{cfg.min_track_frames} frames long)")
    log(f"[frontends] {len(tracks)} person track(s): " + ", ".join(
        f"#{t.track_id} frames {t.frames[0]}-{t.frames[-1]} ({len(t.frames)})" for t in tracks))
    kernel = np.ones((2 * cfg.mask_dilate + 1,) * 2, np.uint8)
    person = np.stack([cv2.dilate((masks[int(k)] > 0.5).astype(np.uint8), kernel) > 0 for k in all_kf])

    # ---- scene
    t0 = time.perf_counter()
    images = np.stack([im for _, im in iter_frames(info, cfg.work_side, all_kf)])
    if len(images) != len(all_kf):
        raise FrontEndError(f"{info.path.name}: only {len(images)} of {len(all_kf)} keyframes could be decoded "
                            "(truncated video?)")
    if not cfg.static_camera:
        log(f"[frontends] structure from motion on {len(all_kf)} keyframes ({work[0]}x{work[1]}) ...")
        sfm = run_sfm(list(images), list(person), focal_prior=cfg.focal, overlap=cfg.sfm_overlap,
                      principal_prior=cfg.principal, fixed_intrinsics=cfg.fixed_intrinsics)
        focal, principal = sfm.focal, sfm.principal
        log(f"[frontends] registered {sfm.registered.sum()}/{len(all_kf)} keyframes, {len(sfm.points)} points, "
            f"focal {focal:.1f} px (structure from motion: {time.perf_counter() - t0:.1f} s)")
    else:
        sfm = None
        focal = float(cfg.focal or 1.2 * max(work))
        principal = np.array(cfg.principal or [work[0] / 2, work[1] / 2], np.float64)
    seconds["scene"] = time.perf_counter() - t0

    # ---- bodies
    t0 = time.perf_counter()
    fits: dict[int, FitResult] = {}
    arrs = {tr.track_id: tr.arrays() for tr in tracks}
    frames_of = {tid: a["frames"] for tid, a in arrs.items()}
    lm_work = {tid: a["image"] * np.float32(to_work) for tid, a in arrs.items()}  # landmarks, working px
    with _bar(len(tracks), "body fit", progress) as bar:
        for tid, a in arrs.items():
            fits[tid] = fit_track(model, a["world"], lm_work[tid], a["visibility"], focal, principal,
                                  iters=cfg.fit_iters)
            bar.update(1)
    seconds["body_fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log(f"[frontends] contacts and scene depth for {len(fits)} track(s) ...")
    contacts = {tid: stance_contacts(model, f.rotmats, f.betas) for tid, f in fits.items()}
    depth_conf = None
    kpos = {int(k): i for i, k in enumerate(all_kf)}  # clip frame -> keyframe position
    if sfm is not None:
        # on keyframes, stance from the feet staying put in the reconstructed world
        depth_conf = depth_and_conf(sfm, work, person)
        Kmat = np.array([[focal, 0, principal[0]], [0, focal, principal[1]], [0, 0, 1.0]])
        for tid in fits:
            rows = {kpos[int(fr)]: r for r, fr in enumerate(frames_of[tid])
                    if int(fr) in kpos and sfm.registered[kpos[int(fr)]]}
            if not rows:
                continue
            lms = {k: lm_work[tid][r, :, :2] for k, r in rows.items()}
            stance = motion_stance(lms, depth_conf[0], Kmat, sfm.cam_from_world)
            has_nb = [k for k in rows if (k - 1 in rows) or (k + 1 in rows)]
            if not has_nb:
                continue
            f = fits[tid]
            r_idx = np.array([rows[k] for k in has_nb])
            contacts[tid][r_idx] = label_soles(model, f.rotmats[r_idx], f.betas, stance[has_nb])
    seconds["contact"] = time.perf_counter() - t0
    log(f"[frontends] contacts: done in {seconds['contact']:.1f} s")

    # ---- windows
    t0 = time.perf_counter()
    if cfg.static_camera:
        scene_all = _static_scene(all_kf, work, focal, fits, model, contacts, person)
    out_windows = []
    for kf in windows_kf:
        idx = np.array([kpos[int(k)] for k in kf])
        if sfm is not None:
            idx = idx[sfm.registered[idx]]
            if len(idx) < 3:
                raise FrontEndError(f"frames {kf[0]}-{kf[-1]}: only {len(idx)} keyframes registered by structure "
                                    "from motion; the camera may not move there (try --static-camera)")
            sub = dataclasses.replace(sfm, registered=sfm.registered[idx], cam_from_world=sfm.cam_from_world[idx],
                                      obs=tuple(sfm.obs[i] for i in idx))
            scene = scene_arrays(sub, work, person[idx], pair_window=cfg.pair_window,
                                 depth_conf=(depth_conf[0][idx], depth_conf[1][idx]))
        else:
            scene = _window_of_static(scene_all, idx)
        if len(scene["pair_index"]) == 0:
            raise FrontEndError(f"frames {kf[0]}-{kf[-1]}: no keyframe pair shares enough scene points")
        frame_index = all_kf[idx]
        out_windows.append(_window(frame_index, images[idx], scene, fits, frames_of, contacts, model, focal,
                                   principal, work, info, cfg))
    seconds["assemble"] = time.perf_counter() - t0
    tracks_out = {tid: dict(frames=frames_of[tid], rotmats=f.rotmats, betas=f.betas, transl=f.transl,
                            contact=contacts[tid], landmarks=lm_work[tid]) for tid, f in fits.items()}
    meta = dict(video=str(info.path), fps=info.fps, start=info.start, num_frames=T, work_size=list(work),
                focal=float(focal), principal=[float(x) for x in principal], static_camera=cfg.static_camera,
                fixed_intrinsics=cfg.fixed_intrinsics,
                registered=None if sfm is None else int(sfm.registered.sum()), keyframes=int(len(all_kf)),
                people=len(tracks))
    return FrontEndOutput(out_windows, tracks_out, meta, seconds)


def _window_of_static(scene: dict, idx: np.ndarray) -> dict:
    """The static scene restricted to keyframes ``idx`` (consecutive pairs re-derived)."""
    keep = {int(i): n for n, i in enumerate(idx)}
    out = dict(depth=scene["depth"][idx], conf=scene["conf"][idx])
    rows = [r for r, (a, b) in enumerate(scene["pair_index"]) if a in keep and b in keep]
    sel = np.isin(scene["corr_pair"], rows)
    remap = {r: n for n, r in enumerate(rows)}
    out["pair_index"] = np.array([[keep[a], keep[b]] for a, b in scene["pair_index"][rows]], np.int64).reshape(-1, 2)
    out["pair_score"] = scene["pair_score"][rows]
    out["corr_pair"] = np.array([remap[int(r)] for r in scene["corr_pair"][sel]], np.int64)
    out["corr_pix"] = scene["corr_pix"][sel]
    out["corr_conf"] = scene["corr_conf"][sel]
    return out


def _window(frame_index, images, scene, fits, frames_of, contacts, model, focal, principal, work, info, cfg,
            hmr_focal: float | None = None, scale_to_original: float | None = None) -> Window:
    """One bundle window. ``fits[tid]`` has per-frame ``rotmats`` (T, 24, 3, 3), ``transl`` (T, 3) and
    ``betas`` (B,) or per frame (T, B); ``hmr_focal`` defaults to ``focal`` (working px)."""
    K = len(frame_index)
    V = model.num_vertices
    ids, valid, rot, betas, transl, contact = [], [], [], [], [], []
    for tid, f in fits.items():
        fr = frames_of[tid]
        where = {int(x): n for n, x in enumerate(fr)}
        rows = [where.get(int(k), -1) for k in frame_index]
        v = np.array([r >= 0 for r in rows])
        if v.sum() < 2:
            continue
        r_ = np.array([max(r, 0) for r in rows])
        ids.append(tid)
        valid.append(v)
        rot.append(np.where(v[:, None, None, None], f.rotmats[r_], np.eye(3, dtype=np.float32)))
        betas.append(f.betas[r_] if f.betas.ndim == 2 else np.repeat(f.betas[None], K, 0))
        transl.append(np.where(v[:, None], f.transl[r_], 0.0))
        contact.append(contacts[tid][r_] & v[:, None])
    P = len(ids)
    B = model.num_betas
    return Window(
        frame_index=np.asarray(frame_index, np.int64), image_size=np.asarray(work, np.int64),
        scale_to_original=float(scale_to_original or max(info.width, info.height) / max(work)),
        base_focal=np.full(K, focal), init_focal=float(focal), principal_point=np.asarray(principal, np.float64),
        depth=scene["depth"].astype(np.float32), conf=scene["conf"].astype(np.float32),
        pair_index=scene["pair_index"], pair_score=scene["pair_score"], corr_pair=scene["corr_pair"],
        corr_pix=scene["corr_pix"], corr_conf=scene["corr_conf"],
        track_ids=np.asarray(ids, np.int64), track_valid=np.asarray(valid, bool).reshape(P, K),
        track_rotmats=np.asarray(rot, np.float32).reshape(P, K, 24, 3, 3),
        track_betas=np.asarray(betas, np.float32).reshape(P, K, B),
        track_transl=np.asarray(transl, np.float32).reshape(P, K, 3),
        track_contact=np.asarray(contact, bool).reshape(P, K, V), hmr_focal=float(hmr_focal or focal), images=images)
