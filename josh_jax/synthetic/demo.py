"""``python -m josh_jax.demo --synthetic [--out DIR]``: the solver path on a synthetic world.

No video and no front ends: it writes a front-end bundle, solves it, and writes
``results.npz``, ``init.npz``, ``summary.json``, ``loss_curve.png``,
``trajectory.png`` (top-down camera and person paths on the scene points,
front-ends-only vs joint vs ground truth), ``scene.glb`` and ``ground_truth.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def plot_trajectory(out_dir: Path, gt: dict | None = None) -> Path:
    """trajectory.png of ``out_dir``'s results.npz and init.npz (see :func:`josh_jax.export.plots.plot_trajectory`)."""
    from josh_jax.export.plots import plot_trajectory as _plot
    from josh_jax.results import load_results

    return _plot(
        load_results(out_dir / "results.npz"), load_results(out_dir / "init.npz"), out_dir / "trajectory.png", gt
    )


def main(argv=None) -> int:
    from josh_jax._cli.checks import (
        OneLineParser,
        OutputError,
        check_output,
        error_line,
        nonnegative_int,
    )

    ap = OneLineParser(prog="python -m josh_jax.demo --synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("josh_demo_out"))
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--body-model", default="open", help="'open' (embedded) or a path to SMPL_NEUTRAL.pkl")
    args = ap.parse_args(argv)
    try:
        check_output(args.out, inputs=[args.body_model], overwrite=args.overwrite)
    except OutputError as exc:
        print(error_line(exc, args.out), file=sys.stderr)
        return 2

    import tempfile

    from josh_jax import body as jbody
    from josh_jax.bundle import save
    from josh_jax.solve.__main__ import run
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    try:
        model = jbody.load(args.body_model)
    except jbody.BodyModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[demo] synthetic world (seed {args.seed}), body model {model.name}", file=sys.stderr)
    window, gt = make_world(model, args.seed, SynthConfig(num_keyframes=21))
    from josh_jax._cli.interrupt import exit_on_interrupt

    try:
        with exit_on_interrupt(f"interrupted: nothing was written to {args.out}"), tempfile.TemporaryDirectory() as tmp:
            from josh_jax._cli.atomic import IN_FLIGHT

            IN_FLIGHT.add(Path(tmp))  # removed by the Ctrl-C handler too
            bundle_dir = Path(tmp) / "bundle"
            save(bundle_dir, [window], {"body_model": args.body_model, "source": "josh_jax.synthetic.worlds"})
            summary = run(bundle_dir, args.out, args.body_model, overwrite=args.overwrite)
            np.savez_compressed(args.out / "ground_truth.npz", **{k: np.asarray(v) for k, v in gt.items()})
            plot_trajectory(args.out, gt)
            from josh_jax.export.scene import write_glb
            from josh_jax.results import load_results

            write_glb(load_results(args.out / "results.npz"), model, args.out / "scene.glb")
    except (OSError, ValueError) as exc:
        print(error_line(exc, args.out), file=sys.stderr)
        return 2
    s = summary["seconds"]
    print(
        f"[demo] {summary['keyframes']} keyframes, {summary['tracks']} person, "
        f"{summary['contact_scale_entries']} contact-scale entries; joint solve {s['joint_solve']:.1f} s "
        f"with any compile (front ends only {s['front_ends_only']:.1f} s)\n[demo] outputs in {args.out}/: results.npz, "
        "init.npz, summary.json, loss_curve.png, trajectory.png, scene.glb, ground_truth.npz\n[demo] score it: python -m josh_jax.evaluate "
        f"{args.out}/results.npz {args.out}/ground_truth.npz"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
