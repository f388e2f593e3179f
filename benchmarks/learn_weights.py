"""Learning JOSH's loss weights by gradient descent through the solve (the differentiable solve).

    python benchmarks/learn_weights.py [--steps 12] [--json OUT.json]

Measurement rules
- Worlds: josh_jax.synthetic.worlds with a noisy body front end (per-keyframe depth error 8 %,
  pose noise 0.04 rad; 8 keyframes, one walker). Training worlds: seeds 100-103; held-out worlds:
  seeds 200-205 (never seen in training). All padded to one bucket and solved vmapped.
- Learned: the log of the four human-term weights (scale, prior, static, smooth), from the
  reference's defaults, by Adam (optax, learning rate ``--lr``) on the training worlds' mean error.
- Error (training loss and reported metric): W-MPJPE with the first keyframe's camera as the
  shared frame: every keyframe's 24 joints, predicted (solved cameras and bodies) and true, moved
  into the first keyframe's camera (no other alignment), mean Euclidean distance in mm; and the
  root (pelvis) translation error the same way (RTE-like, mm).
- Gradients: ``solve_differentiable`` (float32, DiffConfig defaults), jax.grad of the mean error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMES = ("scale", "prior", "static", "smooth")


# the worlds of this experiment: 8 keyframes, one walker, a noisy body front end
WORLD = dict(
    num_keyframes=8,
    width=64,
    height=48,
    focal=60.0,
    cam_speed=0.06,
    pair_window=4,
    hmr_depth_noise=0.08,
    hmr_pose_noise=0.04,
)


def worlds(model, seeds, world: dict = WORLD):
    """Problems of one bucket for ``seeds`` (SynthConfig fields ``world``) and each one's true joints
    (P, K, 24, 3) in the first keyframe's camera frame."""
    import numpy as np

    from josh_jax.problem import build_problem, problem_sizes
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    cfg = SynthConfig(**world)
    made = [make_world(model, seed=s, cfg=cfg) for s in seeds]
    sizes = None
    for w, _ in made:
        sz = problem_sizes(build_problem(w, model))._asdict()
        sizes = sz if sizes is None else {k: max(sizes[k], v) for k, v in sz.items()}
    probs, truth = [], []
    for w, gt in made:
        probs.append(build_problem(w, model, sizes=sizes))
        fi = np.asarray(w.frame_index)
        T0 = np.linalg.inv(gt["cam_to_world"][fi[0]])
        J = gt["joints_world"][:, fi]  # (P, K, 24, 3)
        truth.append((J @ T0[:3, :3].T + T0[:3, 3]).astype(np.float32))
    return probs, truth


def solved_errors(probs, truths, prepare, cfg, dc):
    """(W-MPJPE, root error) per world (B,), (B,) in metres of ``solve_differentiable`` vmapped over
    the stacked ``probs``; ``prepare(problem) -> (problem, weights)`` is what is learned."""
    import jax
    import jax.numpy as jnp

    from josh_jax.solve import stack_problems
    from josh_jax.solve.differentiable import solve_differentiable

    def one(pr, t):
        p, wts = prepare(pr)
        return errors(solve_differentiable(p, wts, cfg, dc).params, p, t)

    return jax.vmap(one)(stack_problems(probs), jnp.stack([jnp.asarray(t) for t in truths]))


def held_out_summary(names, per_world):
    """The held-out block of the JSON: for each setting (``names[i]``) its (W-MPJPE, root error)
    arrays over the worlds (metres) -> means and per-world W-MPJPE in mm."""
    out = {}
    for name, (mp, rt) in zip(names, per_world):
        out[name] = dict(w_mpjpe_mm=1000 * float(mp.mean()), root_error_mm=1000 * float(rt.mean()))
        out[f"per_world_{name}_mm"] = [1000 * float(v) for v in mp]
    return out


