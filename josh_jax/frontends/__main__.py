"""``python -m josh_jax.frontends VIDEO --out BUNDLE_DIR``: the front ends on a video.

``--frontends default`` (the default) runs the embedded ones; ``--frontends
official --models DIR`` the official ONNX models exported into DIR
(docs/frontends.md).

Writes a front-end bundle (``bundle.json``, ``window_NNN.npz``, ``tracks.npz``)
that ``python -m josh_jax.solve BUNDLE_DIR --out DIR`` solves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from josh_jax.errors import JoshError

from .intrinsics import working_focal
from .pipeline import FrontEndConfig


def add_frontend_args(ap: argparse.ArgumentParser, models: bool = True) -> None:
    """The front-end flags (clip range, camera, focal, intrinsics, people; ``--models`` unless ``models``
    is False, for a parser that has it already)."""
    from josh_jax._cli.checks import nonnegative_int, positive_float, positive_int

    ap.add_argument("--start", type=nonnegative_int, default=0, help="first frame of the clip (>= 0)")
    ap.add_argument("--frames", type=positive_int, default=None, help="number of frames (default: to the end)")
    ap.add_argument(
        "--camera",
        choices=("auto", "sfm", "rotation", "static"),
        default="auto",
        help="camera model: auto (default: chosen from background matches, reported in summary.json), "
        "sfm (moving camera), rotation (pan/tilt/zoom from a fixed point), static",
    )
    ap.add_argument(
        "--static-camera",
        action="store_true",
        help="alias of --camera static: the camera does not "
        "move; the ground plane under the people's feet is the scene",
    )
    ap.add_argument(
        "--focal",
        type=positive_float,
        default=None,
        help="focal length in pixels of the original "
        "video (as results.npz's intrinsics); default: from structure from motion",
    )
    ap.add_argument(
        "--intrinsics",
        default=None,
        metavar="FX,FY,CX,CY|FILE",
        help="known intrinsics in original-image pixels, or a JSON / OpenCV calibration file "
        "(docs/intrinsics.md); held fixed unless --free-intrinsics",
    )
    ap.add_argument(
        "--free-intrinsics",
        action="store_true",
        help="with --intrinsics: start from them but let SfM and the solve refine the focal",
    )
    ap.add_argument(
        "--max-people",
        type=positive_int,
        default=None,
        help=f"track at most this many people (>= 1, default {FrontEndConfig.max_people}, or the --config file's)",
    )
    if models:
        ap.add_argument("--models", default=None, help="folder with the ONNX models (default: models_onnx/)")


def frontend_config(args, device: str = "auto", info=None) -> FrontEndConfig:
    focal = working_focal(args.focal, info) if info is not None else args.focal
    return FrontEndConfig(
        static_camera=args.static_camera,
        camera=args.camera,
        focal=focal,
        max_people=args.max_people or FrontEndConfig.max_people,
        models_dir=args.models,
        device=device,
    )


def main(argv=None) -> int:
    from josh_jax._cli.checks import OneLineParser

    ap = OneLineParser(prog="python -m josh_jax.frontends", description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    ap.add_argument("--body-model", default="open", help="'open' (embedded) or a path to SMPL_NEUTRAL.pkl")
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument(
        "--frontends",
        choices=("default", "official"),
        default="default",
        help="embedded front ends (default) or the official ONNX models (docs/frontends.md)",
    )
    add_frontend_args(ap)
    args = ap.parse_args(argv)

    from josh_jax._cli.checks import check_output, error_line
    from josh_jax._cli.interrupt import exit_on_interrupt

    from .. import body as jbody
    from . import probe, run_frontends, write_bundle
    from .official import require_models, run_official

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with exit_on_interrupt(f"interrupted: nothing was written to {args.out}"):
        try:
            if args.frontends == "official":
                require_models(args.models)  # a cheap check before the video is decoded
            info = probe(args.video, args.start, args.frames)  # the inputs first, then the output
            check_output(args.out, inputs=[args.video, args.body_model, args.models], overwrite=args.overwrite)
            model = jbody.load(args.body_model)
            log(
                f"[frontends] {info.path.name}: {info.num_frames} frames {info.width}x{info.height} "
                f"at {info.fps:.1f} fps"
            )
            run = run_frontends if args.frontends == "default" else run_official
            from josh_jax.frontends.intrinsics import apply_to_frontends

            fe_cfg = apply_to_frontends(
                frontend_config(args, args.device, info),
                args.intrinsics,
                info,
                args.frontends,
                args.free_intrinsics,
                log,
            )
            out = run(info, model, fe_cfg, log=log)
            write_bundle(args.out, out, args.body_model, args.frontends)
        except (JoshError, OSError, ValueError) as exc:
            log(error_line(exc, args.out))
            return 2
    log(
        f"[frontends] wrote {args.out} ({len(out.windows)} window(s)); seconds per stage: "
        + json.dumps({k: round(v, 1) for k, v in out.seconds.items()})
    )
    log(f"[frontends] next: python -m josh_jax.solve {args.out} --out OUT_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
