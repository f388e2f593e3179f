"""The official front ends, end to end: video -> front-end bundle (same format as the embedded ones).

One pass over the video (original resolution) runs, per frame, the person
segmenter, links its boxes into tracks, and runs VIMO's backbone on every
person crop; on keyframes also DECO on the crops, and keeps the person masks
and the keyframe images. Then VIMO's temporal part per track (TRAM's
16-frame windows), and per solve window Pi3X on its keyframes (depth,
confidence, focal) and MASt3R on its keyframe pairs (matches; a pair shared
by two windows is matched once).

Working images: long side ``work_side`` (512, MASt3R's training size),
centre-cropped to multiples of 16 (the MASt3R input). The human front end assumes the focal of the image diagonal
(TRAM), recorded as ``hmr_focal``.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from josh_jax.video import VideoInfo, iter_frames

from ...body.model import BodyModel
from ...bundle import BundleMeta, pair_fields
from ..onnx_models import FrontEndError
from ..pipeline import FrontEndConfig, FrontEndOutput, TrackFit, _bar, _window, clip_keyframes
from . import images as im
from .models import OfficialModels
from .people import IouTracker, chunks, detections, union_mask, vimo_track
from .scene import match_pair, pi3x_scene, window_pairs

SEG_SIDE = 640  # long side given to a segmenter with dynamic input size (multiple of 32)


def _seg_size(models: OfficialModels, W: int, H: int) -> tuple[int, int]:
    fixed = models.fixed_size("person_segmenter", "image")
    if fixed:
        return fixed
    k = SEG_SIDE / max(W, H)
    return (int(np.ceil(W * k / 32)) * 32, int(np.ceil(H * k / 32)) * 32)


def run_official(
    info: VideoInfo, model: BodyModel, cfg: FrontEndConfig = FrontEndConfig(), progress: bool = True, log=print
) -> FrontEndOutput:
    """Run the official ONNX front ends (see docs/frontends.md) on a checked clip."""
    if model.num_vertices != 6890 or model.num_betas < 10:
        raise FrontEndError(
            f"the official front ends give SMPL parameters and contacts on SMPL's 6890 vertices, "
            f"but the body model is {model.name} ({model.num_vertices} vertices); "
            "pass the SMPL model with --smpl PATH"
        )
    T = info.num_frames
    if T < 2 * cfg.opt_interval + 1:
        raise FrontEndError(f"the clip has {T} frames; a window needs at least {2 * cfg.opt_interval + 1}")
    models = OfficialModels(cfg.models_dir, cfg.device, cfg.threads)
    log(f"[frontends] official models from {models.dir} on {models.providers[0]}")
    if cfg.static_camera:
        log(
            "[frontends] --static-camera is not used by the official front ends (Pi3X and MASt3R need no camera motion)"
        )
    W0, H0 = info.width, info.height
    resized, work = im.mast3r_sizes(W0, H0, cfg.work_side)
    p3 = im.pi3x_size(W0, H0)
    for name, inp, want, script in (
        ("mast3r", "img1", work, "export_mast3r.py"),
        ("pi3x", "imgs", p3, "export_pi3x.py"),
    ):
        have = models.fixed_size(name, inp)
        if have is not None and tuple(have) != tuple(want):
            raise FrontEndError(
                f"{name}.onnx was exported for {have[0]}x{have[1]} images, but this "
                f"{W0}x{H0} video needs {want[0]}x{want[1]}: re-export it with "
                f"scripts/{script} --size {want[0]}x{want[1]}"
            )
    windows_kf = clip_keyframes(T, cfg)
    all_kf = np.unique(np.concatenate(windows_kf))
    kpos = {int(k): i for i, k in enumerate(all_kf)}
    seg_size = _seg_size(models, W0, H0)
    focal0 = float(np.hypot(W0, H0))  # TRAM's image-diagonal focal (original px)
    centre0 = np.array([W0 / 2, H0 / 2], np.float32)
    kern = np.ones((2 * cfg.mask_dilate + 1,) * 2, np.uint8)
    seconds = {}

    # ---- one pass: segmenter, tracker, VIMO backbone on every crop, DECO + masks + images on keyframes
    t0 = time.perf_counter()
    tracker = IouTracker()
    feats, cs, contact_kf = {}, {}, {}
    person = np.zeros((len(all_kf), work[1], work[0]), bool)
    imgs_work = np.zeros((len(all_kf), work[1], work[0], 3), np.uint8)
    imgs_p3 = np.zeros((len(all_kf), p3[1], p3[0], 3), np.uint8)
    dt = {"segmenter": 0.0, "vimo_backbone": 0.0, "deco": 0.0}
    with _bar(T, "people (segmenter, VIMO, DECO)", progress) as bar:
        for t, frame in iter_frames(info, None):
            s = time.perf_counter()
            x, k = im.letterbox_input(frame, seg_size)
            boxes, _, masks = detections(models.run("person_segmenter", image=x), k, (W0, H0))
            dt["segmenter"] += time.perf_counter() - s
            ids = tracker.update(t, boxes)
            if len(boxes):
                s = time.perf_counter()
                ctr = [im.tram_center_scale(b) for b in boxes]
                crops = np.stack([im.tram_crop(frame, c, sc) for c, sc in ctr])
                # kept in float16 (the reference runs the backbone under fp16 autocast): 0.5 MB per crop
                f = models.run("vimo_backbone", img=crops)["feature"].astype(np.float16)
                dt["vimo_backbone"] += time.perf_counter() - s
                for n, tid in enumerate(ids):
                    feats.setdefault(tid, {})[t] = f[n]
                    cs[(tid, t)] = ctr[n]
            if t in kpos:
                i = kpos[t]
                rs = cv2.resize(frame, resized, interpolation=cv2.INTER_AREA)
                imgs_work[i] = im.centre_crop(rs, work)
                imgs_p3[i] = cv2.resize(frame, p3, interpolation=cv2.INTER_AREA)
                person[i] = im.centre_crop(union_mask(masks, resized), work)
                if cfg.mask_dilate:
                    person[i] = cv2.dilate(person[i].astype(np.uint8), kern) > 0
                if len(boxes):
                    s = time.perf_counter()
                    c = models.run("deco", img=np.stack([im.deco_crop(frame, b) for b in boxes]))["contact"]
                    dt["deco"] += time.perf_counter() - s
                    for n, tid in enumerate(ids):
                        contact_kf[(tid, t)] = c[n] >= 0.5
            bar.update(1)
    seconds["people"] = time.perf_counter() - t0
    seconds.update({f"people_{k}": v for k, v in dt.items()})

    # ---- tracks: long enough for VIMO, the longest max_people
    t0 = time.perf_counter()
    min_len = max(cfg.min_track_frames, 16)
    runs = {tid: [np.asarray(tracker.frames[tid])[r] for r in chunks(tracker.frames[tid])] for tid in tracker.frames}
    keep = sorted(
        (tid for tid in runs if sum(len(r) for r in runs[tid]) >= min_len),
        key=lambda tid: -sum(len(r) for r in runs[tid]),
    )[: cfg.max_people]
    if not keep:
        raise FrontEndError(
            f"no person track of at least {min_len} consecutive frames was found in {info.path.name} (VIMO needs 16)"
        )
    fits: dict[int, TrackFit] = {}  # per-frame betas (T, B), what the windows sample
    with _bar(len(keep), "VIMO temporal", progress) as bar:
        for tid in sorted(keep):
            fr = np.concatenate(runs[tid])
            rot, bet, tr = [], [], []
            for run in runs[tid]:
                c = np.stack([cs[(tid, int(t))][0] for t in run]).astype(np.float32)
                sc = np.array([cs[(tid, int(t))][1] for t in run], np.float32)
                o = vimo_track(
                    lambda **kw: models.run("vimo_temporal", **kw),
                    np.stack([feats[tid][int(t)] for t in run]),
                    c,
                    sc,
                    focal0,
                    centre0,
                )
                rot.append(o["rotmat"]), bet.append(o["betas"]), tr.append(o["transl"])
            V = model.num_vertices
            con = np.stack([contact_kf.get((tid, int(t)), np.zeros(V, bool)) for t in fr])
            B = model.num_betas
            betas = np.zeros((len(fr), B), np.float32)
            betas[:, :10] = np.concatenate(bet)
            row = {f: n for n, f in enumerate(tracker.frames[tid])}
            fits[tid] = TrackFit(
                fr,
                np.concatenate(rot),
                betas,
                np.concatenate(tr),
                con,
                boxes=np.stack([tracker.boxes[tid][row[int(t)]] for t in fr]),
            )
            bar.update(1)
    seconds["vimo_temporal"] = time.perf_counter() - t0
    log(
        f"[frontends] {len(keep)} person track(s): "
        + ", ".join(
            f"#{t} frames {fits[t].frames[0]}-{fits[t].frames[-1]} ({len(fits[t].frames)})" for t in sorted(keep)
        )
    )

    # ---- scene: Pi3X per window, MASt3R per keyframe pair (a pair two windows share is matched once)
    t0 = time.perf_counter()
    hmr_focal = focal0 * resized[0] / W0
    dt = {"pi3x": 0.0, "mast3r": 0.0, "matching": 0.0}
    scenes = []
    with _bar(len(windows_kf), "Pi3X", progress) as bar:
        for kf in windows_kf:
            idx = np.array([kpos[int(k)] for k in kf])
            s = time.perf_counter()
            pts, logits = _pi3x(models, imgs_p3[idx])
            depth, conf, focal = pi3x_scene(pts, logits, resized, work)
            if cfg.focal:
                focal = float(cfg.focal)  # --focal (working px) overrides Pi3X's
            elif not (np.isfinite(focal) and focal > 0):
                log(
                    f"[frontends] warning: Pi3X's point maps gave no usable focal for frames {kf[0]}-{kf[-1]} "
                    f"(got {focal:.1f} px); using the image diagonal, TRAM's assumption (or pass --focal)"
                )
                focal = focal0 * resized[0] / W0
            dt["pi3x"] += time.perf_counter() - s
            scenes.append((idx, depth, conf, focal))
            bar.update(1)
    pairs = sorted({(int(kf[a]), int(kf[b])) for kf in windows_kf for a, b in window_pairs(len(kf), cfg.pair_window)})
    matched: dict[tuple[int, int], tuple] = {}
    with _bar(len(pairs), "MASt3R", progress) as bar:
        for fa, fb in pairs:
            ia, ib = kpos[fa], kpos[fb]
            s = time.perf_counter()
            r = models.run("mast3r", img1=_to_pm1(imgs_work[ia]), img2=_to_pm1(imgs_work[ib]))
            dt["mast3r"] += time.perf_counter() - s
            s = time.perf_counter()
            matched[(fa, fb)] = match_pair(r["desc"], r["desc_conf"], person[ia], person[ib])
            dt["matching"] += time.perf_counter() - s
            bar.update(1)
    out_windows = []
    for kf, (idx, depth, conf, focal) in zip(windows_kf, scenes):
        matches = []
        for a, b in window_pairs(len(kf), cfg.pair_window):
            xa, xb, cc = matched[(int(kf[a]), int(kf[b]))]
            ok = cc > 0  # the reference's spanning-tree weight counts these
            matches.append((a, b, xa[ok], xb[ok], cc[ok]))
        scene = dict(depth=depth, conf=conf, **pair_fields(matches))
        principal = np.array(cfg.principal or [work[0] / 2, work[1] / 2], np.float64)  # --intrinsics
        out_windows.append(
            _window(
                all_kf[idx],
                imgs_work[idx],
                scene,
                fits,
                model,
                focal=focal,
                principal=principal,
                work=work,
                scale_to_original=W0 / resized[0],
                hmr_focal=hmr_focal,
            )
        )
    seconds["scene"] = time.perf_counter() - t0
    seconds.update({f"scene_{k}": v for k, v in dt.items()})
    meta = BundleMeta(
        camera="point maps",
        video=str(info.path),
        fps=float(info.fps),
        start=int(info.start),
        num_frames=int(T),
        work_size=tuple(int(x) for x in work),
        focal=float(np.mean([sc[3] for sc in scenes])),
        principal=(work[0] / 2, work[1] / 2),
        fixed_intrinsics=bool(cfg.fixed_intrinsics),
        registered=int(len(all_kf)),
        keyframes=int(len(all_kf)),
        people=len(keep),
        frontends="official",
        hmr_focal=float(hmr_focal),
    )
    # tracks.npz keeps one shape per track (the mean of VIMO's per-frame betas)
    tracks_out = {tid: f._replace(betas=f.betas.mean(0)) for tid, f in fits.items()}
    return FrontEndOutput(out_windows, tracks_out, meta, seconds)


def _pi3x(models: OfficialModels, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pi3X local points (K, h, w, 3) and confidence logits (K, h, w, 1) of ``frames`` (K, h, w, 3) uint8.

    A model exported for a fixed number of frames N (the tracer bakes it in) runs on groups of N, the
    last group padded with copies of its last frame (outputs of the copies dropped).
    """
    K = len(frames)
    n = models.sessions["pi3x"].get_inputs()[0].shape[1]
    n = n if isinstance(n, int) else K
    x = frames.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    pts, conf = [], []
    for s in range(0, K, n):
        group = x[s : s + n]
        pad = n - len(group)
        if pad:
            group = np.concatenate([group, np.repeat(group[-1:], pad, 0)])
        o = models.run("pi3x", imgs=group[None])
        pts.append(o["local_points"][0][: n - pad])
        conf.append(o["conf"][0][: n - pad])
    return np.concatenate(pts), np.concatenate(conf)


def _to_pm1(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> (1, 3, H, W) in [-1, 1] (DUSt3R's ImgNorm)."""
    return (rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
