"""Render the bundled example clip: the open body walking through a textured room.

    python scripts/make_example_clip.py --out josh_jax/data/example/walk.mp4

Everything in the clip is made here (the josh-open-body mesh, CC0 MakeHuman
assets; procedural textures), so the clip is CC0 like its inputs. The handheld
camera follows the person walking across the room; a ``*_gt.npz`` beside the
clip holds the true cameras (camera-to-world, OpenCV axes, world y down), the
focal length and the body (rotations, betas, translation) per frame. The
rendering lives in :mod:`josh_jax.synthetic.clips`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from josh_jax.synthetic.clips import render_clip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("josh_jax/data/example/walk.mp4"))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--camera", choices=("follow", "static"), default="follow")
    args = ap.parse_args(argv)
    gt = render_clip(args.out, args.frames, args.width, args.height, args.seed, camera=args.camera)
    np.savez_compressed(args.out.with_name(args.out.stem + "_gt.npz"), **gt)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {args.frames} frames {args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
