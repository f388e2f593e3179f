"""Render the bundled example clip: the open body walking through a textured room.

    python scripts/make_example_clip.py --out josh_jax/data/example/walk.mp4

Everything in the clip is made here (the josh-open-body mesh, CC0 MakeHuman
assets; procedural textures), so the clip is CC0 like its inputs. The handheld
camera follows the person walking across the room; a
``*_gt.npz`` beside the clip holds the true cameras (camera-to-world, OpenCV
axes, world y down), the focal length and the bodies (rotations, betas,
translation) per frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage

from josh_jax import body
from josh_jax.render import draw_mesh
from josh_jax.synth import SynthConfig, _walk

# body parts by dominant skinning joint (SMPL order) -> RGB
SKIN, SHIRT, TROUSERS, SHOES, HAIR = (224, 172, 140), (40, 90, 170), (60, 60, 70), (30, 30, 30), (70, 45, 30)
PARTS = {**{j: SKIN for j in (12, 15, 20, 21, 22, 23)}, **{j: SHIRT for j in (3, 6, 9, 13, 14, 16, 17, 18, 19)},
         **{j: TROUSERS for j in (0, 1, 2, 4, 5)}, **{j: SHOES for j in (7, 8, 10, 11)}}


def body_colors(model) -> np.ndarray:
    w = np.asarray(model.weights)
    dom = w.argmax(1)
    cols = np.array([PARTS[int(d)] for d in dom], float)
    v = np.asarray(model.v_template)
    head = dom == 15
    top = v[head, 1].max()
    hair = head & ((v[:, 1] > top - 0.07) | ((v[:, 2] < v[head, 2].mean() - 0.02) & (v[:, 1] > top - 0.2)))
    cols[hair] = HAIR
    return cols.astype(np.uint8)


def textures(rng, n: int = 6, size: int = 512) -> list[np.ndarray]:
    """High-contrast procedural textures (blobs at two scales, tile lines) that SIFT can hold on to."""
    out = []
    for _ in range(n):
        base = np.stack([scipy.ndimage.gaussian_filter(rng.random((size, size)), s, mode="wrap") for s in (1, 3, 1)], -1)
        base = (base - base.min((0, 1))) / np.ptp(base, (0, 1))
        base = np.clip((base - 0.5) * 2.5 + 0.5, 0, 1)  # strong local contrast for SIFT
        tint = rng.uniform(0.3, 1.0, 3)
        img = 255 * (0.25 + 0.75 * base) * tint
        img[::64] *= 0.4
        img[:, ::64] *= 0.4
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def render_room(T_wc, focal, w, h, room, boxes, tex, texel=0.02) -> np.ndarray:
    """Ray-cast the room (ground y = 0, walls at +-room, boxes) and texture it."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    d = np.stack([(u - w / 2) / focal, (v - h / 2) / focal, np.ones_like(u, float)], -1) @ T_wc[:3, :3].T
    c = T_wc[:3, 3]
    best = np.full((h, w), np.inf)
    pid = np.full((h, w), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, (axis, value) in enumerate(((1, 0.0), (0, room), (0, -room), (2, room), (2, -room), (1, -4.0))):
            t = (value - c[axis]) / d[..., axis]
            hit = (t > 1e-6) & (t < best)
            best, pid = np.where(hit, t, best), np.where(hit, i, pid)
        for b, (lo, hi) in enumerate(boxes):
            t1, t2 = (lo - c) / d, (hi - c) / d
            tmin, tmax = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
            hit = (tmax >= tmin) & (tmin > 1e-6) & (tmin < best)
            best, pid = np.where(hit, tmin, best), np.where(hit, 6 + b, pid)
    p = c + d * best[..., None]
    img = np.zeros((h, w, 3), np.uint8)
    for i in np.unique(pid):
        m = pid == i
        plane = i if i < 6 else 1
        a, b = {0: (0, 2), 1: (2, 1), 2: (2, 1), 3: (0, 1), 4: (0, 1), 5: (0, 2)}.get(plane, (0, 2))
        if i >= 6:  # boxes: use the two coordinates that vary on the hit face
            q = p[m]
            spread = np.ptp(q, 0)
            a, b = np.argsort(-spread)[:2]
        t = tex[i % len(tex)]
        mx = (p[..., a] / texel % t.shape[1]).astype(np.float32)
        my = (p[..., b] / texel % t.shape[0]).astype(np.float32)
        r = cv2.remap(t, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        img[m] = r[m]
    return img


def follow_cameras(target: np.ndarray, rng, back: float = 4.5, side: float = 0.8, height: float = 1.6,
                   shake: float = 0.004) -> np.ndarray:
    """(F, 4, 4) camera-to-world poses of a handheld camera tracking ``target`` (F, 3) from behind-left,
    looking slightly down at it (world y down)."""
    k = np.exp(-0.5 * (np.arange(-15, 16) / 6.0) ** 2)
    smooth = np.stack([np.convolve(np.pad(target[:, i], 15, mode="edge"), k / k.sum(), "valid") for i in range(3)], 1)
    out = []
    for t, p in enumerate(smooth):
        c = np.array([p[0] - side, -height, p[2] - back]) + rng.normal(0, shake, 3)
        z = p + [0, 0.3, 0] - c
        z /= np.linalg.norm(z)
        x = np.cross([0.0, 1.0, 0.0], z)  # world y down: x = down x forward is camera right
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        T = np.eye(4)
        T[:3, :3] = np.stack([x, y, z], 1)
        T[:3, 3] = c
        out.append(T)
    return np.stack(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("josh_jax/data/example/walk.mp4"))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    model = body.load("open")
    W, H, F = args.width, args.height, args.frames
    focal = 0.9 * W
    cfg = SynthConfig(width=W, height=H, focal=focal, camera="sideways", cam_speed=0.03, shake=0.004,
                      room=7.0, person_z=4.0)
    betas = np.zeros(model.num_betas, np.float32)
    betas[0] = 0.5
    start = np.array([-2.5, 0.0, 4.0])
    rots, trans = _walk(model, betas, F, start, -np.pi / 2 - 0.35, rng, cfg)
    import jax.numpy as jnp

    out = body.forward(model, jnp.asarray(betas), jnp.asarray(rots, jnp.float32), jnp.asarray(trans, jnp.float32))
    verts = np.asarray(out.vertices, np.float64)
    T_wc = follow_cameras(np.asarray(out.joints)[:, 0], rng)
    boxes = np.array([[[-3.0, -1.2, 6.0], [-1.8, 0.0, 6.8]], [[1.5, -0.8, 5.5], [2.6, 0.0, 6.3]],
                      [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]]])
    tex = textures(rng)
    colors = body_colors(model)
    faces = np.asarray(model.faces)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (W, H))
    for t in range(F):
        img = render_room(T_wc[t], focal, W, H, cfg.room, boxes, tex)
        Tcw = np.linalg.inv(T_wc[t])
        vc = verts[t] @ Tcw[:3, :3].T + Tcw[:3, 3]
        img = draw_mesh(img, vc, faces, focal, (W / 2, H / 2), vertex_colors=colors)
        vw.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if t == F // 2:
            cv2.imwrite(str(args.out.with_suffix(".png")), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    vw.release()
    np.savez_compressed(args.out.with_name(args.out.stem + "_gt.npz"), cam_to_world=T_wc, focal=focal,
                        rotmats=rots.astype(np.float32), betas=betas, transl=trans.astype(np.float32), fps=30.0)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {F} frames {W}x{H})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
