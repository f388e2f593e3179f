"""One JSON of the GPU numbers (run by benchmarks/gpu_suite.sh; also runs on CPU at tiny size).

Rows: josh_jax Adam (500 + 200) and Gauss-Newton (method="gn") on one window, the vectorized
PyTorch flavour (benchmarks/torch_reference/vectorized.py) on the same window and device,
and ``solve_batch`` of several windows (windows per second). Compile time is reported apart
(first call minus the steady call); steady = one timed call after the first, with
``block_until_ready`` / ``torch.cuda.synchronize``. ``--tiny`` shrinks the problem and the
iteration counts so the suite finishes in seconds on a CPU (the tests run it that way).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true", help="tiny problem and iteration counts (CPU smoke run)")
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument(
        "--skip-diff", action="store_true", help="no differentiable-solve row (its compile is minutes on a CPU)"
    )
    args = ap.parse_args(argv)

    import jax
    import numpy as np

    from benchmarks.throughput import DEFAULT, make_problem
    from josh_jax.losses import LossWeights
    from josh_jax.problem import build_problem, problem_sizes
    from josh_jax.solve import SolveConfig, solve, solve_batch, stack_problems

    size = dict(keyframes=11, tracks=1, cpp=60) if args.tiny else DEFAULT
    iters = (10, 5) if args.tiny else (500, 200)
    problem, model, window = make_problem(**size)
    dev = jax.devices()[0]
    out = dict(
        device=str(dev),
        device_kind=getattr(dev, "device_kind", ""),
        platform=dev.platform,
        jax=jax.__version__,
        size=size,
        matches=int((problem.scene.corr_w > 0).sum()),
        iterations=iters,
        tiny=args.tiny,
        rows=[],
        batches=[],
    )

    def timed(fn):
        t = time.perf_counter()
        r = jax.block_until_ready(fn())
        first = time.perf_counter() - t
        t = time.perf_counter()
        r = jax.block_until_ready(fn())
        steady = time.perf_counter() - t
        return r, first, steady

    cfgs = {
        "josh_jax adam": SolveConfig(iters_stage1=iters[0], iters_stage2=iters[1]),
        "josh_jax gn": SolveConfig(method="gn", **(dict(gn_iters_stage1=3, gn_iters_stage2=2) if args.tiny else {})),
    }
    for name, cfg in cfgs.items():
        res, first, steady = timed(lambda cfg=cfg: solve(problem, LossWeights(), cfg))
        out["rows"].append(
            dict(
                impl=name,
                compile_s=max(first - steady, 0.0),
                solve_s=steady,
                final_loss=float(res.stage2.history.total[-1]),
            )
        )
        print(out["rows"][-1], file=sys.stderr, flush=True)
    if not args.skip_torch:
        import torch

        from benchmarks.torch_reference import vectorized

        tdev = "cuda" if dev.platform == "gpu" and torch.cuda.is_available() else "cpu"
        sync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
        t = time.perf_counter()
        final, _ = vectorized.solve(problem, LossWeights(), iters, device=tdev, sync=sync)
        sync()
        out["rows"].append(
            dict(
                impl="torch vectorized",
                device=tdev,
                compile_s=0.0,
                solve_s=time.perf_counter() - t,
                final_loss=float(final),
                torch_device=torch.cuda.get_device_name(0) if tdev == "cuda" else "cpu",
            )
        )
        print(out["rows"][-1], file=sys.stderr, flush=True)

    sizes = {k: int(v * 1.5) if k != "keyframes" else v for k, v in problem_sizes(problem)._asdict().items()}
    cfg = cfgs["josh_jax adam"]
    for b in [int(x) for x in args.batches.split(",") if x]:
        probs = [build_problem(make_problem(**size, seed=s)[2], model, sizes=sizes) for s in range(b)]
        stacked = stack_problems(probs)
        _, first, steady = timed(lambda: solve_batch(stacked, LossWeights(), cfg))
        out["batches"].append(
            dict(batch=b, compile_s=max(first - steady, 0.0), solve_s=steady, windows_per_s=b / steady)
        )
        print(out["batches"][-1], file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(out, indent=1))  # written now too: the last row takes longest
    if not args.skip_diff:
        from benchmarks.differentiable_cost import gradient_objective
        from josh_jax.solve.differentiable import DiffConfig, solve_differentiable

        dc = DiffConfig(polish_iters=2, newton_steps=1) if args.tiny else DiffConfig()
        gcfg = cfgs["josh_jax gn"]
        fwd, f_first, f_steady = timed(lambda: solve_differentiable(problem, LossWeights(), gcfg, dc))
        vg = jax.value_and_grad(gradient_objective(problem, gcfg, dc), argnums=(0, 1))
        (_, grads), b_first, b_steady = timed(lambda: vg(LossWeights(), problem.human.init_transl))
        out["differentiable"] = dict(
            forward_compile_s=max(f_first - f_steady, 0.0),
            forward_s=f_steady,
            forward_backward_compile_s=max(b_first - b_steady, 0.0),
            forward_backward_s=b_steady,
            backward_s=b_steady - f_steady,
            stationarity=float(fwd.stationarity),
            grad_finite=bool(all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))),
        )
        print(out["differentiable"], file=sys.stderr, flush=True)
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
