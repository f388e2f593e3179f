"""The "vectorized" PyTorch flavour: the best plain PyTorch of the same objective.

The same data layout and algebra as josh_jax: correspondences in dense
(pair-row, slot) arrays, one relative pose per pair broadcast over its
matches, skinning of only the vertices the losses read (the contact-vertex
table), segment sums with ``index_add``, per-track terms batched; no Python
loop over entries, pairs or tracks in the step (the camera tree and the
24-joint chain are short loops).
Same objective and schedule as josh_jax (focal updated once per keyframe per
step, as the reference on CPU). Runs on CPU or CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def to_torch(problem, device="cpu", dtype=torch.float32) -> dict:
    """The problem's arrays as tensors (indices as int64)."""
    out = {}
    b = problem.human.body  # the body-model view on the contact vertices: its tables under the names below
    B = np.asarray(problem.human.init_betas).shape[-1]
    tables = dict(
        J_template=b.J_template,
        J_shapedirs=np.asarray(b.J_shapedirs)[..., :B],
        vert_template=b.v_template,
        vert_shapedirs=np.asarray(b.shapedirs)[..., :B],
        vert_posedirs=b.posedirs,
        vert_weights=b.weights,
    )
    for group in (problem.scene._asdict(), {k: v for k, v in problem.human._asdict().items() if k != "body"}, tables):
        for k, v in group.items():
            a = np.asarray(v)
            if a.dtype.kind in "iu":
                out[k] = torch.as_tensor(a.astype(np.int64), device=device)
            elif a.dtype.kind == "b":
                out[k] = torch.as_tensor(a, device=device)
            else:
                out[k] = torch.as_tensor(a.astype(np.float32), device=device, dtype=dtype)
    out["init_focal"] = torch.as_tensor(float(problem.init_focal), device=device, dtype=dtype)
    out["parents"] = tuple(problem.parents)
    out["body_depth"] = getattr(problem, "body_depth", "reference")
    out["order"] = [int(i) for i in np.asarray(problem.scene.tree_order)]
    out["parent_list"] = [int(i) for i in np.asarray(problem.scene.tree_parent)]
    return out


def rho(a, b, gamma):
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    d = a - b
    n = torch.sqrt((d * d).sum(-1) + 1e-30)
    return (n + c) ** gamma - c**gamma


def rho_sq(sq, gamma):
    """rho_gamma from a squared distance."""
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    return (torch.sqrt(sq + 1e-30) + c) ** gamma - c**gamma


def quat_to_R(q):
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(q.shape[:-1] + (3, 3))


def wmean(v, w):
    s = w.sum()
    return (v * w).sum() / s if float(s) > 0 else v.sum() * 0


def seg_mean(v, w, seg, n):
    num = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, seg, v * w)
    den = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, seg, w)
    return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num))


def geometry(p, D):
    W, H = D["image_size"][0], D["image_size"][1]
    diag = torch.sqrt(W * W + H * H)
    f = torch.minimum(torch.maximum(p["log_focal"].exp(), 0.25 * diag), 10 * diag)
    pp = D["pp"] * D["image_size"]
    sizes = p["log_size"].exp()
    g = torch.where(D["enforce_scale"], 1.0 / sizes[D["kf_valid"]].min(), torch.ones_like(f))
    z = sizes * D["median_depth"] * f / D["base_focal"]
    R = quat_to_R(p["quat"])
    T_R = [None] * len(z)
    T_t = [None] * len(z)
    for j in D["order"]:
        pj = D["parent_list"][j]
        if pj == j:
            T_R[j], T_t[j] = R[j], p["trans"][j]
        else:
            T_R[j], T_t[j] = T_R[pj] @ R[j], T_R[pj] @ p["trans"][j] + T_t[pj]
    Rw, tw = torch.stack(T_R), torch.stack(T_t)
    off = (
        torch.cat([(D["image_size"] / f * (0.5 - D["pp"])).expand(len(z), 2), torch.ones_like(z)[:, None]], 1)
        * z[:, None]
    )
    tw = g * (tw - (Rw @ off[..., None])[..., 0])
    depth = g * (z[:, None] + (p["anchor_depth"] - 1) * (D["median_depth"] * sizes)[:, None])
    return f, pp, Rw, tw, depth


