"""A plain PyTorch port of the JOSH objective, written from SPEC for the tests.

Deliberately structured differently from josh_jax.losses: per-keyframe Python
loops for the camera chain and the bodies, full-mesh skinning through smplx's
``lbs`` (then the vertices the entries need are picked by their model ids),
explicit loops over tracks. Works in float64.
"""
import math

import numpy as np
import torch
from smplx.lbs import lbs


def rho(a, b, gamma):
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    d = (a - b).norm(dim=-1) if a.dim() and a.shape[-1] > 1 else (a - b).abs().squeeze(-1)
    return (d + c) ** gamma - c**gamma


def quat_wxyz_to_R(q):
    q = q / q.norm()
    w, x, y, z = q
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
    ])


def t(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def geometry(cam, scene):
    Kv = int(scene.kf_valid.sum())
    W, H = float(scene.image_size[0]), float(scene.image_size[1])
    diag = math.hypot(W, H)
    f = cam["log_focal"].exp().clamp(0.25 * diag, 10 * diag)
    pp = t(scene.pp)
    sizes = cam["log_size"].exp()
    g = 1.0 / sizes[:Kv].min() if bool(scene.enforce_scale) else 1.0
    z = sizes * t(scene.median_depth) * f / t(scene.base_focal)
    T = [None] * len(sizes)
    for j in scene.tree_order:
        rel = torch.eye(4, dtype=torch.float64)
        rel = torch.cat([torch.cat([quat_wxyz_to_R(cam["quat"][j]), cam["trans"][j][:, None]], 1), rel[3:]], 0)
        pj = int(scene.tree_parent[j])
        T[j] = rel if pj == j else T[pj] @ rel
    out = []
    for i in range(len(sizes)):
        off = z[i] * torch.cat([t(scene.image_size) / f * (0.5 - pp), torch.ones(1, dtype=torch.float64)])
        trans = g * (T[i][:3, 3] - T[i][:3, :3] @ off)
        out.append(torch.cat([torch.cat([T[i][:3, :3], trans[:, None]], 1), T[i][3:]], 0))
    c2w = torch.stack(out)
    depth = g * (z[:, None] + (cam["anchor_depth"] - 1) * (t(scene.median_depth) * sizes)[:, None])
    return f, pp * t(scene.image_size), c2w, depth


def corr_points(f, c, c2w, depth, scene):
    pts = []
    for k in range(2):
        img = torch.as_tensor(scene.corr_img[:, k]).long()
        a = torch.as_tensor(scene.corr_anchor[:, k]).long()
        d = depth[img, a] * (1 + (t(scene.corr_ratio[:, k]) - 1) * t(scene.base_focal)[img] / f)
        pix = t(scene.corr_pix[:, k])
        Xc = torch.stack([(pix[:, 0] - c[0]) / f * d, (pix[:, 1] - c[1]) / f * d, d], 1)
        pts.append(torch.einsum("nab,nb->na", c2w[img, :3, :3], Xc) + c2w[img, :3, 3])
    return pts


def scene_terms(cam, scene, g3=1.1, g2=0.4):
    f, c, c2w, depth = geometry(cam, scene)
    X0, X1 = corr_points(f, c, c2w, depth, scene)
    w = t(scene.corr_w)
    l3 = (w * rho(X0, X1, g3)).sum() / w.sum()

    def proj(img, X):
        T = c2w[torch.as_tensor(img).long()]
        Xc = torch.einsum("nba,nb->na", T[:, :3, :3], X - T[:, :3, 3])
        uv = f * Xc[:, :2] / Xc[:, 2:].clamp(min=1e-3) + c
        return uv.clamp(-1000, 2000)

    r = rho(t(scene.corr_pix[:, 0]), proj(scene.corr_img[:, 0], X1), g2) * w
    r = r + rho(t(scene.corr_pix[:, 1]), proj(scene.corr_img[:, 1], X0), g2) * w
    l2 = r.sum() / (2 * w.sum())
    return l3, l2, (f, c2w, depth)


def human_terms(hp, human, model, init_focal, geo, gamma=1.1):
    f, c2w, depth = geo
    P, K = human.valid.shape
    v_template = t(model.v_template)[None]
    shapedirs = t(model.shapedirs)
    posedirs = t(model.posedirs).reshape(model.num_vertices * 3, -1).T
    if posedirs.shape[0] == 0:
        posedirs = torch.zeros(207, model.num_vertices * 3, dtype=torch.float64)
    J_reg = t(model.J_regressor)
    parents = torch.as_tensor(model.parents)
    out = {"scale": [], "prior": [], "static": [], "smooth": []}
    ids = torch.as_tensor(human.vert_ids).long()
    for p in range(P):
        n = int(human.n_frames[p])
        if n == 0:
            for k in out:
                out[k].append(torch.zeros((), dtype=torch.float64))
            continue
        verts, joints = [], []
        for k in range(K):
            rot = torch.cat([quat_wxyz_to_R(hp["quat"][p, k])[None], hp["body"][p, k]], 0)
            B = hp["betas"].shape[1]
            v, j = lbs(hp["betas"][p][None], rot[None], v_template, shapedirs[..., :B], posedirs, J_reg, parents,
                       t(model.weights), pose2rot=False)
            verts.append(v[0] + hp["transl"][p, k])
            joints.append(j[0] + hp["transl"][p, k])
        verts, joints = torch.stack(verts), torch.stack(joints)  # camera frame
        vw = torch.einsum("kab,knb->kna", c2w[:, :3, :3], verts) + c2w[:, None, :3, 3]
        jw = torch.einsum("kab,knb->kna", c2w[:, :3, :3], joints) + c2w[:, None, :3, 3]
        # contact scale
        num = den = 0.0
        for e in range(len(human.scale_w)):
            if human.scale_track[e] != p or human.scale_w[e] == 0:
                continue
            k, a, vid = human.scale_kf[e], human.scale_anchor[e], ids[human.scale_vert[e]]
            r = rho((depth[k, a] * float(human.scale_ratio[e]))[None], (verts[k, vid, 2] * f / float(init_focal))[None], gamma)
            num = num + float(human.scale_w[e]) * r
            den += float(human.scale_w[e])
        out["scale"].append(num / den if den else torch.zeros((), dtype=torch.float64))
        # static
        rs = [rho(vw[human.static_kf[e], ids[human.static_vert[e]]], vw[human.static_kf_prev[e], ids[human.static_vert[e]]], gamma)
              for e in range(len(human.static_w)) if human.static_track[e] == p and human.static_w[e] > 0]
        out["static"].append(torch.stack(rs).mean() if rs else torch.zeros((), dtype=torch.float64))
        # prior
        valid = torch.as_tensor(human.valid[p])
        pr = 0.0
        for name, init in (("quat", human.init_quat), ("transl", human.init_transl), ("body", human.init_body)):
            x = hp[name][p][valid].reshape(n, -1)
            pr = pr + rho(x, t(init[p])[valid].reshape(n, -1), gamma).mean()
        pr = pr + rho(hp["betas"][p], t(human.init_betas[p]), gamma)
        out["prior"].append(pr)
        # smooth over consecutive keyframes of the track
        kfs = torch.where(valid)[0]
        if len(kfs) > 2:
            k0, k1, k2 = kfs[:-2], kfs[1:-1], kfs[2:]
            v1 = (jw[k1] - jw[k0]) / (k1 - k0).double()[:, None, None]
            v2 = (jw[k2] - jw[k1]) / (k2 - k1).double()[:, None, None]
            out["smooth"].append(rho(v2, v1, gamma).mean())
        else:
            out["smooth"].append(torch.zeros((), dtype=torch.float64))
    n = t(human.n_frames)
    return {k: (n * torch.stack([torch.as_tensor(x, dtype=torch.float64).reshape(()) for x in v])).sum() / n.sum()
            for k, v in out.items()}


def params_to_torch(params):
    cam = {k: t(v).requires_grad_(True) for k, v in params.cam._asdict().items()}
    hp = {k: t(v).requires_grad_(True) for k, v in params.human._asdict().items()}
    return cam, hp


def total(cam, hp, problem, model, weights, stage):
    l3, l2, geo = scene_terms(cam, problem.scene, weights.gamma_scene_3d, weights.gamma_scene_2d)
    h = human_terms(hp, problem.human, model, problem.init_focal, geo, weights.gamma_human)
    s = l3 if stage == 1 else l2
    tot = s + weights.scale * h["scale"] + weights.prior * h["prior"] + weights.static * h["static"] + weights.smooth * h["smooth"]
    return tot, {"scene": s, **h}
