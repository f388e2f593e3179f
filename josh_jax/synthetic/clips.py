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

from josh_jax import body
from josh_jax.export.render import draw_mesh
from josh_jax.geometry.pinhole import project
from josh_jax.synthetic.worlds import SynthConfig, _walk

# body parts by dominant skinning joint (SMPL order) -> RGB
SKIN, SHIRT, TROUSERS, SHOES, HAIR = (224, 172, 140), (40, 90, 170), (60, 60, 70), (30, 30, 30), (70, 45, 30)
PARTS = {
    **{j: SKIN for j in (12, 15, 20, 21, 22, 23)},
    **{j: SHIRT for j in (3, 6, 9, 13, 14, 16, 17, 18, 19)},
    **{j: TROUSERS for j in (0, 1, 2, 4, 5)},
    **{j: SHOES for j in (7, 8, 10, 11)},
}


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
        base = np.stack(
            [scipy.ndimage.gaussian_filter(rng.random((size, size)), s, mode="wrap") for s in (1, 3, 1)], -1
        )
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


def follow_cameras(
    target: np.ndarray, rng, back: float = 4.5, side: float = 0.8, height: float = 1.6, shake: float = 0.004
) -> np.ndarray:
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


def _render_frames(
    path: str | Path | None, fps: float, width: int, height: int, frames: int, draw
) -> np.ndarray | None:
    """The one render loop of the clips: ``draw(t)`` -> (H, W, 3) RGB uint8 for t in 0..frames-1.

    Writes ``path`` (mp4v, BGR) when given and returns None; else returns the frames (F, H, W, 3).
    """
    writer = None
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    imgs = []
    try:
        for t in range(frames):
            img = draw(t)
            if writer is not None:
                writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            else:
                imgs.append(img)
    finally:
        if writer is not None:
            writer.release()
    return None if writer is not None else np.stack(imgs)


