"""Synthetic worlds with exact ground truth, and front-end outputs simulated from them.

``make_world(seed, ...)`` returns a bundle :class:`~josh_jax.bundle.Window`
plus a ground-truth dict. The scene is a ground plane and a back wall, seen by
a camera that walks sideways with some shake; one person walks across it on
the ground with alternating stance feet. The simulated front ends have the
errors JOSH must undo:

- depth known only up to an unknown global scale (``depth_scale``) plus noise;
- the human front end assumes the image-diagonal focal, so its camera-frame
  depth is off by f_diag / f_true, plus a per-frame depth error and pose noise;
- correspondences on an 8-pixel grid with pixel noise, in both pair orders.

World frame of the ground truth: the first keyframe's camera (OpenCV axes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .body import BodyModel, forward
from .bundle import Window, validate


@dataclass(frozen=True)
class SynthConfig:
    num_keyframes: int = 11
    opt_interval: int = 5
    width: int = 160
    height: int = 120
    focal: float = 150.0  # true focal, working px
    cam_height: float = 1.5
    cam_speed: float = 0.04  # metres per frame along x
    shake: float = 0.01
    wall_z: float = 9.0
    person_z: float = 4.5
    person_speed: float = 0.02  # metres per frame
    depth_scale: float = 0.35  # the depth model's unknown global scale
    depth_noise: float = 0.0
    pix_noise: float = 0.3
    hmr_depth_noise: float = 0.03  # relative per-frame error of camera-frame depth
    hmr_pose_noise: float = 0.02  # radians
    pair_window: int = 10
    stride: int = 8


def _rays(cfg: SynthConfig) -> np.ndarray:
    u, v = np.meshgrid(np.arange(cfg.width), np.arange(cfg.height))
    return np.stack([(u - cfg.width / 2) / cfg.focal, (v - cfg.height / 2) / cfg.focal, np.ones_like(u, float)], -1)


def _scene_depth(T_wc: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """z-depth of the ground (world y = 0, y down) and back wall (z = wall_z) per pixel."""
    d_cam = _rays(cfg)
    d_w = d_cam @ T_wc[:3, :3].T
    c = T_wc[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d_w[..., 1] > 1e-6, (0.0 - c[1]) / d_w[..., 1], np.inf)
        t_wall = np.where(d_w[..., 2] > 1e-6, (cfg.wall_z - c[2]) / d_w[..., 2], np.inf)
    return np.minimum(t_ground, t_wall)  # ray z-component is 1: t is the z-depth


def _gait(t: float, phase0: float = 0.0) -> np.ndarray:
    aa = np.zeros((24, 3))
    s = np.sin(2 * np.pi * t / 30.0 + phase0)
    aa[1, 0], aa[2, 0] = -0.35 * s, 0.35 * s
    aa[4, 0], aa[5, 0] = 0.3 * max(s, 0) + 0.05, 0.3 * max(-s, 0) + 0.05
    aa[16, 2], aa[17, 2] = -1.2, 1.2
    aa[16, 0], aa[17, 0] = 0.3 * s, -0.3 * s
    return Rotation.from_rotvec(aa).as_matrix()


def make_world(model: BodyModel, seed: int = 0, cfg: SynthConfig = SynthConfig()):
    """-> (Window, ground_truth dict). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    K = cfg.num_keyframes
    frames = np.arange(K) * cfg.opt_interval
    W, H = cfg.width, cfg.height

    # cameras: walk along +x, look slightly down, some shake
    T_wc = []
    pitch = np.deg2rad(8.0)
    for t in frames:
        R = Rotation.from_euler("xy", [-pitch + rng.normal(0, cfg.shake), rng.normal(0, cfg.shake)]).as_matrix()
        c = np.array([cfg.cam_speed * t, -cfg.cam_height + rng.normal(0, cfg.shake), 0.0])
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, c
        T_wc.append(T)
    T_wc = np.stack(T_wc)

    # person: walks along +x at depth person_z, facing +x; body y-up -> world y-down
    betas = rng.normal(0, 0.5, model.num_betas).astype(np.float32)
    R_world_body = Rotation.from_euler("y", -np.pi / 2).as_matrix() @ np.diag([1.0, -1.0, -1.0])
    J0 = np.asarray(model.J_template + np.einsum("jcb,b->jc", model.J_shapedirs, betas))[0]
    rot_w, transl_w, verts_w, joints_w, contact = [], [], [], [], []
    soles = np.concatenate([model.vertex_set("left_sole"), model.vertex_set("right_sole")])
    x_start = cfg.cam_speed * frames[0] - 0.6
    for t in frames:
        rot = _gait(float(t))
        rot[0] = R_world_body
        out = forward(model, betas, rot.astype(np.float32), np.zeros(3, np.float32))
        v = np.asarray(out.vertices, np.float64)
        tr = np.array([x_start + cfg.person_speed * t, -v[:, 1].max(), cfg.person_z])  # lowest point on y = 0
        v = v + tr
        rot_w.append(rot)
        transl_w.append(tr)
        verts_w.append(v)
        joints_w.append(np.asarray(out.joints, np.float64) + tr)
        lab = np.zeros(model.num_vertices, bool)
        lab[soles] = v[soles, 1] > -0.02  # within 2 cm of the ground
        contact.append(lab)
    verts_w, joints_w = np.stack(verts_w), np.stack(joints_w)

    # depth front end: scene depth with the person rendered in, unknown scale
    f0 = float(np.hypot(W, H))
    depth, conf, masks = [], [], []
    for k in range(K):
        d = _scene_depth(T_wc[k], cfg)
        R, c = T_wc[k][:3, :3], T_wc[k][:3, 3]
        vc = (verts_w[k] - c) @ R
        uv = vc[:, :2] / vc[:, 2:] * cfg.focal + [W / 2, H / 2]
        person = np.full((H, W), np.inf)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                ui = np.round(uv[:, 0]).astype(int) + dx
                vi = np.round(uv[:, 1]).astype(int) + dy
                ok = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H) & (vc[:, 2] > 0)
                np.minimum.at(person, (vi[ok], ui[ok]), vc[ok, 2])
        mask = np.isfinite(person)
        d = np.where(mask, np.minimum(d, person), d)
        masks.append(mask)
        depth.append(d * cfg.depth_scale * (1 + cfg.depth_noise * rng.normal(size=d.shape)))
        conf.append(np.where(mask, 0.0, 1.0))
    depth, conf, masks = np.stack(depth), np.stack(conf), np.stack(masks)

    # matcher: grid pixels of image i, true 3D point, seen in j (in view, not occluded, not person)
    rays = _rays(cfg)
    pairs, scores, corr_pair, corr_pix, corr_conf = [], [], [], [], []
    s = cfg.stride
    for i in range(K):
        for j in range(K):
            if i == j or abs(i - j) > cfg.pair_window:
                continue
            yy, xx = np.mgrid[s // 2:H:s, s // 2:W:s]
            yy, xx = yy.ravel(), xx.ravel()
            keep = ~masks[i][yy, xx]
            yy, xx = yy[keep], xx[keep]
            z = _scene_depth(T_wc[i], cfg)[yy, xx]
            X = (rays[yy, xx] * z[:, None]) @ T_wc[i][:3, :3].T + T_wc[i][:3, 3]
            Xj = (X - T_wc[j][:3, 3]) @ T_wc[j][:3, :3]
            uj = Xj[:, 0] / Xj[:, 2] * cfg.focal + W / 2
            vj = Xj[:, 1] / Xj[:, 2] * cfg.focal + H / 2
            ok = (Xj[:, 2] > 0) & (uj >= 0) & (uj <= W - 1) & (vj >= 0) & (vj <= H - 1)
            ui_, vi_ = np.round(uj).astype(int).clip(0, W - 1), np.round(vj).astype(int).clip(0, H - 1)
            ok &= ~masks[j][vi_, ui_]
            if ok.sum() < 8:
                continue
            pix = np.stack([np.stack([xx, yy], 1)[ok], np.stack([uj, vj], 1)[ok]], 1).astype(np.float64)
            pix += rng.normal(0, cfg.pix_noise, pix.shape)
            pix[..., 0] = pix[..., 0].clip(0, W - 1)
            pix[..., 1] = pix[..., 1].clip(0, H - 1)
            corr_pair.append(np.full(len(pix), len(pairs)))
            corr_pix.append(pix)
            corr_conf.append(rng.uniform(0.5, 1.0, len(pix)))
            pairs.append((i, j))
            scores.append(float(ok.sum()))

    # human front end: camera-frame bodies under the diagonal-focal assumption
    rot_c, transl_c = [], []
    for k in range(K):
        R, c = T_wc[k][:3, :3], T_wc[k][:3, 3]
        rot = rot_w[k].copy()
        rot[0] = R.T @ rot_w[k][0]
        noise = Rotation.from_rotvec(rng.normal(0, cfg.hmr_pose_noise, (23, 3))).as_matrix()
        rot[1:] = rot[1:] @ noise
        tc = R.T @ (transl_w[k] + J0 - c) - J0
        tc[2] *= f0 / cfg.focal * (1 + cfg.hmr_depth_noise * rng.normal())
        rot_c.append(rot)
        transl_c.append(tc)

    window = Window(
        frame_index=frames.astype(np.int64), image_size=np.array([W, H]), scale_to_original=1.0,
        base_focal=cfg.focal * (1 + 0.02 * rng.normal(size=K)), init_focal=0.0,
        principal_point=np.array([W / 2, H / 2], float), depth=depth.astype(np.float32),
        conf=conf.astype(np.float32), pair_index=np.array(pairs, np.int64), pair_score=np.array(scores),
        corr_pair=np.concatenate(corr_pair), corr_pix=np.concatenate(corr_pix).astype(np.float32),
        corr_conf=np.concatenate(corr_conf).astype(np.float32), track_ids=np.array([0]),
        track_valid=np.ones((1, K), bool), track_rotmats=np.stack(rot_c)[None].astype(np.float32),
        track_betas=np.tile(betas + rng.normal(0, 0.1, betas.shape), (1, K, 1)).astype(np.float32),
        track_transl=np.stack(transl_c)[None].astype(np.float32), track_contact=np.stack(contact)[None],
        hmr_focal=f0,
    )
    window = Window(**{**window.__dict__, "init_focal": float(np.mean(window.base_focal))})
    validate(window)

    T0_inv = np.linalg.inv(T_wc[0])  # ground truth in the first keyframe's camera frame
    gt = {
        "frame_index": frames, "cam_to_world": T0_inv @ T_wc, "focal": cfg.focal,
        "joints_world": (joints_w @ T0_inv[:3, :3].T + T0_inv[:3, 3])[None],
        "vertices_world_soles": (verts_w[:, soles] @ T0_inv[:3, :3].T + T0_inv[:3, 3])[None],
        "betas": betas[None], "depth_scale": cfg.depth_scale,
    }
    return window, gt


def main(argv=None) -> int:
    """``python -m josh_jax.synth OUT_DIR --seed N``: write a synthetic bundle and its ground truth."""
    import argparse
    from pathlib import Path

    from . import body as jbody
    from .bundle import save

    ap = argparse.ArgumentParser(prog="python -m josh_jax.synth", description=main.__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keyframes", type=int, default=SynthConfig.num_keyframes)
    ap.add_argument("--body-model", default="open")
    args = ap.parse_args(argv)
    model = jbody.load(args.body_model)
    window, gt = make_world(model, args.seed, SynthConfig(num_keyframes=args.keyframes))
    save(args.out, [window], {"body_model": args.body_model if args.body_model == "open" else str(args.body_model),
                              "source": f"josh_jax.synth seed {args.seed}"})
    np.savez_compressed(args.out / "ground_truth.npz", **{k: np.asarray(v) for k, v in gt.items()})
    print(f"wrote {args.out} ({window.num_keyframes} keyframes, {len(window.corr_pair)} correspondences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
