"""Export results to files a person can open: ``scene.glb`` (any glTF viewer, Blender).

The GLB holds the scene points (coloured), the camera path (a line and a small
frustum every few frames) and each person's mesh at sampled frames, in a
y-up frame for viewers: josh_jax's world (OpenCV axes, y down) is turned by
180 degrees about x.

    python -m josh_jax.export RESULTS.npz --out scene.glb [--body-model open] [--every 15]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

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

    from .body import forward
    from .results import as_results

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
            v = np.asarray(forward(model, results.betas[p], rot.astype(np.float32),
                                   np.asarray(results.transl[p, f], np.float32)).vertices, np.float64)
            mesh = trimesh.Trimesh(v @ Y_UP.T, faces, process=False)
            mesh.visual.face_colors = np.append(palette[p % len(palette)], 255)
            scene.add_geometry(mesh, geom_name=f"person_{int(pid)}_frame_{int(results.frame_index[f])}")
    return scene


def write_glb(results, model, path: str | Path, every: int = 15) -> Path:
    """Write ``scene.glb`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_scene(results, model, every).export(file_type="glb")
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".glb", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    from . import body as jbody
    from .results import Results

    ap = argparse.ArgumentParser(prog="python -m josh_jax.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: scene.glb beside the results")
    ap.add_argument("--body-model", default=None, help="default: the one named in the results ('open' for josh-open-body)")
    ap.add_argument("--every", type=int, default=15, help="a body mesh and a camera every N frames")
    args = ap.parse_args(argv)
    try:
        res = Results.load(args.results)
        name = args.body_model or ("open" if str(res.body_model) == "josh-open-body" else None)
        if name is None:
            raise jbody.BodyModelError(f"{args.results} was made with body model {str(res.body_model)!r}; "
                                       "pass its file with --body-model PATH")
        model = jbody.load(name)
        out = write_glb(res, model, args.out or args.results.with_name("scene.glb"), args.every)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
