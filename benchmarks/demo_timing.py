"""Time the demo per stage, end to end, on video clips (each run in a fresh process).

    python benchmarks/demo_timing.py [CLIP ...] [--render-seconds 10 20] --json benchmarks/demo_timing.json

Each clip runs twice in one fresh compile cache of its own: ``cold`` (nothing
compiled yet) and ``warm`` (the same command again: what a user's second video of
that size costs; ``--no-warm`` skips it). Without clips it times the bundled example clip and synthetic renders of the
given lengths (josh_jax.synthetic.clips, 640x360, 30 fps). Per clip: seconds per
stage from the demo's summary.json (front ends split into people, scene, body
fit, contact), front-end milliseconds per frame, and the checks a long clip
needs (windows, the largest camera step at window joins vs the median step).
Also the BlazePose calls alone (detector, landmarks; ms per call). The machine
is printed; all rows come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def blazepose_calls(clip: Path, n: int = 40) -> dict:
    import cv2

    from josh_jax.frontends import blazepose as bp

    model = bp.BlazePose()
    cap = cv2.VideoCapture(str(clip))
    ok, im = cap.read()
    rgb = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
    det = model.detect(rgb)
    roi = bp.roi_from_points(det[0].keypoints[0], det[0].keypoints[1]) if det else bp.Roi(320, 180, 300, 0.0)
    out = {}
    for name, fn in (("detector_ms", lambda: model.detect(rgb)), ("landmarks_ms", lambda: model.landmarks(rgb, roi))):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = 1000 * (time.perf_counter() - t) / n
    return out


def run_demo(clip: Path, extra: list[str], cache: Path | None = None) -> dict:
    """One demo run in a fresh process; ``cache``: its persistent compilation cache folder (None: the
    user's default)."""
    extra = extra + (["--compile-cache", str(cache)] if cache is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "josh_jax.demo", str(clip), "--out", str(out)] + extra,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t
        if r.returncode != 0:
            return {"clip": str(clip), "error": r.stderr.strip().splitlines()[-1]}
        s = json.loads((out / "summary.json").read_text())
        res = np.load(out / "results.npz")
        c = res["cam_to_world"][:, :3, 3]
        step = np.linalg.norm(np.diff(c, axis=0), axis=1)
        sec = s["seconds"]
        F = s["frames"]
        fe = {k.replace("frontends_", ""): v for k, v in sec.items() if k.startswith("frontends_")}
        row = {
            "clip": clip.name,
            "frames": F,
            "windows": s["windows"],
            "people": s["people"],
            "wall_s": wall,
            "seconds": sec,
            "frontend_ms_per_frame": {k: 1000 * v / F for k, v in fe.items()},
            "max_camera_step_over_median": float(step.max() / max(np.median(step), 1e-9)),
            "registered_keyframes": s.get("registered_keyframes"),
            "keyframes": s.get("keyframes"),
        }
        if "example_clip_check" in s:
            row["example_clip_check"] = s["example_clip_check"]
        return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--render-seconds", type=float, nargs="*", default=[10.0, 20.0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="only the cold run of each clip")
    ap.add_argument("--demo-args", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args(argv)
    from josh_jax.demo import EXAMPLE_CLIP
    from josh_jax.synthetic.clips import render_clip

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = [EXAMPLE_CLIP] + list(args.clips)
        for secs in args.render_seconds:
            p = Path(tmp) / f"render_{int(secs)}s.mp4"
            render_clip(p, frames=int(round(30 * secs)), seed=7)
            clips.append(p)
        calls = blazepose_calls(EXAMPLE_CLIP)
        for i, clip in enumerate(clips):
            # cold: a compile cache of its own, empty; warm: the same command again in that cache
            cache = Path(tmp) / f"cache_{i}"
            for run in ("cold", "warm") if args.warm else ("cold",):
                print(f"timing {clip.name} ({run}) ...", file=sys.stderr, flush=True)
                rows.append({"run": run, **run_demo(clip, args.demo_args, cache)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report = {"machine": machine(), "blazepose_calls": calls, "runs": rows}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
