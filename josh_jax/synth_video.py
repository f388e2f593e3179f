"""Rendered synthetic clips: textured rooms and the open body, with exact ground truth.

``render_clip`` makes the bundled example clip (scripts/make_example_clip.py)
and the small videos the tests feed to the front ends (structure from motion
on textured planes with known poses, people tracking with known bodies).
World frame: y down, metres; cameras camera-to-world in OpenCV axes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from . import body
from .render import draw_mesh
from .synth import SynthConfig, _walk

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


def render_clip(path: str | Path | None, frames: int = 120, width: int = 640, height: int = 360, seed: int = 3,
                person: bool = True, camera: str = "follow", fps: float = 30.0) -> dict:
    """Render a clip; ``camera`` "follow" (handheld, tracking the person) or "static".

    Writes ``path`` (mp4v) when given and returns the ground truth: cam_to_world
    (F, 4, 4), focal (px), rotmats (F, 24, 3, 3), betas, transl (F, 3) and, when
    ``path`` is None, the frames (F, H, W, 3) RGB uint8.
    """
    rng = np.random.default_rng(seed)
    model = body.load("open")
    W, H, F = width, height, frames
    focal = 0.9 * W
    cfg = SynthConfig(width=W, height=H, focal=focal, room=7.0, person_z=4.0, fps=fps)
    betas = np.zeros(model.num_betas, np.float32)
    betas[0] = 0.5
    rots, trans = _walk(model, betas, F, np.array([-2.5, 0.0, 4.0]), -np.pi / 2 - 0.35, rng, cfg)
    out = body.forward(model, jnp.asarray(betas), jnp.asarray(rots, jnp.float32), jnp.asarray(trans, jnp.float32))
    verts = np.asarray(out.vertices, np.float64)
    pelvis = np.asarray(out.joints)[:, 0]
    if camera == "static":
        pelvis = np.repeat(pelvis[F // 2:F // 2 + 1], F, 0)
    T_wc = follow_cameras(pelvis, rng, shake=0.004 if camera == "follow" else 0.0)
    boxes = np.array([[[-3.0, -1.2, 6.0], [-1.8, 0.0, 6.8]], [[1.5, -0.8, 5.5], [2.6, 0.0, 6.3]],
                      [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]]])
    tex = textures(rng)
    colors = body_colors(model)
    faces = np.asarray(model.faces)
    writer = None
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    imgs = []
    for t in range(F):
        img = render_room(T_wc[t], focal, W, H, cfg.room, boxes, tex)
        if person:
            Tcw = np.linalg.inv(T_wc[t])
            img = draw_mesh(img, verts[t] @ Tcw[:3, :3].T + Tcw[:3, 3], faces, focal, (W / 2, H / 2),
                            vertex_colors=colors)
        if writer is not None:
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        else:
            imgs.append(img)
    gt = dict(cam_to_world=T_wc, focal=float(focal), rotmats=rots.astype(np.float32), betas=betas,
              transl=trans.astype(np.float32), fps=fps)
    if writer is not None:
        writer.release()
    else:
        gt["frames"] = np.stack(imgs)
    return gt


# ------------------------------------------------------------------ camera-motion test clips (issue 14)


def look_at(c: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-from-camera rotation (3, 3) of a camera at ``c`` looking at ``target``, no roll (world y down)."""
    z = target - c
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], 1)


