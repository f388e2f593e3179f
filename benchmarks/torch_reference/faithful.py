"""The "faithful" PyTorch flavour of the JOSH objective and schedule.

Written for josh_jax's tests and benchmarks from SPEC (not copied from the
reference), but structured like the public reference: per-keyframe Python
lists of parameters, a Python loop for the camera chain, one full-mesh
``smplx`` SMPL forward per track, Python loops over contact entries and
tracks, per-iteration Python control flow, and ``torch.optim.Adam`` with the
shared focal listed once per keyframe. Deliberately independent of
josh_jax.losses (no shared code). Works in float32 or float64.
"""

import math
import os
import pickle
import tempfile

import numpy as np
import smplx
import torch

DTYPE = {"value": torch.float64}  # set_dtype() switches the flavour to float32 for timing


def set_dtype(dtype) -> None:
    DTYPE["value"] = dtype


def rho(a, b, gamma):
    c = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    d = (a - b).norm(dim=-1) if a.dim() and a.shape[-1] > 1 else (a - b).abs().squeeze(-1)
    return (d + c) ** gamma - c**gamma


def quat_wxyz_to_R(q):
    q = q / q.norm()
    w, x, y, z = q
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
        ]
    )


def t(x):
    return torch.as_tensor(np.array(x), dtype=DTYPE["value"])


_SMPL_CACHE: dict = {}


def smpl_module(model):
    """An ``smplx.SMPL`` module built from a josh_jax BodyModel (via a plain-numpy pickle)."""
    key = (id(model), DTYPE["value"])
    if key not in _SMPL_CACHE:
        V = model.num_vertices
        posedirs = np.asarray(model.posedirs)
        if posedirs.shape[-1] == 0:
            posedirs = np.zeros((V, 3, 207))
        data = {
            "v_template": np.asarray(model.v_template, np.float64),
            "shapedirs": np.asarray(model.shapedirs, np.float64),
            "posedirs": posedirs.astype(np.float64),
            "J_regressor": np.asarray(model.J_regressor, np.float64),
            "weights": np.asarray(model.weights, np.float64),
            "f": np.asarray(model.faces).astype(np.int64),
            "kintree_table": np.array([[2**32 - 1 if p < 0 else p for p in model.parents], list(range(24))]),
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "SMPL_NEUTRAL.pkl")
            with open(path, "wb") as fh:
                pickle.dump(data, fh)
            _SMPL_CACHE[key] = smplx.SMPL(model_path=path, num_betas=model.num_betas, dtype=DTYPE["value"])
    return _SMPL_CACHE[key]


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
        rel = torch.eye(4, dtype=DTYPE["value"])
        rel = torch.cat([torch.cat([quat_wxyz_to_R(cam["quat"][j]), cam["trans"][j][:, None]], 1), rel[3:]], 0)
        pj = int(scene.tree_parent[j])
        T[j] = rel if pj == j else T[pj] @ rel
    out = []
    for i in range(len(sizes)):
        off = z[i] * torch.cat([t(scene.image_size) / f * (0.5 - pp), torch.ones(1, dtype=DTYPE["value"])])
        trans = g * (T[i][:3, 3] - T[i][:3, :3] @ off)
        out.append(torch.cat([torch.cat([T[i][:3, :3], trans[:, None]], 1), T[i][3:]], 0))
    c2w = torch.stack(out)
    depth = g * (z[:, None] + (cam["anchor_depth"] - 1) * (t(scene.median_depth) * sizes)[:, None])
    return f, pp * t(scene.image_size), c2w, depth


def flat(scene):
    """The problem's (pair, slot) correspondence layout as flat per-match arrays."""
    Pr, M = np.shape(scene.corr_w)
    img = np.repeat(np.asarray(scene.pair_img)[:, None, :], M, 1).reshape(-1, 2)
    return dict(
        img=img,
        pix=np.asarray(scene.corr_pix).transpose(2, 3, 0, 1).reshape(-1, 2, 2),
        anchor=np.asarray(scene.corr_anchor).transpose(1, 2, 0).reshape(-1, 2),
        ratio=np.asarray(scene.corr_ratio).transpose(1, 2, 0).reshape(-1, 2),
        w=np.asarray(scene.corr_w).reshape(-1),
    )


