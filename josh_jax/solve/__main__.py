"""``python -m josh_jax.solve BUNDLE_DIR --out OUT_DIR``: solve every window of a bundle.

Writes into OUT_DIR (through a temporary folder, moved into place at the end):
``results.npz`` (joint optimization), ``init.npz`` (front ends only: scene term
alone with its own scale, bodies as the human front end placed them),
``summary.json`` and ``loss_curve.png``. Long videos with several windows are
solved window by window and the first window's results are written (joining
windows is the demo's job).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from .. import body as jbody
from ..atomic import atomic_folder
from ..bundle import BundleError, load as load_bundle
from ..losses import LossWeights
from ..problem import ProblemConfig, build_problem, entry_counts, problem_sizes
from ..results import build_results, save_npz
from .solver import SolveConfig, front_ends_only, solve


def _terms_dict(terms, idx=None) -> dict:
    return {k: float(np.asarray(v)[idx] if idx is not None else v) for k, v in terms._asdict().items()}


def plot_losses(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, stage, title in ((axes[0], result.stage1, "stage 1: 3D matching"), (axes[1], result.stage2, "stage 2: 2D reprojection")):
        for name, vals in stage.history._asdict().items():
            v = np.asarray(vals)
            if np.any(v > 0):
                ax.semilogy(v, label=name)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(bundle_dir: Path, out_dir: Path, body_model: str | None = None, cfg: SolveConfig = SolveConfig(),
        weights: LossWeights = LossWeights(), pcfg: ProblemConfig = ProblemConfig(), window: int = 0,
        overwrite: bool = False, progress: bool = True) -> dict:
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {out_dir} exists and is not empty; pass --overwrite to replace it")
    meta, windows = load_bundle(bundle_dir)
    model = jbody.load(body_model or meta.get("body_model", "open"))
    if not 0 <= window < len(windows):
        raise BundleError(f"window {window} does not exist; the bundle has {len(windows)}")
    w = windows[window]
    if meta.get("static_camera") or meta.get("camera_mode") in ("static", "rotation"):  # see josh_jax.demo
        cfg = dataclasses.replace(cfg, optimize_cameras=False, optimize_focal=False)
    if w.track_contact.shape[-1] != model.num_vertices:
        raise BundleError(f"bundle field 'track_contact' has {w.track_contact.shape[-1]} vertices, the body model "
                          f"{model.name!r} has {model.num_vertices}; pass the --body-model the bundle was made with")
    t0 = time.perf_counter()
    problem = build_problem(w, model, pcfg)
    t_build = time.perf_counter() - t0

    # the front-end-only baseline: scene term alone, bodies held at their start values
    base_problem, base_w = front_ends_only(problem, weights)
    stages = [("front ends only", base_problem, base_w), ("joint optimization", problem, weights)]
    timings, results = {}, {}
    for label, pr, wts in stages:
        if progress:
            print(f"[josh_jax.solve] {label}: {cfg.iters_stage1} + {cfg.iters_stage2} iterations ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        res = jax.block_until_ready(solve(pr, wts, dataclasses.replace(cfg, progress_every=25) if progress else cfg))
        first = time.perf_counter() - t
        results[label] = res
        timings[label] = first
    # a second solve of the same bucket reuses the compiled program: steady-state time
    t = time.perf_counter()
    jax.block_until_ready(solve(problem, weights, dataclasses.replace(cfg, progress_every=25) if progress else cfg))
    steady = time.perf_counter() - t
    res, base = results["joint optimization"], results["front ends only"]
    for name, it in res.nan_stages():
        print(f"[josh_jax.solve] warning: non-finite loss at {name} iteration {it}; "
              "updates stopped there and the last finite state was kept", file=sys.stderr)

    with atomic_folder(out_dir, "solve") as tmp:
        save_npz(tmp / "results.npz", build_results(res.params, problem, w, model))
        save_npz(tmp / "init.npz", build_results(base.params, base_problem, w, model))
        plot_losses(res, tmp / "loss_curve.png")
        summary = {
            "bundle": str(bundle_dir), "window": window, "num_windows": len(windows), "body_model": model.name,
            "keyframes": w.num_keyframes, "tracks": w.num_tracks, "sizes": problem_sizes(problem),
            **entry_counts(problem),
            "iterations": [cfg.iters_stage1, cfg.iters_stage2],
            "loss_stage1_first": _terms_dict(res.stage1.history, 0), "loss_stage1_last": _terms_dict(res.stage1.history, -1),
            "loss_stage2_first": _terms_dict(res.stage2.history, 0), "loss_stage2_last": _terms_dict(res.stage2.history, -1),
            "nan_at": {"stage1": int(res.stage1.nan_at), "stage2": int(res.stage2.nan_at)},
            # both solves share one compiled program: the first call carries the compile
            "seconds": {"problem_build": t_build, "first_solve_incl_compile": timings["front ends only"],
                        "steady_state_solve": steady, "compile_estimate": max(timings["front ends only"] - steady, 0.0),
                        "joint_solve_first_call": timings["joint optimization"]},
            "config": dataclasses.asdict(cfg), "weights": {k: float(v) for k, v in weights._asdict().items()},
            "device": str(jax.devices()[0]),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m josh_jax.solve", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="front-end bundle folder (bundle.json + window_*.npz)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--body-model", default=None, help="'open' or a path to SMPL_NEUTRAL.pkl (default: the bundle's)")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    for f in dataclasses.fields(SolveConfig):
        if f.name == "progress_every":
            continue
        kind = type(f.default)
        if kind is bool:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default,
                            metavar="BOOL")
        else:
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    for name, default in LossWeights()._asdict().items():
        ap.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=default, dest=f"w_{name}")
    args = ap.parse_args(argv)
    cfg = SolveConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SolveConfig) if f.name != "progress_every"})
    weights = LossWeights(**{k: getattr(args, f"w_{k}") for k in LossWeights._fields})
    try:
        summary = run(args.bundle, args.out, args.body_model, cfg, weights, window=args.window, overwrite=args.overwrite)
    except (BundleError, jbody.BodyModelError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = summary["seconds"]
    print(f"wrote {args.out}/results.npz, init.npz, summary.json, loss_curve.png "
          f"(solve {s['steady_state_solve']:.1f} s steady, first {s['first_solve_incl_compile']:.1f} s incl. compile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
