"""People on the rendered multi-person clips: tracking and world paths after the demo (issue 14).

    python benchmarks/people_clips.py [--presets walk_away crossing] [--work /tmp/people_clips]

For each preset of :data:`josh_jax.synthetic.clips.PEOPLE_PRESETS`: renders the clip (480x270, 48 frames)
with its truth, times the people stage alone (SSDLite + BlazePose + tracker) and scores its tracks
(:func:`~josh_jax.synthetic.clips.tracking_report`), runs the demo with default settings, then matches the
demo's people to the true ones (projected joints) and reports per person: tracked fraction of visible
frames, identity switches, world root path length relative to the truth (and the start-to-end distance's
ratio, which leaves out the gait's sway; and the truth's own path sampled on the keyframes, every 5th frame,
and joined linearly, over its full path: how much of the true length a keyframe-interpolated result can
hold), and root position error after one similarity alignment of all people's roots (metres). Writes
people_clips.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _project(cam_to_world, K, pts):
    from josh_jax.geometry.pinhole import project_K

    T = np.linalg.inv(cam_to_world)
    pc = pts @ T[:3, :3].T + T[:3, 3]
    return project_K(pc, K)


def main(argv=None) -> int:
    from josh_jax.eval.metrics import umeyama
    from josh_jax.frontends import blazepose as bp
    from josh_jax.frontends.person_detector import PersonDetector
    from josh_jax.frontends.tracker import track_people
    from josh_jax.synthetic.clips import render_people_clip, smpl_centres, tracking_report
    from josh_jax.synthetic.worlds import GAITS
    from josh_jax.video import iter_frames, probe

    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["walk_away", "crossing"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/people_clips"))
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--gait", choices=GAITS, default="steady", help="the walkers' gait (see synthetic.worlds)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "people_clips.json")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report = {"gait": args.gait}
    for preset in args.presets:
        clip = args.work / f"{preset}.mp4"
        gt = render_people_clip(clip, preset, gait=args.gait)
        info = probe(clip)
        pose, det = bp.BlazePose(threads=2), PersonDetector(threads=2)
        t0 = time.perf_counter()
        tracks, _ = track_people(pose, det, (im for _, im in iter_frames(info, 1280)), info.fps)
        people_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _, im in iter_frames(info, 1280):
            det.detect(im)
        det_ms = (time.perf_counter() - t0) / info.num_frames * 1000
        rep = tracking_report(gt, {tr.track_id: dict(zip(map(int, tr.frames), tr.image)) for tr in tracks})
        entry = dict(
            people_stage_ms_per_frame=people_s / info.num_frames * 1000, detector_ms_per_frame=det_ms, tracking=rep
        )
        if not args.skip_demo:
            out = args.work / f"{preset}_demo"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "josh_jax.demo", str(clip), "--out", str(out), "--overwrite", "--no-overlay"],
                capture_output=True,
                text=True,
            )
            entry["demo_seconds"] = time.perf_counter() - t0
            entry["demo_last_line"] = (proc.stderr.strip().splitlines() or [""])[-1]
            if proc.returncode == 0:
                entry.update(_world(gt, out, umeyama, smpl_centres, tracking_report, _project))
        report[preset] = entry
        print(preset, json.dumps(entry, indent=1))
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def _world(gt, out, umeyama, smpl_centres, tracking_report, _project) -> dict:
    from josh_jax.eval.metrics import path_length
    from josh_jax.windows import keyframe_indices

    z = np.load(out / "results.npz")
    summary = json.loads((out / "summary.json").read_text())
    K, W = z["intrinsics"], z["image_size"]
    scale = float(W[0]) / float(gt["size"][0])
    cams, J, vis = z["cam_to_world"], z["joints_world"], z["visible"]
    pts = {
        int(pid): {
            int(f): smpl_centres(_project(cams[k], K, J[i, k])) for k, f in enumerate(z["frame_index"]) if vis[i, k]
        }
        for i, pid in enumerate(z["person_ids"])
    }
    rep = tracking_report(gt, pts, scale=scale)
    # each true person -> the result person matched on most frames
    src, dst, per = [], [], []
    for r in rep:
        if not r["track_ids"]:
            per.append(dict(person=r["person"], matched=None))
            continue
        pid = r["track_ids"][0]
        i = list(map(int, z["person_ids"])).index(pid)
        frames = [k for k in range(len(z["frame_index"])) if vis[i, k]]
        est = J[i, frames, 0]
        true = gt["joints"][r["person"], z["frame_index"][frames], 0]
        src.append(est)
        dst.append(true)
        per.append(
            dict(
                person=r["person"],
                matched=pid,
                frames=len(frames),
                path_ratio=None,
                net_displacement_ratio=None,
                position_error_m=None,
            )
        )
    out_rep = dict(
        camera=summary.get("camera") or ("static" if summary.get("static_camera") else "sfm"),
        focal_working_px=summary.get("focal_working_px"),
        demo_tracking=rep,
    )
    if src:
        s, R, t = umeyama(np.concatenate(src), np.concatenate(dst))
        k = 0
        for p in per:
            if p["matched"] is None:
                continue
            est = s * src[k] @ R.T + t
            true = dst[k]
            p["path_ratio"] = path_length(est) / max(path_length(true), 1e-9)
            # start-to-end distance: the path without the gait's sway, which the keyframe interpolation
            # (every 5th frame, as the reference) does not carry
            p["net_displacement_ratio"] = float(
                np.linalg.norm(est[-1] - est[0]) / max(np.linalg.norm(true[-1] - true[0]), 1e-9)
            )
            kf = keyframe_indices(len(true))  # the demo's keyframes: the clips are one window
            p["truth_keyframe_path_ratio"] = path_length(true[kf]) / max(path_length(true), 1e-9)
            p["position_error_m"] = float(np.linalg.norm(est - true, axis=1).mean())
            k += 1
        out_rep["similarity_scale"] = float(s)
    out_rep["world"] = per
    return out_rep


if __name__ == "__main__":
    raise SystemExit(main())
