"""Synthetic worlds with exact ground truth, and front-end outputs simulated from them.

``make_world(model, seed, cfg)`` returns a bundle :class:`~josh_jax.bundle.Window`
and a ground-truth dict in the ``results.npz`` layout (every frame, world =
first keyframe camera, OpenCV axes, metres).

The world: a room (ground plane, four walls) with boxes at several depths; a
camera that moves sideways, follows a person, orbits, or pans in place, with
handheld shake; 1-3 people walking with a simple gait whose stance foot is
really planted (the body is carried by the stance leg), turning and stopping.
``SynthConfig.gait`` "sine" (the default, kept for the worlds whose numbers are
on record) swings the thighs sinusoidally, so the pelvis stops at every step
(0-2 m/s inside a stride); "steady" (the rendered issue-14 clips) turns the
stance leg at a constant rate, so the pelvis moves at 1.16-1.25 m/s with a
2.6 cm bob, as a walking person's does.

The simulated front ends carry the errors JOSH has to undo:
- depth: an unknown global scale, a per-keyframe scale drift, noise; person
  pixels have the person's depth and no scene confidence;
- matcher: an 8-pixel grid with pixel noise, outliers, confidences, both pair
  orders, nothing on people;
- human front end: the image-diagonal focal assumption (camera-frame depth off
  by f_diag / f_true), per-frame depth error (and, where asked, a systematic
  one), pose and shape noise, missing keyframes;
- contact: per-vertex labels of the soles in stance with false negatives and
  false positives.

Presets ``easy``, ``medium``, ``hard`` (:data:`PRESETS`); deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from josh_jax.body import BodyModel
from josh_jax.body import forward_jit as _forward
from josh_jax.bundle import Window, validate
from josh_jax.errors import JoshError
from josh_jax.geometry.pinhole import project

GAITS = ("sine", "steady")  # SynthConfig.gait, see _walk


@dataclass(frozen=True)
class SynthConfig:
    num_keyframes: int = 11
    opt_interval: int = 5
    width: int = 160
    height: int = 120
    focal: float = 150.0  # true focal, working px
    camera: str = "sideways"  # sideways | follow | orbit | pan
    cam_height: float = 1.5
    cam_speed: float = 0.04  # metres per frame
    shake: float = 0.01  # radians / metres of handheld shake
    room: float = 9.0  # walls at +-room (x, z), metres
    boxes: int = 3
    people: int = 1
    person_z: float = 4.5
    walk_speed: float = 1.0  # gait cycles per second scale
    gait: str = "sine"  # sine (first round: the pelvis lurches 0-2 m/s in a stride) | steady (~constant speed)
    stop_prob: float = 0.0  # chance that a person stands still for a while
    turn_rate: float = 0.0  # radians per frame of heading change (max)
    depth_scale: float = 0.35  # the depth model's unknown global scale
    depth_drift: float = 0.0  # per-keyframe relative scale drift (std)
    depth_noise: float = 0.0  # per-pixel relative noise (std)
    pix_noise: float = 0.3  # pixels
    outliers: float = 0.0  # fraction of wrong matches
    hmr_depth_noise: float = 0.03  # relative per-keyframe error of camera-frame depth
    hmr_depth_bias: float = 0.0  # relative systematic error of camera-frame depth (0.1: 10 % too far)
    hmr_pose_noise: float = 0.02  # radians
    hmr_betas_noise: float = 0.1
    hmr_missing: float = 0.0  # fraction of keyframes a person is not detected on
    contact_fn: float = 0.1  # fraction of true contact vertices missed
    contact_fp: float = 0.0  # fraction of other sole/hand vertices wrongly labelled
    pair_window: int = 10
    stride: int = 8
    fps: float = 30.0


PRESETS = {
    "easy": SynthConfig(),
    "medium": SynthConfig(
        num_keyframes=21,
        camera="follow",
        people=2,
        depth_drift=0.02,
        depth_noise=0.01,
        outliers=0.05,
        hmr_depth_noise=0.05,
        hmr_pose_noise=0.04,
        stop_prob=0.3,
        turn_rate=0.01,
    ),
    "hard": SynthConfig(
        num_keyframes=21,
        camera="orbit",
        people=3,
        shake=0.02,
        depth_drift=0.04,
        depth_noise=0.02,
        outliers=0.1,
        pix_noise=0.6,
        hmr_depth_noise=0.08,
        hmr_pose_noise=0.06,
        hmr_missing=0.1,
        contact_fn=0.2,
        contact_fp=0.02,
        stop_prob=0.5,
        turn_rate=0.02,
        focal=120.0,
    ),
}


# ------------------------------------------------------------------ scene


def _rays(cfg: SynthConfig) -> np.ndarray:
    u, v = np.meshgrid(np.arange(cfg.width), np.arange(cfg.height))
    return np.stack([(u - cfg.width / 2) / cfg.focal, (v - cfg.height / 2) / cfg.focal, np.ones_like(u, float)], -1)


def _make_boxes(rng, cfg: SynthConfig) -> np.ndarray:
    """(n, 2, 3) axis-aligned boxes standing on the ground (y down: from -h to 0)."""
    out = []
    for _ in range(cfg.boxes):
        c = np.array([rng.uniform(-5, 5), 0.0, rng.uniform(6, cfg.room - 1)]) * [
            1,
            1,
            rng.choice([-1, 1]) if cfg.camera == "orbit" else 1,
        ]
        size = rng.uniform([0.5, 0.5, 0.5], [1.5, 2.0, 1.5])
        lo = np.array([c[0] - size[0] / 2, -size[1], c[2] - size[2] / 2])
        out.append(np.stack([lo, lo + size]))
    return np.array(out).reshape(-1, 2, 3)


def _scene_depth(T_wc: np.ndarray, cfg: SynthConfig, boxes: np.ndarray) -> np.ndarray:
    """z-depth per pixel of the room (ground y = 0, walls at +-room) and the boxes."""
    d = _rays(cfg) @ T_wc[:3, :3].T
    c = T_wc[:3, 3]
    best = np.full(d.shape[:2], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, value in ((1, 0.0), (0, cfg.room), (0, -cfg.room), (2, cfg.room), (2, -cfg.room)):
            t = (value - c[axis]) / d[..., axis]
            best = np.where((t > 1e-6) & (t < best), t, best)
        for lo, hi in boxes:
            t1, t2 = (lo - c) / d, (hi - c) / d
            tmin = np.minimum(t1, t2).max(-1)
            tmax = np.maximum(t1, t2).min(-1)
            hit = (tmax >= tmin) & (tmin > 1e-6)
            best = np.where(hit & (tmin < best), tmin, best)
    return best  # the ray's camera z-component is 1, so t is the z-depth


# ------------------------------------------------------------------ people


def _gait(phase: float, amp: float, profile: str = "sine") -> np.ndarray:
    """Local rotations (24, 3, 3) of a walk cycle; the swing leg's knee bends.

    The left leg swings while cos(phase) > 0 and stands while cos(phase) < 0 (the right leg the
    other way). ``profile`` "sine": the thighs swing as sin(phase), so the stance leg's angular rate,
    and with it the pelvis, slows to zero at every step; "steady": a triangle wave, so the stance leg
    turns at a constant rate and the pelvis moves at a nearly constant speed, as in a real walk.
    """
    aa = np.zeros((24, 3))
    s, c = np.sin(phase), np.cos(phase)
    thigh = s if profile == "sine" else (2 / np.pi) * np.arcsin(np.clip(s, -1.0, 1.0))
    aa[1, 0], aa[2, 0] = -0.35 * amp * thigh, 0.35 * amp * thigh
    aa[4, 0] = 0.05 + 0.6 * amp * max(c, 0.0)
    aa[5, 0] = 0.05 + 0.6 * amp * max(-c, 0.0)
    aa[16, 2], aa[17, 2] = -1.2, 1.2
    aa[16, 0], aa[17, 0] = 0.3 * amp * s, -0.3 * amp * s
    return Rotation.from_rotvec(aa).as_matrix()


def _walk(model: BodyModel, betas, frames: int, start: np.ndarray, heading: float, rng, cfg: SynthConfig):
    """Per-frame root rotation, body rotations and translation with planted stance feet.

    The stance foot's heel stays where it touched the ground; the pelvis height puts the lowest
    vertex on the ground. ``cfg.gait`` "sine": the stance foot is the lower one and the body waits a
    frame when it changes (the first round's gait, kept for the worlds and the bundled clip whose
    numbers are on record); "steady": the stance leg follows the phase and the hand-over happens at
    the exact phase where the legs are furthest apart, so the pelvis does not stop.
    """
    if cfg.gait not in GAITS:
        raise ValueError(f"unknown gait {cfg.gait!r}; choose from {', '.join(GAITS)}")
    flip = np.diag([1.0, -1.0, -1.0])  # body y up / facing +z -> world y down
    markers = model.vertex_set("foot_markers")  # left heel, left toe, right heel, right toe

    def feet(phase, amp, root):  # markers relative to the body origin, and the lift to the ground
        rot = _gait(phase, amp, cfg.gait)
        rot[0] = root
        v_all = np.asarray(_forward(model, betas, rot.astype(np.float32), np.zeros(3, np.float32)).vertices, np.float64)
        return rot, v_all[markers], -v_all[:, 1].max()

    stop = np.zeros(frames, bool)
    if rng.uniform() < cfg.stop_prob:
        a = rng.integers(0, frames // 2)
        stop[a : a + rng.integers(frames // 6, frames // 3 + 1)] = True
    turn = rng.uniform(-cfg.turn_rate, cfg.turn_rate)
    rots, trans = [], []
    phase, amp = rng.uniform(0, 2 * np.pi), 1.0
    prev_stance, anchor = None, None
    tr = None
    for t in range(frames):
        amp = max(0.0, amp - 0.1) if stop[t] else min(1.0, amp + 0.1)
        phase += (2 * np.pi / cfg.fps) * cfg.walk_speed * (0.2 + 0.8 * amp)
        heading += turn * amp
        root = Rotation.from_euler("y", heading).as_matrix() @ flip
        rot, m, ground = feet(phase, amp, root)
        if cfg.gait == "sine":
            stance = 0 if m[:2, 1].max() > m[2:, 1].max() else 1  # the lower foot (y down)
        else:
            stance = 0 if np.cos(phase) < 0 else 1
        if tr is None:
            tr = np.array([start[0], ground, start[2]])
        elif stance == prev_stance:
            # keep the stance foot's heel where it was on the ground
            tr = anchor - m[2 * stance]
            tr[1] = ground
        elif cfg.gait == "sine":
            tr = tr.copy()
            tr[1] = ground
        else:  # carry the body on the old foot up to the hand-over, then on the new one
            hand_over = np.floor((phase - np.pi / 2) / np.pi) * np.pi + np.pi / 2
            _, m_h, _ = feet(hand_over, amp, root)
            anchor = anchor - m_h[2 * prev_stance] + m_h[2 * stance]
            tr = anchor - m[2 * stance]
            tr[1] = ground
        anchor = tr + m[2 * stance]
        prev_stance = stance
        rots.append(rot)
        trans.append(tr.copy())
    return np.stack(rots), np.stack(trans)


# ------------------------------------------------------------------ cameras


def _cameras(cfg: SynthConfig, frames: int, target: np.ndarray, rng) -> np.ndarray:
    """(F, 4, 4) camera-to-world poses; ``target`` (F, 3) is the first person's pelvis."""
    out = []
    pitch = np.deg2rad(8.0)
    for t in range(frames):
        sh = rng.normal(0, cfg.shake, 3)
        if cfg.camera == "sideways":
            c = np.array([cfg.cam_speed * t, -cfg.cam_height, 0.0])
            yaw = 0.0
        elif cfg.camera == "follow":
            c = np.array([target[t, 0] - 1.0, -cfg.cam_height, target[t, 2] - cfg.person_z])
            yaw = np.arctan2(target[t, 0] - c[0], target[t, 2] - c[2])
        elif cfg.camera == "orbit":
            ang = -0.5 + cfg.cam_speed * t / cfg.person_z
            centre = target[0]
            c = np.array(
                [centre[0] - cfg.person_z * np.sin(ang), -cfg.cam_height, centre[2] - cfg.person_z * np.cos(ang)]
            )
            yaw = ang
        elif cfg.camera == "pan":
            c = np.array([0.0, -cfg.cam_height, 0.0])
            yaw = np.arctan2(target[t, 0], target[t, 2])
        else:
            raise ValueError(f"unknown camera motion {cfg.camera!r}")
        R = Rotation.from_euler("yx", [yaw + sh[0], -pitch + sh[1]]).as_matrix()
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, c + [0, sh[2], 0]
        out.append(T)
    return np.stack(out)


