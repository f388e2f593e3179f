"""Compile time and steady-state time of the JAX solve on synthetic windows.

Rules: one warm-up solve per size (its time is reported as compile + first
run), then the minimum of ``--repeats`` solves with ``block_until_ready``;
iteration counts fixed (500 + 200 unless --quick). Machine recorded in the JSON.

    python benchmarks/solve_time.py [--quick] [--json out.json]
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import josh_jax.body as jb  # noqa: E402
from benchmarks.timing import time_calls  # noqa: E402
from josh_jax.losses import LossWeights  # noqa: E402
from josh_jax.problem import build_problem, problem_sizes  # noqa: E402
from josh_jax.solve import SolveConfig, solve  # noqa: E402
from josh_jax.synthetic.worlds import SynthConfig, make_world  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = SolveConfig(iters_stage1=100, iters_stage2=40) if args.quick else SolveConfig()
    model = jb.load("open")
    rows = []
    for K, (W, H) in ((11, (160, 120)), (21, (160, 120)), (21, (256, 192))):
        w, _ = make_world(model, 0, SynthConfig(num_keyframes=K, width=W, height=H, focal=W * 0.94))
        pr = build_problem(w, model)
        first, steady = time_calls(lambda pr=pr: solve(pr, LossWeights(), cfg), args.repeats)[:2]
        n_it = cfg.iters_stage1 + cfg.iters_stage2
        row = dict(
            keyframes=K,
            image=f"{W}x{H}",
            correspondences=int((pr.scene.corr_w > 0).sum()),
            sizes=problem_sizes(pr)._asdict(),
            first_call_s=round(first, 2),
            compile_s=round(first - steady, 2),
            steady_solve_s=round(steady, 3),
            ms_per_iteration=round(1000 * steady / n_it, 2),
        )
        rows.append(row)
        print(row, flush=True)
    info = dict(
        machine=platform.processor() or platform.machine(),
        cores=os.cpu_count(),
        device=str(jax.devices()[0]),
        jax=jax.__version__,
        iterations=[cfg.iters_stage1, cfg.iters_stage2],
        rows=rows,
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=1)


if __name__ == "__main__":
    main()
