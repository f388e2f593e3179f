"""``python -m benchmarks.bench_accuracy [--quick] [--out DIR]``: does the joint optimization help, and josh+?

For every preset (easy, medium, hard) and seed it builds a synthetic world,
solves it (1) with the front ends only (scene term alone at the depth model's
scale, bodies held by the prior at the human front end's values), (2) with the
reference objective ``josh``, (3) with ``josh+`` (:mod:`josh_jax.objective`) and
``josh+`` with each of its switches off in turn (``--ablation plus``, default),
and/or the reference with each human term switched off in turn (``--ablation
reference``), then evaluates everything against the ground truth with
:mod:`josh_jax.eval.metrics`.

Writes ``DIR/accuracy.json``, ``DIR/accuracy.md`` (tables: init, josh and josh+
side by side with the improvement over init, and the ablations) and plots:
``trajectories_<preset>.png`` (top-down paths), ``errors_<preset>.png``
(per-frame root error) and ``foot_speed_<preset>.png`` (per-frame foot-marker
speed of person 0) for the first seed.
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

from josh_jax import body as jbody
from josh_jax.eval.metrics import evaluate, umeyama
from josh_jax.losses import LossWeights
from josh_jax.objective import SWITCHES, ObjectiveConfig, loss_weights, problem_config, refine_config
from josh_jax.problem import ProblemConfig, build_problem
from josh_jax.refine import RefineConfig, refine_results
from josh_jax.results import as_results, build_results
from josh_jax.run.window import WindowSettings, solve_window
from josh_jax.solve import SolveConfig, solve
from josh_jax.solve.memory_maps import release_if_crowded
from josh_jax.synthetic.worlds import PRESETS, make_world

METRICS = ("w_mpjpe100", "wa_mpjpe100", "rte", "jitter", "foot_sliding", "camera_ate")
UNITS = {
    "w_mpjpe100": "mm",
    "wa_mpjpe100": "mm",
    "rte": "%",
    "jitter": "10m/s^3",
    "foot_sliding": "mm",
    "camera_ate": "m",
}
ABLATIONS = ("scale", "static", "smooth", "prior")


def run_world(
    model,
    preset: str,
    seed: int,
    cfg: SolveConfig,
    ablations=ABLATIONS,
    plus: bool = True,
    plus_ablation: bool = True,
    timings: dict | None = None,
    reference_depth: bool = False,
):
    """Solve one world with every variant; returns (metrics per variant, entry counts, Results per
    variant, ground truth). ``timings`` (a dict) collects seconds of the josh+ extra work per world.
    ``reference_depth``: also solve ``josh`` on the reference's problem exactly (``ProblemConfig.reference()``:
    its body depth, no per-track contact weights), the variant "josh reference"."""
    window, gt = make_world(model, seed, PRESETS[preset])
    # josh and the front-ends-only baseline ("init"): the window solve every entry point uses
    josh = solve_window(window, model, WindowSettings(solve=cfg, baseline=True), progress=False)
    problem = josh.problem
    results = {"init": josh.init_results(window, model), "josh": josh.results(window, model)}
    variants = {}  # the ablations: other weights or problem settings, solved directly
    if reference_depth:
        variants["josh reference"] = (build_problem(window, model, ProblemConfig.reference()), LossWeights())
    for term in ablations:
        variants[f"no_{term}"] = (problem, LossWeights()._replace(**{term: 0.0}))
    out = {}
    for name, (pr, w) in variants.items():
        results[name] = build_results(solve(pr, w, cfg).params, pr, window, model)
    info = {
        "contact_scale_entries": int((problem.human.scale_w > 0).sum()),
        "static_entries": int((problem.human.static_w > 0).sum()),
        "people": window.num_tracks,
        "keyframes": window.num_keyframes,
    }
    if plus:
        obj = ObjectiveConfig(name="josh+")
        windowed = {}  # problem settings -> per-frame Results of the window solve (josh's when unchanged)

        def plus_variant(o: ObjectiveConfig, rc=None):
            pcfg, w = problem_config(ProblemConfig(), o), loss_weights(LossWeights(), o)
            key = (pcfg, tuple(w))
            if key not in windowed:
                if pcfg == ProblemConfig() and w == LossWeights():
                    windowed[key] = results["josh"]
                else:
                    pp = build_problem(window, model, pcfg)
                    t = time.perf_counter()
                    res = jax.block_until_ready(solve(pp, w, cfg))
                    if timings is not None:
                        timings.setdefault("extra_window_solve", []).append(time.perf_counter() - t)
                    info[f"static_entries_{pcfg.static_entries}"] = int((pp.human.static_w > 0).sum())
                    windowed[key] = build_results(res.params, pp, window, model)
            r = windowed[key]
            rc = rc or refine_config(o)
            if rc is None:
                return r
            t = time.perf_counter()
            out, rinfo = refine_results(r, window, model, rc)
            if timings is not None:
                timings.setdefault("refine", []).append(time.perf_counter() - t)
            info["stance_entries"] = rinfo["entries"]
            return out

        results["josh+"] = plus_variant(obj)
        if plus_ablation:
            for sw in SWITCHES:
                o = obj.toggled(sw)
                results[f"josh+ {'with' if getattr(o, sw) else 'no'}_{sw}"] = plus_variant(o)
            for term in ("contact", "accel"):
                rc = dataclasses.replace(refine_config(obj) or RefineConfig(), **{f"w_{term}": 0.0})
                results[f"josh+ refine no_{term}"] = plus_variant(obj, rc)
    for name, r in results.items():
        out[name] = evaluate(r, gt, PRESETS[preset].fps)
    return out, info, results, gt


def _mean(rows, variant, key):
    return float(np.mean([r["metrics"][variant][key] for r in rows]))


def write_tables(rows, path_md: Path, machine: str, seconds: float) -> str:
    presets = sorted({r["preset"] for r in rows}, key=list(PRESETS).index)
    have = list(rows[0]["metrics"])
    main = [v for v in ("init", "josh reference", "josh", "josh+") if v in have]
    lines = [
        f"Machine: {machine}; {len(rows)} worlds; {seconds:.0f} s in all.",
        "",
        "| preset | variant | " + " | ".join(f"{k} ({UNITS[k]})" for k in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for group in presets + ["all"]:
        sel = [r for r in rows if group in ("all", r["preset"])]
        for variant in main:
            vals = " | ".join(f"{_mean(sel, variant, k):.3f}" for k in METRICS)
            lines.append(f"| {group} | {variant} | {vals} |")
        for variant in main[1:]:
            imp = " | ".join(
                f"{100 * (1 - _mean(sel, variant, k) / max(_mean(sel, 'init', k), 1e-12)):+.0f} %" for k in METRICS
            )
            lines.append(f"| {group} | {variant} vs init | {imp} |")
        if "josh+" in main:
            rel = " | ".join(
                f"{100 * (_mean(sel, 'josh+', k) / max(_mean(sel, 'josh', k), 1e-12) - 1):+.1f} %" for k in METRICS
            )
            lines.append(f"| {group} | josh+ vs josh (change) | {rel} |")
    ref = ["josh"] + [v for v in have if v.startswith("no_")]
    if len(ref) > 1:
        lines += [
            "",
            "Ablation of the reference (mean over all worlds; each human term switched off in turn):",
            "",
            "| variant | " + " | ".join(METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        for v in ref:
            lines.append(f"| {v} | " + " | ".join(f"{_mean(rows, v, k):.3f}" for k in METRICS) + " |")
    plus = ["josh+"] + [v for v in have if v.startswith("josh+ ")]
    if len(plus) > 1:
        lines += [
            "",
            "Ablation of josh+ (mean over all worlds; each switch flipped in turn, each refinement term off):",
            "",
            "| variant | " + " | ".join(METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        for v in ["josh"] + plus:
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

    styles = [(n, st) for n, st in (("init", ":"), ("josh", "-"), ("josh+", "-.")) if n in results]
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    for name, style in styles:
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
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_title(f"{preset}: top-down, world = first camera")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"trajectories_{preset}.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 3.5), dpi=100)
    for name, style in styles:
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
    ax.set_xlabel("frame")
    ax.set_ylabel("root error (m), rigid alignment")
    ax.set_title(f"{preset}: per-frame root error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"errors_{preset}.png")
    plt.close(fig)

    # per-frame foot speed of person 0: each foot's slowest marker (a planted foot has one at ~0)
    fig, axes = plt.subplots(2, 1, figsize=(6.5, 4.5), dpi=100, sharex=True)
    fps = PRESETS[preset].fps
    for name, style, color in [("ground truth", "--", "k")] + [
        (n, st, c) for (n, st), c in zip(styles, ("tab:gray", "tab:orange", "tab:green"))
    ]:
        r = gt if name == "ground truth" else results[name]
        vis = r.visible[0]
        fv = np.where(vis[:, None, None], r.foot_vertices_world[0], np.nan)
        speed = np.linalg.norm(np.diff(fv, axis=0), axis=-1) * fps  # (F - 1, 4) m/s
        for foot, ax in enumerate(axes):
            ax.plot(r.frame_index[1:], np.min(speed[:, 2 * foot : 2 * foot + 2], -1), style, color=color, label=name)
    for foot, ax in enumerate(axes):
        ax.set_ylabel(f"{('left', 'right')[foot]} foot (m/s)")
        ax.set_ylim(0, None)
    axes[0].set_title(f"{preset}: person 0, per-frame speed of the slower marker of each foot")
    axes[0].legend(fontsize=7, ncol=4)
    axes[1].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(out_dir / f"foot_speed_{preset}.png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_accuracy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed per preset, fewer iterations")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench_accuracy_out"))
    ap.add_argument("--body-model", default="open")
    ap.add_argument("--method", choices=("adam", "gn"), default="adam", help="solver method (see josh_jax.solve)")
    ap.add_argument(
        "--solve",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one SolveConfig setting, e.g. --solve gn_tol_stage1=1e-4 (repeatable)",
    )
    ap.add_argument(
        "--ablation",
        choices=("plus", "reference", "both", "none"),
        default="plus",
        help="ablation rows: josh+'s switches off in turn (plus), the reference's human terms (reference)",
    )
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default: all)")
    ap.add_argument(
        "--reference-depth",
        action="store_true",
        help="also solve josh on the reference's problem exactly (ProblemConfig.reference())",
    )
    ap.add_argument("--no-plus", action="store_true", help="skip josh+ (the reference objective only)")
    args = ap.parse_args(argv)
    model = jbody.load(args.body_model)
    cfg = SolveConfig(iters_stage1=150, iters_stage2=60) if args.quick else SolveConfig()
    cfg = dataclasses.replace(cfg, method=args.method)
    for item in args.solve:
        key, _, value = item.partition("=")
        field = {f.name: f for f in dataclasses.fields(SolveConfig)}.get(key.strip())
        if field is None or not value:
            ap.error(f"--solve {item!r}: expected KEY=VALUE with KEY a SolveConfig setting")
        kind = type(getattr(cfg, field.name))
        if kind is bool:
            parsed = value.strip().lower() in ("1", "true", "yes", "on")
        else:
            parsed = kind(float(value)) if kind in (int, float) else value
        cfg = dataclasses.replace(cfg, **{field.name: parsed})
    seeds = [0] if args.quick else list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        ap.error(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(PRESETS)}")
    ref_ablations = ABLATIONS if args.ablation in ("reference", "both") else ()
    rows, timings, t0 = [], {}, time.perf_counter()
    for preset in presets:
        for seed in seeds:
            t = time.perf_counter()
            metrics, info, results, gt = run_world(
                model,
                preset,
                seed,
                cfg,
                ref_ablations,
                plus=not args.no_plus,
                plus_ablation=args.ablation in ("plus", "both") and not args.no_plus,
                timings=timings,
                reference_depth=args.reference_depth,
            )
            rows.append({"preset": preset, "seed": seed, **info, "metrics": metrics})
            # every world compiles new programs (a gn solve holds ~7,100 memory mappings): drop them before
            # the process nears vm.max_map_count, where LLVM aborts ("Unable to allocate section memory")
            release_if_crowded()
            print(
                f"[bench_accuracy] {preset} seed {seed}: {time.perf_counter() - t:.0f} s, "
                + ", ".join(
                    f"{k} {metrics['init'][k]:.3g} -> "
                    + " / ".join(f"{metrics[v][k]:.3g}" for v in ("josh reference", "josh", "josh+") if v in metrics)
                    for k in METRICS
                ),
                file=sys.stderr,
                flush=True,
            )
            if seed == seeds[0]:
                plot_world(preset, results, gt, args.out)
    seconds = time.perf_counter() - t0
    machine = f"{platform.machine()} {platform.processor() or ''} ({jax.devices()[0].platform}, jax {jax.__version__})".strip()
    text = write_tables(rows, args.out / "accuracy.md", machine, seconds)
    (args.out / "accuracy.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "solve_config": dataclasses.asdict(cfg),
                "objective_plus": dataclasses.asdict(ObjectiveConfig("josh+")),
                "switches": list(SWITCHES),
                "josh_plus_seconds": timings,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
