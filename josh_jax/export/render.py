"""Small CPU rasterizers (numpy + OpenCV): meshes drawn into images without OpenGL.

:func:`draw_mesh` paints triangles back to front (painter's algorithm, OpenCV's
anti-aliased polygons; the synthetic clips are rendered with it).
:func:`draw_meshes` draws several meshes at once with a z-buffer, vectorised over
triangles (no Python loop per triangle; ``overlay.mp4``): every pixel centre inside
a triangle takes the nearest triangle's colour, so people occlude each other
correctly; edges are not anti-aliased. Both shade flat (Lambert, light at the
camera) and cull back faces. Good for bodies over images; not a general renderer.

Camera convention: pinhole, x right, y down, z forward (docs/conventions.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from josh_jax.geometry.pinhole import project  # noqa: F401  (the renderers' projection; re-exported for scripts)


def _visible_faces(verts: np.ndarray, faces: np.ndarray, focal, principal, size, near: float):
    """Front-facing triangles in front of ``near`` that touch the image: (indices, projected
    triangles (n, 3, 2) px, Lambert shade (n,), centroid depth (n,))."""
    w, h = size
    f0, f1, f2 = faces[:, 0], faces[:, 1], faces[:, 2]
    v0, v1, v2 = verts[f0], verts[f1], verts[f2]  # (F, 3) each
    front = verts[:, 2] > near
    ok = front[f0] & front[f1] & front[f2]
    n = np.cross(v1 - v0, v2 - v0)
    centre = (v0 + v1 + v2) / 3.0
    ok &= np.einsum("ij,ij->i", n, centre) < 0  # normal towards the camera
    px = project(verts, focal, principal)
    x0, x1, x2, y0, y1, y2 = px[f0, 0], px[f1, 0], px[f2, 0], px[f0, 1], px[f1, 1], px[f2, 1]
    ok &= (np.maximum(np.maximum(x0, x1), x2) >= 0) & (np.minimum(np.minimum(x0, x1), x2) < w)
    ok &= (np.maximum(np.maximum(y0, y1), y2) >= 0) & (np.minimum(np.minimum(y0, y1), y2) < h)
    idx = np.flatnonzero(ok)
    nn, c = n[idx], centre[idx]
    cos = np.einsum("ij,ij->i", nn, -c) / np.maximum(np.sqrt((nn * nn).sum(1) * (c * c).sum(1)), 1e-24)
    shade = 0.35 + 0.65 * np.clip(cos, 0, 1)
    return idx, px[faces[idx]], shade, c[:, 2]


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
    idx, ptri, shade, depth = _visible_faces(verts, faces, focal, principal, (w, h), near)
    if len(idx) == 0:
        return image.copy()
    base = (
        vertex_colors[faces[idx]].mean(1)
        if vertex_colors is not None
        else np.broadcast_to(np.asarray(color, float), (len(idx), 3))
    )
    cols = np.clip(base * shade[:, None], 0, 255).astype(np.uint8)
    order = np.argsort(-depth)  # far first
    canvas = image.copy()
    pts = np.round(ptri * 16).astype(np.int32)  # 4 fractional bits
    for k in order:
        cv2.fillConvexPoly(canvas, pts[k], tuple(int(c) for c in cols[k]), lineType=cv2.LINE_AA, shift=4)
    if alpha >= 1.0:
        return canvas
    return cv2.addWeighted(canvas, alpha, image, 1 - alpha, 0)


#: triangles are rasterised in classes by bounding-box side (px): each class samples a side x side grid
_BOX_CLASSES = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


def _triangle_pixels(ptri: np.ndarray, depth: np.ndarray, size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres (integer coordinates) inside each triangle: (flat pixel index, triangle, depth)
    arrays, one entry per covered (pixel, triangle). ``ptri`` (n, 3, 2) px, ``depth`` (n, 3) metres
    (interpolated linearly in the image, enough to order bodies)."""
    w, h = size
    lo = np.clip(np.ceil(ptri.min(1)), 0, [w - 1, h - 1]).astype(np.int64)  # (n, 2)
    hi = np.clip(np.floor(ptri.max(1)), -1, [w - 1, h - 1]).astype(np.int64)
    side = np.maximum(hi - lo + 1, 0).max(1)
    a, b, c = ptri[:, 0], ptri[:, 1], ptri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out_pix, out_tri, out_z = [], [], []
    prev = 0
    for cls in _BOX_CLASSES:
        sel = np.where((side > prev) & (side <= cls) & (area != 0))[0]
        prev = cls
        if len(sel) == 0:
            continue
        # at most ~4M samples per chunk
        step = max(1, (1 << 22) // (cls * cls))
        g = np.arange(cls)
        for s0 in range(0, len(sel), step):
            t = sel[s0 : s0 + step]
            px = lo[t, 0, None, None] + g[None, None, :]  # (m, 1, cls)
            py = lo[t, 1, None, None] + g[None, :, None]  # (m, cls, 1)
            inb = (px <= hi[t, 0, None, None]) & (py <= hi[t, 1, None, None])
            ta, tb, tc, sg = a[t], b[t], c[t], np.sign(area[t])[:, None, None]

            def edge(p, q):  # signed area of (p, q, pixel) times the triangle's orientation, (m, cls, cls)
                return (
                    (q[:, 0, None, None] - p[:, 0, None, None]) * (py - p[:, 1, None, None])
                    - (q[:, 1, None, None] - p[:, 1, None, None]) * (px - p[:, 0, None, None])
                ) * sg

            e0, e1, e2 = edge(tb, tc), edge(tc, ta), edge(ta, tb)
            m, yy, xx = np.nonzero(inb & (e0 >= 0) & (e1 >= 0) & (e2 >= 0))
            if len(m) == 0:
                continue
            z, ar = depth[t[m]], np.abs(area[t[m]])
            zi = (e0[m, yy, xx] * z[:, 0] + e1[m, yy, xx] * z[:, 1] + e2[m, yy, xx] * z[:, 2]) / ar
            out_pix.append((lo[t[m], 1] + yy) * w + lo[t[m], 0] + xx)
            out_tri.append(t[m])
            out_z.append(zi)
    if not out_pix:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0)
    return np.concatenate(out_pix), np.concatenate(out_tri), np.concatenate(out_z)


