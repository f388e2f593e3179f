"""``python -m josh_jax.bench_accuracy [--quick] [--out DIR]``: does the joint optimization help?

For every preset (easy, medium, hard) and seed it builds a synthetic world,
solves it (1) with the front ends only (scene term alone at the depth model's
scale, bodies held by the prior at the human front end's values), (2) with the
full joint objective, and (3) with each human term switched off in turn, then
evaluates everything against the ground truth with :mod:`josh_jax.metrics`.

Writes ``DIR/accuracy.json``, ``DIR/accuracy.md`` (tables: init vs joint with
the relative improvement, and the ablation) and plots: ``trajectories_<preset>.png``
(top-down paths) and ``errors_<preset>.png`` (per-frame root error).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from . import body as jbody
from .losses import LossWeights
from .metrics import evaluate, umeyama
from .problem import build_problem
from .results import as_results, build_results
from .solve import SolveConfig, front_ends_only, solve
from .synth import PRESETS, make_world

METRICS = ("w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "foot_sliding", "camera_ate")
UNITS = {"w_mpjpe100": "mm", "wa_mpjpe100": "mm", "rte": "%", "jitter": "10m/s^3", "foot_sliding": "mm", "camera_ate": "m"}
ABLATIONS = ("scale", "static", "smooth", "prior")


def run_world(model, preset: str, seed: int, cfg: SolveConfig, ablations=ABLATIONS):
    window, gt = make_world(model, seed, PRESETS[preset])
    problem = build_problem(window, model)
    variants = {"init": front_ends_only(problem), "joint": (problem, LossWeights())}
    for term in ablations:
        variants[f"no_{term}"] = (problem, LossWeights()._replace(**{term: 0.0}))
    out, results = {}, {}
    for name, (pr, w) in variants.items():
        res = solve(pr, w, cfg)
        r = build_results(res.params, pr, window, model)
        results[name] = r
        out[name] = evaluate(r, gt, PRESETS[preset].fps)
    info = {"contact_scale_entries": int((problem.human.scale_w > 0).sum()),
            "static_entries": int((problem.human.static_w > 0).sum()), "people": window.num_tracks,
            "keyframes": window.num_keyframes}
    return out, info, results, gt


def _mean(rows, variant, key):
    return float(np.mean([r["metrics"][variant][key] for r in rows]))


def write_tables(rows, path_md: Path, machine: str, seconds: float) -> str:
    presets = sorted({r["preset"] for r in rows}, key=list(PRESETS).index)
    lines = [f"Machine: {machine}; {len(rows)} worlds; {seconds:.0f} s in all.", "",
             "| preset | variant | " + " | ".join(f"{k} ({UNITS[k]})" for k in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for group in presets + ["all"]:
        sel = [r for r in rows if group in ("all", r["preset"])]
        for variant in ("init", "joint"):
            vals = " | ".join(f"{_mean(sel, variant, k):.3f}" for k in METRICS)
            lines.append(f"| {group} | {variant} | {vals} |")
        imp = " | ".join(f"{100 * (1 - _mean(sel, 'joint', k) / max(_mean(sel, 'init', k), 1e-12)):+.0f} %" for k in METRICS)
        lines.append(f"| {group} | improvement | {imp} |")
    lines += ["", "Ablation (mean over all worlds; each human term switched off in turn):", "",
              "| variant | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    variants = ["joint"] + [v for v in rows[0]["metrics"] if v.startswith("no_")]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(f"{_mean(rows, v, k):.3f}" for k in METRICS) + " |")
    text = "\n".join(lines) + "\n"
    path_md.write_text(text)
    return text


def plot_world(preset: str, results: dict, gt, out_dir: Path) -> None:
    """Top-down paths of the ground truth and each variant's Results (``results``: name -> Results)."""
    import matplotlib

    gt = as_results(gt, "ground truth")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    for name, style in (("init", ":"), ("joint", "-")):
        r = results[name]
        c = r.cam_to_world[:, :3, 3]
        ax.plot(c[:, 0], c[:, 2], style, color="tab:blue", label=f"camera {name}")
        for p in range(len(r.person_ids)):
            j = r.joints_world[p][r.visible[p], 0]
            ax.plot(j[:, 0], j[:, 2], style, color=f"C{p + 3}", label=f"person {p} {name}")
    c = gt.cam_to_world[:, :3, 3]
    ax.plot(c[:, 0], c[:, 2], "--", color="k", lw=2, label="ground truth")
    for p in range(len(gt.person_ids)):
        j = gt.joints_world[p][:, 0]
        ax.plot(j[:, 0], j[:, 2], "--", color="k", lw=2)
    ax.set_aspect("equal", "datalim")
    ax.set_xlabel("x (m)"); ax.set_ylabel("z (m)")
    ax.set_title(f"{preset}: top-down, world = first camera")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"trajectories_{preset}.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 3.5), dpi=100)
    for name, style in (("init", ":"), ("joint", "-")):
        r = results[name]
        common, ri, gi = np.intersect1d(r.frame_index, gt.frame_index, return_indices=True)
        for p in range(len(gt.person_ids)):
            vis = r.visible[p, ri]
            if vis.sum() < 3:
                continue
            pr, g = r.joints_world[p, ri][vis, 0], gt.joints_world[p, gi][vis, 0]
            s, R, t = umeyama(pr, g, with_scale=False)
            err = np.linalg.norm(pr @ R.T + t - g, axis=-1)
            ax.plot(common[vis], err, style, color=f"C{p + 3}", label=f"person {p} {name}")
    ax.set_xlabel("frame"); ax.set_ylabel("root error (m), rigid alignment")
    ax.set_title(f"{preset}: per-frame root error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"errors_{preset}.png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m josh_jax.bench_accuracy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed per preset, fewer iterations")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench_accuracy_out"))
    ap.add_argument("--body-model", default="open")
    ap.add_argument("--method", choices=("adam", "gn"), default="adam", help="solver method (see josh_jax.solve)")
    args = ap.parse_args(argv)
    model = jbody.load(args.body_model)
    cfg = SolveConfig(iters_stage1=150, iters_stage2=60) if args.quick else SolveConfig()
    cfg = dataclasses.replace(cfg, method=args.method)
    seeds = [0] if args.quick else list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for preset in PRESETS:
        for seed in seeds:
            t = time.perf_counter()
            metrics, info, results, gt = run_world(model, preset, seed, cfg)
            rows.append({"preset": preset, "seed": seed, **info, "metrics": metrics})
            print(f"[bench_accuracy] {preset} seed {seed}: {time.perf_counter() - t:.0f} s, "
                  + ", ".join(f"{k} {metrics['init'][k]:.3g} -> {metrics['joint'][k]:.3g}" for k in METRICS),
                  file=sys.stderr, flush=True)
            if seed == seeds[0]:
                plot_world(preset, results, gt, args.out)
    seconds = time.perf_counter() - t0
    machine = f"{platform.machine()} {platform.processor() or ''} ({jax.devices()[0].platform}, jax {jax.__version__})".strip()
    text = write_tables(rows, args.out / "accuracy.md", machine, seconds)
    (args.out / "accuracy.json").write_text(json.dumps({"machine": machine, "solve_config": dataclasses.asdict(cfg),
                                                         "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
