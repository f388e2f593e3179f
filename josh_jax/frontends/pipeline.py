"""The embedded default front ends, end to end: video -> front-end bundle.

Stages (each timed, with a progress bar): people tracking on every frame
(SSDLite person boxes and BlazePose landmarks, global assignment; see
:mod:`.tracker`) -> the camera model chosen from background matches (:mod:`.camera`:
static, rotation-only or SfM; ``FrontEndConfig.camera``) and structure from
motion on the keyframes with people masked (or, for a camera that does not
translate, the ground-plane scene with the fitted rotations) -> body fit per track -> stance contacts (feet that stay put in
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
from typing import NamedTuple

import cv2
import numpy as np

from josh_jax.video import VideoInfo, iter_frames

from ..body.model import BodyModel
from ..bundle import BundleMeta, Window, pair_fields
from ..windows import keyframe_indices, window_starts
from . import blazepose as bp
from .bodyfit import FitResult, fit_track
from .contact import label_soles, motion_stance, stance_contacts
from .onnx_models import FrontEndError
from .person_detector import PersonDetector
from .sfm import depth_and_conf, run_sfm, scene_arrays
from .tracker import track_people
from .vanishing import focal_from_lines


@dataclass(frozen=True)
class FrontEndConfig:
    """Choices of the embedded front ends (all overridable from the CLIs)."""

    work_side: int = 512  # long side of the working images (scene, bundle pixels)
    pose_side: int = 1280  # long side of the frames given to BlazePose
    opt_interval: int = 5  # frames between keyframes (reference: 5)
    window: int = 101  # frames per solve window (reference: 101)
    stride: int = 90  # first frames of consecutive windows; 90 shares 3 keyframes with the next window
    # for the similarity that joins them (the reference uses 100: one shared frame, rigid chain)
    max_people: int = 6  # people kept (the most prominent; tracker.track_people tracks a few spare)
    min_track_frames: int = 15
    static_camera: bool = False  # alias of camera="static" (kept for older configs and --static-camera)
    camera: str = "auto"  # auto | sfm | rotation | static: camera model (auto: chosen from the data, see .camera)
    focal: float | None = None  # working px; default: measured (SfM, rotation fit, vanishing points), see .vanishing
    vanishing_focal: bool = True  # the focal from vanishing points where the motion cannot measure it
    principal: tuple | None = None  # (cx, cy) working px (from --intrinsics); default: the image centre
    fixed_intrinsics: bool = False  # SfM holds focal and principal (--intrinsics without --free-intrinsics)
    refine_focal: bool = False  # SfM refines a given focal (--free-intrinsics); a --focal alone is held
    device: str = "auto"  # onnxruntime: auto | cpu | gpu
    models_dir: str | None = None
    threads: int | None = None
    fit_iters: int = 400
    mask_dilate: int = 7  # working px added around person masks
    sfm_overlap: int = 10  # SfM matches each keyframe with this many following ones
    pair_window: int = 10  # keyframe pairs up to this far apart give correspondences (reference: window-10)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        file=sys.stderr,
        leave=False,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]",
    )


def clip_keyframes(num_frames: int, cfg: FrontEndConfig) -> list[np.ndarray]:
    """Keyframes (clip frame indices) of every solve window."""
    return [
        keyframe_indices(num_frames, s, cfg.opt_interval, cfg.window)
        for s in window_starts(num_frames, cfg.window, cfg.stride)
    ]


class TrackFit(NamedTuple):
    """One person track's body on every tracked frame (T of them), as a front end fitted it.

    What :func:`_window` samples on the keyframes and what ``tracks.npz`` keeps (the overlay draws it
    between keyframes). Camera frame of the working image, metres; pixels: working px.
    """

    frames: np.ndarray  # (T,) int clip frames (0 = --start)
    rotmats: np.ndarray  # (T, 24, 3, 3) SMPL-order joint rotations, root in the camera frame
    betas: np.ndarray  # (B,) shape, or (T, B) per frame
    transl: np.ndarray  # (T, 3) root translation, camera frame, m
    contact: np.ndarray  # (T, V) bool vertex contact labels
    landmarks: np.ndarray | None = None  # (T, 33, 3) BlazePose landmarks, working px (embedded front ends)
    boxes: np.ndarray | None = None  # (T, 4) person boxes [xmin, ymin, xmax, ymax] (official front ends)

    def arrays(self) -> dict:
        """The fields that are set, by name (``tracks.npz`` keys ``t{id}_{name}``)."""
        return {k: v for k, v in self._asdict().items() if v is not None}


@dataclass(frozen=True)
class FrontEndOutput:
    """What a front end gives: the bundle windows, every track's per-frame fit, bundle.json's
    metadata and the stages' wall times."""

    windows: list[Window]
    tracks: dict[int, TrackFit]  # by track id
    meta: BundleMeta
    seconds: dict[str, float]