def corr_points(f, c, c2w, depth, scene):
    pts = []
    fl = flat(scene)
    for k in range(2):
        img = torch.as_tensor(fl["img"][:, k]).long()
        a = torch.as_tensor(fl["anchor"][:, k]).long()
        d = depth[img, a] * (1 + (t(fl["ratio"][:, k]) - 1) * t(scene.base_focal)[img] / f)
        pix = t(fl["pix"][:, k])
        Xc = torch.stack([(pix[:, 0] - c[0]) / f * d, (pix[:, 1] - c[1]) / f * d, d], 1)
        pts.append(torch.einsum("nab,nb->na", c2w[img, :3, :3], Xc) + c2w[img, :3, 3])
    return pts


def scene_terms(cam, scene, g3=1.1, g2=0.4, stage=None):
    f, c, c2w, depth = geometry(cam, scene)
    X0, X1 = corr_points(f, c, c2w, depth, scene)
    fl = flat(scene)
    w = t(fl["w"])
    l3 = (w * rho(X0, X1, g3)).sum() / w.sum() if stage in (None, 1) else None
    if stage == 1:
        return l3, None, (f, c2w, depth)

    def proj(img, X):
        T = c2w[torch.as_tensor(img).long()]
        Xc = torch.einsum("nba,nb->na", T[:, :3, :3], X - T[:, :3, 3])
        uv = f * Xc[:, :2] / Xc[:, 2:].clamp(min=1e-3) + c
        return uv.clamp(-1000, 2000)

    r = rho(t(fl["pix"][:, 0]), proj(fl["img"][:, 0], X1), g2) * w
    r = r + rho(t(fl["pix"][:, 1]), proj(fl["img"][:, 1], X0), g2) * w
    l2 = r.sum() / (2 * w.sum())
    return l3, l2, (f, c2w, depth)


def body_transl(transl, f, init_focal, body_depth):
    """The bodies' camera-frame translation: z follows the focal (josh_jax's "focal") or the
    variable as is (the reference)."""
    if body_depth == "reference":
        return transl
    return torch.cat([transl[..., :2], transl[..., 2:] * (f / float(init_focal))], -1)


def human_terms(hp, human, model, init_focal, geo, gamma=1.1, body_depth="reference"):
    f, c2w, depth = geo
    # the contact-scale term rescales depths to the current focal only where the bodies do not follow it
    depth_factor = f / float(init_focal) if body_depth == "reference" else 1.0
    P, K = human.valid.shape
    smpl = smpl_module(model)
    out = {"scale": [], "prior": [], "static": [], "smooth": []}
    ids = torch.as_tensor(human.vert_ids).long()
    for p in range(P):
        n = int(human.n_frames[p])
        if n == 0:
            for k in out:
                out[k].append(torch.zeros((), dtype=DTYPE["value"]))
            continue
        # one SMPL forward per track, batched over its keyframe slots (as the reference)
        R_root = torch.stack([quat_wxyz_to_R(hp["quat"][p, k]) for k in range(K)])
        B = hp["betas"].shape[1]
        betas = torch.cat([hp["betas"][p], torch.zeros(smpl.num_betas - B, dtype=DTYPE["value"])])
        o = smpl(
            betas=betas[None].expand(K, -1),
            global_orient=R_root[:, None],
            body_pose=hp["body"][p],
            transl=body_transl(hp["transl"][p], f, init_focal, body_depth),
            pose2rot=False,
        )
        verts, joints = o.vertices, o.joints[:, :24]
        vw = torch.einsum("kab,knb->kna", c2w[:, :3, :3], verts) + c2w[:, None, :3, 3]
        jw = torch.einsum("kab,knb->kna", c2w[:, :3, :3], joints) + c2w[:, None, :3, 3]
        # contact scale
        num = den = 0.0
        for e in range(len(human.scale_w)):
            if human.scale_track[e] != p or human.scale_w[e] == 0:
                continue
            k, a, vid = human.scale_kf[e], human.scale_anchor[e], ids[human.scale_vert[e]]
            r = rho(
                (depth[k, a] * float(human.scale_ratio[e]))[None],
                (verts[k, vid, 2] * depth_factor)[None],
                gamma,
            )
            num = num + float(human.scale_w[e]) * r
            den += float(human.scale_w[e])
        # josh_jax's per-track contact-scale weight (ProblemConfig.contact_consensus; 1 in the reference)
        tw = 1.0 if human.scale_track_w is None else float(human.scale_track_w[p])
        out["scale"].append(tw * num / den if den else torch.zeros((), dtype=DTYPE["value"]))
        # static
        rs = [
            rho(
                vw[human.static_kf[e], ids[human.static_vert[e]]],
                vw[human.static_kf_prev[e], ids[human.static_vert[e]]],
                gamma,
            )
            for e in range(len(human.static_w))
            if human.static_track[e] == p and human.static_w[e] > 0
        ]
        out["static"].append(torch.stack(rs).mean() if rs else torch.zeros((), dtype=DTYPE["value"]))
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
            out["smooth"].append(torch.zeros((), dtype=DTYPE["value"]))
    n = t(human.n_frames)
    return {
        k: (n * torch.stack([torch.as_tensor(x, dtype=DTYPE["value"]).reshape(()) for x in v])).sum() / n.sum()
        for k, v in out.items()
    }