def render_clip(
    path: str | Path | None,
    frames: int = 120,
    width: int = 640,
    height: int = 360,
    seed: int = 3,
    person: bool = True,
    camera: str = "follow",
    fps: float = 30.0,
) -> dict:
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
        pelvis = np.repeat(pelvis[F // 2 : F // 2 + 1], F, 0)
    T_wc = follow_cameras(pelvis, rng, shake=0.004 if camera == "follow" else 0.0)
    boxes = np.array(
        [
            [[-3.0, -1.2, 6.0], [-1.8, 0.0, 6.8]],
            [[1.5, -0.8, 5.5], [2.6, 0.0, 6.3]],
            [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]],
        ]
    )
    tex = textures(rng)
    colors = body_colors(model)
    faces = np.asarray(model.faces)

    def draw(t):
        img = render_room(T_wc[t], focal, W, H, cfg.room, boxes, tex)
        if person:
            Tcw = np.linalg.inv(T_wc[t])
            img = draw_mesh(
                img, verts[t] @ Tcw[:3, :3].T + Tcw[:3, 3], faces, focal, (W / 2, H / 2), vertex_colors=colors
            )
        return img

    imgs = _render_frames(path, fps, W, H, F, draw)
    gt = dict(
        cam_to_world=T_wc,
        focal=float(focal),
        rotmats=rots.astype(np.float32),
        betas=betas,
        transl=trans.astype(np.float32),
        fps=fps,
    )
    if imgs is not None:
        gt["frames"] = imgs
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
    person and zooms (focal 0.75 -> 1.0 x width, no translation at all); "pan": the same without
    zoom (focal 0.9 x width); "handheld": a phone
    held in front of the walker, 2-5 cm of smooth hand motion, following the person (focal
    0.9 x width, fixed).
    """
    F = len(pelvis)
    target = _smooth_path(pelvis + [0.0, 0.3, 0.0])
    s = np.linspace(0.0, 1.0, F)
    if kind in ("ptz", "pan"):
        centres = np.repeat(np.array([[0.4, -1.9, -2.0]]), F, 0)
        focal = width * (0.75 + 0.25 * (3 * s**2 - 2 * s**3))  # smooth zoom-in
        if kind == "pan":
            focal = np.full(F, 0.9 * width)
    elif kind in ("handheld", "handheld_near"):
        c0 = np.array([-0.6, -1.55, -1.2])
        ph = rng.uniform(0, 2 * np.pi, 3)
        wob = 0.018 * np.stack(
            [np.sin(2 * np.pi * s + ph[0]), 0.6 * np.sin(3 * np.pi * s + ph[1]), np.sin(np.pi * s + ph[2])], 1
        )
        centres = c0 + wob + _smooth_path(rng.normal(0, 0.002, (F, 3)), 3.0)
        focal = np.full(F, 0.9 * width)
    else:
        raise ValueError(f"unknown camera clip kind {kind!r} (ptz | pan | handheld | handheld_near)")
    T = np.tile(np.eye(4), (F, 1, 1))
    for t in range(F):
        T[t, :3, :3] = look_at(centres[t], target[t])
        T[t, :3, 3] = centres[t]
    return T, focal


def render_camera_clip(
    path: str | Path | None,
    kind: str = "ptz",
    frames: int = 50,
    width: int = 448,
    height: int = 252,
    seed: int = 5,
    fps: float = 30.0,
    gait: str = "steady",
) -> dict:
    """A camera-motion test clip (``kind`` "ptz", "pan", "handheld" or "handheld_near", see
    :func:`camera_clip_motion`) of one walking person in the textured room, with exact ground truth.

    Returns cam_to_world (F, 4, 4), focal (F,) px, camera_mode (the mode the demo should pick: "rotation"
    for ptz and pan, "sfm" for the handheld clips: their 3.7 cm of translation leaves ~1 px of parallax
    at 448 px, which SfM with small-baseline triangulation angles measures, see docs/frontends.md), rotmats (F, 24, 3, 3), betas, transl (F, 3), joints (F, 24, 3) world,
    fps; and the frames (F, H, W, 3) when ``path`` is None. World: y down, metres. ``gait``: the walker's
    gait (:class:`~josh_jax.synthetic.worlds.SynthConfig`; "steady" by default, "sine" as rendered
    before 2026-12-02).
    """
    rng = np.random.default_rng(seed)
    model = body.load("open")
    W, H, F = width, height, frames
    cfg = SynthConfig(width=W, height=H, focal=0.9 * W, room=7.0, person_z=4.0, fps=fps, gait=gait)
    betas = np.zeros(model.num_betas, np.float32)
    betas[0] = 0.5
    rots, trans = _walk(model, betas, F, np.array([-1.8, 0.0, 3.2]), -np.pi / 2 - 0.25, rng, cfg)
    out = body.forward(model, jnp.asarray(betas), jnp.asarray(rots, jnp.float32), jnp.asarray(trans, jnp.float32))
    verts = np.asarray(out.vertices, np.float64)
    joints = np.asarray(out.joints, np.float64)
    T_wc, focal = camera_clip_motion(kind, joints[:, 0], W, rng)
    boxes = [
        [[-3.0, -1.2, 6.0], [-1.8, 0.0, 6.8]],
        [[1.5, -0.8, 5.5], [2.6, 0.0, 6.3]],
        [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]],
        [[-4.5, -1.5, 2.0], [-3.6, 0.0, 3.2]],
    ]
    if kind == "handheld_near":  # a crate ~1.5 m from the camera: several px of parallax for SfM
        boxes.append([[-2.0, -0.9, 0.1], [-1.2, 0.0, 0.9]])
    boxes = np.array(boxes)
    tex = textures(rng)
    colors = body_colors(model)
    faces = np.asarray(model.faces)

    def draw(t):
        img = render_room(T_wc[t], focal[t], W, H, cfg.room, boxes, tex)
        Tcw = np.linalg.inv(T_wc[t])
        return draw_mesh(
            img, verts[t] @ Tcw[:3, :3].T + Tcw[:3, 3], faces, focal[t], (W / 2, H / 2), vertex_colors=colors
        )

    imgs = _render_frames(path, fps, W, H, F, draw)
    gt = dict(
        cam_to_world=T_wc,
        focal=focal,
        camera_mode="sfm" if kind.startswith("handheld") else "rotation",
        rotmats=rots.astype(np.float32),
        betas=betas,
        transl=trans.astype(np.float32),
        joints=joints,
        fps=fps,
    )
    if imgs is not None:
        gt["frames"] = imgs
    return gt


# ------------------------------------------------------------------ several people (issue 14, people half)

# clothes and skin of up to four people (RGB): distinct shirts, trousers, skin tones and hair, so that
# appearance tells them apart and a COCO-style detector sees dressed people rather than one-colour shapes
OUTFITS = (
    dict(skin=(224, 172, 140), shirt=(190, 40, 40), trousers=(50, 70, 120), shoes=(30, 30, 30), hair=(70, 45, 30)),
    dict(skin=(150, 100, 70), shirt=(235, 235, 225), trousers=(30, 30, 35), shoes=(90, 60, 40), hair=(20, 15, 10)),
    dict(
        skin=(240, 200, 170), shirt=(60, 140, 60), trousers=(170, 150, 110), shoes=(240, 240, 240), hair=(200, 160, 90)
    ),
    dict(skin=(110, 75, 55), shirt=(230, 180, 40), trousers=(90, 90, 95), shoes=(40, 30, 30), hair=(30, 25, 20)),
)


def outfit_colors(model, outfit: dict) -> np.ndarray:
    """(V, 3) uint8 vertex colours of the open body dressed in ``outfit`` (keys skin, shirt, trousers, shoes, hair)."""
    base = body_colors(model)
    out = base.copy()
    for old, key in ((SKIN, "skin"), (SHIRT, "shirt"), (TROUSERS, "trousers"), (SHOES, "shoes"), (HAIR, "hair")):
        out[(base == np.array(old, np.uint8)).all(1)] = outfit[key]
    return out


def _label_map(shape, verts_list, faces, focal, principal, near: float = 0.05) -> np.ndarray:
    """(H, W) int: index of the front-most person at each pixel (-1: none); painter's algorithm over all people."""
    h, w = shape
    tris, ids, depth = [], [], []
    for p, v in enumerate(verts_list):
        tri = v[faces]
        ok = (tri[..., 2] > near).all(1)
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        ok &= (n * tri.mean(1)).sum(1) < 0
        px = project(v, focal, principal)[faces][ok]
        tris.append(px)
        ids.append(np.full(len(px), p))
        depth.append(tri.mean(1)[ok, 2])
    tris, ids, depth = np.concatenate(tris), np.concatenate(ids), np.concatenate(depth)
    lab = np.zeros((h, w), np.uint8)
    pts = np.round(tris * 16).astype(np.int32)
    for k in np.argsort(-depth):
        cv2.fillConvexPoly(lab, pts[k], int(ids[k]) + 1, shift=4)
    return lab.astype(np.int64) - 1


PEOPLE_PRESETS = {
    # four people walking side by side away from a camera that follows them (seen from behind)
    "walk_away": dict(people=4, heading=np.pi, spacing=0.85, depth_step=0.0, start_z=2.0, cam="follow"),
    # two people crossing in front of a camera on a tripod: the nearer one hides the other
    "crossing": dict(people=2, heading=None, spacing=0.0, depth_step=1.3, start_z=4.0, cam="static"),
}


def render_people_clip(
    path: str | Path | None,
    preset: str = "walk_away",
    frames: int = 48,
    width: int = 480,
    height: int = 270,
    seed: int = 7,
    fps: float = 30.0,
    people: int | None = None,
    gait: str = "steady",
) -> dict:
    """Render a clip with several people (``PEOPLE_PRESETS``) and return exact ground truth.

    Returns cam_to_world (F, 4, 4), focal (px), fps and per person (leading axis P):
    rotmats (P, F, 24, 3, 3), betas (P, 10), transl (P, F, 3), joints (P, F, 24, 3) world,
    boxes (P, F, 4) projected vertex boxes clipped to the frame [xmin, ymin, xmax, ymax] (NaN when
    off-frame), visible (P, F) fraction of the 24 joints in the frame and not hidden by another
    person (from a label map), and, when ``path`` is None, frames (F, H, W, 3) RGB uint8.
    Writes ``path`` (mp4v) when given. World: y down, metres (as :func:`render_clip`). ``gait``: the
    walkers' gait (:class:`~josh_jax.synthetic.worlds.SynthConfig`; "steady" by default, "sine" as
    rendered before 2026-12-02).
    """
    if preset not in PEOPLE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PEOPLE_PRESETS)}")
    spec = PEOPLE_PRESETS[preset]
    P = int(people or spec["people"])
    rng = np.random.default_rng(seed)
    model = body.load("open")
    W, H, F = width, height, frames
    focal = 0.9 * W
    cfg = SynthConfig(width=W, height=H, focal=focal, room=7.0, fps=fps, gait=gait)
    rots, trans, betas_all, verts, joints = [], [], [], [], []
    for p in range(P):
        betas = np.zeros(model.num_betas, np.float32)
        betas[0] = rng.uniform(-1.0, 1.0)  # height
        betas[1] = rng.uniform(-0.8, 0.8)
        if spec["heading"] is not None:  # side by side, all the same way
            start = np.array([(p - (P - 1) / 2) * spec["spacing"], 0.0, spec["start_z"] + rng.uniform(-0.15, 0.15)])
            heading = spec["heading"] + rng.uniform(-0.04, 0.04)
        else:  # crossing: alternate directions, at increasing depth
            side = 1 if p % 2 == 0 else -1
            start = np.array([-0.9 * side, 0.0, spec["start_z"] + p * spec["depth_step"]])
            heading = -np.pi / 2 if side == 1 else np.pi / 2
        r, tr = _walk(model, betas, F, start, heading, rng, cfg)
        out = body.forward(model, jnp.asarray(betas), jnp.asarray(r, jnp.float32), jnp.asarray(tr, jnp.float32))
        rots.append(r)
        trans.append(tr)
        betas_all.append(betas)
        verts.append(np.asarray(out.vertices, np.float64))
        joints.append(np.asarray(out.joints, np.float64))
    verts, joints = np.stack(verts), np.stack(joints)
    pelvis = joints[:, :, 0].mean(0)  # (F, 3) the group's centre
    if spec["cam"] == "follow":
        T_wc = follow_cameras(pelvis, rng, back=4.0, side=0.0, height=1.7, shake=0.003)
    else:  # 5 m in front of the crossing point, looking along +z; "dolly": sliding 0.8 m sideways
        T_wc = np.repeat(np.eye(4)[None], F, 0)
        centre_z = spec["start_z"] + (P - 1) * spec["depth_step"] / 2
        for t in range(F):
            x = -0.4 + 0.8 * t / max(F - 1, 1) if spec["cam"] == "dolly" else 0.0
            T_wc[t, :3, 3] = [x, -1.5, centre_z - 5.0]
            pitch = np.deg2rad(8.0)  # looking slightly down (world y down)
            T_wc[t, :3, :3] = np.array(
                [[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]]
            )
    boxes_room = np.array(
        [
            [[-3.0, -1.2, 8.5], [-1.8, 0.0, 9.3]],
            [[1.5, -0.8, 8.0], [2.6, 0.0, 8.8]],
            [[3.5, -2.0, 6.5], [4.5, 0.0, 6.95]],
        ]
    )
    tex = textures(rng)
    faces = np.asarray(model.faces)
    colors = np.concatenate([outfit_colors(model, OUTFITS[p % len(OUTFITS)]) for p in range(P)])
    all_faces = np.concatenate([faces + p * model.num_vertices for p in range(P)])
    boxes = np.full((P, F, 4), np.nan)
    visible = np.zeros((P, F))

    def draw(t):  # the frame; fills boxes[:, t] and visible[:, t]
        img = render_room(T_wc[t], focal, W, H, cfg.room, boxes_room, tex)
        Tcw = np.linalg.inv(T_wc[t])
        vc = verts[:, t] @ Tcw[:3, :3].T + Tcw[:3, 3]  # (P, V, 3)
        img = draw_mesh(img, vc.reshape(-1, 3), all_faces, focal, (W / 2, H / 2), vertex_colors=colors)
        lab = _label_map((H, W), list(vc), faces, focal, (W / 2, H / 2))
        jc = joints[:, t] @ Tcw[:3, :3].T + Tcw[:3, 3]
        for p in range(P):
            z = vc[p, :, 2]
            if (z <= 0.05).any():
                continue
            px = project(vc[p], focal, [W / 2, H / 2], min_depth=None)
            lo, hi = np.clip(px.min(0), 0, [W, H]), np.clip(px.max(0), 0, [W, H])
            if (hi - lo).min() > 2:
                boxes[p, t] = [lo[0], lo[1], hi[0], hi[1]]
            jp = project(jc[p], focal, [W / 2, H / 2], min_depth=None)
            inside = (jp[:, 0] >= 0) & (jp[:, 0] < W) & (jp[:, 1] >= 0) & (jp[:, 1] < H)
            ji = np.clip(np.round(jp).astype(int), 0, [W - 1, H - 1])
            seen = lab[ji[:, 1], ji[:, 0]] == p  # the surface in front of the joint is this person's
            visible[p, t] = float((inside & seen).mean())
        return img

    imgs = _render_frames(path, fps, W, H, F, draw)
    gt = dict(
        cam_to_world=T_wc,
        focal=float(focal),
        fps=fps,
        rotmats=np.stack(rots).astype(np.float32),
        betas=np.stack(betas_all),
        transl=np.stack(trans).astype(np.float32),
        joints=joints.astype(np.float32),
        boxes=boxes,
        visible=visible,
        size=np.array([W, H]),
    )
    if imgs is not None:
        gt["frames"] = imgs
    return gt