def _smooth_path(x: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    return scipy.ndimage.gaussian_filter1d(np.asarray(x, np.float64), sigma, axis=0, mode="nearest")


def camera_clip_motion(kind: str, pelvis: np.ndarray, width: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Camera-to-world poses (F, 4, 4) and per-frame focal (F,) px of a camera-motion test clip.

    ``kind``: "ptz": a broadcast camera on a fixed point that pans and tilts to follow the
    person and zooms (focal 0.75 -> 1.0 x width, no translation at all); "handheld": a phone
    held in front of the walker, 2-5 cm of smooth hand motion, following the person (focal
    0.9 x width, fixed).
    """
    F = len(pelvis)
    target = _smooth_path(pelvis + [0.0, 0.3, 0.0])
    s = np.linspace(0.0, 1.0, F)
    if kind == "ptz":
        centres = np.repeat(np.array([[0.4, -1.9, -2.0]]), F, 0)
        focal = width * (0.75 + 0.25 * (3 * s**2 - 2 * s**3))  # smooth zoom-in
    elif kind in ("handheld", "handheld_near"):
        c0 = np.array([-0.6, -1.55, -1.2])
        ph = rng.uniform(0, 2 * np.pi, 3)
        wob = 0.018 * np.stack([np.sin(2 * np.pi * s + ph[0]), 0.6 * np.sin(3 * np.pi * s + ph[1]),
                                np.sin(np.pi * s + ph[2])], 1)
        centres = c0 + wob + _smooth_path(rng.normal(0, 0.002, (F, 3)), 3.0)
        focal = np.full(F, 0.9 * width)
    else:
        raise ValueError(f"unknown camera clip kind {kind!r} (ptz | handheld)")
    T = np.tile(np.eye(4), (F, 1, 1))
    for t in range(F):
        T[t, :3, :3] = look_at(centres[t], target[t])
        T[t, :3, 3] = centres[t]
    return T, focal


def render_camera_clip(path: str | Path | None, kind: str = "ptz", frames: int = 50, width: int = 448,
                       height: int = 252, seed: int = 5, fps: float = 30.0) -> dict:
    """A camera-motion test clip (``kind`` "ptz" or "handheld", see :func:`camera_clip_motion`) of one
    walking person in the textured room, with exact ground truth.

    Returns cam_to_world (F, 4, 4), focal (F,) px, camera_mode (the mode the demo should pick: "rotation"
    for both; the handheld clip's 3.7 cm of translation leaves at most ~1 px of parallax at 448 px,
    too little for SfM, see docs/frontends.md), rotmats (F, 24, 3, 3), betas, transl (F, 3), joints (F, 24, 3) world,
    fps; and the frames (F, H, W, 3) when ``path`` is None. World: y down, metres.
    """
    rng = np.random.default_rng(seed)
    model = body.load("open")
    W, H, F = width, height, frames
    cfg = SynthConfig(width=W, height=H, focal=0.9 * W, room=7.0, person_z=4.0, fps=fps)
    betas = np.zeros(model.num_betas, np.float32)
    betas[0] = 0.5
    rots, trans = _walk(model, betas, F, np.array([-1.8, 0.0, 3.2]), -np.pi / 2 - 0.25, rng, cfg)
    out = body.forward(model, jnp.asarray(betas), jnp.asarray(rots, jnp.float32), jnp.asarray(trans, jnp.float32))
    verts = np.asarray(out.vertices, np.float64)
    joints = np.asarray(out.joints, np.float64)
    T_wc, focal = camera_clip_motion(kind, joints[:, 0], W, rng)
    boxes = [[[-3.0, -1.2, 6.0], [-1.8, 0.0, 6.8]], [[1.5, -0.8, 5.5], [2.6, 0.0, 6.3]],
             [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]], [[-4.5, -1.5, 2.0], [-3.6, 0.0, 3.2]]]
    if kind == "handheld_near":  # a crate ~1.5 m from the camera: several px of parallax for SfM
        boxes.append([[-2.0, -0.9, 0.1], [-1.2, 0.0, 0.9]])
    boxes = np.array(boxes)
    tex = textures(rng)
    colors = body_colors(model)
    faces = np.asarray(model.faces)
    writer = None
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    imgs = []
    for t in range(F):
        img = render_room(T_wc[t], focal[t], W, H, cfg.room, boxes, tex)
        Tcw = np.linalg.inv(T_wc[t])
        img = draw_mesh(img, verts[t] @ Tcw[:3, :3].T + Tcw[:3, 3], faces, focal[t], (W / 2, H / 2),
                        vertex_colors=colors)
        if writer is not None:
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        else:
            imgs.append(img)
    if writer is not None:
        writer.release()
    gt = dict(cam_to_world=T_wc, focal=focal, camera_mode="rotation",
              rotmats=rots.astype(np.float32), betas=betas, transl=trans.astype(np.float32), joints=joints, fps=fps)
    if writer is None:
        gt["frames"] = np.stack(imgs)
    return gt
