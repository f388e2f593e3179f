"""Shared by the differentiable-solve tests: tiny float64 synthetic worlds, the solve settings
and a fixed scalar of the solution (split in files so that two workers can run them at once)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from josh_jax.losses import scene_geometry
from josh_jax.problem import build_problem, problem_sizes
from josh_jax.solve import SolveConfig
from josh_jax.solve.differentiable import DiffConfig
from josh_jax.synthetic.worlds import SynthConfig, make_world

TINY = SynthConfig(num_keyframes=4, width=48, height=36, focal=45.0, cam_speed=0.08, pair_window=3)
CFG = SolveConfig(method="gn", gn_iters_stage1=20, gn_iters_stage2=30, gn_tol=0.0)
# smoothing 1e-2 for the finite-difference check: at the default 1e-3 the central differences
# themselves are not accurate to 1e-4 (measured: the smoothed kernels' curvature needs steps below
# 1e-5, where the solve's round-off, ~1e-8 in the scalar, is amplified to ~1e-3); the gradient code is
# the same for every smoothing
TIGHT = DiffConfig(
    smoothing=1e-2, polish_iters=10, newton_steps=8, newton_cg_iters=3000, adjoint_iters=3000, adjoint_tol=1e-14
)
WEIGHTS_CHECKED = ("smooth", "gamma_scene_2d", "gamma_human", "prior")


def float64_problems(open_model, seeds):
    """float64 problems of one size (one compiled program for all)."""
    worlds = [make_world(open_model, seed=s, cfg=TINY)[0] for s in seeds]
    first = build_problem(worlds[0], open_model, sizes={"keyframes": TINY.num_keyframes})
    sizes = {k: 2 * v for k, v in problem_sizes(first)._asdict().items()}
    sizes["keyframes"] = TINY.num_keyframes
    out = []
    for w in worlds:
        pr = build_problem(w, open_model, sizes=sizes)
        out.append(
            jax.tree_util.tree_map(
                lambda a: jnp.asarray(a, jnp.float64) if np.asarray(a).dtype == np.float32 else jnp.asarray(a), pr
            )
        )
    return out


def solution_scalar(res, pr):
    """A fixed scalar of the whole solution: camera centres, the focal, the bodies' translations."""
    c = scene_geometry(res.params.cam, pr.scene).cam_to_world[:, :3, 3]
    t = res.params.human.transl
    wc = jnp.sin(jnp.arange(c.size, dtype=c.dtype)).reshape(c.shape)
    wt = jnp.cos(jnp.arange(t.size, dtype=t.dtype)).reshape(t.shape)
    return jnp.sum(wc * c) + res.params.cam.log_focal + jnp.sum(wt * t)


def with_inputs(pr, transl, depth):
    human = pr.human._replace(init_transl=transl)
    return dataclasses.replace(pr, human=human, scene=pr.scene._replace(anchor_depth=depth))
