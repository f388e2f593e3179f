"""Render frames of an ``animation.glb`` as read back from the file (not from results.npz).

    python scripts/render_animation_frames.py OUT_DIR/animation.glb --out docs/animation_frames.jpg [--frames 0,-1]

The file is reloaded with pygltflib (josh_jax.export.gltf_sample): node transforms
sampled from its animation, meshes linear-blend skinned from its skins, the
scene points from its point primitive; drawn by josh_jax.export.render's CPU
rasterizer from a fixed camera behind and above the animated camera's first
pose. Frames side by side, labelled with their time.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from josh_jax.export.gltf_sample import GltfReader
from josh_jax.export.render import draw_mesh, project

PALETTE = [(230, 90, 70), (70, 140, 230), (90, 190, 90), (220, 180, 60)]


def look_at(eye, target, up=(0.0, 1.0, 0.0)):
    """World (y up) -> OpenCV camera rotation rows and the eye."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # right
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # down
    return np.stack([x, y, z]), np.asarray(eye, float)


def render(r: GltfReader, t: float, R, eye, size=(640, 400), focal=520.0, max_points=15_000):
    w, h = size
    img = np.full((h, w, 3), 245, np.uint8)
    G = r.world_matrices(t)
    for i, n in enumerate(r.gl.nodes):
        if n.mesh is None:
            continue
        prim = r.gl.meshes[n.mesh].primitives[0]
        if prim.mode == 0:  # points
            p = r.accessor(prim.attributes.POSITION) @ G[i][:3, :3].T + G[i][:3, 3]
            c = r.accessor(prim.attributes.COLOR_0)[:, :3]
            keep = np.random.default_rng(0).permutation(len(p))[:max_points]
            p, c = p[keep], c[keep]
            pc = (p - eye) @ R.T
            ok = pc[:, 2] > 0.1
            uv = np.round(project(pc[ok], focal, (w / 2, h / 2))).astype(int)
            col = np.clip(np.asarray(c)[ok] * (255 if c.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
            inb = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
            for (u, v), cc in zip(uv[inb], col[inb]):
                img[v, u] = cc
    k = 0
    for i, n in enumerate(r.gl.nodes):
        if n.mesh is None or n.skin is None:
            continue
        v, faces = r.skinned_vertices(i, t)
        if np.ptp(v, axis=0).max() < 1e-6:  # hidden (scale 0) on this frame
            continue
        img = draw_mesh(img, (v - eye) @ R.T, faces, focal, (w / 2, h / 2), color=PALETTE[k % len(PALETTE)])
        k += 1
    cam = r.names.get("camera")
    if cam is not None:  # the animated video camera, as a small marker
        c = (G[cam][:3, 3] - eye) @ R.T
        if c[2] > 0.1:
            u, v = project(c[None], focal, (w / 2, h / 2))[0]
            cv2.drawMarker(img, (int(u), int(v)), (20, 20, 20), cv2.MARKER_TRIANGLE_DOWN, 14, 2)
    return img


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("glb", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/animation_frames.jpg"))
    ap.add_argument("--frames", default="0,-1", help="animation keyframe indices")
    args = ap.parse_args()
    r = GltfReader(args.glb)
    times = r.times()
    G0 = r.world_matrices(float(times[0]))
    people = [i for i, n in enumerate(r.gl.nodes) if n.skin is not None]
    roots = np.stack([G0[r.gl.skins[r.gl.nodes[i].skin].skeleton][:3, 3] for i in people])
    Gl = r.world_matrices(float(times[-1]))
    roots = np.concatenate([roots, [Gl[r.gl.skins[r.gl.nodes[i].skin].skeleton][:3, 3] for i in people]])
    target = roots.mean(0)
    cam0 = G0[r.names["camera"]][:3, 3]
    back = cam0 - target
    back[1] = 0
    back = back / (np.linalg.norm(back) + 1e-9)
    spread = float(np.ptp(roots[:, [0, 2]], axis=0).max())
    d = max(4.0, 1.6 * spread + 3.0)
    side = np.cross(back, [0, 1, 0])
    eye = target + d * (0.8 * back + 0.6 * side) + np.array([0, 0.45 * d, 0])
    R, eye = look_at(eye, target)
    tiles = []
    for k in (int(x) for x in args.frames.split(",")):
        t = float(times[k])
        im = render(r, t, R, eye)
        cv2.rectangle(im, (0, 0), (330, 36), (255, 255, 255), -1)
        cv2.putText(
            im,
            f"t = {t:.2f} s (read from animation.glb)",
            (10, 24),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (30, 30, 30),
            1,
            cv2.LINE_AA,
        )
        tiles.append(im)
    out = np.concatenate(tiles, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
