"""Export results to files a person can open: ``scene.glb`` (any glTF viewer, Blender).

The GLB holds the scene points (coloured), the camera path (a line and a small
frustum every few frames) and each person's mesh at sampled frames, in a
y-up frame for viewers: josh_jax's world (OpenCV axes, y down) is turned by
180 degrees about x.

    python -m josh_jax.export RESULTS.npz --out scene.glb [--body-model open] [--every 15]
    python -m josh_jax.export DIR --formats glb,gltf-anim,bvh     # re-export a demo/solve output folder

``--formats`` also writes the animated exports of :mod:`josh_jax.export.anim`
(``animation.glb``) and :mod:`josh_jax.export.bvh` (``bvh/person_<ID>.bvh``) beside
the results (or into ``--out-dir``); the video's fps is read from summary.json
(or ``--fps``). The inputs (results.npz, summary.json) are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError

Y_UP = np.diag([1.0, -1.0, -1.0])  # OpenCV world (y down, z forward) -> viewer (y up)


def _frustum(T: np.ndarray, size: float) -> np.ndarray:
    """Line segments (8, 2, 3) of a small camera pyramid at pose T (camera -> world)."""
    c = np.array([[0, 0, 0], [-1, -0.75, 1.5], [1, -0.75, 1.5], [1, 0.75, 1.5], [-1, 0.75, 1.5]]) * size
    w = c @ T[:3, :3].T + T[:3, 3]
    edges = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]
    return np.array([[w[a], w[b]] for a, b in edges])


def build_scene(results, model, every: int = 15, max_points: int = 200_000):
    """A trimesh.Scene of the results (see the module docstring); ``results``: a
    :class:`~josh_jax.results.Results` or a mapping in its layout."""
    import trimesh

    from josh_jax.body import forward
    from josh_jax.results import as_results

    results = as_results(results)

    scene = trimesh.Scene()
    pts = np.asarray(results.points, np.float64)
    if len(pts):
        cols = np.asarray(results.point_colors, np.uint8)
        if len(pts) > max_points:
            keep = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
            pts, cols = pts[keep], cols[keep]
        rgba = np.concatenate([cols, np.full((len(cols), 1), 255, np.uint8)], 1)
        scene.add_geometry(trimesh.PointCloud(pts @ Y_UP.T, colors=rgba), geom_name="scene_points")
    cams = np.asarray(results.cam_to_world, np.float64)
    centres = cams[:, :3, 3] @ Y_UP.T
    if len(centres) > 1:
        scene.add_geometry(trimesh.load_path(np.stack([centres[:-1], centres[1:]], 1)), geom_name="camera_path")
    extent = np.ptp(centres, axis=0).max() if len(centres) > 1 else 1.0
    segs = np.concatenate([_frustum(T, 0.05 * max(extent, 1.0)) for T in cams[::every]])
    scene.add_geometry(trimesh.load_path(segs @ Y_UP.T), geom_name="cameras")
    faces = np.asarray(model.faces)
    palette = np.array([[230, 90, 70], [70, 140, 230], [90, 190, 90], [220, 180, 60]], np.uint8)
    for p, pid in enumerate(results.person_ids):
        frames = np.where(results.visible[p])[0][::every]
        for f in frames:
            rot = np.concatenate([results.global_orient[p, f][None], results.body_pose[p, f]], 0)
            v = np.asarray(
                forward(
                    model, results.betas[p], rot.astype(np.float32), np.asarray(results.transl[p, f], np.float32)
                ).vertices,
                np.float64,
            )
            mesh = trimesh.Trimesh(v @ Y_UP.T, faces, process=False)
            mesh.visual.face_colors = np.append(palette[p % len(palette)], 255)
            scene.add_geometry(mesh, geom_name=f"person_{int(pid)}_frame_{int(results.frame_index[f])}")
    return scene


def write_glb(results, model, path: str | Path, every: int = 15) -> Path:
    """Write ``scene.glb`` atomically."""
    from josh_jax._cli.atomic import write_text_atomic

    return write_text_atomic(path, build_scene(results, model, every).export(file_type="glb"))


def main(argv=None) -> int:
    from josh_jax._cli.atomic import check_file_outputs
    from josh_jax.export.anim import FORMATS, OUTPUT_NAMES, write_motion_exports
    from josh_jax.export.motion import body_model_for, motion_of, results_path, video_fps
    from josh_jax.results import load_results

    ap = argparse.ArgumentParser(prog="python -m josh_jax.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results.npz or an output folder holding it")
    ap.add_argument("--formats", default="glb", help=f"comma-separated, of {','.join(FORMATS)} (default: glb)")
    ap.add_argument("--out", type=Path, default=None, help="scene.glb path (default: scene.glb in the output folder)")
    ap.add_argument("--out-dir", type=Path, default=None, help="folder of the outputs (default: beside the results)")
    ap.add_argument("--fps", type=float, default=None, help="video fps (default: summary.json's, else 30)")
    ap.add_argument(
        "--body-model", default=None, help="default: the one named in the results ('open' for josh-open-body)"
    )
    ap.add_argument("--every", type=int, default=15, help="a body mesh and a camera every N frames (scene.glb)")
    ap.add_argument("--overwrite", action="store_true", help="replace outputs that exist (never an input)")
    args = ap.parse_args(argv)
    try:
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"--formats takes a comma-separated list of {', '.join(FORMATS)}; got {args.formats!r}")
        src = results_path(args.results)
        folder = args.out_dir or src.parent
        targets = {f: (args.out if f == "glb" and args.out else folder / OUTPUT_NAMES[f]) for f in formats}
        inputs = [src, src.parent / "summary.json"]
        check_file_outputs(targets.values(), inputs, args.overwrite)
        if args.fps is not None and not args.fps > 0:
            raise ValueError(f"--fps must be positive, got {args.fps}")
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found (expected results.npz or an output folder holding it)")
        res = load_results(src)
        fps = args.fps or (video_fps(src.parent) if set(formats) - {"glb"} else None)  # checked before any write
        model = body_model_for(motion_of(res), args.body_model)
        written = []
        if "glb" in formats:
            written.append(write_glb(res, model, targets["glb"], args.every))
        rest = [f for f in formats if f != "glb"]
        if rest:
            names = write_motion_exports(res, model, folder, fps, rest)
            written += [folder / n for n in names]
    except (JoshError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in written:
        print(f"wrote {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
