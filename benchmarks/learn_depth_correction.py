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
import json
import sys
import time
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
    import optax

    import josh_jax.body as jb
    from benchmarks.learn_weights import errors, worlds
    from benchmarks.throughput import machine_info
    from josh_jax.losses import LossWeights
    from josh_jax.solve import SolveConfig, stack_problems
    from josh_jax.solve.differentiable import DiffConfig, solve_differentiable

    model = jb.load("open")
    world = dict(num_keyframes=8, width=96, height=72, focal=90.0, pair_window=4, hmr_depth_bias=args.bias)
    train_p, train_t = worlds(model, range(100, 104), world)
    test_p, test_t = worlds(model, range(200, 206), world)
    cfg, dc, W = SolveConfig(method="gn"), DiffConfig(), LossWeights()

    def corrected(pr, a):
        return dataclasses.replace(pr, human=pr.human._replace(init_transl=pr.human.init_transl * jnp.exp(a)))

    def batch_errors(a, probs, truths):
        stacked = stack_problems(probs)
        T = jnp.stack([jnp.asarray(t) for t in truths])

        def one(pr, t):
            p = corrected(pr, a)
            return errors(solve_differentiable(p, W, cfg, dc).params, p, t)

        return jax.vmap(one)(stacked, T)

    vg = jax.jit(jax.value_and_grad(lambda a: jnp.mean(batch_errors(a, train_p, train_t)[0])))
    a = jnp.float32(0.0)
    opt = optax.adam(args.lr)
    state = opt.init(a)
    history = []
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        loss, g = vg(a)
        history.append(dict(step=step, train_mpjpe_mm=1000 * float(loss), log_scale=float(a), grad=float(g)))
        print(f"step {step:2d}  train W-MPJPE {1000 * float(loss):7.2f} mm  a {float(a):+.4f}  grad {float(g):+.4f}")
        if step == args.steps:
            break
        upd, state = opt.update(g, state)
        a = optax.apply_updates(a, upd)
    train_s = time.perf_counter() - t0
    best = min(history, key=lambda h: h["train_mpjpe_mm"])

    evaluate = jax.jit(lambda a: batch_errors(a, test_p, test_t))
    d_mp, d_rt = evaluate(jnp.float32(0.0))
    l_mp, l_rt = evaluate(jnp.float32(best["log_scale"]))
    out = dict(
        machine=machine_info("cpu"),
        world=world,
        train_seconds=train_s,
        learned_log_scale=best["log_scale"],
        learned_depth_factor=float(jnp.exp(best["log_scale"])),
        held_out=dict(
            front_end_as_is=dict(w_mpjpe_mm=1000 * float(jnp.mean(d_mp)), root_error_mm=1000 * float(jnp.mean(d_rt))),
            corrected=dict(w_mpjpe_mm=1000 * float(jnp.mean(l_mp)), root_error_mm=1000 * float(jnp.mean(l_rt))),
            per_world_as_is_mm=[1000 * float(v) for v in d_mp],
            per_world_corrected_mm=[1000 * float(v) for v in l_mp],
        ),
        history=history,
    )
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
