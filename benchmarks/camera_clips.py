"""The demo with default settings on the rendered camera-motion clips (issue 14): chosen camera mode,
errors against the exact truth (josh_jax.synthetic.camera_check) and seconds per stage.

    PYTHONPATH=. python benchmarks/camera_clips.py --out benchmarks/camera_clips.json

Each clip: 50 frames, 448x252, one walker (josh_jax.synthetic.clips.render_camera_clip). Runs the demo
with --no-overlay (the overlay is not part of the camera check).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path


def run(kind: str, tmp: Path, gait: str = "steady") -> dict:
    from josh_jax.demo import main
    from josh_jax.results import load_results
    from josh_jax.synthetic.camera_check import clip_errors
    from josh_jax.synthetic.clips import render_camera_clip

    gt = render_camera_clip(tmp / f"{kind}.mp4", kind, gait=gait)
    if main([str(tmp / f"{kind}.mp4"), "--out", str(tmp / kind), "--no-overlay"]) != 0:
        return {"clip": kind, "failed": True}
    summary = json.loads((tmp / kind / "summary.json").read_text())
    e = clip_errors(load_results(tmp / kind / "results.npz"), summary, {**gt, "width": 448})
    return {"clip": kind, **e, "evidence": summary["camera"]["evidence"], "seconds": summary["seconds"]}


def main_cli(argv=None) -> int:
    from josh_jax.synthetic.worlds import GAITS

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/camera_clips.json"))
    ap.add_argument("--clips", nargs="+", default=["ptz", "pan", "handheld"])
    ap.add_argument("--gait", choices=GAITS, default="steady", help="the walker's gait (see synthetic.worlds)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(k, Path(tmp), args.gait) for k in args.clips]
    info = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}; 2 cores shared with other jobs",
        "gait": args.gait,
        "rows": rows,
    }
    args.out.write_text(json.dumps(info, indent=1, default=str))
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k not in ("evidence", "seconds")}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_cli())
