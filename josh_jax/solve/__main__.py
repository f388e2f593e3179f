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
from pathlib import Path

import jax
import numpy as np

from josh_jax._cli.atomic import atomic_folder
from josh_jax.errors import JoshError

from .. import body as jbody
from ..bundle import BundleError
from ..bundle import load as load_bundle
from ..losses import LossWeights
from ..problem import PROBLEM_CHOICES, ProblemConfig, entry_counts, problem_sizes
from .solver import SolveConfig


def _say(msg: str) -> None:
    print(f"[josh_jax.solve] {msg}", file=sys.stderr, flush=True)


def _terms_dict(terms, idx=None) -> dict:
    return {k: float(np.asarray(v)[idx] if idx is not None else v) for k, v in terms._asdict().items()}


def plot_losses(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, stage, title in (
        (axes[0], result.stage1, "stage 1: 3D matching"),
        (axes[1], result.stage2, "stage 2: 2D reprojection"),
    ):
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


def run(
    bundle_dir: Path,
    out_dir: Path,
    body_model: str | None = None,
    cfg: SolveConfig = SolveConfig(),
    weights: LossWeights = LossWeights(),
    pcfg: ProblemConfig = ProblemConfig(),
    window: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    cache_dir: Path | None = None,
    objective=None,
) -> dict:
    from josh_jax._cli.atomic import check_output

    from .. import objective as jobjective
    from ..config import check_solve
    from ..run.window import WindowSettings, solve_window

    check_output(out_dir, inputs=[bundle_dir, body_model], overwrite=overwrite)
    check_solve(cfg, weights)
    meta, windows = load_bundle(bundle_dir)
    model = jbody.load(body_model or meta.body_model)
    if not 0 <= window < len(windows):
        raise BundleError(f"window {window} does not exist; the bundle has {len(windows)}")
    w = windows[window]
    if w.track_contact.shape[-1] != model.num_vertices:
        raise BundleError(
            f"bundle field 'track_contact' has {w.track_contact.shape[-1]} vertices, the body model "
            f"{model.name!r} has {model.num_vertices}; pass the --body-model the bundle was made with"
        )
    obj = objective or jobjective.ObjectiveConfig()  # josh (reference) | josh+ (docs/objective.md)
    # the one window solve (josh_jax.run.window), always with the front-ends-only baseline (init.npz),
    # holding what the bundle's camera model fixed
    settings = WindowSettings(pcfg, weights, cfg, obj, baseline=True).held_for(meta)
    cfg, pcfg, weights = settings.solve, settings.problem_config(), settings.loss_weights()
    if progress:
        n1, n2 = (
            (cfg.gn_iters_stage1, cfg.gn_iters_stage2) if cfg.method == "gn" else (cfg.iters_stage1, cfg.iters_stage2)
        )
        _say(f"window {window}: {cfg.method}, {n1} + {n2} iterations, joint, then front ends only ...")
    solved = solve_window(w, model, settings, f"window {window}" if progress else "", progress=progress, log=_say)
    res, problem = solved.result, solved.problem
    counts = entry_counts(problem)
    for name, it in res.nan_stages():
        _say(
            f"warning: non-finite loss at {name} iteration {it}; "
            "updates stopped there and the last finite state was kept"
        )

    with atomic_folder(out_dir, "solve") as tmp:
        solved.results(w, model, obj).save(tmp / "results.npz")
        solved.init_results(w, model).save(tmp / "init.npz")
        plot_losses(res, tmp / "loss_curve.png")
        summary = {
            "bundle": str(bundle_dir),
            "window": window,
            "num_windows": len(windows),
            "body_model": model.name,
            "keyframes": w.num_keyframes,
            "tracks": w.num_tracks,
            "sizes": problem_sizes(problem)._asdict(),
            **counts,
            "objective": obj.name,
            "iterations": [cfg.iters_stage1, cfg.iters_stage2],
            "loss_stage1_first": _terms_dict(res.stage1.history, 0),
            "loss_stage1_last": _terms_dict(res.stage1.history, -1),
            "loss_stage2_first": _terms_dict(res.stage2.history, 0),
            "loss_stage2_last": _terms_dict(res.stage2.history, -1),
            "nan_at": {"stage1": int(res.stage1.nan_at), "stage2": int(res.stage2.nan_at)},
            # both solves share one compiled program: the first (joint) carries the problem build and the
            # compile (none when the persistent compilation cache has it); steady-state timing is benchmarks/' job
            "seconds": {
                "joint_solve": solved.seconds_joint,
                "front_ends_only": solved.seconds_init,
                "compile_estimate": max(solved.seconds_joint - solved.seconds_init, 0.0),
            },
            "compile_cache": str(cache_dir) if cache_dir else None,
            "config": dataclasses.asdict(cfg),
            "problem": dataclasses.asdict(pcfg),
            "weights": {k: float(v) for k, v in weights._asdict().items()},
            "device": str(jax.devices()[0]),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def add_problem_args(ap: argparse.ArgumentParser) -> None:
    """One flag per :class:`ProblemConfig` setting (``--conf-thres``, ``--median lower|mean``, ...)."""
    g = ap.add_argument_group("problem building (josh_jax.problem.ProblemConfig; defaults: the reference)")
    for f in dataclasses.fields(ProblemConfig):
        flag = f"--{f.name.replace('_', '-')}"
        if f.name in PROBLEM_CHOICES:
            g.add_argument(flag, choices=PROBLEM_CHOICES[f.name], default=f.default, dest=f"p_{f.name}")
        elif f.name == "init_focal":
            g.add_argument(
                flag,
                type=float,
                default=None,
                dest=f"p_{f.name}",
                metavar="PX",
                help="initial shared focal, working px (default: the bundle's)",
            )
        else:
            g.add_argument(flag, type=type(f.default), default=f.default, dest=f"p_{f.name}")


def problem_config(args) -> ProblemConfig:
    return ProblemConfig(**{f.name: getattr(args, f"p_{f.name}") for f in dataclasses.fields(ProblemConfig)})


NOT_FLAGS = ("progress_every", "extra_terms")  # SolveConfig fields without a flag (set from code)


def main(argv=None) -> int:
    from josh_jax._cli.checks import OneLineParser, error_line, parse_bool, positive_int
    from josh_jax._cli.interrupt import exit_on_interrupt

    from ..objective import ObjectiveConfig

    ap = OneLineParser(prog="python -m josh_jax.solve", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="front-end bundle folder (bundle.json + window_*.npz)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--body-model", default=None, help="'open' or a path to SMPL_NEUTRAL.pkl (default: the bundle's)")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (gn's bars are a host callback, which keeps its program out of the compile cache)",
    )
    ap.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="persistent compilation cache folder, or 'off' (default: $JOSH_JAX_CACHE_DIR, else ~/.cache/josh_jax/jax)",
    )
    for f in dataclasses.fields(SolveConfig):
        if f.name in NOT_FLAGS:
            continue
        kind = type(f.default)
        flag = f"--{f.name.replace('_', '-')}"
        if kind is bool:
            ap.add_argument(flag, type=parse_bool, default=f.default, metavar="BOOL")
        elif f.name == "focal_updates":
            ap.add_argument(flag, choices=("reference", "single"), default=f.default)
        elif f.name.startswith("iters_"):
            ap.add_argument(flag, type=positive_int, default=f.default)
        else:
            ap.add_argument(flag, type=kind, default=f.default)
    for name, default in LossWeights()._asdict().items():
        ap.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=default, dest=f"w_{name}")
    add_problem_args(ap)
    ap.add_argument(
        "--objective",
        choices=("josh", "josh+"),
        default="josh",
        help="josh: the reference objective (default); josh+: planted feet, less jitter (docs/objective.md)",
    )
    args = ap.parse_args(argv)
    try:
        cfg = SolveConfig(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(SolveConfig) if f.name not in NOT_FLAGS}
        )
        pcfg = problem_config(args)
        weights = LossWeights(**{k: getattr(args, f"w_{k}") for k in LossWeights._fields})
        from .compile_cache import enable

        cache_dir = enable(args.compile_cache)
        with exit_on_interrupt(f"interrupted: nothing was written to {args.out}"):
            summary = run(
                args.bundle,
                args.out,
                args.body_model,
                cfg,
                weights,
                pcfg,
                window=args.window,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                cache_dir=cache_dir,
                objective=ObjectiveConfig(name=args.objective),
            )
    except (JoshError, ValueError, OSError) as exc:
        print(error_line(exc, args.out), file=sys.stderr)
        return 2
    s = summary["seconds"]
    print(
        f"wrote {args.out}/results.npz, init.npz, summary.json, loss_curve.png "
        f"(joint solve {s['joint_solve']:.1f} s incl. any compile, front ends only {s['front_ends_only']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