def draw_meshes(
    image: np.ndarray,
    meshes: list,
    faces: np.ndarray,
    focal: float,
    principal,
    alpha: float = 1.0,
    near: float = 0.05,
) -> np.ndarray:
    """Draw several meshes into an RGB uint8 image with one z-buffer (returns a new image).

    ``meshes``: (verts (V, 3) camera frame in metres, RGB colour) pairs sharing ``faces`` (F, 3);
    pinhole ``focal`` px and ``principal`` (2,) px; ``alpha`` blends the drawn pixels over the image.
    Faces with a vertex closer than ``near`` are skipped. Same shading and culling as
    :func:`draw_mesh`; vectorised over triangles."""
    h, w = image.shape[:2]
    ptris, depths, cols = [], [], []
    for verts, color in meshes:
        idx, ptri, shade, _ = _visible_faces(verts, faces, focal, principal, (w, h), near)
        ptris.append(ptri)
        depths.append(verts[faces[idx], 2])
        cols.append(np.clip(np.asarray(color, float)[None] * shade[:, None], 0, 255))
    if not ptris or sum(len(p) for p in ptris) == 0:
        return image.copy()
    pix, tri, z = _triangle_pixels(np.concatenate(ptris), np.concatenate(depths), (w, h))
    if len(pix) == 0:
        return image.copy()
    # one sort by pixel, nearest first: the depth, scaled into [0, 0.5), is added to the pixel index
    zs = (z - z.min()) * (0.5 / max(float(z.max() - z.min()), 1e-12))
    order = np.argsort(pix + zs, kind="stable")
    pix, tri = pix[order], tri[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, tri = pix[first], tri[first]
    out = image.copy()
    flat = out.reshape(-1, 3)
    col = np.concatenate(cols)[tri]
    flat[pix] = np.clip(alpha * col + (1 - alpha) * flat[pix], 0, 255).round().astype(np.uint8)
    return out


def mesh_mask(shape, verts: np.ndarray, faces: np.ndarray, focal: float, principal) -> np.ndarray:
    """(H, W) bool: pixels the mesh covers."""
    canvas = np.zeros(tuple(shape[:2]) + (3,), np.uint8)
    return draw_mesh(canvas, verts, faces, focal, principal, color=(255, 255, 255))[..., 0] > 0
