"""Time one call of each official ONNX model with onnxruntime (random inputs of the contract shapes).

    python benchmarks/official_onnx_timing.py MODELS_DIR [--device cpu|auto] [--repeat 3] [--out timing.json]

Weights do not change the time, so exports with ``--random-init`` give the
same numbers as the real checkpoints. Reports the session load time, the
first call (allocation, kernel selection) apart from the steady state
(median of ``--repeat`` further calls), and the providers used. Models
missing from the folder are skipped (listed).
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

# one call as the runners make it: batch sizes per call
BATCH = {"vimo_backbone": {"B": 1}, "vimo_temporal": {"B16": 16}, "deco": {"B": 1}, "person_segmenter": {}}


def _feeds(sess, name: str) -> dict:
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in sess.get_inputs():
        shape = [
            d if isinstance(d, int) else BATCH.get(name, {}).get(d, 1 if d in ("B", "B16", "N") else 640)
            for d in inp.shape
        ]
        if name == "person_segmenter" and inp.name == "image":
            shape = [1, 3, 384, 640] if not all(isinstance(d, int) for d in inp.shape) else inp.shape
        x = rng.random(shape, dtype=np.float32)
        if inp.name == "scale":
            x = x + 1.0
        if inp.name == "img_focal":
            x = np.full(shape, 2202.9, np.float32)
        feeds[inp.name] = x
    return feeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", type=Path)
    ap.add_argument("--device", default="cpu", choices=("cpu", "auto", "gpu"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import onnxruntime as ort

    from josh_jax.frontends.official.contracts import CONTRACTS, REQUIRED
    from josh_jax.frontends.onnx_models import open_session

    rows, skipped = {}, []
    for name in REQUIRED:
        path = args.models / CONTRACTS[name]["file"]
        if not path.is_file():
            skipped.append(name)
            continue
        t0 = time.perf_counter()
        sess = open_session(path, args.device)
        load = time.perf_counter() - t0
        feeds = _feeds(sess, name)
        t0 = time.perf_counter()
        sess.run(None, feeds)
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append(time.perf_counter() - t0)
        rows[name] = {
            "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
            "load_s": round(load, 2),
            "first_call_s": round(first, 3),
            "steady_call_s": round(float(np.median(times)), 3),
            "providers": sess.get_providers(),
        }
        print(
            f"{name:18s} load {load:6.1f} s  first {first:7.3f} s  steady {np.median(times):7.3f} s  "
            f"{rows[name]['input_shapes']}",
            flush=True,
        )
        del sess
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "onnxruntime": ort.__version__,
        "device": args.device,
        "models": rows,
        "skipped": skipped,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if skipped:
        print("skipped (not in the folder): " + ", ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
