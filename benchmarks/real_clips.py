"""The demo on real public footage: does it finish, which camera, which focal, are the bodies on the people.

    python -m benchmarks.real_clips --clips DIR [--only NAME ...] [--out OUT] [--json benchmarks/real_clips.json]

Runs ``python -m josh_jax.demo CLIP`` with default settings on each clip of :data:`CLIPS` found in
``DIR`` (the file name given there) and writes one row per clip: finished or the demo's one-line error,
the camera mode the demo chose, the solved focal over the video's long side, the people tracked, the 2D
alignment of the front ends alone and of the joint result (median over people of each person's median
joint error, % of box height; :mod:`josh_jax.eval.alignment`) and the seconds per stage. The table goes
to stdout, the rows to ``--json``; ``benchmarks/README.md`` quotes them.

None of these clips is committed: their licenses do not allow it (or are unclear), so :data:`CLIPS`
says where each came from (public repository, path, commit) for anyone to fetch the same bytes and
check them against the SHA-256 given here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: name -> where the clip comes from; the sha256 of the file measured here
CLIPS = {
    "josh_demo2": dict(
        file="josh_demo2.mp4",
        repo="genforce/JOSH",
        path="assets/demo2/video.mp4",
        commit="31ccdf5f",
        license="none stated (all rights reserved): not committed",
        content="1920x1080, 100 frames: four adults walking away from a following camera (the reference's demo)",
    ),
    "monst3r_lady_running": dict(
        file="monst3r_lady_running.mp4",
        repo="Junyi42/monst3r",
        path="demo_data/lady-running.mp4",
        commit="01b8cea4",
        license="CC BY-NC-SA 4.0 (DAVIS 2017): not committed",
        content="854x480, 65 frames: a woman walking through a dining room, handheld camera panning after her",
    ),
    "phalp_running": dict(
        file="phalp_running.mp4",
        repo="brjathu/PHALP",
        path="assets/videos/vid.mp4",
        commit="47efbbc8",
        license="MIT repository, footage of unstated origin: not committed",
        content="1920x1088, 180 frames: one woman running side-on in a hall, camera panning to follow",
    ),
    "sam2_juggle": dict(
        file="sam2_juggle.mp4",
        repo="facebookresearch/sam2",
        path="demo/data/gallery/05_default_juggle.mp4",
        commit="aa9b8722",
        license="Apache-2.0 repository, footage of unstated origin: not committed",
        content="1280x720, 247 frames: a man juggling a football on grass, camera held",
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _median_of(table: dict, key: str) -> float | None:
    vals = [e[key]["median"] for e in table.values() if e.get(key)]
    return float(np.median(vals)) if vals else None


def row_of(name: str, out: Path, rc: int, log: str, wall: float) -> dict:
    """One table row from a finished (or failed) demo run."""
    row = {"clip": name, "finished": rc == 0, "wall_s": round(wall, 1)}
    if rc != 0:
        lines = [ln for ln in log.strip().splitlines() if ln.strip()]
        row["error"] = lines[-1] if lines else f"exit {rc}"
        return row
    s = json.loads((out / "summary.json").read_text())
    with np.load(out / "results.npz") as z:
        focal = float(z["intrinsics"][0, 0])
        long = float(max(z["image_size"]))
    table = s.get("alignment") or {}
    row.update(
        camera=(s.get("camera") or {}).get("mode"),
        focal_source=((s.get("camera") or {}).get("evidence") or {}).get("focal_source"),
        focal_over_long_side=round(focal / long, 3),
        people=s.get("people"),
        alignment=table,
        alignment_init_median=_median_of(table, "init"),
        alignment_joint_median=_median_of(table, "joint"),
        worst_joint_median=max((e["joint"]["median"] for e in table.values() if e.get("joint")), default=None),
        warnings=s.get("warnings", []),
        seconds={k: round(float(v), 1) for k, v in (s.get("seconds") or {}).items()},
    )
    return row


def run_clip(name: str, clip: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "josh_jax.demo", str(clip), "--out", str(out), "--overwrite", *extra]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    (out.parent / f"{name}.log").write_text(p.stdout + p.stderr)
    return row_of(name, out, p.returncode, p.stderr, wall)


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = (
        "| clip | finished | camera | focal / long side | people | alignment init -> joint (median, worst "
        "person; % box height) | front ends / solve / export+overlay (s) |\n|---|---|---|---|---|---|---|\n"
    )
    out = []
    for r in rows:
        if not r["finished"]:
            out.append(f"| {r['clip']} | no: {r.get('error', '')} | | | | | |")
            continue
        sec = r["seconds"]
        fe = sum(v for k, v in sec.items() if k.startswith("frontends_"))
        out.append(
            f"| {r['clip']} | yes | {r['camera']} | {_fmt(r['focal_over_long_side'], '.2f')} | {r['people']} | "
            f"{_fmt(r['alignment_init_median'])} -> {_fmt(r['alignment_joint_median'])} "
            f"(worst {_fmt(r['worst_joint_median'])}) | {fe:.0f} / {sec.get('solve', 0):.0f} / "
            f"{sec.get('export', 0) + sec.get('overlay', 0):.0f} |"
        )
    return head + "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, required=True, help="folder holding the clips (file names in CLIPS)")
    ap.add_argument("--only", nargs="*", default=None, help="clip names to run (default: every clip found)")
    ap.add_argument("--out", type=Path, default=Path("real_clips_out"), help="the demo outputs, one folder per clip")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("demo_args", nargs="*", help="extra demo arguments after --, e.g. -- --set solve.method=gn")
    args = ap.parse_args(argv)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)  # the demo makes OUT itself, the logs go beside it
    for name, src in CLIPS.items():
        if args.only and name not in args.only:
            continue
        clip = args.clips / src["file"]
        if not clip.is_file():
            print(f"{name}: {clip} not found (from github {src['repo']} {src['path']} @ {src['commit']})")
            continue
        print(f"{name}: running the demo ...", flush=True)
        row = run_clip(name, clip, args.out / name, args.demo_args)
        row["sha256"] = sha256(clip)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "alignment"}), flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "sources": CLIPS}, indent=1))
    return 0 if all(r["finished"] for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