def params_to_torch(params):
    cam = {k: t(v).requires_grad_(True) for k, v in params.cam._asdict().items()}
    hp = {k: t(v).requires_grad_(True) for k, v in params.human._asdict().items()}
    return cam, hp


def total(cam, hp, problem, model, weights, stage):
    l3, l2, geo = scene_terms(cam, problem.scene, weights.gamma_scene_3d, weights.gamma_scene_2d, stage)
    h = human_terms(hp, problem.human, model, problem.init_focal, geo, weights.gamma_human, problem.body_depth)
    s = l3 if stage == 1 else l2
    tot = (
        s
        + weights.scale * h["scale"]
        + weights.prior * h["prior"]
        + weights.static * h["static"]
        + weights.smooth * h["smooth"]
    )
    return tot, {"scene": s, **h}


# ------------------------------------------------------------------ the reference-style solve


def solve(problem, model, weights, iters=(500, 200), lrs=(0.07, 0.014), optimize_focal=True, callback=None):
    """Two stages of torch Adam as the reference runs them: per-keyframe parameter
    lists (the shared focal appears once per keyframe), requires_grad switches per
    stage, a cosine learning rate set by hand each iteration, quaternions
    renormalised in place, a break on a NaN loss. Returns (final loss, history)."""
    from josh_jax.losses import init_params

    p0 = init_params(problem)
    K = int(problem.scene.kf_valid.sum())
    Kp = len(problem.scene.kf_valid)
    quats = [torch.nn.Parameter(t(p0.cam.quat[i])) for i in range(Kp)]
    trans = [torch.nn.Parameter(t(p0.cam.trans[i])) for i in range(Kp)]
    log_sizes = [torch.nn.Parameter(t(p0.cam.log_size[i : i + 1])) for i in range(Kp)]
    core_depth = [torch.nn.Parameter(t(p0.cam.anchor_depth[i])) for i in range(Kp)]
    log_focal = torch.nn.Parameter(t(p0.cam.log_focal))
    log_focals = [log_focal for _ in range(K)]
    human = {k: torch.nn.Parameter(t(v)) for k, v in p0.human._asdict().items()}
    history = []
    loss = None
    for stage, (n, lr_base) in enumerate(zip(iters, lrs), start=1):
        for q, tr, ls in zip(quats, trans, log_sizes):
            q.requires_grad_(True)
            tr.requires_grad_(True)
            ls.requires_grad_(True)
        for d in core_depth:
            d.requires_grad_(False)
        log_focal.requires_grad_(stage == 2 and optimize_focal)
        params = log_focals + quats + trans + log_sizes + core_depth + list(human.values())
        opt = torch.optim.Adam(params, lr=1, weight_decay=0, betas=(0.9, 0.9))
        for it in range(n):
            lr = lr_base * (1 + math.cos(math.pi * it / n)) / 2
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad()
            cam = {
                "quat": torch.stack(quats),
                "trans": torch.stack(trans),
                "log_size": torch.cat(log_sizes),
                "anchor_depth": torch.stack(core_depth),
                "log_focal": log_focal,
            }
            loss, _ = total(cam, human, problem, model, weights, stage)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for q in quats:
                    q.data /= q.data.norm()
            loss = float(loss)
            history.append(loss)
            if callback is not None:
                callback(stage, it)
            if loss != loss:
                break
    return loss, history
