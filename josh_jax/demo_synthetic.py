"""``python -m josh_jax.demo --synthetic [--out DIR]``: the solver path on a synthetic world.

No video and no front ends: it writes a front-end bundle, solves it, and writes
``results.npz``, ``init.npz``, ``summary.json``, ``loss_curve.png``,
``trajectory.png`` (top-down camera and person paths on the scene points,
front-ends-only vs joint vs ground truth), ``scene.glb`` and ``ground_truth.npz``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def plot_trajectory(out_dir: Path, gt=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import Results, as_results

    res = Results.load(out_dir / "results.npz")
    init = Results.load(out_dir / "init.npz")
    gt = None if gt is None else as_results(gt, "ground truth")
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    pts = res.points[::7]
    ax.scatter(pts[:, 0], pts[:, 2], s=0.3, c=res.point_colors[::7] / 255.0, alpha=0.4, label="scene (joint)")
    for name, r, style in (("front ends only", init, "--"), ("joint", res, "-")):
        c = r.cam_to_world[:, :3, 3]
        ax.plot(c[:, 0], c[:, 2], style, color="tab:blue", label=f"camera, {name}")
        for p in range(len(r.person_ids)):
            j = r.joints_world[p][r.visible[p], 0]
            ax.plot(j[:, 0], j[:, 2], style, color="tab:red", label=f"person {r.person_ids[p]}, {name}")
    if gt is not None:
        c = gt.cam_to_world[:, :3, 3]
        ax.plot(c[:, 0], c[:, 2], ":", lw=2.5, color="k", label="camera, ground truth")
        j = gt.joints_world[0][:, 0]
        ax.plot(j[:, 0], j[:, 2], "--", lw=2.5, color="k", label="person, ground truth")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m, forward)")
    ax.set_aspect("equal", "datalim")
    ax.set_title("top-down view, world = first keyframe camera")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out_dir / "trajectory.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m josh_jax.demo --synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("josh_demo_out"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--body-model", default="open", help="'open' (embedded) or a path to SMPL_NEUTRAL.pkl")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        print(f"error: output folder {args.out} exists and is not empty; pass --overwrite to replace it", file=sys.stderr)
        return 2

    import tempfile

    from . import body as jbody
    from .bundle import save
    from .solve.__main__ import run
    from .synth import SynthConfig, make_world

    try:
        model = jbody.load(args.body_model)
    except jbody.BodyModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[demo] synthetic world (seed {args.seed}), body model {model.name}", file=sys.stderr)
    window, gt = make_world(model, args.seed, SynthConfig(num_keyframes=21))
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / "bundle"
        save(bundle_dir, [window], {"body_model": args.body_model, "source": "josh_jax.synth"})
        summary = run(bundle_dir, args.out, args.body_model, overwrite=args.overwrite)
    np.savez_compressed(args.out / "ground_truth.npz", **{k: np.asarray(v) for k, v in gt.items()})
    plot_trajectory(args.out, gt)
    from .export import write_glb
    from .results import Results

    write_glb(Results.load(args.out / "results.npz"), model, args.out / "scene.glb")
    s = summary["seconds"]
    print(f"[demo] {summary['keyframes']} keyframes, {summary['tracks']} person, "
          f"{summary['contact_scale_entries']} contact-scale entries; joint solve {s['joint_solve']:.1f} s "
          f"(first solve {s['first_solve_incl_compile']:.1f} s with any compile)\n[demo] outputs in {args.out}/: results.npz, "
          "init.npz, summary.json, loss_curve.png, trajectory.png, scene.glb, ground_truth.npz\n[demo] score it: python -m josh_jax.evaluate "
          f"{args.out}/results.npz {args.out}/ground_truth.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
