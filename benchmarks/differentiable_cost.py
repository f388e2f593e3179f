"""Cost of the differentiable solve: forward vs forward + backward, time and memory.

    python benchmarks/differentiable_cost.py [--keyframes 21] [--repeats 2] [--json OUT.json]

Measurement rules
- Problem: benchmarks/throughput.py's default window (21 keyframes, 1 track, ~1500 matches per
  pair), float32, on the default JAX device.
- Three programs, each timed by benchmarks/timing.py (first call = compile + run, reported apart;
  then the fastest of ``--repeats``): the plain Gauss-Newton solve (``solve``, the demo's gn), the
  differentiable forward (``solve_differentiable``), and ``jax.value_and_grad`` of a scalar of its
  result (forward + backward) with respect to the loss weights and the front end's translations.
  backward = (forward + backward) - forward.
- Peak memory: the process's ru_maxrss after each stage (CPU; it only grows, so each row is the
  peak so far). The machine and versions go into the JSON.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def gradient_objective(problem, cfg, dc):
    """(weights, front-end translations) -> a scalar of the differentiable solve's result (the
    bodies' depths summed plus the log focal): what both this script and the GPU suite time
    ``jax.value_and_grad`` of."""
    import dataclasses

    import jax.numpy as jnp

    from josh_jax.solve.differentiable import solve_differentiable

    def objective(wt, transl):
        p = dataclasses.replace(problem, human=problem.human._replace(init_transl=transl))
        res = solve_differentiable(p, wt, cfg, dc)
        return jnp.sum(res.params.human.transl[..., 2]) + res.params.cam.log_focal

    return objective


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keyframes", type=int, default=21)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from benchmarks.learn_weights import emit
    from benchmarks.throughput import DEFAULT, machine_info, make_problem
    from benchmarks.timing import time_calls
    from josh_jax.losses import LossWeights
    from josh_jax.solve import SolveConfig, solve
    from josh_jax.solve.differentiable import DiffConfig, solve_differentiable

    problem, _, _ = make_problem(**dict(DEFAULT, keyframes=args.keyframes))
    problem = jax.tree_util.tree_map(jnp.asarray, problem)
    cfg, dc = SolveConfig(method="gn"), DiffConfig()
    W = LossWeights()

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    objective = gradient_objective(problem, cfg, dc)

    rows = {}
    t = time_calls(lambda: solve(problem, W, cfg), args.repeats)
    rows["gn_solve"] = dict(compile_s=t.first_s - t.best_s, steady_s=t.best_s, peak_rss_mb=peak_mb())
    t = time_calls(lambda: solve_differentiable(problem, W, cfg, dc), args.repeats)
    res = t.result
    rows["differentiable_forward"] = dict(
        compile_s=t.first_s - t.best_s,
        steady_s=t.best_s,
        peak_rss_mb=peak_mb(),
        converged=bool(res.converged),
        stationarity=float(res.stationarity),
        free_variables=int(res.free),
    )
    vg = jax.value_and_grad(objective, argnums=(0, 1))
    t = time_calls(lambda: vg(W, problem.human.init_transl), args.repeats)
    rows["forward_and_backward"] = dict(compile_s=t.first_s - t.best_s, steady_s=t.best_s, peak_rss_mb=peak_mb())
    fwd = rows["differentiable_forward"]["steady_s"]
    back = rows["forward_and_backward"]["steady_s"] - fwd
    out = dict(
        machine=machine_info("cpu"),
        problem=dict(DEFAULT, keyframes=args.keyframes),
        rows=rows,
        backward_s=back,
        backward_over_forward=back / fwd,
        backward_over_gn_solve=back / rows["gn_solve"]["steady_s"],
    )
    return emit(out, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