def camera_points(f, pp, depth, D):
    """(3, 2, Pr, M) camera-frame points of each match in its two images."""
    img = D["pair_img"].T  # (2, Pr)
    A = depth.shape[1]
    d = depth.reshape(-1)[img[:, :, None] * A + D["corr_anchor"]]
    depth_ = d * (1 + (D["corr_ratio"] - 1) * D["base_focal"][img][:, :, None] / f)
    x = (D["corr_pix"][:, 0] - pp[0]) / f * depth_
    y = (D["corr_pix"][:, 1] - pp[1]) / f * depth_
    return torch.stack([x, y, depth_])


def partner_points(Rw, tw, x, D):
    """Partner points moved into each image's camera frame, (3, 2, Pr, M)."""
    img = D["pair_img"]
    Ri, Rj, ti, tj = Rw[img[:, 0]], Rw[img[:, 1]], tw[img[:, 0]], tw[img[:, 1]]
    R_ij = Ri.transpose(-1, -2) @ Rj
    t_ij = (Ri.transpose(-1, -2) @ (tj - ti)[..., None])[..., 0]
    R_ji = R_ij.transpose(-1, -2)
    t_ji = -(R_ji @ t_ij[..., None])[..., 0]

    def move(R, t, p):
        R = R[..., None]
        return torch.stack(
            [R[:, a, 0] * p[0] + R[:, a, 1] * p[1] + R[:, a, 2] * p[2] + t[:, a, None] for a in range(3)]
        )

    return torch.stack([move(R_ij, t_ij, x[:, 1]), move(R_ji, t_ji, x[:, 0])], 1)


def pose_bodies(h, D, f=None):
    """Joints and contact vertices in the camera frame; with ``f`` and ``D["body_depth"] == "focal"``
    the translation's z follows the focal (josh_jax's default), else the variable as is."""
    transl = h["transl"]
    if f is not None and D.get("body_depth") == "focal":
        transl = torch.cat([transl[..., :2], transl[..., 2:] * (f / D["init_focal"])], -1)
    R_root = quat_to_R(h["quat"])[:, :, None]
    rot = torch.cat([R_root, h["body"]], 2)  # (P, K, 24, 3, 3)
    J = D["J_template"] + torch.einsum("jcb,pb->pjc", D["J_shapedirs"], h["betas"])[:, None]
    J = J.expand(rot.shape[0], rot.shape[1], 24, 3)
    Rs, ts = [None] * 24, [None] * 24
    for i, par in enumerate(D["parents"]):
        if par < 0:
            Rs[i], ts[i] = rot[:, :, i], J[:, :, i]
        else:
            Rs[i] = Rs[par] @ rot[:, :, i]
            ts[i] = ts[par] + (Rs[par] @ (J[:, :, i] - J[:, :, par])[..., None])[..., 0]
    Rj, tj = torch.stack(Rs, 2), torch.stack(ts, 2)
    joints = tj + transl[:, :, None]
    v = D["vert_template"] + torch.einsum("ucb,pb->puc", D["vert_shapedirs"], h["betas"])[:, None]
    if D["vert_posedirs"].shape[-1]:
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        feat = (rot[:, :, 1:] - eye).reshape(rot.shape[0], rot.shape[1], -1)
        v = v + torch.einsum("ucq,pkq->pkuc", D["vert_posedirs"], feat)
    A_t = tj - (Rj @ J[..., None])[..., 0]
    AR = torch.einsum("uj,pkjab->pkuab", D["vert_weights"], Rj)
    At = torch.einsum("uj,pkja->pkua", D["vert_weights"], A_t)
    verts = (AR @ v[..., None])[..., 0] + At + transl[:, :, None]
    return joints, verts


