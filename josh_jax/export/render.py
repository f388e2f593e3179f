"""A small CPU rasterizer (numpy + OpenCV): meshes drawn into images without OpenGL.

Used for ``overlay.mp4`` (fitted bodies over the video) and for rendering the
synthetic example clip. Triangles are painted back to front (painter's
algorithm) with Lambert shading from a light at the camera; back faces are
culled. Good for bodies over images; not a general renderer.

Camera convention: pinhole, x right, y down, z forward (docs/conventions.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from josh_jax.geometry.pinhole import project  # noqa: F401  (the renderers' projection; re-exported for scripts)


def draw_mesh(
    image: np.ndarray,
    verts: np.ndarray,
    faces: np.ndarray,
    focal: float,
    principal,
    color=(200, 120, 60),
    alpha: float = 1.0,
    vertex_colors: np.ndarray | None = None,
    near: float = 0.05,
) -> np.ndarray:
    """Draw a mesh into an RGB uint8 image (returns a new image).

    verts (V, 3) camera frame, metres; faces (F, 3) int; ``color`` RGB, or
    ``vertex_colors`` (V, 3) uint8 (face colour = mean of its vertices);
    ``alpha`` blends the drawn mesh over the image. Faces with a vertex closer
    than ``near`` are skipped.
    """
    h, w = image.shape[:2]
    tri = verts[faces]  # (F, 3, 3)
    ok = (tri[..., 2] > near).all(1)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(1)
    facing = (n * centre).sum(1) < 0  # normal towards the camera
    ok &= facing
    px = project(verts, focal, principal)
    ptri = px[faces]
    inside = (
        (ptri[..., 0].max(1) >= 0) & (ptri[..., 0].min(1) < w) & (ptri[..., 1].max(1) >= 0) & (ptri[..., 1].min(1) < h)
    )
    ok &= inside
    idx = np.where(ok)[0]
    if len(idx) == 0:
        return image.copy()
    nn = n[idx] / np.maximum(np.linalg.norm(n[idx], axis=1, keepdims=True), 1e-12)
    view = -centre[idx] / np.maximum(np.linalg.norm(centre[idx], axis=1, keepdims=True), 1e-12)
    shade = 0.35 + 0.65 * np.clip((nn * view).sum(1), 0, 1)
    base = (
        vertex_colors[faces[idx]].mean(1)
        if vertex_colors is not None
        else np.broadcast_to(np.asarray(color, float), (len(idx), 3))
    )
    cols = np.clip(base * shade[:, None], 0, 255).astype(np.uint8)
    order = np.argsort(-centre[idx, 2])  # far first
    canvas = image.copy()
    pts = np.round(ptri[idx] * 16).astype(np.int32)  # 4 fractional bits
    for k in order:
        cv2.fillConvexPoly(canvas, pts[k], tuple(int(c) for c in cols[k]), lineType=cv2.LINE_AA, shift=4)
    if alpha >= 1.0:
        return canvas
    return cv2.addWeighted(canvas, alpha, image, 1 - alpha, 0)


def mesh_mask(shape, verts: np.ndarray, faces: np.ndarray, focal: float, principal) -> np.ndarray:
    """(H, W) bool: pixels the mesh covers."""
    canvas = np.zeros(tuple(shape[:2]) + (3,), np.uint8)
    return draw_mesh(canvas, verts, faces, focal, principal, color=(255, 255, 255))[..., 0] > 0
