"""Throughput of ``python -m josh_jax.batch``: videos per hour and windows per second for 1 and 2 workers.

    python benchmarks/batch_throughput.py [--frames 100] [--clips 2] [--workers 1,2] [--vmap 1,4]
                                          [--set KEY=VALUE ...] [--json OUT.json]

Measurement rules
- Inputs: the bundled example clip (120 frames) and ``--clips`` rendered walks
  (``josh_jax.synthetic.clips.render_clip``, ``--frames`` frames, 480x270, different seeds).
- Each worker count is one fresh ``python -m josh_jax.batch`` process with its own embedded Ray
  (``--num-cpus W``: W tasks at a time), into a fresh output folder, so every run pays the workers'
  start-up and one solver compile per worker and bucket, as a real batch does. Wall time is the
  whole command; videos per hour = videos / wall x 3600; windows per second = windows / wall.
- The schedule is the demo's default unless ``--set`` says otherwise; no overlay (``--no-overlay``).
- vmapped windows (``--vmap``): B windows of one bucket in one ``solve_batch`` call against B calls
  of ``solve`` (``benchmarks/throughput.py``'s worker, 11 keyframes, fresh process per B), the
  measurement that decides whether the batch scheduler groups windows across videos.
- The machine, the CPU count and the load average at the start go into the JSON.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def render_inputs(folder: Path, clips: int, frames: int) -> list[Path]:
    from josh_jax.demo import EXAMPLE_CLIP
    from josh_jax.synthetic.clips import render_clip

    paths = [EXAMPLE_CLIP]
    for k in range(clips):
        p = folder / f"walk_{frames}f_{k}.mp4"
        render_clip(p, frames=frames, width=480, height=270, seed=11 + k)
        paths.append(p)
    return paths


def run_batch(videos: list[Path], workers: int, overrides: list[str], out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    cmd = [
        sys.executable,
        "-m",
        "josh_jax.batch",
        *map(str, videos),
        "--out",
        str(out),
        "--num-cpus",
        str(workers),
        "--no-overlay",
    ] + [a for kv in overrides for a in ("--set", kv)]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"batch with {workers} worker(s) failed ({p.returncode}): {p.stderr[-2000:]}")
    rows = json.loads((out / "batch_summary.json").read_text())["videos"]
    windows = sum(r["windows"] for r in rows)
    stage = lambda k: sum(r["seconds"].get(k, 0.0) for r in rows)
    return dict(
        workers=workers,
        videos=len(rows),
        windows=windows,
        frames=sum(r["frames"] for r in rows),
        wall_s=wall,
        videos_per_hour=len(rows) / wall * 3600,
        windows_per_s=windows / wall,
        task_s_frontends=stage("frontends"),
        task_s_solve=stage("solve"),
        task_s_join_export=stage("join") + stage("export"),
    )


def vmap_rows(batches: list[int]) -> list[dict]:
    rows = []
    for b in batches:
        p = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "throughput.py"),
                "--worker",
                "batch",
                "--size",
                str(b),
                "--device",
                "cpu",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        if p.returncode != 0:
            raise SystemExit(f"vmap worker failed: {p.stderr[-2000:]}")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100, help="frames per rendered clip (100-300)")
    ap.add_argument("--clips", type=int, default=2, help="rendered clips besides the example clip")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--vmap", default="1,4", help="vmapped batch sizes to time ('' to skip)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    machine = dict(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        load_average_at_start=os.getloadavg(),
    )
    result = dict(machine=machine, frames_per_rendered_clip=args.frames, overrides=args.overrides, runs=[], vmap=[])

    def save() -> None:  # after every measurement, so a stopped run keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        videos = render_inputs(d, args.clips, args.frames)
        runs = result["runs"]
        for w in [int(x) for x in args.workers.split(",") if x]:
            r = run_batch(videos, w, args.overrides, d / f"out_{w}")
            runs.append(r)
            save()
            print(
                f"{w} worker(s): {r['videos']} videos, {r['windows']} windows in {r['wall_s']:.0f} s: "
                f"{r['videos_per_hour']:.1f} videos/h, {r['windows_per_s']:.4f} windows/s",
                flush=True,
            )
    for b in [int(x) for x in args.vmap.split(",") if x]:
        (r,) = vmap_rows([b])
        result["vmap"].append(r)
        save()
        print(
            f"vmap B={r['batch']}: {r['windows_per_s_batched']:.3f} windows/s batched vs "
            f"{r['windows_per_s_sequential']:.3f} one by one (x{r['speedup']:.2f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