def adam_through_solve(value_and_grad, a, lr: float, steps: int, name: str):
    """Adam (optax) on ``a`` for ``steps`` steps; ``value_and_grad(a)`` -> (training W-MPJPE in
    metres, gradient). Returns each step's record (step, error in mm, ``name``: the value of
    ``a``, grad) and the seconds taken (compiles included)."""
    import numpy as np
    import optax

    opt = optax.adam(lr)
    state = opt.init(a)
    history = []
    t0 = time.perf_counter()
    for step in range(steps + 1):
        loss, g = value_and_grad(a)
        value, grad = np.asarray(a).tolist(), np.asarray(g).tolist()
        history.append({"step": step, "train_mpjpe_mm": 1000 * float(loss), name: value, "grad": grad})
        print(f"step {step:2d}  train W-MPJPE {1000 * float(loss):7.2f} mm  {name} {np.round(value, 4)}")
        if step == steps:
            break
        upd, state = opt.update(g, state)
        a = optax.apply_updates(a, upd)
    return history, time.perf_counter() - t0


def emit(out: dict, path) -> int:
    """Print the result JSON and write it to ``path`` where given."""
    text = json.dumps(out, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0


def errors(params, problem, truth):
    """(W-MPJPE, root error) in metres, first keyframe's camera as the shared frame."""
    import jax.numpy as jnp

    from josh_jax.losses import pose_problem_bodies, scene_geometry, to_world

    geo = scene_geometry(params.cam, problem.scene)
    joints = pose_problem_bodies(params, problem, geo).joints_cam
    K = truth.shape[1]
    Xw = to_world(geo.cam_to_world, joints)[:, :K]
    T0 = geo.cam_to_world[0]
    X0 = jnp.einsum("ba,pknb->pkna", T0[:3, :3], Xw - T0[:3, 3])  # R0^T (X - t0)
    valid = jnp.asarray(problem.human.valid)[: truth.shape[0], :K].astype(X0.dtype)
    d = jnp.linalg.norm(X0[: truth.shape[0]] - truth, axis=-1)  # (P, K, 24)
    n = jnp.maximum(jnp.sum(valid), 1.0)
    return jnp.sum(jnp.mean(d, -1) * valid) / n, jnp.sum(d[..., 0] * valid) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--lr", type=float, default=0.15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import josh_jax.body as jb
    from benchmarks.throughput import machine_info
    from josh_jax.losses import LossWeights
    from josh_jax.solve import SolveConfig
    from josh_jax.solve.differentiable import DiffConfig

    model = jb.load("open")
    train_p, train_t = worlds(model, range(100, 104))
    test_p, test_t = worlds(model, range(200, 206))
    cfg, dc = SolveConfig(method="gn"), DiffConfig()
    base = LossWeights()

    def weights_of(a):
        return base._replace(**{n: getattr(base, n) * jnp.exp(a[i]) for i, n in enumerate(NAMES)})

    def batch_errors(a, probs, truths):
        return solved_errors(probs, truths, lambda pr: (pr, weights_of(a)), cfg, dc)

    def train_loss(a):
        mp, _ = batch_errors(a, train_p, train_t)
        return jnp.mean(mp)

    vg = jax.jit(jax.value_and_grad(train_loss))
    history, train_s = adam_through_solve(vg, jnp.zeros(len(NAMES), jnp.float32), args.lr, args.steps, "log_weights")
    best = min(history, key=lambda h: h["train_mpjpe_mm"])
    a_best = jnp.asarray(best["log_weights"], jnp.float32)

    evaluate = jax.jit(lambda a: batch_errors(a, test_p, test_t))
    learned = {n: float(getattr(weights_of(a_best), n)) for n in NAMES}
    out = dict(
        machine=machine_info("cpu"),
        train_seconds=train_s,
        learned_weights=learned,
        held_out=held_out_summary(
            ("default", "learned"), (evaluate(jnp.zeros(len(NAMES), jnp.float32)), evaluate(a_best))
        ),
        history=history,
    )
    return emit(out, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
