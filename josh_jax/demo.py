"""``python -m josh_jax.demo [VIDEO] [--out DIR]``: from a video to a 4D reconstruction you can look at.

With no VIDEO it runs the bundled example clip (josh_jax/data/example/walk.mp4,
CC0). Stages: decode -> front ends (embedded defaults, or the official ONNX
models) -> one problem per solve window -> joint optimization (and the
front-ends-only baseline) -> windows joined by similarity transforms ->
outputs. Everything of one run is written to ``DIR.work/`` first (finished
windows are kept there, so an interrupted run resumes where it stopped) and
moved to DIR only when complete.

Outputs in DIR: results.npz, init.npz (front ends only), scene.glb,
animation.glb, bvh/person_<ID>.bvh, overlay.mp4, overlay_frames/*.png, trajectory.png, loss_curve.png,
summary.json, and with --rerun recording.rrd. ``--synthetic`` runs the older
synthetic-world demo (no video; writes ground_truth.npz as well).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from josh_jax.errors import JoshError
from josh_jax.run.methods import METHODS
from josh_jax.run.spec import EXAMPLE_CLIP, RunSpec

__all__ = ["EXAMPLE_CLIP", "add_run_args", "main"]


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The flags of one video's run (front ends, method, models, body model, device, compile cache,
    config, --set, objective, --no-overlay, --baseline, --fresh): the demo's, and the batch CLI's for each video."""
    ap.add_argument(
        "--frontends",
        choices=("default", "official"),
        default="default",
        help="embedded front ends (default) or the official ONNX models (see docs/frontends.md)",
    )
    ap.add_argument(
        "--method",
        choices=METHODS,
        default="josh",
        help="josh: the joint optimization (default); josh3r: the feed-forward JOSH3R model, no optimization; "
        "josh3r+joint: the joint optimization started at JOSH3R's cameras and scale (both need josh3r.onnx in "
        "--models, docs/josh3r.md)",
    )
    ap.add_argument("--models", default=None, help="folder with the ONNX models (default: models_onnx/)")
    ap.add_argument(
        "--body-model",
        "--smpl",
        dest="body_model",
        default="open",
        help="'open' (embedded josh-open-body) or a path to SMPL_NEUTRAL.pkl / a SMPL folder",
    )
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="for JAX and onnxruntime")
    ap.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="persistent compilation cache folder (shared by batch workers), or 'off' "
        "(default: $JOSH_JAX_CACHE_DIR, else ~/.cache/josh_jax/jax)",
    )
    ap.add_argument("--config", type=Path, default=None, help="JSON/TOML file with any setting (see josh_jax.config)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set solve.iters_stage1=300 or --set prior_loss_weight=50",
    )
    ap.add_argument(
        "--objective",
        choices=("josh", "josh+"),
        default=None,
        help="josh: the reference objective (default); josh+: planted feet, less jitter (docs/objective.md)",
    )
    ap.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4 and its stills (a few seconds)")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also solve the front-ends-only baseline of every window: init.npz and trajectory.png's second "
        "panel (a second solve, about as long as the joint one)",
    )
    ap.add_argument("--fresh", action="store_true", help="ignore the finished windows of an interrupted run")


