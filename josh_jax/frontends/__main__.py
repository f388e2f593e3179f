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

from .pipeline import FrontEndConfig


def add_frontend_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--start", type=int, default=0, help="first frame of the clip")
    ap.add_argument("--frames", type=int, default=None, help="number of frames (default: to the end)")
    ap.add_argument("--camera", choices=("auto", "sfm", "rotation", "static"), default="auto",
                    help="camera model: auto (default: chosen from background matches, reported in summary.json), "
                    "sfm (moving camera), rotation (pan/tilt/zoom from a fixed point), static")
    ap.add_argument("--static-camera", action="store_true", help="alias of --camera static: the camera does not "
                    "move; the ground plane under the people's feet is the scene")
    ap.add_argument("--focal", type=float, default=None, help="focal length in working pixels (long side "
                    f"{FrontEndConfig.work_side}); default: from structure from motion")
    ap.add_argument("--max-people", type=int, default=FrontEndConfig.max_people)
    ap.add_argument("--models", default=None, help="folder with the ONNX models (default: models_onnx/)")


def frontend_config(args, device: str = "auto") -> FrontEndConfig:
    return FrontEndConfig(static_camera=args.static_camera, camera=args.camera, focal=args.focal, max_people=args.max_people,
                          models_dir=args.models, device=device)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m josh_jax.frontends", description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    ap.add_argument("--body-model", default="open", help="'open' (embedded) or a path to SMPL_NEUTRAL.pkl")
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--frontends", choices=("default", "official"), default="default",
                    help="embedded front ends (default) or the official ONNX models (docs/frontends.md)")
    add_frontend_args(ap)
    args = ap.parse_args(argv)

    from .. import body as jbody
    from ..bundle import save
    from . import FrontEndError, probe, run_frontends, save_tracks
    from .official import require_models, run_official

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
            raise FrontEndError(f"output folder {args.out} exists and is not empty; pass --overwrite to replace it")
        if args.frontends == "official":
            require_models(args.models)
        model = jbody.load(args.body_model)
        info = probe(args.video, args.start, args.frames)
        log(f"[frontends] {info.path.name}: {info.num_frames} frames {info.width}x{info.height} at {info.fps:.1f} fps")
        run = run_frontends if args.frontends == "default" else run_official
        out = run(info, model, frontend_config(args, args.device), log=log)
        save(args.out, out.windows, {"body_model": args.body_model,
                                     "source": f"josh_jax.frontends ({args.frontends})",
                                     **out.meta, "seconds": out.seconds}, extras={"tracks.npz": save_tracks(out.tracks)})
    except (FrontEndError, jbody.BodyModelError) as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; nothing was written")
        return 130
    log(f"[frontends] wrote {args.out} ({len(out.windows)} window(s)); seconds per stage: "
        + json.dumps({k: round(v, 1) for k, v in out.seconds.items()}))
    log(f"[frontends] next: python -m josh_jax.solve {args.out} --out OUT_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