def objective(p, h, D, weights, stage):
    """(total, dict of terms) of one stage."""
    f, pp, Rw, tw, depth = geometry(p, D)
    x = camera_points(f, pp, depth, D)
    y = partner_points(Rw, tw, x, D)
    w = D["corr_w"]
    if stage == 1:
        d = x[:, 0] - y[:, 0]
        scene = wmean(rho_sq((d * d).sum(0), weights.gamma_scene_3d), w)
    else:
        z = y[2].clamp(min=1e-3)
        u = (f * y[0] / z + pp[0]).clamp(-1000, 2000)
        v = (f * y[1] / z + pp[1]).clamp(-1000, 2000)
        du, dv = D["corr_pix"][:, 0] - u, D["corr_pix"][:, 1] - v
        scene = wmean(rho_sq(du * du + dv * dv, weights.gamma_scene_2d), w.expand(2, *w.shape))
    joints, verts = pose_bodies(h, D, f)
    P = joints.shape[0]
    g = weights.gamma_human
    # contact scale
    sd = depth[D["scale_kf"], D["scale_anchor"]] * D["scale_ratio"]
    vz = verts[D["scale_track"], D["scale_kf"], D["scale_vert"], 2]
    depth_factor = f / D["init_focal"] if D.get("body_depth") != "focal" else 1.0
    scale = seg_mean(rho(sd[:, None], (vz * depth_factor)[:, None], g), D["scale_w"], D["scale_track"], P)
    if "scale_track_w" in D:  # josh_jax's per-track weights (ProblemConfig.contact_consensus)
        scale = scale * D["scale_track_w"]
    # static
    vw = torch.einsum("kab,pknb->pkna", Rw, verts) + tw[None, :, None]
    a = vw[D["static_track"], D["static_kf"], D["static_vert"]]
    b = vw[D["static_track"], D["static_kf_prev"], D["static_vert"]]
    static = seg_mean(rho(a, b, g), D["static_w"], D["static_track"], P)
    # prior
    valid = D["valid"].to(joints.dtype)
    Kn = valid.shape[1]
    tr = torch.arange(P, device=joints.device)[:, None].expand(P, Kn).reshape(-1)
    prior = 0
    for name in ("quat", "transl", "body"):
        x = h[name].reshape(P * Kn, -1)
        x0 = D["init_" + name].reshape(P * Kn, -1)
        prior = prior + seg_mean(rho(x, x0, g), valid.reshape(-1), tr, P)
    prior = prior + rho(h["betas"], D["init_betas"], g) * (D["n_frames"] > 0)
    # smooth
    jw = torch.einsum("kab,pkjb->pkja", Rw, joints) + tw[None, :, None]
    sp, kf = D["smooth_track"], D["smooth_kf"]
    g1 = (kf[:, 1] - kf[:, 0]).clamp(min=1).to(jw.dtype)[:, None, None]
    g2 = (kf[:, 2] - kf[:, 1]).clamp(min=1).to(jw.dtype)[:, None, None]
    v1 = (jw[sp, kf[:, 1]] - jw[sp, kf[:, 0]]) / g1
    v2 = (jw[sp, kf[:, 2]] - jw[sp, kf[:, 1]]) / g2
    smooth = seg_mean(rho(v2, v1, g).mean(-1), D["smooth_w"], sp, P) * (D["n_frames"] > 2)
    n = D["n_frames"]
    comb = lambda x: (n * x).sum() / n.sum().clamp(min=1)  # noqa: E731
    terms = {"scene": scene, "scale": comb(scale), "prior": comb(prior), "static": comb(static), "smooth": comb(smooth)}
    total = (
        scene
        + weights.scale * terms["scale"]
        + weights.prior * terms["prior"]
        + weights.static * terms["static"]
        + weights.smooth * terms["smooth"]
    )
    return total, terms


def init_tensors(problem, device="cpu"):
    from josh_jax.losses import init_params

    p0 = init_params(problem)
    cam = {k: torch.nn.Parameter(torch.as_tensor(np.asarray(v), device=device)) for k, v in p0.cam._asdict().items()}
    hum = {k: torch.nn.Parameter(torch.as_tensor(np.asarray(v), device=device)) for k, v in p0.human._asdict().items()}
    return cam, hum


def solve(
    problem, weights, iters=(500, 200), lrs=(0.07, 0.014), device="cpu", optimize_focal=True, sync=None, callback=None
):
    """Two-stage Adam (betas 0.9/0.9, cosine lr), focal updated once per keyframe per step."""
    D = to_torch(problem, device)
    cam, hum = init_tensors(problem, device)
    K = int(problem.scene.kf_valid.sum())
    history = []
    loss = None
    for stage, (n, lr_base) in enumerate(zip(iters, lrs), start=1):
        main = [cam["quat"], cam["trans"], cam["log_size"]] + list(hum.values())
        groups = [{"params": main}]
        if stage == 2 and optimize_focal:
            groups.append({"params": [cam["log_focal"]] * K})
        opt = torch.optim.Adam(groups, lr=1, betas=(0.9, 0.9), foreach=False)
        for it in range(n):
            lr = lr_base * (1 + math.cos(math.pi * it / n)) / 2
            for gr in opt.param_groups:
                gr["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss, _ = objective(cam, hum, D, weights, stage)
            loss.backward()
            opt.step()
            with torch.no_grad():
                cam["quat"].div_(cam["quat"].norm(dim=-1, keepdim=True))
            history.append(loss.detach())
            if callback is not None:
                callback(stage, it)
    if sync is not None:
        sync()
    history = [float(x) for x in history]
    return history[-1], history
