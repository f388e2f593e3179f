"""The part every dataset script shares: ground truth through the body model, the
reference's metric table for one sequence, the overall row, markdown and JSON.

Frames. A dataset reader returns a :class:`SequenceTruth` whose rows are video
frames (``frames``: the index of the image in the sequence's own image list,
sorted by name); a prediction is the josh_jax ``results.npz`` of that sequence,
``RESULTS_ROOT/<sequence name>/results.npz``, whose ``frame_index`` is the same
image index (run the demo on the sequence's images in order, no stride, so
frame n of the video is image n). The evaluated rows are the reference's
(``eval_mask``) that the results hold with the person visible. With several
people in the results, the one visible on most evaluated rows is scored.

Units and conventions (those of genforce/JOSH ``josh/eval/evaluate_*.py``):
PA-MPJPE, MPJPE, PVE, W-MPJPE100, WA-MPJPE100 and foot sliding in mm; accel
(error of joint accelerations in the camera frame after subtracting the
pelvis) in m/s^2; RTE in % of the ground-truth path; jitter in 10 m/s^3;
camera ATE in m over the translation parts of the world(first camera)-to-camera
matrices after a rigid alignment (EMDB: their mean, as the reference's evo call
reports; SLOPER4D: their RMSE, as its ``compute_ate``). The overall row is the
mean over every frame of every sequence (the reference concatenates per-frame
values), ATE the mean over sequences.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError
from josh_jax.eval import metrics as M

from ..body import BodyModelError, forward_jit, rotmats_from_axis_angle
from ..body import load as load_body
from ..results import Results
from .safe_pickle import DatasetError

METRICS = (
    "pa_mpjpe",
    "mpjpe",
    "pve",
    "accel",
    "w_mpjpe100",
    "wa_mpjpe100",
    "rte",
    "jitter",
    "foot_sliding",
    "camera_ate",
)
HEADERS = {
    "pa_mpjpe": "PA-MPJPE",
    "mpjpe": "MPJPE",
    "pve": "PVE",
    "accel": "Accel",
    "w_mpjpe100": "W-MPJPE100",
    "wa_mpjpe100": "WA-MPJPE100",
    "rte": "RTE",
    "jitter": "Jitter",
    "foot_sliding": "FS",
    "camera_ate": "ATE",
}
UNITS = {
    "pa_mpjpe": "mm",
    "mpjpe": "mm",
    "pve": "mm",
    "accel": "m/s^2",
    "w_mpjpe100": "mm",
    "wa_mpjpe100": "mm",
    "rte": "%",
    "jitter": "10 m/s^3",
    "foot_sliding": "mm",
    "camera_ate": "m",
}
GENDERS = ("neutral", "male", "female")


@dataclass(frozen=True)
class Protocol:
    """How the reference scores one dataset.

    local: camera-frame metrics (PA-MPJPE, MPJPE, PVE, accel) from ``world_to_cam``.
    accel_world: accel on world joints (RICH, which has no cameras in the reference);
        the prediction is first brought to the ground truth's world by one similarity
        over the sequence (the reference differences the two worlds as they are).
    rte_gt_in_pred_cameras: SLOPER4D's RTE: the ground-truth camera-frame translation
        carried to the world by the predicted cameras (so RTE scores the cameras).
    ate: "mean" | "rmse" | None.
    ate_skip: sequence-name substrings without ATE (SLOPER4D's seq009, as the reference).
    """

    fps: float = 30.0
    local: bool = True
    accel_world: bool = False
    rte_gt_in_pred_cameras: bool = False
    ate: str | None = "mean"
    ate_skip: tuple = ()


@dataclass(frozen=True)
class SequenceTruth:
    """One sequence's ground truth as read from the dataset (N rows).

    frames: (N,) int image index of each row. poses: (N, 72) SMPL axis-angle, root
    first (radians). betas: (N, B). trans: (N, 3) SMPL ``transl``, metres, dataset
    world. world_to_cam: (N, 4, 4) OpenCV world->camera or None. eval_mask: (N,) bool.
    """

    name: str
    gender: str
    frames: np.ndarray
    poses: np.ndarray
    betas: np.ndarray
    trans: np.ndarray
    world_to_cam: np.ndarray | None
    eval_mask: np.ndarray


@dataclass
class BodyModels:
    """The ground-truth models by gender, loaded on first use from ``smpl_dir``
    (``SMPL_{NEUTRAL,MALE,FEMALE}.pkl`` or ``.npz``); ``"open"`` = the embedded open body
    for every gender (a stand-in for tests: not SMPL, numbers not comparable)."""

    smpl_dir: str
    cache: dict = field(default_factory=dict)

    def get(self, gender: str):
        gender = str(gender).lower()
        if gender not in GENDERS:
            raise DatasetError(f"unknown gender {gender!r} (expected one of {', '.join(GENDERS)})")
        if gender not in self.cache:
            if self.smpl_dir.lower() == "open":
                self.cache[gender] = load_body("open")
            else:
                d = Path(self.smpl_dir)
                stem = f"SMPL_{gender.upper()}"
                files = [d / f"{stem}.pkl", d / f"{stem}.npz"]
                path = next((f for f in files if f.is_file()), None)
                if path is None:
                    raise BodyModelError(
                        f"--smpl-dir {d} has no {stem}.pkl; download SMPL (v1.1.0, "
                        f"https://smpl.is.tue.mpg.de) and put SMPL_{{NEUTRAL,MALE,FEMALE}}.pkl there"
                    )
                self.cache[gender] = load_body(str(path))
        return self.cache[gender]


def _h(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply (4, 4) or per-row (N, 4, 4) transforms to points (N, K, 3) or (N, 3)."""
    if T.ndim == 2:
        return x @ T[:3, :3].T + T[:3, 3]
    if x.ndim == 2:
        return np.einsum("nij,nj->ni", T[:, :3, :3], x) + T[:, :3, 3]
    return np.einsum("nij,nkj->nki", T[:, :3, :3], x) + T[:, :3, 3][:, None]


def _body(model, betas, rotmats, transl, chunk: int = 64):
    """Batched forward in float64 numpy: (N, V, 3) vertices, (N, 24, 3) joints.

    Runs ``chunk`` frames at a time, the last chunk padded (one compile per model
    whatever the sequence length; memory bounded on sequences of thousands of frames)."""
    betas, rotmats, transl = (np.asarray(x, np.float32) for x in (betas, rotmats, transl))
    n = len(rotmats)
    size = chunk
    verts, joints = [], []
    for a in range(0, n, size):
        idx = np.minimum(np.arange(a, a + size), n - 1)
        out = forward_jit(model, betas[idx], rotmats[idx], transl[idx])
        keep = min(size, n - a)
        verts.append(np.asarray(out.vertices, np.float64)[:keep])
        joints.append(np.asarray(out.joints, np.float64)[:keep])
    return np.concatenate(verts), np.concatenate(joints)


def _pelvis(x, joints):
    return x - joints[:, 1:3].mean(1, keepdims=True)


def results_path(results_root: Path, name: str) -> Path:
    return Path(results_root) / name / "results.npz"


def evaluate_sequence(truth: SequenceTruth, results: Results, models: BodyModels, proto: Protocol) -> dict:
    """The reference's metrics for one sequence -> {metric: (value, count)} plus "frames".

    ``count`` is how many per-frame values the reference averages for that metric (the
    weight in the overall row); a metric the protocol does not define is (nan, 0).
    """
    frame_to_row = {int(f): i for i, f in enumerate(results.frame_index)}
    gt_rows = np.array([i for i in np.flatnonzero(truth.eval_mask) if int(truth.frames[i]) in frame_to_row], int)
    if len(gt_rows) == 0:
        raise DatasetError(
            f"sequence {truth.name}: its results.npz holds none of the {int(truth.eval_mask.sum())} "
            "evaluated frames (frame_index must be the image index of the sequence)"
        )
    r_all = np.array([frame_to_row[int(truth.frames[i])] for i in gt_rows])
    if results.num_people == 0:
        raise DatasetError(f"sequence {truth.name}: its results.npz has no person")
    person = int(np.argmax(results.visible[:, r_all].sum(1)))
    vis = results.visible[person, r_all]
    gt_rows, rr = gt_rows[vis], r_all[vis]
    n = len(gt_rows)
    if n < 5:
        raise DatasetError(f"sequence {truth.name}: the person is visible on only {n} evaluated frames (need 5)")

    gt_model = models.get(truth.gender)
    betas = np.broadcast_to(truth.betas, (len(truth.poses), truth.betas.shape[-1]))[gt_rows]
    betas = betas[:, : gt_model.num_betas]
    gt_v, gt_j = _body(gt_model, betas, rotmats_from_axis_angle(truth.poses[gt_rows]), truth.trans[gt_rows])
    gt_feet = gt_v[:, gt_model.vertex_set("foot_markers")]
    E = truth.world_to_cam
    E0 = E[0] if E is not None else np.eye(4)  # the reference's global frame: the first camera
    gt_jw, gt_fw, gt_tw = _h(E0, gt_j), _h(E0, gt_feet), _h(E0, truth.trans[gt_rows].astype(np.float64))

    pr_j = results.joints_world[person, rr].astype(np.float64)
    pr_f = results.foot_vertices_world[person, rr].astype(np.float64)
    c2w = results.cam_to_world[rr].astype(np.float64)
    out: dict = {"frames": n}

    chunk_frames = sum(b - a for a, b in M._chunks(n))
    out["w_mpjpe100"] = (M.w_mpjpe(pr_j, gt_jw), chunk_frames)
    out["wa_mpjpe100"] = (M.wa_mpjpe(pr_j, gt_jw), chunk_frames)
    if proto.rte_gt_in_pred_cameras:
        if E is None:
            raise DatasetError(f"sequence {truth.name}: RTE needs the dataset's cameras")
        pr_t = _h(c2w, _h(E[gt_rows], truth.trans[gt_rows].astype(np.float64)))
    else:
        pr_t = results.transl[person, rr].astype(np.float64)
    out["rte"] = (M.rte(pr_t, gt_tw), n)
    out["jitter"] = (M.jitter(pr_j, proto.fps), max(n - 3, 0))
    still = np.linalg.norm(np.diff(gt_fw, axis=0), axis=-1) < 0.01
    out["foot_sliding"] = (M.foot_sliding(pr_f, gt_fw), int(still.sum()))

    nan = (float("nan"), 0)
    if proto.local and E is not None:
        gt_jc, gt_vc = _h(E[gt_rows], gt_j), _h(E[gt_rows], gt_v)
        w2c = np.linalg.inv(c2w)
        pr_jc = _h(w2c, pr_j)
        out["pa_mpjpe"] = (M.pa_mpjpe(pr_jc, gt_jc), n)
        out["mpjpe"] = (M.mpjpe(pr_jc, gt_jc), n)
        pr_model = _prediction_model(results, models)
        if pr_model is not None and pr_model.num_vertices == gt_model.num_vertices:
            rot = np.concatenate([results.global_orient[person, rr][:, None], results.body_pose[person, rr]], 1)
            pr_b = np.broadcast_to(
                results.betas[person][: pr_model.num_betas], (n, min(pr_model.num_betas, results.betas.shape[1]))
            )
            pr_v, _ = _body(pr_model, pr_b, rot, results.transl[person, rr])
            out["pve"] = (M.pve(_h(w2c, pr_v), gt_vc, pr_jc, gt_jc), n)
        else:
            out["pve"] = nan
        out["accel"] = (M.accel_error(_pelvis(pr_jc, pr_jc), _pelvis(gt_jc, gt_jc), proto.fps), max(n - 4, 0))
    else:
        out["pa_mpjpe"] = out["mpjpe"] = out["pve"] = nan
        if proto.accel_world:
            s, R, t = M.umeyama(pr_j.reshape(-1, 3), gt_jw.reshape(-1, 3))
            out["accel"] = (M.accel_error(s * pr_j @ R.T + t, gt_jw, proto.fps), max(n - 4, 0))
        else:
            out["accel"] = nan

    out["camera_ate"] = nan
    if proto.ate and E is not None and not any(s in truth.name for s in proto.ate_skip):
        rows = np.array([i for i in range(len(truth.frames)) if int(truth.frames[i]) in frame_to_row], int)
        rc = np.array([frame_to_row[int(truth.frames[i])] for i in rows])
        P = results.cam_to_world[rc].astype(np.float64)
        pred_w2c = np.linalg.inv(np.linalg.inv(P[0]) @ P)  # world = first evaluated camera
        gt_w2c = E[rows] @ np.linalg.inv(E[rows[0]])
        pt, gtt = pred_w2c[:, :3, 3], gt_w2c[:, :3, 3]
        s, R, t = M.umeyama(pt, gtt, with_scale=False)
        err = np.linalg.norm(pt @ R.T + t - gtt, axis=-1)
        val = float(err.mean()) if proto.ate == "mean" else float(np.sqrt((err**2).mean()))
        out["camera_ate"] = (val, 1)
    return out


def _prediction_model(results: Results, models: BodyModels):
    """The body that turns the results' parameters into vertices: the neutral SMPL for
    ``body_model == "smpl"`` (as the reference scores its predictions), else the open body."""
    name = str(results.body_model).lower()
    if name.startswith("smpl") and models.smpl_dir.lower() != "open":
        return models.get("neutral")
    if name in ("josh-open-body", "open"):
        return load_body("open")
    return None


def overall(per_seq: list[dict]) -> dict:
    """Frame-weighted mean of every metric over sequences (NaN where nothing was measured)."""
    out = {"frames": int(sum(s["frames"] for s in per_seq))}
    for k in METRICS:
        vals = [(v, c) for v, c in (s[k] for s in per_seq) if c > 0 and math.isfinite(v)]
        w = sum(c for _, c in vals)
        out[k] = (float(sum(v * c for v, c in vals) / w), int(w)) if w else (float("nan"), 0)
    return out


def _fmt(v: float, k: str) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:.4f}" if k == "camera_ate" else f"{v:.2f}"


