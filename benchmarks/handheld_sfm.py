"""SfM options on the rendered 2-5 cm handheld clip, front ends only (issue 14, "SfM on small baselines").

    PYTHONPATH=. python benchmarks/handheld_sfm.py [--kind handheld] [--options ...] [--out FILE]

Renders ``render_camera_clip(kind)`` (50 frames, 448x252, exact truth), runs the people stage once
(SSDLite + BlazePose + tracker) for the person masks of every frame, fits the rotation-only model on the
demo's keyframes (its focal seeds the SfM options marked "focal from rotation"), then runs each SfM
option and scores it on the demo's keyframes against the truth:

* registered keyframes (of 10);
* camera rotation error (deg, max over registered keyframes, relative to the first registered one);
* camera centre error after a similarity alignment (ATE, cm, RMS) next to the error of "no
  translation at all" (every centre at one point, what the rotation model assumes): an ATE at or above
  that baseline means the translation was not measured;
* the recovered centre path length against the true one (after the similarity's scale);
* focal error (relative).

Writes the rows as JSON (default benchmarks/handheld_sfm.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (frames used for mapping: "kf" | "every2" | "every1", run_sfm keyword arguments, focal from rotation)
OPTIONS = {
    "incremental, keyframes, default": ("kf", {}, False),
    "incremental, keyframes, init angle 1.5 deg": ("kf", {"init_min_tri_angle": 1.5}, False),
    "incremental, keyframes, 1.5 deg, focal from rotation (held)": (
        "kf",
        {"init_min_tri_angle": 1.5, "refine_focal": False},
        True,
    ),
    "incremental, every 2nd frame, 1.5 deg": ("every2", {"init_min_tri_angle": 1.5}, False),
    "incremental, every 2nd frame, 1.5 deg, focal from rotation (held)": (
        "every2",
        {"init_min_tri_angle": 1.5, "refine_focal": False},
        True,
    ),
    "incremental, every frame, 1 deg, focal from rotation (held)": (
        "every1",
        {"init_min_tri_angle": 1.0, "refine_focal": False},
        True,
    ),
    "global (GLOMAP), every 2nd frame": ("every2", {"mapper": "global"}, False),
    "global (GLOMAP), every 2nd frame, focal from rotation (held)": (
        "every2",
        {"mapper": "global", "refine_focal": False},
        True,
    ),
    # every triangulation-angle threshold lowered (initial pair, new points, filtering, local BA)
    "incremental, keyframes, all angles 0.1 deg": ("kf", {"init_min_tri_angle": 0.1, "min_tri_angle": 0.1}, False),
    "incremental, keyframes, all angles 0.1 deg, focal from rotation (held)": (
        "kf",
        {"init_min_tri_angle": 0.1, "min_tri_angle": 0.1, "refine_focal": False},
        True,
    ),
    "incremental, every 2nd frame, all angles 0.1 deg, focal from rotation (held)": (
        "every2",
        {"init_min_tri_angle": 0.1, "min_tri_angle": 0.1, "refine_focal": False},
        True,
    ),
    "incremental, every frame, all angles 0.1 deg, focal from rotation (held)": (
        "every1",
        {"init_min_tri_angle": 0.1, "min_tri_angle": 0.1, "refine_focal": False},
        True,
    ),
    "global (GLOMAP), every 2nd frame, angles 0.1 deg": ("every2", {"mapper": "global", "min_tri_angle": 0.1}, False),
    "global (GLOMAP), every 2nd frame, angles 0.1 deg, focal from rotation (held)": (
        "every2",
        {"mapper": "global", "min_tri_angle": 0.1, "refine_focal": False},
        True,
    ),
    # for the other clips (e.g. --kind walk_away, a forward-moving camera): the focal held at COLMAP's prior
    # (1.2 x the long side) or, as an oracle, at the truth
    "incremental, keyframes, focal held at 1.2 x long side": ("kf", {"refine_focal": False}, False),
    "incremental, keyframes, focal held at the truth (oracle)": ("kf", {"refine_focal": False}, "truth"),
}


def score(sfm, T_gt: np.ndarray, f_true: float) -> dict:
    """Errors of a reconstruction on the keyframes against the true camera-to-world poses T_gt (K, 4, 4)."""
    from scipy.spatial.transform import Rotation

    from josh_jax.eval.metrics import path_length, umeyama

    reg = np.flatnonzero(sfm.registered)
    out = {"registered": int(len(reg)), "keyframes": int(len(sfm.registered)), "points": int(len(sfm.points))}
    if len(sfm.points):
        out["reproj_error_median_px"] = float(np.median(sfm.point_error))
    if len(reg) < 3:
        return out
    T = np.linalg.inv(np.concatenate([sfm.cam_from_world[reg], np.tile([[[0, 0, 0, 1.0]]], (len(reg), 1, 1))], 1))
    Rg = np.linalg.inv(T_gt[reg[0], :3, :3]) @ T_gt[reg, :3, :3]
    Re = np.linalg.inv(T[0, :3, :3]) @ T[:, :3, :3]
    rot = np.degrees(np.linalg.norm(Rotation.from_matrix(np.swapaxes(Rg, 1, 2) @ Re).as_rotvec(), axis=1))
    c_est, c_true = T[:, :3, 3], T_gt[reg, :3, 3]
    depth = np.median(
        [
            np.median((sfm.points[p] @ sfm.cam_from_world[k, :, :3].T + sfm.cam_from_world[k, :, 3])[:, 2])
            for k in reg
            if len(p := sfm.obs[k][1])
        ]
        or [np.nan]
    )
    out["baseline_over_depth"] = float(np.max(np.linalg.norm(c_est - c_est[0], axis=1)) / depth)
    s, R, t = umeyama(c_est, c_true)
    aligned = s * c_est @ R.T + t
    out.update(
        rotation_error_max_deg=float(rot.max()),
        ate_rms_cm=100 * float(np.sqrt(np.mean(np.sum((aligned - c_true) ** 2, 1)))),
        no_translation_rms_cm=100 * float(np.sqrt(np.mean(np.sum((c_true - c_true.mean(0)) ** 2, 1)))),
        path_ratio=path_length(aligned) / max(path_length(c_true), 1e-12),
        focal_px=float(sfm.focal),
        focal_error=float(abs(sfm.focal / f_true - 1)),
    )
    return out


def main(argv=None) -> int:
    from josh_jax.frontends import blazepose as bp
    from josh_jax.frontends.camera import estimate_motion
    from josh_jax.frontends.onnx_models import FrontEndError
    from josh_jax.frontends.person_detector import PersonDetector
    from josh_jax.frontends.pipeline import FrontEndConfig, clip_keyframes
    from josh_jax.frontends.sfm import run_sfm
    from josh_jax.frontends.tracker import track_people
    from josh_jax.synthetic.clips import render_camera_clip
    from josh_jax.synthetic.worlds import GAITS
    from josh_jax.video import iter_frames, probe

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--kind",
        default="handheld",
        help="render_camera_clip kind (handheld | handheld_near | pan | ptz) or a people preset",
    )
    ap.add_argument("--options", nargs="+", default=None, help="option names (default: all); see OPTIONS")
    ap.add_argument("--work", type=Path, default=Path("/tmp/handheld_sfm"))
    ap.add_argument("--gait", choices=GAITS, default="steady", help="the walker's gait (handheld_sfm.json: sine)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "handheld_sfm.json")
    args = ap.parse_args(argv)
    import cv2

    args.work.mkdir(parents=True, exist_ok=True)
    video = args.work / f"{args.kind}.mp4"
    from josh_jax.synthetic.clips import PEOPLE_PRESETS, render_people_clip

    render = render_people_clip if args.kind in PEOPLE_PRESETS else render_camera_clip
    gt = render(video, args.kind, gait=args.gait)
    info = probe(video)
    cfg = FrontEndConfig()
    work = info.size_at(cfg.work_side)
    T = info.num_frames
    kf = np.unique(np.concatenate(clip_keyframes(T, cfg)))
    t0 = time.perf_counter()
    tracks, masks = track_people(
        bp.BlazePose(None, "cpu", None),
        PersonDetector(None, "cpu", None),
        (im for _, im in iter_frames(info, cfg.pose_side)),
        info.fps,
        cfg.max_people,
        cfg.min_track_frames,
        mask_frames=set(range(T)),
        mask_size=work,
    )
    print(f"people: {len(tracks)} track(s) in {time.perf_counter() - t0:.1f} s", flush=True)
    kernel = np.ones((2 * cfg.mask_dilate + 1,) * 2, np.uint8)
    person = np.stack([cv2.dilate((masks[t] > 0.5).astype(np.uint8), kernel) > 0 for t in range(T)])
    images = np.stack([im for _, im in iter_frames(info, cfg.work_side)])
    scale = work[0] / info.width
    f_true = float(np.ravel(gt["focal"])[0]) * scale
    t0 = time.perf_counter()
    motion = estimate_motion(list(images[kf]), list(person[kf]))
    f_rot = float(np.exp(np.mean(np.log(motion.focals))))
    rows = [
        {
            "option": "rotation-only model (no translation), keyframes",
            "seconds": time.perf_counter() - t0,
            "p90_px": motion.evidence.get("rotation_residual_p90_px"),
            "median_px": motion.evidence.get("rotation_residual_median_px"),
            "zoom": motion.evidence.get("zoom"),
            "focal_px": f_rot,
            "focal_error": abs(f_rot / f_true - 1),
        }
    ]
    print(json.dumps(rows[0]), flush=True)
    frames_of = {"kf": kf, "every2": np.unique(np.r_[np.arange(0, T, 2), kf]), "every1": np.arange(T)}
    for name in args.options or list(OPTIONS):
        which, kw, seeded = OPTIONS[name]
        fr = frames_of[which]
        pos = np.searchsorted(fr, kf)
        t0 = time.perf_counter()
        try:
            sfm = run_sfm(
                list(images[fr]),
                list(person[fr]),
                focal_prior=f_true if seeded == "truth" else f_rot if seeded else None,
                keyframes=pos,
                min_registered=0.0,
                **kw,
            )
            row = score(sfm, gt["cam_to_world"][kf], f_true)
        except FrontEndError as exc:
            row = {"registered": 0, "error": str(exc)}
        row = {"option": name, "mapped_frames": int(len(fr)), "seconds": time.perf_counter() - t0, **row}
        rows.append(row)
        print(json.dumps(row), flush=True)
    machine = f"{platform.machine()}, 2 cores shared with other jobs"
    args.out.write_text(json.dumps({"clip": args.kind, "machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