def _true_centres(gt: dict) -> np.ndarray:
    """(P, F, 4, 2) pixels: projected mid-points of the hips, shoulders, knees and ankles of each true person."""
    J = gt["joints"]  # (P, F, 24, 3) world
    T_cw = np.linalg.inv(gt["cam_to_world"])  # (F, 4, 4)
    Jc = np.einsum("fij,pfkj->pfki", T_cw[:, :3, :3], J) + T_cw[None, :, None, :3, 3]
    H, W = gt["frames"].shape[1:3] if "frames" in gt else gt["size"][::-1]
    px = project(Jc, gt["focal"], [W / 2, H / 2])
    pairs = ((1, 2), (16, 17), (4, 5), (7, 8))
    return np.stack([(px[:, :, a] + px[:, :, b]) / 2 for a, b in pairs], 2)


def landmark_centres(landmarks: np.ndarray) -> np.ndarray:
    """(..., 33, 2) BlazePose landmarks -> (..., 4, 2) mid-points of the hips, shoulders, knees and ankles."""
    from josh_jax.frontends import blazepose as bp

    pairs = ((bp.L_HIP, bp.R_HIP), (bp.L_SHOULDER, bp.R_SHOULDER), (bp.L_KNEE, bp.R_KNEE), (bp.L_ANKLE, bp.R_ANKLE))
    return np.stack([(landmarks[..., a, :2] + landmarks[..., b, :2]) / 2 for a, b in pairs], -2)


