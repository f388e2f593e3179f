"""Seconds per frame pair of JOSH3R on the CPU: onnxruntime (the exported josh3r.onnx) and PyTorch (the official module).

    python benchmarks/josh3r_timing.py --model MODELS/josh3r.onnx [--repo /path/JOSH] [--pairs 3] [--threads 2]

Weights do not change the time, so an export with ``--random-init`` times the
real architecture. The image size is the one baked into the file. For each
side: one warm-up call (its seconds reported apart as the first call), then
the median over ``--pairs`` other random pairs with boxes. onnxruntime runs
with the session options of ``josh_jax.frontends.onnx_models.open_session``;
PyTorch (``--repo``: a JOSH checkout, built as ``scripts/export_josh3r.py``
builds it, random weights) with ``--threads`` intra-op threads. The results
are merged into ``--out`` (default benchmarks/josh3r_timing.json) under the
size, so runs at several sizes accumulate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = f"{names[0]} ({platform.machine()})" if names else cpu
        mem = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
        memory = f", {mem / 2**20:.0f} GB"
    except (OSError, StopIteration):
        memory = ""
    return f"{os.cpu_count()}-core {cpu} CPU{memory}, Python {platform.python_version()}"


def pairs(H: int, W: int, n: int):
    """``n`` random pairs in [-1, 1] with person boxes (x1, y1, x2, y2) in pixels, one per image."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        imgs = rng.uniform(-1, 1, (1, 2, 3, H, W)).astype(np.float32)
        x1, y1 = rng.uniform(0, 0.5, 2) * (W, H)
        box = [x1, y1, x1 + rng.uniform(0.2, 0.5) * W, y1 + rng.uniform(0.3, 0.5) * H]
        out.append((imgs, np.float32([[box, [b + 4 for b in box]]])))
    return out


def _time(call, inputs) -> tuple[float, float, list]:
    t0 = time.perf_counter()
    call(*inputs[0])
    first = time.perf_counter() - t0
    secs, results = [], []
    for x in inputs[1:]:
        t0 = time.perf_counter()
        results.append(call(*x))
        secs.append(time.perf_counter() - t0)
    return first, float(np.median(secs)), results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="josh3r.onnx (scripts/export_josh3r.py)")
    ap.add_argument("--repo", type=Path, help="JOSH checkout: also time the PyTorch module")
    ap.add_argument("--pairs", type=int, default=3, help="timed pairs after the warm-up (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="threads of both runtimes (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "josh3r_timing.json")
    ap.add_argument("--note", default="", help="free text stored with the result (e.g. 'machine shared')")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"error: {args.model} not found; make it with scripts/export_josh3r.py")
    if args.repo is not None and not args.repo.is_dir():
        sys.exit(f"error: --repo {args.repo} is not a folder (a JOSH checkout)")
    if args.pairs < 1:
        sys.exit("error: --pairs must be at least 1")
    import onnxruntime as ort

    from josh_jax.frontends.onnx_models import open_session

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    sess = open_session(args.model, "cpu", threads=args.threads)
    load = time.perf_counter() - t0
    _, _, _, H, W = sess.get_inputs()[0].shape
    inputs = pairs(H, W, args.pairs + 1)
    print(f"josh3r.onnx {W}x{H}: loaded in {load:.1f} s; timing 1 + {args.pairs} pairs", flush=True)
    first, steady, onnx_out = _time(lambda i, b, s=sess: s.run(None, {"imgs": i, "bbox": b}), inputs)
    row = {
        "onnxruntime": {
            "version": ort.__version__,
            "threads": args.threads,
            "load_s": round(load, 2),
            "first_call_s": round(first, 2),
            "seconds_per_pair": round(steady, 2),
        }
    }
    print(f"  onnxruntime: first call {first:.2f} s, {steady:.2f} s per pair (median of {args.pairs})", flush=True)
    del sess
    if args.repo is not None:
        import torch

        sys.path.insert(0, str(ROOT / "scripts"))
        import export_josh3r

        torch.set_num_threads(args.threads)
        t0 = time.perf_counter()
        model = export_josh3r.build(args.repo.resolve())
        built = time.perf_counter() - t0
        shapes = torch.tensor([[[H, W], [H, W]]])

        def forward(imgs, bbox):
            with torch.no_grad():
                b = {"imgs": torch.from_numpy(imgs), "img_shapes": shapes, "bbox": torch.from_numpy(bbox)}
                return [t.numpy() for t in model(b)]

        first, steady, torch_out = _time(forward, inputs)
        # the same seed as the export's default: the same random weights, so the outputs agree too
        diff = max(float(np.abs(a - b).max()) for o, t in zip(onnx_out, torch_out) for a, b in zip(o, t))
        row["pytorch"] = {
            "version": torch.__version__,
            "threads": args.threads,
            "build_s": round(built, 1),
            "first_call_s": round(first, 2),
            "seconds_per_pair": round(steady, 2),
            "max_abs_diff_to_onnx": diff,
        }
        print(f"  pytorch:     first call {first:.2f} s, {steady:.2f} s per pair; max|onnx - torch| {diff:.3g}")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.update({"machine": machine(), "what": "JOSH3R forward, one frame pair, random weights"})
    # the 1-minute load average before and after: other jobs on the machine slow both runtimes down
    load_avg = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    report.setdefault("sizes", {})[f"{W}x{H}"] = dict(row, pairs=args.pairs, load_average=load_avg, note=args.note)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