def markdown(dataset: str, rows: list[tuple[str, dict]], total: dict) -> str:
    head = ["sequence", "frames"] + [f"{HEADERS[k]} ({UNITS[k]})" for k in METRICS]
    lines = [f"Evaluation on {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows + [("**overall**", total)]:
        lines.append("| " + " | ".join([name, str(m["frames"])] + [_fmt(m[k][0], k) for k in METRICS]) + " |")
    return "\n".join(lines) + "\n"


def as_json(dataset: str, rows: list[tuple[str, dict]], total: dict, proto: Protocol) -> dict:
    def flat(m):
        d = {"frames": int(m["frames"])}
        for k in METRICS:
            v = m[k][0]
            d[k] = float(v) if math.isfinite(v) else None
        return d

    return {
        "dataset": dataset,
        "units": UNITS,
        "fps": proto.fps,
        "sequences": [{"sequence": name, **flat(m)} for name, m in rows],
        "overall": flat(total),
    }


def run_cli(dataset: str, reader, proto: Protocol, argv=None, prog: str = "", doc: str = "") -> int:
    """Shared command line: ``DATA_ROOT RESULTS_ROOT [--smpl-dir DIR] [--json OUT] [--skip-missing]``.

    ``reader(data_root, args)`` yields :class:`SequenceTruth` (it may add its own flags via
    ``reader.add_arguments(parser)``). Returns the exit status (2 on a user error, one line)."""
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=doc)
    ap.add_argument("data_root", type=Path, help=f"the {dataset} release (its own layout)")
    ap.add_argument("results_root", type=Path, help="RESULTS_ROOT/<sequence>/results.npz per sequence")
    ap.add_argument(
        "--smpl-dir",
        default=os.environ.get("JOSH_SMPL_DIR"),
        help="folder with SMPL_{NEUTRAL,MALE,FEMALE}.pkl (default $JOSH_SMPL_DIR); "
        "'open' = the embedded open body (tests only, not SMPL)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    ap.add_argument("--skip-missing", action="store_true", help="skip sequences without results instead of stopping")
    ap.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    ap.add_argument("--overwrite", action="store_true", help="replace --json if it exists (never an input)")
    if hasattr(reader, "add_arguments"):
        reader.add_arguments(ap)
    args = ap.parse_args(argv)
    from josh_jax._cli.atomic import check_file_outputs, write_text_atomic

    try:
        if args.json:
            check_file_outputs([args.json], [args.data_root, args.results_root], args.overwrite)
        if not args.data_root.is_dir():
            raise DatasetError(f"DATA_ROOT {args.data_root} does not exist or is not a folder")
        if not args.results_root.is_dir():
            raise DatasetError(f"RESULTS_ROOT {args.results_root} does not exist or is not a folder")
        if not args.smpl_dir:
            raise BodyModelError(
                "pass --smpl-dir DIR (the folder with SMPL_{NEUTRAL,MALE,FEMALE}.pkl from "
                "https://smpl.is.tue.mpg.de) or set JOSH_SMPL_DIR"
            )
        if args.smpl_dir.lower() != "open" and not Path(args.smpl_dir).is_dir():
            raise BodyModelError(f"--smpl-dir {args.smpl_dir} is not a folder")
        models = BodyModels(args.smpl_dir)
        rows = []
        truths = list(reader(args.data_root, args))
        if args.sequences:
            truths = [t for t in truths if t.name in set(args.sequences)]
        if not truths:
            raise DatasetError(
                f"no {dataset} sequences found under {args.data_root} "
                f"(expected its released layout: see docs/evaluation.md)"
            )
        for i, truth in enumerate(truths):
            path = results_path(args.results_root, truth.name)
            if not path.is_file():
                if args.skip_missing:
                    print(f"[{i + 1}/{len(truths)}] {truth.name}: no results, skipped", file=sys.stderr)
                    continue
                raise DatasetError(
                    f"sequence {truth.name} has no results: expected {path} "
                    "(run the demo on its images with --out there, or pass --skip-missing)"
                )
            m = evaluate_sequence(truth, Results.load(path), models, proto)
            print(
                f"[{i + 1}/{len(truths)}] {truth.name}: {m['frames']} frames, W-MPJPE100 {m['w_mpjpe100'][0]:.1f} mm",
                file=sys.stderr,
            )
            rows.append((truth.name, m))
        if not rows:
            raise DatasetError(f"no sequence under {args.data_root} has results under {args.results_root}")
    except JoshError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = overall([m for _, m in rows])
    print(markdown(dataset, rows, total), end="")
    if args.json:
        write_text_atomic(args.json, json.dumps(as_json(dataset, rows, total, proto), indent=1) + "\n")
    return 0