def smpl_centres(joints_px: np.ndarray) -> np.ndarray:
    """(..., 24, 2) SMPL-order joints in pixels -> (..., 4, 2) mid-points of hips, shoulders, knees, ankles."""
    return np.stack(
        [(joints_px[..., a, :] + joints_px[..., b, :]) / 2 for a, b in ((1, 2), (16, 17), (4, 5), (7, 8))], -2
    )


def tracking_report(
    gt: dict, track_landmarks: dict, scale: float = 1.0, max_dist: float = 0.2, min_visible: float = 0.5
) -> list[dict]:
    """Score person tracks against :func:`render_people_clip`'s truth.

    ``track_landmarks``: {track id: {frame: (33, 2) BlazePose landmarks, or (4, 2) centres as
    :func:`landmark_centres` / :func:`smpl_centres` give}} in pixels of a frame ``scale`` times the
    clip's size. Per frame, tracks and the true people visible there (>= ``min_visible`` of
    their joints seen) are matched one to one (Hungarian) on the mean distance between the mid-points
    of hips, shoulders, knees and ankles (left/right-free), divided by the person's projected height;
    a pair counts when that is below ``max_dist``. Per true person: visible frames, the fraction of
    them it is matched on (``tracked``), identity switches (changes of the matched track id), the track
    ids it got, and the tracks that also matched another person (``shared_tracks``).
    """
    from scipy.optimize import linear_sum_assignment

    true = _true_centres(gt) * scale  # (P, F, 4, 2)
    P, F = gt["visible"].shape
    match = np.full((P, F), -1)
    for t in range(F):
        ids = [i for i, b in track_landmarks.items() if t in b]
        people = [p for p in range(P) if gt["visible"][p, t] >= min_visible]
        if not ids or not people:
            continue
        d = np.empty((len(people), len(ids)))
        for r, p in enumerate(people):
            height = max(np.ptp(true[p, t, :, 1]) * 1.3, 1.0)  # shoulders to ankles ~ 3/4 of the body
            for c, i in enumerate(ids):
                mine = np.asarray(track_landmarks[i][t], float)
                mine = landmark_centres(mine) if len(mine) == 33 else mine
                d[r, c] = np.linalg.norm(mine - true[p, t], axis=-1).mean() / height
        rows, cols = linear_sum_assignment(d)
        for r, c in zip(rows, cols):
            if d[r, c] <= max_dist:
                match[people[r], t] = ids[c]
    people_of = {i: sorted({int(p) for p in range(P) if (match[p] == i).any()}) for i in track_landmarks}
    out = []
    for p in range(P):
        vis = gt["visible"][p] >= min_visible
        m = match[p][match[p] >= 0]
        switches = int((np.diff(m) != 0).sum()) if len(m) else 0
        out.append(
            dict(
                person=p,
                visible_frames=int(vis.sum()),
                visible_fraction=float(vis.mean()),
                tracked=float((match[p][vis] >= 0).mean()) if vis.any() else 0.0,
                switches=switches,
                track_ids=sorted({int(x) for x in m}),
                shared_tracks=sorted(int(i) for i in set(m.tolist()) if len(people_of[int(i)]) > 1),
            )
        )
    return out
