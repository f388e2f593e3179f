"""Calibrating the body front end's depth through the solve (the differentiable solve, issue 32).

    python benchmarks/learn_depth_correction.py [--steps 10] [--bias 0.12] [--json OUT.json]

JOSH takes the metric scale of the whole reconstruction from the body front end's depths, so a
systematic depth error of that network (HMR-style regressors have them, e.g. from the focal they
assume) becomes an error of every output. The synthetic worlds here plant one: the front end
reports every camera-frame depth ``--bias`` (12 %) too far, on top of 3 % per-keyframe noise. One
scalar is learned: a log-scale ``a`` applied to the front end's camera-frame translations before
the solve (``init_transl * e^a``, the whole vector, so that the body stays on its pixel ray). Its
loss is the error of the *solved* bodies, so the gradient goes through the joint optimization
(``solve_differentiable``); the ideal value would be about ``-log(1.12) = -0.113``.

Measurement rules
- Worlds: josh_jax.synthetic.worlds, 8 keyframes, 96x72 working images (focal 90 px), one walker,
  the bias above. Training seeds 100-103, held-out seeds 200-205 (never seen in training).
- Error as in benchmarks/learn_weights.py: W-MPJPE and root error with the first keyframe's camera
  as the shared frame (mm). float32, DiffConfig defaults, loss weights at the reference's defaults.
- Adam (optax, learning rate ``--lr``) on the training worlds' mean W-MPJPE; the step with the
  lowest training error is evaluated on the held-out worlds against ``a = 0`` (the front end as is).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bias", type=float, default=0.12)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import dataclasses

    import jax
    import jax.numpy as jnp

    import josh_jax.body as jb
    from benchmarks.learn_weights import adam_through_solve, emit, held_out_summary, solved_errors, worlds
    from benchmarks.throughput import machine_info
    from josh_jax.losses import LossWeights
    from josh_jax.solve import SolveConfig
    from josh_jax.solve.differentiable import DiffConfig

    model = jb.load("open")
    world = dict(num_keyframes=8, width=96, height=72, focal=90.0, pair_window=4, hmr_depth_bias=args.bias)
    train_p, train_t = worlds(model, range(100, 104), world)
    test_p, test_t = worlds(model, range(200, 206), world)
    cfg, dc, W = SolveConfig(method="gn"), DiffConfig(), LossWeights()

    def corrected(pr, a):
        return dataclasses.replace(pr, human=pr.human._replace(init_transl=pr.human.init_transl * jnp.exp(a)))

    def batch_errors(a, probs, truths):
        return solved_errors(probs, truths, lambda pr: (corrected(pr, a), W), cfg, dc)

    vg = jax.jit(jax.value_and_grad(lambda a: jnp.mean(batch_errors(a, train_p, train_t)[0])))
    history, train_s = adam_through_solve(vg, jnp.float32(0.0), args.lr, args.steps, "log_scale")
    best = min(history, key=lambda h: h["train_mpjpe_mm"])

    evaluate = jax.jit(lambda a: batch_errors(a, test_p, test_t))
    d = evaluate(jnp.float32(0.0))
    c = evaluate(jnp.float32(best["log_scale"]))
    out = dict(
        machine=machine_info("cpu"),
        world=world,
        train_seconds=train_s,
        learned_log_scale=best["log_scale"],
        learned_depth_factor=float(jnp.exp(best["log_scale"])),
        held_out=held_out_summary(("as_is", "corrected"), (d, c)),
        history=history,
    )
    return emit(out, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
