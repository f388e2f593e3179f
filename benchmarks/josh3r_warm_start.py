"""``python benchmarks/josh3r_warm_start.py [--quick] [--json OUT.json]``: does JOSH3R's start help the joint optimization?

``--method josh3r+joint`` starts the joint optimization at JOSH3R's cameras and metric scene scale
(:func:`josh_jax.josh3r.warm_start`) instead of the reference's identity cameras and unit sizes. A
random-weight JOSH3R gives garbage, so this measures with a **simulated** JOSH3R on the synthetic
worlds (:mod:`josh_jax.synthetic.worlds`): the true relative root motion of person 0 between
consecutive keyframes with noise (``--noise-m`` metres and ``--noise-deg`` degrees per pair, each a
random direction) and the true global metric scale with ``--scale-noise`` relative noise per
keyframe (the depth model's per-keyframe drift is not known to it), fed through the same code path
as the real runner (:func:`josh_jax.josh3r.keyframe_cameras` from the human front end's noisy
camera-frame root, then ``warm_start``).

Per preset and seed, both starts run the full default schedule (500 + 200 Adam iterations); reported:
the loss at the start and at the end, ``iters_to_default_final``: iterations (stage 1 + stage 2) until
the stage-2 loss is within 1 % of the default start's final loss (null: never), the solve's wall time
(after a compile run), and W-MPJPE100 / RTE / camera ATE against the truth
(:func:`josh_jax.eval.metrics.evaluate`). Also the warm start's own accuracy before any
optimization ("josh3r only": the cameras it gives, the bodies as the front end places them).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from josh_jax import body as jbody  # noqa: E402
from josh_jax import josh3r  # noqa: E402
from josh_jax.eval.metrics import evaluate  # noqa: E402
from josh_jax.losses import LossWeights, init_params  # noqa: E402
from josh_jax.problem import build_problem  # noqa: E402
from josh_jax.results import build_results  # noqa: E402
from josh_jax.solve import SolveConfig, solve  # noqa: E402
from josh_jax.synthetic.worlds import PRESETS, make_world  # noqa: E402


def simulated_motion(gt: dict, frames: np.ndarray, noise_m: float, noise_deg: float, rng) -> josh3r.Motion:
    """The truth's relative root (pelvis) motion of person 0 between ``frames``, with noise per pair."""
    from scipy.spatial.transform import Rotation

    T = np.tile(np.eye(4), (len(frames), 1, 1))
    T[:, :3, :3] = gt["global_orient"][0, frames]
    T[:, :3, 3] = gt["joints_world"][0, frames, 0]
    rel_R, rel_t = josh3r.relative_motions(np.linalg.inv(T[0]) @ T)
    n = len(rel_R)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    rel_R = Rotation.from_rotvec(axis * np.deg2rad(noise_deg)).as_matrix() @ rel_R
    d = rng.normal(size=(n, 3))
    rel_t = rel_t + noise_m * d / np.linalg.norm(d, axis=1, keepdims=True)
    return josh3r.Motion(np.asarray(frames), rel_R, rel_t, [])


def _iters_to(res, target: float) -> int | None:
    s2 = np.asarray(res.stage2.history.total)
    hit = np.where(s2 <= target)[0]
    return int(len(np.asarray(res.stage1.history.total)) + hit[0] + 1) if len(hit) else None


def _metrics(r, gt, fps) -> dict:
    m = evaluate(r, gt, fps)
    return {k: float(m[k]) for k in ("w_mpjpe100", "rte", "camera_ate")}


def one(model, preset: str, seed: int, args, cfg: SolveConfig) -> dict:
    window, gt = make_world(model, seed, PRESETS[preset])
    fps = PRESETS[preset].fps
    problem = build_problem(window, model)
    rng = np.random.default_rng(1000 + seed)
    motion = simulated_motion(gt, np.asarray(window.frame_index), args.noise_m, args.noise_deg, rng)
    f_init = float(np.asarray(problem.init_focal))
    cams = josh3r.keyframe_cameras(motion, window, model, f_init)
    scale = (1.0 / float(gt["depth_scale"])) * (1 + args.scale_noise * rng.normal(size=window.num_keyframes))
    warm = josh3r.warm_start(problem, window, cams, scale)
    row = {"preset": preset, "seed": seed, "keyframes": window.num_keyframes, "people": window.num_tracks}
    row["josh3r_only"] = _metrics(build_results(init_params(warm), warm, window, model), gt, fps)
    out = {}
    for name, pr in (("default", problem), ("josh3r_start", warm)):
        jax.block_until_ready(solve(pr, LossWeights(), cfg))  # compile (and a first run)
        t = time.perf_counter()
        res = jax.block_until_ready(solve(pr, LossWeights(), cfg))
        secs = time.perf_counter() - t
        out[name] = (res, secs)
    target = float(np.asarray(out["default"][0].stage2.history.total)[-1]) * 1.01
    for name, (res, secs) in out.items():
        r = build_results(res.params, problem if name == "default" else warm, window, model)
        row[name] = {
            "start_loss": float(np.asarray(res.stage1.history.total)[0]),
            "final_loss": float(np.asarray(res.stage2.history.total)[-1]),
            "iters_to_default_final": _iters_to(res, target),
            "solve_s": secs,
            **_metrics(r, gt, fps),
        }
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| preset | seed | start | loss at start | final loss | iters to default's final | solve s "
        "| W-MPJPE100 mm | RTE % | camera ATE m |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        j = r["josh3r_only"]
        lines.append(
            f"| {r['preset']} | {r['seed']} | JOSH3R alone (no optimization) | | | | "
            f"| {j['w_mpjpe100']:.0f} | {j['rte']:.1f} | {j['camera_ate']:.3f} |"
        )
        for name, label in (("default", "default (identity cameras)"), ("josh3r_start", "JOSH3R start")):
            m = r[name]
            it = m["iters_to_default_final"]
            lines.append(
                f"| {r['preset']} | {r['seed']} | {label} | {m['start_loss']:.3g} | {m['final_loss']:.4g} "
                f"| {it if it is not None else 'never'} | {m['solve_s']:.1f} | {m['w_mpjpe100']:.0f} "
                f"| {m['rte']:.1f} | {m['camera_ate']:.3f} |"
            )
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="easy preset, one seed, a short schedule (a smoke run)")
    ap.add_argument("--presets", default="easy,medium,hard")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--noise-m", type=float, default=0.02, help="translation noise per pair, metres")
    ap.add_argument("--noise-deg", type=float, default=2.0, help="rotation noise per pair, degrees")
    ap.add_argument("--scale-noise", type=float, default=0.05, help="relative scale noise per keyframe")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    model = jbody.load("open")
    presets = ["easy"] if args.quick else args.presets.split(",")
    seeds = 1 if args.quick else args.seeds
    cfg = SolveConfig(iters_stage1=60, iters_stage2=20) if args.quick else SolveConfig()
    rows = []
    for preset in presets:
        for seed in range(seeds):
            rows.append(one(model, preset, seed, args, cfg))
            print(f"{preset} seed {seed} done", file=sys.stderr, flush=True)
    md = table(rows)
    print(md)
    if args.json:
        meta = {
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
            "jax": jax.__version__,
            "noise": {"m": args.noise_m, "deg": args.noise_deg, "scale": args.scale_noise},
            "schedule": [cfg.iters_stage1, cfg.iters_stage2],
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