def _parser() -> argparse.ArgumentParser:
    from josh_jax._cli.checks import OneLineParser

    from .frontends.__main__ import add_frontend_args

    ap = OneLineParser(prog="python -m josh_jax.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("video", nargs="?", type=Path, help="a video file (default: the bundled example clip)")
    ap.add_argument("--out", type=Path, default=Path("josh_demo_out"), help="output folder (default: josh_demo_out)")
    add_run_args(ap)
    ap.add_argument("--rerun", action="store_true", help="also write recording.rrd (needs: pip install -e '.[viz]')")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--synthetic", action="store_true", help="run the synthetic-world demo instead (no video)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic world (with --synthetic)")
    add_frontend_args(ap, models=False)
    return ap


def _print_alignment(s: dict) -> None:
    table = s.get("alignment") or {}
    if table:

        def fmt(e):
            return "-" if not e else f"{e['median']:.1f} %"

        _log(
            "bodies on the people (median 2D joint error, % of box height; front ends alone -> joint): "
            + ", ".join(f"person {pid} {fmt(e['init'])} -> {fmt(e['joint'])}" for pid, e in table.items())
        )
    for line in s.get("warnings") or []:
        _log(f"warning: {line} (README: 'What to expect on real footage')")


def _print_summary(s: dict, out: Path) -> None:
    sec = s["seconds"]
    fe = sum(v for k, v in sec.items() if k.startswith("frontends_"))
    cov = s.get("coverage") or {}
    cam = (s.get("camera") or {}).get("mode", "?")
    covered = (
        f"frames {cov['first']}-{cov['last']} of {s['frames']} ({cov['reason']})"
        if cov.get("reason")
        else f"{s['frames']} frames"
    )
    _log(f"camera: {cam} ({((s.get('camera') or {}).get('evidence') or {}).get('reason', '')})")
    _log(
        f"done: {covered}, {s['people']} person track(s), "
        + (f"{s['windows']} window(s)" if s.get("windows") is not None else "JOSH3R")
        + f" in {sec['total']:.0f} s "
        f"(front ends {fe:.0f} s, "
        + (f"JOSH3R {sec['josh3r']:.0f} s, " if "josh3r" in sec else "")
        + (f"solve {sec['solve']:.0f} s" if s.get("windows") is not None else "no optimization")
        + ", join and export "
        f"{sec.get('join', 0) + sec.get('export', 0):.0f} s, overlay {sec.get('overlay', 0):.0f} s)"
    )
    _print_alignment(s)
    if "example_clip_check" in s:
        c = s["example_clip_check"]
        _log(
            f"example clip vs its ground truth: camera path {c['camera_path_m']:.2f} m "
            f"(true {c['true_camera_path_m']:.2f} m), mean camera error {c['camera_error_mean_m']:.2f} m"
        )
    _log(f"outputs in {out}/: " + ", ".join(s["outputs"] + ["summary.json"]))


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from .solve.compile_cache import enable as enable_compile_cache

    enable_compile_cache(args.compile_cache)
    if args.synthetic:
        from josh_jax.synthetic.demo import main as synthetic_main

        return synthetic_main(
            ["--out", str(args.out), "--seed", str(args.seed), "--body-model", str(args.body_model)]
            + (["--overwrite"] if args.overwrite else [])
        )
    from josh_jax._cli.checks import error_line
    from josh_jax._cli.interrupt import exit_on_interrupt
    from josh_jax._cli.lock import RunLock
    from josh_jax.run.stages import DemoError, WorkFolderError, drop_unfinished, run

    spec = RunSpec.from_args(args)
    work = spec.work
    lock = RunLock(args.out)  # one run per --out; only the run holding it may clean OUT.work up (_prepare_work)
    try:
        if args.device == "gpu":
            import jax

            if not any(d.platform == "gpu" for d in jax.devices()):
                raise DemoError("--device gpu: JAX sees no GPU; install the CUDA extra (pip install -e '.[gpu]')")
        with exit_on_interrupt(
            lambda: _interrupted_message(args.out, work) if lock.acquired else "interrupted; nothing was touched",
            lambda: _release_on_interrupt(lock, work),
        ):
            try:
                summary = run(spec, lock)  # prepare() takes the lock once the inputs and the output are checked
            finally:
                lock.release()
    except (JoshError, OSError) as exc:
        kept = False if isinstance(exc, WorkFolderError) or not lock.acquired else drop_unfinished(work, True)
        print(
            error_line(exc, args.out)
            + (f"; the solved windows are kept in {work} (the same command resumes)" if kept else ""),
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # raised by Python code where the handler is not installed (not the main thread)
        if lock.acquired:
            drop_unfinished(work, False)
        print("\n" + _interrupted_message(args.out, work), file=sys.stderr)
        return 130
    _print_summary(summary, args.out)
    return 0


def _release_on_interrupt(lock, work: Path) -> None:
    """Ctrl-C / SIGTERM: the work folder cleaned up and the run lock's file removed, only by the run
    that holds the lock (a second run stopped by the lock touches nothing)."""
    if lock.fd is not None:
        from josh_jax.run.stages import drop_unfinished

        drop_unfinished(work, False)
        lock.release()


def _interrupted_message(out: Path, work: Path) -> str:
    from josh_jax.run.stages import finished_work

    if work.exists() and finished_work(work, False):
        n = len(list((work / "solved").glob("window_*_results.npz")))
        return (
            f"interrupted: the finished work ({n} solved window(s)"
            f"{', the front ends' if (work / 'bundle' / 'bundle.json').is_file() else ''}) is kept in {work}; "
            f"run the same command again to resume (or pass --fresh to start over). {out} was not touched."
        )
    return f"interrupted: nothing was finished, nothing kept. {out} was not touched."


if __name__ == "__main__":
    sys.exit(main())