def _ground_scene(
    kf: np.ndarray,
    size,
    focal,
    fits: dict,
    model: BodyModel,
    contacts: dict,
    person: np.ndarray,
    grid: int = 16,
    rotations: np.ndarray | None = None,
    frame_rotation=None,
    frames_of: dict | None = None,
) -> dict:
    """A camera that does not translate: the ground plane under the feet as the scene depth.

    ``rotations`` None: a static camera (one pose for all keyframes, identity pixel matches
    between neighbouring keyframes, one shared ``focal``). Otherwise a rotating camera:
    ``rotations`` (K, 3, 3) world-from-camera of the keyframes, ``focal`` (K,) per keyframe,
    ``frame_rotation(frames)`` -> (n, 3, 3) for any clip frames (the feet of every tracked frame
    vote for the plane) and ``frames_of[tid]`` the clip frames of each fit; keyframe pairs are
    matched through the rotation's homography K_j R_j^T R_i K_i^-1."""
    from ..body.model import forward

    w, h = size
    K = len(kf)
    fk = np.broadcast_to(np.asarray(focal, np.float64), (K,))
    pts, ups = [], []
    for tid, f in fits.items():
        c = contacts[tid]
        verts = np.asarray(forward(model, f.betas, f.rotmats, f.transl).vertices)
        Rf = None if rotations is None else frame_rotation(frames_of[tid])
        for t in range(len(verts)):
            if c[t].any():
                if Rf is None:
                    pts.append(verts[t][c[t]])
                    ups.append(f.rotmats[t, 0, :, 1])
                else:
                    pts.append(verts[t][c[t]] @ Rf[t].T)
                    ups.append(Rf[t] @ f.rotmats[t, 0, :, 1])
    if not pts:
        raise FrontEndError(
            "a camera that does not translate needs a person with feet on the ground to place the "
            "ground plane; none was found"
        )
    up = np.mean(ups, 0)
    up /= np.linalg.norm(up)
    height = np.median(np.concatenate(pts) @ up)
    gy, gx = np.mgrid[0:h, 0:w]
    far = 30.0
    depth = np.empty((K, h, w), np.float32)
    conf = np.empty((K, h, w), np.float32)
    for k in range(K):
        if k and rotations is None:
            depth[k], conf[k] = depth[0], conf[0]
            continue
        rays = np.stack([(gx - w / 2) / fk[k], (gy - h / 2) / fk[k], np.ones_like(gx, float)], -1)
        denom = rays @ (up if rotations is None else rotations[k].T @ up)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = height / denom
        hit = np.isfinite(z) & (z > 0) & (z < far)
        depth[k] = np.where(hit, z, far)
        conf[k] = np.where(hit, 1.0, 0.5)
    conf[person] = 0.0
    ys, xs = np.mgrid[grid // 2 : h : grid, grid // 2 : w : grid]
    xy = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    on = lambda m, p: m[np.clip(p[:, 1].astype(int), 0, h - 1), np.clip(p[:, 0].astype(int), 0, w - 1)]  # noqa: E731
    matches = []
    for i in range(K - 1):
        if rotations is None:
            ok = ~on(person[i], xy) & ~on(person[i + 1], xy)
            matches.append((i, i + 1, xy[ok], xy[ok], np.ones(int(ok.sum()), np.float32)))
            continue
        j = i + 1
        ray = np.stack([(xy[:, 0] - w / 2) / fk[i], (xy[:, 1] - h / 2) / fk[i], np.ones(len(xy))], 1)
        p = ray @ (rotations[j].T @ rotations[i]).T
        with np.errstate(divide="ignore", invalid="ignore"):
            xj = np.stack([fk[j] * p[:, 0] / p[:, 2] + w / 2, fk[j] * p[:, 1] / p[:, 2] + h / 2], 1)
        ok = (
            (p[:, 2] > 0)
            & np.all(np.isfinite(xj), 1)
            & (xj[:, 0] >= 0)
            & (xj[:, 0] <= w - 1)
            & (xj[:, 1] >= 0)
            & (xj[:, 1] <= h - 1)
        )
        ok &= ~on(person[i], xy)
        ok[ok] &= ~on(person[j], xj[ok])
        if ok.sum() < 8:
            raise FrontEndError(f"keyframes {kf[i]} and {kf[j]} share too little background for a rotating camera")
        matches.append((i, j, xy[ok], xj[ok].astype(np.float32), np.ones(int(ok.sum()), np.float32)))
    return dict(depth=depth, conf=conf, **pair_fields(matches))


def _frame_rotations(kf: np.ndarray, rotations: np.ndarray, focals: np.ndarray):
    """Per-frame camera rotation (slerp) and focal (log-linear) between keyframes -> two callables."""
    from scipy.spatial.transform import Rotation, Slerp

    slerp = Slerp(kf.astype(float), Rotation.from_matrix(rotations))
    lo, hi = float(kf[0]), float(kf[-1])
    rot = lambda fr: slerp(np.clip(np.asarray(fr, float), lo, hi)).as_matrix()  # noqa: E731
    foc = lambda fr: np.exp(np.interp(np.asarray(fr, float), kf, np.log(focals)))  # noqa: E731
    return rot, foc


def _static_scene(
    kf: np.ndarray, size, focal: float, fits: dict, model: BodyModel, contacts: dict, person: np.ndarray, grid: int = 16
) -> dict:
    """Static camera: one pose for all keyframes, the ground plane under the feet as the scene depth,
    and identity pixel matches between neighbouring keyframes."""
    return _ground_scene(kf, size, focal, fits, model, contacts, person, grid)


def run_frontends(
    info: VideoInfo, model: BodyModel, cfg: FrontEndConfig = FrontEndConfig(), progress: bool = True, log=print
) -> FrontEndOutput:
    """Run the embedded front ends on a checked clip (see :func:`josh_jax.video.probe`)."""
    T = info.num_frames
    if T < 2 * cfg.opt_interval + 1:
        raise FrontEndError(
            f"the clip has {T} frames; a window needs at least {2 * cfg.opt_interval + 1} "
            f"(3 keyframes, one every {cfg.opt_interval} frames)"
        )
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
        tracks, masks = track_people(
            model_bp,
            detector,
            frames,
            info.fps,
            cfg.max_people,
            cfg.min_track_frames,
            mask_frames=set(int(k) for k in all_kf),
            mask_size=work,
            progress=bar.update,
        )
    seconds["people"] = time.perf_counter() - t0
    if not tracks:
        raise FrontEndError(
            f"no person was found in {info.path.name} (a person must be seen whole, at least "
            f"{cfg.min_track_frames} frames long)"
        )
    log(
        f"[frontends] {len(tracks)} person track(s): "
        + ", ".join(f"#{t.track_id} frames {t.frames[0]}-{t.frames[-1]} ({len(t.frames)})" for t in tracks)
    )
    kernel = np.ones((2 * cfg.mask_dilate + 1,) * 2, np.uint8)
    person = np.stack([cv2.dilate((masks[int(k)] > 0.5).astype(np.uint8), kernel) > 0 for k in all_kf])

    # ---- scene
    t0 = time.perf_counter()
    images = np.stack([im for _, im in iter_frames(info, cfg.work_side, all_kf)])
    if len(images) != len(all_kf):
        raise FrontEndError(
            f"{info.path.name}: only {len(images)} of {len(all_kf)} keyframes could be decoded (truncated video?)"
        )
    scene_cam = choose_camera(images, person, cfg, log)
    mode, sfm = scene_cam["mode"], scene_cam["sfm"]
    focal, principal = scene_cam["focal"], scene_cam["principal"]
    kf_focal = scene_cam["focals"]  # (K_all,) working px, one per keyframe
    frame_rot, frame_focal = (
        (None, None) if mode == "sfm" else _frame_rotations(all_kf, scene_cam["rotations"], kf_focal)
    )
    seconds["scene"] = time.perf_counter() - t0

    # ---- bodies
    t0 = time.perf_counter()
    fits: dict[int, FitResult] = {}
    arrs = {tr.track_id: tr.arrays() for tr in tracks}
    frames_of = {tid: a["frames"] for tid, a in arrs.items()}
    lm_work = {tid: a["image"] * np.float32(to_work) for tid, a in arrs.items()}  # landmarks, working px
    with _bar(len(tracks), "body fit", progress) as bar:
        for tid, a in arrs.items():
            f_track = focal if frame_focal is None or not scene_cam["zoom"] else frame_focal(frames_of[tid])
            fits[tid] = fit_track(
                model, a["world"], lm_work[tid], a["visibility"], f_track, principal, iters=cfg.fit_iters
            )
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
            rows = {
                kpos[int(fr)]: r
                for r, fr in enumerate(frames_of[tid])
                if int(fr) in kpos and sfm.registered[kpos[int(fr)]]
            }
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
    if mode == "static":
        scene_all = _static_scene(all_kf, work, focal, fits, model, contacts, person)
    elif mode == "rotation":
        scene_all = _ground_scene(
            all_kf,
            work,
            kf_focal,
            fits,
            model,
            contacts,
            person,
            rotations=scene_cam["rotations"],
            frame_rotation=frame_rot,
            frames_of=frames_of,
        )
    tracks_out = {
        tid: TrackFit(frames_of[tid], f.rotmats, f.betas, f.transl, contacts[tid], landmarks=lm_work[tid])
        for tid, f in fits.items()
    }
    covered, dropped = [], []
    out_windows = []
    for kf in windows_kf:
        idx = np.array([kpos[int(k)] for k in kf])
        if sfm is not None:
            dropped += [int(all_kf[i]) for i in idx[~sfm.registered[idx]]]
            idx = idx[sfm.registered[idx]]
            if len(idx) < 3:
                raise FrontEndError(
                    f"frames {kf[0]}-{kf[-1]}: only {len(idx)} keyframes registered by structure "
                    "from motion; the camera may not move there (try --camera rotation or "
                    "--camera static)"
                )
            sub = dataclasses.replace(
                sfm,
                registered=sfm.registered[idx],
                cam_from_world=sfm.cam_from_world[idx],
                obs=tuple(sfm.obs[i] for i in idx),
            )
            scene = scene_arrays(
                sub, work, person[idx], pair_window=cfg.pair_window, depth_conf=(depth_conf[0][idx], depth_conf[1][idx])
            )
        else:
            scene = _window_of_static(scene_all, idx)
        if len(scene["pair_index"]) == 0:
            raise FrontEndError(f"frames {kf[0]}-{kf[-1]}: no keyframe pair shares enough scene points")
        frame_index = all_kf[idx]
        covered.append((int(frame_index[0]), int(frame_index[-1])))
        win = _window(
            frame_index,
            images[idx],
            scene,
            tracks_out,
            model,
            focal=focal,
            principal=principal,
            work=work,
            scale_to_original=max(info.width, info.height) / max(work),
        )
        if mode != "sfm":
            fs = kf_focal[idx] / focal
            win = dataclasses.replace(
                win,
                base_focal=kf_focal[idx].astype(np.float64),
                focal_scale=fs if scene_cam["zoom"] else None,
                cam_rotation=scene_cam["rotations"][idx].astype(np.float64),
            )
        out_windows.append(win)
    seconds["assemble"] = time.perf_counter() - t0
    coverage = _coverage(covered, dropped, T, info.start, sfm)
    if coverage["reason"]:
        log(
            f"[frontends] the result covers frames {coverage['first']}-{coverage['last']} of 0-{T - 1}: "
            f"{coverage['reason']}"
        )
    meta = BundleMeta(
        camera=mode,
        video=str(info.path),
        fps=float(info.fps),
        start=int(info.start),
        num_frames=int(T),
        work_size=tuple(int(x) for x in work),
        focal=float(focal),
        principal=tuple(float(x) for x in principal),
        fixed_intrinsics=bool(cfg.fixed_intrinsics),
        camera_evidence=scene_cam["evidence"],
        coverage=coverage,
        keyframe_focals=tuple(float(x) for x in kf_focal) if scene_cam["zoom"] else None,
        registered=None if sfm is None else int(sfm.registered.sum()),
        keyframes=int(len(all_kf)),
        people=len(tracks),
    )
    return FrontEndOutput(out_windows, tracks_out, meta, seconds)


def _coverage(covered: list, dropped: list, T: int, start: int, sfm) -> dict:
    """Which clip frames the windows cover (clip frame numbers, 0 = --start) and why any are left out."""
    first, last = min(a for a, _ in covered), max(b for _, b in covered)
    reasons = []
    if dropped:
        reasons.append(f"structure from motion did not register keyframe(s) {sorted(set(dropped))}")
    if first > 0 or last < T - 1:
        reasons.append(
            f"frames {'0-' + str(first - 1) if first > 0 else ''}"
            f"{', ' if first > 0 and last < T - 1 else ''}"
            f"{str(last + 1) + '-' + str(T - 1) if last < T - 1 else ''} lie outside the registered "
            "keyframes and are not reconstructed"
        )
    return dict(
        first=first,
        last=last,
        frames=last - first + 1,
        clip_frames=T,
        start=start,
        dropped_keyframes=sorted(set(dropped)),
        reason="; ".join(reasons),
    )


# SfM on small baselines (docs/frontends.md): every triangulation-angle threshold of COLMAP's incremental
# mapper lowered to 0.1 degrees (defaults: 16 for the initial pair, 1.5 for new and kept points, 6 for local
# bundle adjustment); at 2-5 cm of camera motion 3-7 m from the scene no point reaches 1 degree
SMALL_BASELINE = dict(init_min_tri_angle=0.1, min_tri_angle=0.1)
PARALLAX_GAIN = 1.4  # SfM is kept for a clip a rotation explains when its reprojection error is this much lower
AGREE_DEG = 1.0  # ... and its rotations agree with the rotation fit's within this (max over keyframes, degrees)
MIN_REGISTERED_CHECK = 0.9  # ... and it registers this share of the keyframes


# SfM's own focal outside this range (x the long side: a horizontal field of view of 19-103 degrees) is taken
# for self-calibration gone wrong (a camera moving forward: walk_away gave 0.16 x) and replaced by a scan
FOCAL_RANGE = (0.4, 3.0)
FOCAL_SCAN = (0.6, 0.8, 1.0, 1.25, 1.6)  # held focals tried (x the long side)


def _median_error(r) -> float:
    """An SfmResult's median reprojection error (px); inf without points."""
    return float(np.median(r.point_error)) if len(r.point_error) else float("inf")


def focal_scan(images, person, sfm, common: dict, log=print, measure=None):
    """Replace an implausible self-calibrated focal (outside :data:`FOCAL_RANGE`) -> (SfmResult, evidence).

    ``measure`` () -> (focal or None, evidence): a focal measured otherwise (the vanishing points,
    :func:`.vanishing.focal_from_lines`); when it gives one, SfM held at it (with the clip's mapper
    settings and with the small-baseline angles, the better of the two, see :func:`_held_sfm`) is kept if
    it registers as many keyframes as the self-calibrated run and explains the matches better; the scan
    runs otherwise.
    The scan runs SfM with the focal held at each of :data:`FOCAL_SCAN` x the long side, takes the one whose median
    reprojection error is lowest (among runs registering as many keyframes as the best and keeping at least
    half as many points) and keeps it only when its error is below the self-calibrated one's. Measured on
    the rendered walk_away clip (docs/frontends.md): free focal 76.6 px (0.43 px error; COLMAP returns to
    ~77 px from any start), held at 384 px 0.25 px, at the true 432 px 0.25 px, at 288 or 480 px 0.69-0.71
    px: the error has a flat floor around the truth, so the scan's step (25 %) bounds the focal error."""
    h, w = images[0].shape[:2]
    long = float(max(w, h))
    med = _median_error
    ratio = sfm.focal / long
    if FOCAL_RANGE[0] <= ratio <= FOCAL_RANGE[1]:
        return sfm, {}
    log(
        f"[frontends] SfM's focal {sfm.focal:.1f} px is {ratio:.2f} x the long side (plausible "
        f"{FOCAL_RANGE[0]}-{FOCAL_RANGE[1]}); scanning held focals ..."
    )
    kw = {**common, "focal_prior": None, "refine_focal": False, "min_registered": 0.0}
    ev = {"focal_self_calibrated_px": float(sfm.focal), "focal_self_calibrated_error_px": med(sfm)}
    f_vp, vev = measure() if measure is not None else (None, {})
    ev.update(vev)
    held = None
    if f_vp is not None:
        held, why, ev["vanishing_sfm_runs"] = _held_sfm(images, person, kw, f_vp)
        if (
            held is not None
            and held.registered.sum() >= sfm.registered.sum()
            and len(held.points) >= 0.5 * len(sfm.points)  # as the scan's runs
            and med(held) < med(sfm)
        ):
            ev["focal_source"] = "vanishing points"
            ev["focal_scan"] = (
                f"focal {held.focal:.1f} px from vanishing points held: median reprojection {med(held):.2f} px "
                f"against {med(sfm):.2f} px with SfM's own {sfm.focal:.1f} px"
            )
            log(f"[frontends] {ev['focal_scan']}")
            return held, ev
        ev["vanishing_sfm"] = (
            f"SfM held at the vanishing points' {f_vp:.1f} px "
            + (
                f"failed ({why})"
                if held is None
                else f"registered {int(held.registered.sum())} keyframes, {len(held.points)} points, "
                f"median reprojection {med(held):.2f} px"
            )
            + "; scanning"
        )
    runs = []
    for r in FOCAL_SCAN:
        try:
            runs.append(run_sfm(list(images), list(person), **{**kw, "focal_prior": r * long}))
        except FrontEndError:
            runs.append(None)
    ok = [x for x in runs if x is not None]
    if not ok:
        return _plausible_fallback(sfm, held, [], ev, "no held focal gave a reconstruction", log)
    n_reg = max(int(x.registered.sum()) for x in ok)
    n_pts = max(len(x.points) for x in ok)
    errs = [
        med(x) if x is not None and x.registered.sum() == n_reg and len(x.points) >= 0.5 * n_pts else np.inf
        for x in runs
    ]
    ev["focal_scan_px"] = [float(r * long) for r in FOCAL_SCAN]
    ev["focal_scan_error_px"] = [float(e) if np.isfinite(e) else None for e in errs]
    i = int(np.argmin(errs))
    best, best_err = runs[i], errs[i]
    if best_err >= med(sfm) or best.registered.sum() < sfm.registered.sum():
        why = f"no held focal explained the matches better ({best_err:.2f} px)"
        return _plausible_fallback(sfm, held, ok, ev, why, log)
    ev["focal_scan"] = (
        f"focal {best.focal:.1f} px held: median reprojection {best_err:.2f} px against {med(sfm):.2f} px "
        f"with SfM's own {sfm.focal:.1f} px"
    )
    ev["focal_source"] = "focal scan"
    log(f"[frontends] {ev['focal_scan']}")
    return best, ev


#: a held-focal reconstruction replaces an implausible self-calibrated one when it registers this share of keyframes
MIN_REGISTERED_HELD = 0.5


def _plausible_fallback(sfm, held, scan: list, ev: dict, why: str, log=print):
    """SfM's own focal is implausible and no held focal explained the matches better -> (SfmResult or None,
    evidence): never the implausible focal. The held reconstruction that registers most keyframes (the
    vanishing points' first, then the scan's by error) when it registers :data:`MIN_REGISTERED_HELD` of
    them; else None, and the caller models the camera another way (a rotation fit, or held)."""
    K = len(sfm.registered)
    cands = ([("vanishing points", held)] if held is not None else []) + [("focal scan", r) for r in scan]
    cands.sort(key=lambda c: (-int(c[1].registered.sum()), c[0] != "vanishing points", _median_error(c[1])))
    if cands and cands[0][1].registered.sum() >= MIN_REGISTERED_HELD * K:
        source, run = cands[0]
        ev["focal_source"] = source
        ev["focal_scan"] = (
            f"{why}, but SfM's own focal {sfm.focal:.1f} px is implausible: focal {run.focal:.1f} px held "
            f"({source}; {int(run.registered.sum())}/{K} keyframes, median reprojection {_median_error(run):.2f} px)"
        )
        log(f"[frontends] {ev['focal_scan']}")
        return run, ev
    ev["focal_scan"] = (
        f"{why}, SfM's own focal {sfm.focal:.1f} px is implausible and no held focal registered "
        f"{MIN_REGISTERED_HELD:.0%} of the keyframes: structure from motion is not used"
    )
    log(f"[frontends] {ev['focal_scan']}")
    return None, ev


def _held_sfm(images, person, kw: dict, focal: float):
    """SfM held at ``focal`` with the mapper settings ``kw`` and with :data:`SMALL_BASELINE`'s angles ->
    (the run that registers most keyframes, then has the lowest median reprojection error, or None; why
    none; one line per run). At one held focal the error compares reconstructions fairly; COLMAP's default
    initial pair (16 degrees) can start a wrong one: on walk_away with the steady gait, held at the true
    432 px, the defaults gave a camera that pitches 31 degrees in 1.6 s (median error 0.78 px), the small
    angles the true rotations within 0.02 degrees (0.23 px)."""
    settings = [("clip's settings", kw)]
    if any(kw.get(k) != v for k, v in SMALL_BASELINE.items()):
        settings.append(("small-baseline angles", {**kw, **SMALL_BASELINE}))
    runs, lines, why = [], [], ""
    for name, opts in settings:
        try:
            r = run_sfm(list(images), list(person), **{**opts, "focal_prior": focal})
        except FrontEndError as exc:
            why = str(exc)
            lines.append(f"{name}: failed ({exc})")
            continue
        err = _median_error(r)
        runs.append((-int(r.registered.sum()), err, len(runs), r))
        lines.append(f"{name}: {int(r.registered.sum())} keyframes, {len(r.points)} points, median {err:.2f} px")
    if not runs:
        return None, why, lines
    return min(runs, key=lambda x: x[:3])[3], why, lines


def _rotation_camera(motion, principal: np.ndarray, zoom: bool, evidence: dict) -> dict:
    """The scene stage's camera for a rotation-only fit (see :func:`choose_camera`'s return value):
    the shared focal is the geometric mean of the fit's per-keyframe focals, which are kept only with
    ``zoom``."""
    K = len(motion.focals)
    f = float(np.exp(np.mean(np.log(motion.focals))))
    return dict(
        mode="rotation",
        sfm=None,
        focal=f,
        focals=motion.focals if zoom else np.full(K, f),
        principal=principal,
        rotations=motion.rotations,
        zoom=zoom,
        evidence={"focal_source": "rotation fit (background homographies)", **evidence},
    )


def _plausible_rotation_focal(cam: dict, measure, w: int, h: int, log=print) -> dict:
    """A rotation camera whose fitted focal lies outside :data:`FOCAL_RANGE` takes the vanishing points'
    focal, else a default of 1.2 x the long side, with a warning (the keyframe rotations stay the fit's)."""
    long = float(max(w, h))
    if FOCAL_RANGE[0] <= cam["focal"] / long <= FOCAL_RANGE[1]:
        return cam
    f_vp, vev = measure()
    ev = {**cam["evidence"], **vev, "rotation_fit_focal_px": float(cam["focal"])}
    if f_vp is not None and FOCAL_RANGE[0] <= f_vp / long <= FOCAL_RANGE[1]:
        f, ev["focal_source"] = float(f_vp), "vanishing points (the rotation fit's focal is implausible)"
    else:
        f, ev["focal_source"] = 1.2 * long, "default (1.2 x the long side): no plausible focal was measured"
        ev["warning"] = (
            (ev.get("warning", "") + "; ").lstrip("; ")
            + f"no plausible focal was measured (the rotation fit gave {cam['focal']:.0f} px); "
            f"a default {f:.0f} working px is used"
        )
    log(f"[frontends] the rotation fit's focal {cam['focal']:.1f} px is implausible; {ev['focal_source']}: {f:.1f} px")
    scale = f / cam["focal"]
    return {**cam, "focal": f, "focals": np.asarray(cam["focals"], np.float64) * scale, "evidence": ev}


def _sfm_camera(sfm, evidence: dict) -> dict:
    """The scene stage's camera for a reconstruction (see :func:`choose_camera`)."""
    K = len(sfm.registered)
    return dict(
        mode="sfm",
        sfm=sfm,
        focal=sfm.focal,
        focals=np.full(K, sfm.focal),
        principal=sfm.principal,
        rotations=None,
        zoom=False,
        evidence={
            "focal_source": "structure from motion",
            **evidence,
            "sfm_registered": int(sfm.registered.sum()),
            "sfm_points": len(sfm.points),
        },
    )


def rotation_agreement_deg(rotations: np.ndarray, sfm) -> float:
    """Largest angle (degrees) between the rotation fit's keyframe rotations (K, 3, 3) world-from-camera and
    a reconstruction's, both relative to the first keyframe the reconstruction registered."""
    from scipy.spatial.transform import Rotation

    reg = np.flatnonzero(sfm.registered)
    A = rotations[reg]
    B = np.swapaxes(sfm.cam_from_world[reg, :, :3], 1, 2)  # world-from-camera
    ra = np.swapaxes(A[0], 0, 1) @ A
    rb = np.swapaxes(B[0], 0, 1) @ B
    return float(np.degrees(np.linalg.norm(Rotation.from_matrix(np.swapaxes(ra, 1, 2) @ rb).as_rotvec(), axis=1)).max())


def translation_check(images, person, cfg: FrontEndConfig, motion, log=print):
    """Is the small translation of a clip that a rotation explains measurable? -> (SfmResult or None, evidence).

    Runs SfM with :data:`SMALL_BASELINE` angles and keeps it when it registers at least
    :data:`MIN_REGISTERED_CHECK` of the keyframes, its rotations agree with the rotation fit within
    :data:`AGREE_DEG` and its median reprojection error is :data:`PARALLAX_GAIN` times lower than the rotation
    model's median residual: the parallax the rotation leaves is then explained by camera translation (a pure
    pan leaves only noise, which a 6-DoF model does not explain better). Measured on the rendered clips
    (docs/frontends.md): handheld 3.7 cm gain 1.9, pan without translation 0.75."""
    K = len(images)
    rot_med = float(motion.evidence["rotation_residual_median_px"])
    log(f"[frontends] does the camera translate? structure from motion with small-baseline settings on {K} keyframes")
    try:
        sfm = run_sfm(
            list(images),
            list(person),
            focal_prior=cfg.focal,
            refine_focal=cfg.focal is None or cfg.refine_focal,  # --focal: the video's focal, held
            overlap=cfg.sfm_overlap,
            principal_prior=cfg.principal,
            fixed_intrinsics=cfg.fixed_intrinsics,
            min_registered=MIN_REGISTERED_CHECK,
            **SMALL_BASELINE,
        )
    except FrontEndError as exc:
        return None, {"translation_check": f"SfM with small-baseline settings failed: {exc}"}
    sfm_med = float(np.median(sfm.point_error)) if len(sfm.point_error) else float("inf")
    gain = rot_med / sfm_med if sfm_med > 0 else float("inf")
    agree = rotation_agreement_deg(motion.rotations, sfm)
    ev = {
        "sfm_check_registered": int(sfm.registered.sum()),
        "sfm_check_points": len(sfm.points),
        "sfm_reprojection_median_px": sfm_med,
        "parallax_gain": gain,
        "sfm_rotation_agreement_deg": agree,
    }
    ratio = sfm.focal / float(max(images[0].shape[:2]))
    plausible = cfg.focal is not None or FOCAL_RANGE[0] <= ratio <= FOCAL_RANGE[1]
    ev["sfm_check_focal_px"] = float(sfm.focal)
    ok = gain >= PARALLAX_GAIN and agree <= AGREE_DEG and plausible
    ev["translation_check"] = (
        f"SfM (small-baseline settings) registered {int(sfm.registered.sum())}/{K} keyframes with median "
        f"reprojection {sfm_med:.2f} px against the rotation model's {rot_med:.2f} px (gain {gain:.2f}, "
        f"{'>=' if gain >= PARALLAX_GAIN else '<'} {PARALLAX_GAIN}), rotations within {agree:.2f} deg of the "
        f"rotation fit ({'<=' if agree <= AGREE_DEG else '>'} {AGREE_DEG})"
        + (
            ""
            if plausible
            else f", but its self-calibrated focal {sfm.focal:.0f} px is {ratio:.1f} x the long side "
            f"(plausible {FOCAL_RANGE[0]}-{FOCAL_RANGE[1]}): too little parallax to trust it"
        )
    )
    return (sfm if ok else None), ev


def choose_camera(images: np.ndarray, person: np.ndarray, cfg: FrontEndConfig, log=print) -> dict:
    """:func:`_choose_camera`, its evidence's ``focal_source`` saying so when the focal was given."""
    cam = _choose_camera(images, person, cfg, log)
    if cfg.focal:
        refined = cfg.refine_focal and cam["mode"] == "sfm"  # --free-intrinsics: SfM starts from it and refines
        cam["evidence"]["focal_source"] = "given, refined by structure from motion" if refined else "given"
    return cam


def _choose_camera(images: np.ndarray, person: np.ndarray, cfg: FrontEndConfig, log=print) -> dict:
    """The scene stage's camera: ``cfg.camera`` (auto: from :func:`.camera.estimate_motion`), SfM when the
    camera translates (falling back to rotation-only, with the reason, when SfM cannot start).

    In auto mode a clip that a rotation explains still gets SfM when :func:`translation_check` finds its
    small translation measurable (a handheld phone moving 2-5 cm); rotation-only otherwise.

    Returns mode, sfm (SfmResult or None), focal (shared, working px), focals (K,), principal (2,),
    rotations (K, 3, 3) world-from-camera (rotation/static), zoom (bool), evidence (dict)."""
    from .camera import MODES, MotionConfig, estimate_motion

    requested = "static" if cfg.static_camera else cfg.camera
    if requested not in MODES:
        raise FrontEndError(f"camera must be one of {', '.join(MODES)}, got {requested!r}")
    K = len(images)
    h, w = images[0].shape[:2]
    principal = np.array(cfg.principal if cfg.principal is not None else [w / 2, h / 2], np.float64)
    measured = {}

    def measure(still: bool = False):  # the focal from vanishing points (None where the lines do not give it)
        if still not in measured:
            if cfg.vanishing_focal:
                log("[frontends] focal from the vanishing points of the background's lines ...")
                measured[still] = focal_from_lines(images, person, principal, static=still)
                log(f"[frontends] {measured[still][1]['vanishing']}")
            else:
                measured[still] = None, {"vanishing": "not measured (vanishing_focal off)"}
        return measured[still]

    def static(evidence: dict) -> dict:
        if cfg.focal:
            f, fev = float(cfg.focal), {}  # labelled by choose_camera
        else:
            f, fev = measure(still=True)  # one estimate on the clip's background (people removed)
            fev = {**fev, "focal_source": "vanishing points"}
            if f is None:
                f = 1.2 * max(w, h)
                fev["focal_source"] = "default (1.2 x the long side): a static camera does not measure it"
        return dict(
            mode="static",
            sfm=None,
            focal=float(f),
            focals=np.full(K, float(f)),
            principal=principal,
            rotations=np.tile(np.eye(3), (K, 1, 1)),
            zoom=False,
            evidence={**evidence, **fev},
        )

    def rotating(ev: dict, zoom: bool) -> dict:
        """The rotation fit's camera; its focal made plausible unless the user gave one."""
        cam = _rotation_camera(motion, principal, zoom, ev)
        return cam if cfg.focal else _plausible_rotation_focal(cam, measure, w, h, log)

    def fallback(why: str, extra: dict) -> dict:
        """Auto mode when structure from motion gives nothing usable: degrade, never stop. A rotation
        fit of the background when there is one, else the camera held (the people move over the ground
        under their feet); both with a plain warning (console, summary.json, README's output notes)."""
        base = {**(motion.evidence if motion else {}), **extra, "requested": requested}
        if motion is not None and "rotation_residual_p90_px" in motion.evidence:
            p90 = motion.evidence["rotation_residual_p90_px"]
            base["reason"] = f"{why}; the camera is modelled as rotating (90% of matches within {p90:.2f} px)"
            if p90 >= MotionConfig().rotation_px:
                base["warning"] = (
                    f"{why}, so the camera is modelled as only rotating although the background shows parallax "
                    f"(90% of matches within {p90:.1f} px): camera translation is not recovered"
                )
            log(f"[frontends] camera: rotation ({base['reason']})")
            return rotating(base, bool(motion.evidence.get("zoom")) and cfg.focal is None)
        base["reason"] = f"{why}; too few background matches for a rotation fit, so the camera is held"
        base["warning"] = (
            f"{why} and the background gave too few matches to measure the camera's motion: the camera is held "
            "still, so the people's paths include the camera's own motion"
        )
        log(f"[frontends] camera: static ({base['reason']})")
        return static(base)

    if requested == "static":
        return static({"reason": "requested (--camera static)"})
    motion = None
    if requested in ("auto", "rotation"):
        log(f"[frontends] camera motion from background matches on {K} keyframes ...")
        motion = estimate_motion(list(images), list(person), focal=cfg.focal)
        ev = dict(motion.evidence)
        log(f"[frontends] background matches: {motion.mode} ({ev.get('reason')})")
        zoom = bool(ev.get("zoom")) and cfg.focal is None
        if requested == "rotation":
            return rotating({**ev, "requested": requested}, zoom)
        if motion.mode == "static":
            return static({**ev, "requested": requested})
        if motion.mode == "rotation":
            sfm, tev = translation_check(images, person, cfg, motion, log)
            ev = {**ev, **tev, "requested": requested}
            if sfm is None:
                ev["reason"] = f"{ev['reason']}; translation not measurable: {tev['translation_check']}"
                log(f"[frontends] camera: rotation ({tev['translation_check']})")
                return rotating(ev, zoom)
            ev["reason"] = f"small camera translation measured: {tev['translation_check']}"
            log(f"[frontends] camera: sfm ({ev['reason']})")
            log(
                f"[frontends] registered {sfm.registered.sum()}/{K} keyframes, {len(sfm.points)} points, "
                f"focal {sfm.focal:.1f} px"
            )
            return _sfm_camera(sfm, ev)
    log(f"[frontends] structure from motion on {K} keyframes ({w}x{h}) ...")
    common = dict(
        focal_prior=cfg.focal,
        # --focal is the video's focal: held (self-calibration can run far from it: walk_away gave 76 px
        # from a given 432 px); without it SfM refines its own, and the scan below checks it
        refine_focal=cfg.focal is None or cfg.refine_focal,
        overlap=cfg.sfm_overlap,
        principal_prior=cfg.principal,
        fixed_intrinsics=cfg.fixed_intrinsics,
    )
    try:
        try:
            sfm = run_sfm(list(images), list(person), **common)
        except FrontEndError as exc0:
            # small baselines: COLMAP's initial pair needs 16 deg of triangulation angle by default
            log(
                f"[frontends] {exc0}; retrying with small-baseline triangulation angles "
                f"({SMALL_BASELINE['min_tri_angle']:g} deg)"
            )
            common = {**common, **SMALL_BASELINE}  # the focal scan below maps with the same settings
            sfm = run_sfm(list(images), list(person), **common)
    except FrontEndError as exc:
        if requested != "auto":
            raise
        return fallback(f"structure from motion could not start ({exc})", {"sfm_failed": str(exc)})
    fev = {}
    if cfg.focal is None and not cfg.fixed_intrinsics:
        sfm, fev = focal_scan(images, person, sfm, common, log, measure)
        if sfm is None:
            if requested != "auto":
                raise FrontEndError(
                    f"{fev['focal_scan']}; rerun with --camera auto (falls back to a rotating or held camera), "
                    "--camera rotation, or --focal F if you know the focal"
                )
            return fallback("structure from motion gave no plausible focal", fev)
    log(
        f"[frontends] registered {sfm.registered.sum()}/{K} keyframes, {len(sfm.points)} points, "
        f"focal {sfm.focal:.1f} px"
    )
    return _sfm_camera(sfm, {**(motion.evidence if motion else {}), **fev, "requested": requested})


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


def _window(
    frame_index: np.ndarray,
    images: np.ndarray,
    scene: dict,
    tracks: dict[int, TrackFit],
    model: BodyModel,
    *,
    focal: float,
    principal,
    work,
    scale_to_original: float,
    hmr_focal: float | None = None,
) -> Window:
    """One bundle window: the keyframes ``frame_index`` (K,), their working images (K, h, w, 3), the
    scene arrays (depth, conf, pairs, correspondences) and every track sampled on the keyframes (a
    track seen on fewer than 2 of them is left out). ``focal`` (working px), ``principal`` (2,),
    ``work`` (w, h) the working size, ``scale_to_original`` video px per working px; ``hmr_focal``
    defaults to ``focal``."""
    K = len(frame_index)
    V = model.num_vertices
    ids, valid, rot, betas, transl, contact = [], [], [], [], [], []
    for tid, f in tracks.items():
        fr = f.frames
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
        contact.append(f.contact[r_] & v[:, None])
    P = len(ids)
    B = model.num_betas
    return Window(
        frame_index=np.asarray(frame_index, np.int64),
        image_size=np.asarray(work, np.int64),
        scale_to_original=float(scale_to_original),
        base_focal=np.full(K, focal),
        init_focal=float(focal),
        principal_point=np.asarray(principal, np.float64),
        depth=scene["depth"].astype(np.float32),
        conf=scene["conf"].astype(np.float32),
        pair_index=scene["pair_index"],
        pair_score=scene["pair_score"],
        corr_pair=scene["corr_pair"],
        corr_pix=scene["corr_pix"],
        corr_conf=scene["corr_conf"],
        track_ids=np.asarray(ids, np.int64),
        track_valid=np.asarray(valid, bool).reshape(P, K),
        track_rotmats=np.asarray(rot, np.float32).reshape(P, K, 24, 3, 3),
        track_betas=np.asarray(betas, np.float32).reshape(P, K, B),
        track_transl=np.asarray(transl, np.float32).reshape(P, K, 3),
        track_contact=np.asarray(contact, bool).reshape(P, K, V),
        hmr_focal=float(hmr_focal or focal),
        images=images,
    )