# ------------------------------------------------------------------ the world


def make_world(model: BodyModel, seed: int = 0, cfg: SynthConfig = SynthConfig()):
    """-> (Window, ground truth dict in the results.npz layout). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    K, W, H = cfg.num_keyframes, cfg.width, cfg.height
    F = (K - 1) * cfg.opt_interval + 1
    kf = np.arange(K) * cfg.opt_interval
    boxes = _make_boxes(rng, cfg)

    people = []
    for p in range(cfg.people):
        betas = rng.normal(0, 0.7, model.num_betas).astype(np.float32)
        start = np.array([rng.uniform(-1.5, 0.0) + 0.8 * p, 0.0, cfg.person_z + 0.8 * p * (-1) ** p])
        heading = -np.pi / 2 + rng.normal(0, 0.3)  # facing (-sin h, 0, -cos h): +x, across the view
        rots, trans = _walk(model, betas, F, start, heading, rng, cfg)
        people.append((betas, rots, trans))
    pelvis0 = np.stack(
        [
            tr + np.asarray(_forward(model, people[0][0], r.astype(np.float32), np.zeros(3, np.float32)).joints)[0]
            for r, tr in zip(people[0][1], people[0][2])
        ]
    )
    T_wc = _cameras(cfg, F, pelvis0, rng)

    # bodies per frame (world)
    markers = model.vertex_set("foot_markers")
    soles = np.concatenate([model.vertex_set("left_sole"), model.vertex_set("right_sole")])
    hands = np.concatenate([model.vertex_set("left_hand"), model.vertex_set("right_hand")])
    verts, joints = [], []
    for betas, rots, trans in people:
        out = _forward(model, betas, rots.astype(np.float32), trans.astype(np.float32))
        verts.append(np.asarray(out.vertices, np.float64))
        joints.append(np.asarray(out.joints, np.float64))

    # depth front end and person masks on the keyframes
    f0 = float(np.hypot(W, H))
    depth, conf, masks, true_depth = [], [], [], []
    for k, t in enumerate(kf):
        d = _scene_depth(T_wc[t], cfg, boxes)
        R, c = T_wc[t][:3, :3], T_wc[t][:3, 3]
        person = np.full((H, W), np.inf)
        for p in range(cfg.people):
            vc = (verts[p][t] - c) @ R
            ok = vc[:, 2] > 0.1
            uv = project(vc[ok], cfg.focal, [W / 2, H / 2], min_depth=None)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    ui = np.round(uv[:, 0]).astype(int) + dx
                    vi = np.round(uv[:, 1]).astype(int) + dy
                    inside = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
                    np.minimum.at(person, (vi[inside], ui[inside]), vc[ok][inside, 2])
        mask = np.isfinite(person) & (person < d)
        d = np.where(mask, person, d)
        true_depth.append(d)
        masks.append(mask)
        drift = 1 + cfg.depth_drift * rng.normal()
        noisy = d * cfg.depth_scale * drift * (1 + cfg.depth_noise * rng.normal(size=d.shape))
        depth.append(np.maximum(noisy, 1e-3))
        conf.append(np.where(mask, 0.0, rng.uniform(0.6, 1.0, size=d.shape)))
    depth, conf, masks, true_depth = (np.stack(x) for x in (depth, conf, masks, true_depth))

    # matcher on the keyframe pairs (both orders), nothing on people
    rays = _rays(cfg)
    pairs, scores, corr_pair, corr_pix, corr_conf = [], [], [], [], []
    s = cfg.stride
    yy0, xx0 = (a.ravel() for a in np.mgrid[s // 2 : H : s, s // 2 : W : s])
    for i in range(K):
        for j in range(K):
            if i == j or abs(i - j) > cfg.pair_window:
                continue
            Ti, Tj = T_wc[kf[i]], T_wc[kf[j]]
            keep = ~masks[i][yy0, xx0]
            yy, xx = yy0[keep], xx0[keep]
            z = true_depth[i][yy, xx]
            X = (rays[yy, xx] * z[:, None]) @ Ti[:3, :3].T + Ti[:3, 3]
            Xj = (X - Tj[:3, 3]) @ Tj[:3, :3]
            with np.errstate(divide="ignore", invalid="ignore"):
                uj = Xj[:, 0] / Xj[:, 2] * cfg.focal + W / 2
                vj = Xj[:, 1] / Xj[:, 2] * cfg.focal + H / 2
            ok = (Xj[:, 2] > 0.1) & (uj >= 0) & (uj <= W - 1) & (vj >= 0) & (vj <= H - 1)
            ui_, vi_ = (
                np.round(np.nan_to_num(uj)).astype(int).clip(0, W - 1),
                np.round(np.nan_to_num(vj)).astype(int).clip(0, H - 1),
            )
            ok &= ~masks[j][vi_, ui_] & (np.abs(true_depth[j][vi_, ui_] - Xj[:, 2]) < 0.03 * Xj[:, 2] + 0.05)
            if ok.sum() < 8:
                continue
            pix = np.stack([np.stack([xx, yy], 1)[ok], np.stack([uj, vj], 1)[ok]], 1).astype(np.float64)
            pix += rng.normal(0, cfg.pix_noise, pix.shape)
            cf = rng.uniform(0.5, 1.0, len(pix))
            n_out = int(cfg.outliers * len(pix))
            if n_out:
                bad = rng.choice(len(pix), n_out, replace=False)
                pix[bad, 1] = rng.uniform([0, 0], [W - 1, H - 1], (n_out, 2))
                cf[bad] = rng.uniform(0.1, 0.6, n_out)
            pix[..., 0] = pix[..., 0].clip(0, W - 1)
            pix[..., 1] = pix[..., 1].clip(0, H - 1)
            corr_pair.append(np.full(len(pix), len(pairs)))
            corr_pix.append(pix)
            corr_conf.append(cf)
            pairs.append((i, j))
            scores.append(float(cf.sum()))

    # human front end + contact on the keyframes
    P = cfg.people
    valid = np.zeros((P, K), bool)
    rot_c = np.tile(np.eye(3), (P, K, 24, 1, 1))
    transl_c = np.zeros((P, K, 3))
    betas_c = np.zeros((P, K, model.num_betas))
    contact = np.zeros((P, K, model.num_vertices), bool)
    gt_contact = np.zeros((P, F, model.num_vertices), bool)
    for p, (betas, rots, trans) in enumerate(people):
        J0 = np.asarray(model.J_template + np.einsum("jcb,b->jc", model.J_shapedirs, betas))[0]
        for t in range(F):
            on_ground = verts[p][t, soles, 1] > -0.02
            step = np.linalg.norm(verts[p][min(t + 1, F - 1), soles] - verts[p][t, soles], axis=-1)
            gt_contact[p, t, soles] = on_ground & (step < 0.01)
        bias = rng.normal(0, cfg.hmr_betas_noise, model.num_betas)
        for k, t in enumerate(kf):
            R, c = T_wc[t][:3, :3], T_wc[t][:3, 3]
            pel = (joints[p][t, 0] - c) @ R
            u = project(pel, cfg.focal, [W / 2, H / 2])
            seen = pel[2] > 0.5 and 0 <= u[0] < W and 0 <= u[1] < H and rng.uniform() >= cfg.hmr_missing
            if not seen:
                continue
            valid[p, k] = True
            rot = rots[t].copy()
            rot[0] = R.T @ rots[t][0]
            rot[1:] = rot[1:] @ Rotation.from_rotvec(rng.normal(0, cfg.hmr_pose_noise, (23, 3))).as_matrix()
            tc = R.T @ (trans[t] + J0 - c) - J0
            tc[2] = (tc[2] + J0[2]) * f0 / cfg.focal * (1 + cfg.hmr_depth_bias) * (
                1 + cfg.hmr_depth_noise * rng.normal()
            ) - J0[2]
            rot_c[p, k], transl_c[p, k] = rot, tc
            betas_c[p, k] = betas + bias + rng.normal(0, cfg.hmr_betas_noise / 2, model.num_betas)
            lab = gt_contact[p, t].copy()
            lab[lab] = rng.uniform(size=lab.sum()) >= cfg.contact_fn
            cand = np.concatenate([soles, hands])
            lab[cand[rng.uniform(size=len(cand)) < cfg.contact_fp]] = True
            contact[p, k] = lab

    window = Window(
        frame_index=kf.astype(np.int64),
        image_size=np.array([W, H]),
        scale_to_original=1.0,
        base_focal=cfg.focal * (1 + 0.02 * rng.normal(size=K)),
        init_focal=1.0,
        principal_point=np.array([W / 2, H / 2], float),
        depth=depth.astype(np.float32),
        conf=conf.astype(np.float32),
        pair_index=np.array(pairs, np.int64).reshape(-1, 2),
        pair_score=np.array(scores),
        corr_pair=np.concatenate(corr_pair),
        corr_pix=np.concatenate(corr_pix).astype(np.float32),
        corr_conf=np.concatenate(corr_conf).astype(np.float32),
        track_ids=np.arange(P, dtype=np.int64),
        track_valid=valid,
        track_rotmats=rot_c.astype(np.float32),
        track_betas=betas_c.astype(np.float32),
        track_transl=transl_c.astype(np.float32),
        track_contact=contact,
        hmr_focal=f0,
    )
    window = dataclasses.replace(window, init_focal=float(np.mean(window.base_focal)))
    validate(window)
    return window, _ground_truth(model, people, verts, joints, T_wc, cfg, markers, boxes)


def _ground_truth(model, people, verts, joints, T_wc, cfg, markers, boxes) -> dict:
    """Per-frame truth in the results.npz layout, world = first camera."""
    T0 = np.linalg.inv(T_wc[0])
    F = len(T_wc)
    to0 = lambda x: x @ T0[:3, :3].T + T0[:3, 3]  # noqa: E731
    P = len(people)
    g_orient = np.stack([T0[:3, :3] @ r[:, 0] for _, r, _ in people]) if P else np.zeros((0, F, 3, 3))
    transl = []
    for betas, rots, trans in people:
        J0 = np.asarray(model.J_template + np.einsum("jcb,b->jc", model.J_shapedirs, betas))[0]
        transl.append(to0(trans + J0) - J0)
    ground = np.stack(
        np.meshgrid(np.linspace(-cfg.room, cfg.room, 60), [0.0], np.linspace(-cfg.room, cfg.room, 60)), -1
    ).reshape(-1, 3)
    return {
        "frame_index": np.arange(F),
        "cam_to_world": (T0 @ T_wc).astype(np.float32),
        "intrinsics": np.array([[cfg.focal, 0, cfg.width / 2], [0, cfg.focal, cfg.height / 2], [0, 0, 1]], np.float32),
        "image_size": np.array([cfg.width, cfg.height]),
        "person_ids": np.arange(P),
        "visible": np.ones((P, F), bool),
        "betas": np.stack([b for b, _, _ in people]).astype(np.float32),
        "global_orient": g_orient.astype(np.float32),
        "body_pose": np.stack([r[:, 1:] for _, r, _ in people]).astype(np.float32),
        "transl": np.stack(transl).astype(np.float32),
        "joints_world": np.stack([to0(j) for j in joints]).astype(np.float32),
        "foot_vertices_world": np.stack([to0(v[:, markers]) for v in verts]).astype(np.float32),
        "points": to0(ground).astype(np.float32),
        "point_colors": np.full((len(ground), 3), 128, np.uint8),
        "body_model": np.array(model.name),
        "depth_scale": np.array(cfg.depth_scale),
        "focal": np.array(cfg.focal),
        "boxes": boxes,
    }


def main(argv=None) -> int:
    """``python -m josh_jax.synthetic.worlds OUT_DIR --seed N [--preset easy|medium|hard]``: write a
    synthetic bundle and its ground truth (``OUT_DIR/ground_truth.npz``)."""
    from pathlib import Path

    from josh_jax import body as jbody
    from josh_jax._cli.atomic import atomic_folder
    from josh_jax._cli.checks import (
        OneLineParser,
        check_output,
        error_line,
        nonnegative_int,
    )
    from josh_jax._cli.interrupt import exit_on_interrupt
    from josh_jax.bundle import save

    def keyframes(text: str) -> int:
        v = nonnegative_int(text)
        if v < 3:
            raise __import__("argparse").ArgumentTypeError(f"needs at least 3 keyframes, got {v}")
        return v

    ap = OneLineParser(prog="python -m josh_jax.synthetic.worlds", description=main.__doc__)
    ap.add_argument(
        "out", type=Path, help="bundle folder to write (refused when it exists and is not empty, unless --overwrite)"
    )
    ap.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the world (>= 0)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="easy")
    ap.add_argument("--keyframes", type=keyframes, default=None, help="number of keyframes (>= 3)")
    ap.add_argument("--body-model", default="open")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = ap.parse_args(argv)
    try:
        check_output(args.out, inputs=[args.body_model], overwrite=args.overwrite)
        model = jbody.load(args.body_model)
        cfg = PRESETS[args.preset]
        if args.keyframes:
            cfg = dataclasses.replace(cfg, num_keyframes=args.keyframes)
        with exit_on_interrupt(f"interrupted: nothing was written to {args.out}"):
            window, gt = make_world(model, args.seed, cfg)
            with atomic_folder(args.out, "synth") as tmp:
                save(
                    tmp / "bundle",
                    [window],
                    {
                        "body_model": args.body_model,
                        "source": f"josh_jax.synthetic.worlds {args.preset} seed {args.seed}",
                    },
                )
                for f in (tmp / "bundle").iterdir():
                    f.rename(tmp / f.name)
                (tmp / "bundle").rmdir()
                np.savez_compressed(tmp / "ground_truth.npz", **{k: np.asarray(v) for k, v in gt.items()})
    except (JoshError, OSError, ValueError) as exc:
        print(error_line(exc, args.out), file=sys.stderr)
        return 2
    print(
        f"wrote {args.out} ({window.num_keyframes} keyframes, {len(window.corr_pair)} correspondences, "
        f"{window.num_tracks} people)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
