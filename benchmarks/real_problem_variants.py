"""The reference's problem against josh_jax's two deviations, on one real clip's front-end bundle.

    python -m josh_jax.frontends CLIP --out BUNDLE        # once (the demo's front ends)
    python -m benchmarks.real_problem_variants BUNDLE --long-side 1920 [--json OUT]

Solves the bundle's first window with the default solver three times: the reference's problem exactly
(``ProblemConfig.reference()``), with only the body depth following the focal
(``contact_consensus=0``), and with josh_jax's defaults (also the per-person contact weights); plus
the front-ends-only baseline. Reports the solved focal against the initial one, each person's
contact-scale weight and each person's 2D alignment (median joint error against the tracker's
landmarks, % of the box height; :mod:`josh_jax.eval.alignment`) for the baseline and each variant.
``--long-side``: the video's long side in pixels (the landmarks' scale to video pixels).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from josh_jax import body
    from josh_jax.bundle import load as load_bundle
    from josh_jax.eval.alignment import alignment
    from josh_jax.frontends import load_tracks
    from josh_jax.losses import LossWeights
    from josh_jax.problem import ProblemConfig, build_problem
    from josh_jax.results import build_results
    from josh_jax.solve import SolveConfig, front_ends_only, solve

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--long-side", type=float, required=True, help="the video's long side (px)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    model = body.load("open")
    meta, windows = load_bundle(args.bundle, model.num_vertices)
    w = windows[0]
    tracks = load_tracks(args.bundle / "tracks.npz")
    scale = args.long_side / max(meta["work_size"])
    static = meta.holds_cameras
    scfg = SolveConfig(optimize_cameras=not static, optimize_focal=not static)
    variants = {
        "reference": ProblemConfig.reference(),
        "body depth follows the focal": ProblemConfig(contact_consensus=0.0),
        "josh_jax defaults (+ per-person contact weights)": ProblemConfig(),
    }
    rows, init = [], None
    for name, pcfg in variants.items():
        pr = build_problem(w, model, pcfg)
        if init is None:
            bp, bw = front_ends_only(pr)
            init = build_results(solve(bp, bw, scfg).params, bp, w, model)
        t = time.perf_counter()
        r = solve(pr, LossWeights(), scfg)
        seconds = time.perf_counter() - t
        table = alignment(build_results(r.params, pr, w, model), tracks, scale, init)
        f = float(np.clip(np.exp(r.params.cam.log_focal), 0.25 * np.hypot(*w.image_size), 10 * np.hypot(*w.image_size)))
        row = {
            "variant": name,
            "focal_initial_px": float(pr.init_focal),
            "focal_solved_px": f,
            "focal_change": f / float(pr.init_focal) - 1.0,
            "contact_weights": [round(float(x), 3) for x in np.asarray(pr.human.scale_track_w)[: w.num_tracks]],
            "alignment": {
                k: {"init": v["init"]["median"] if v["init"] else None, "joint": v["joint"]["median"]}
                for k, v in table.items()
                if v["joint"]
            },
            "seconds": seconds,
        }
        rows.append(row)
        al = ", ".join(f"{k}: {v['init']} -> {v['joint']}" for k, v in row["alignment"].items())
        print(
            f"{name}: focal {row['focal_initial_px']:.1f} -> {f:.1f} px ({100 * row['focal_change']:+.1f} %), "
            f"weights {row['contact_weights']}; alignment % (init -> joint) {al}",
            flush=True,
        )
    if args.json:
        machine = f"{platform.machine()} {platform.processor()}".strip()
        args.json.write_text(json.dumps({"bundle": str(args.bundle), "machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
