"""The differentiable solve's custom VJP against forward-mode differentiation through the unrolled
solver (float64, a tiny synthetic world)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64
from diff_worlds import CFG, TIGHT, float64_problems, solution_scalar, with_inputs

from josh_jax.losses import LossWeights
from josh_jax.solve.differentiable import _forward, solve_differentiable


@pytest.mark.slow
def test_implicit_gradient_matches_forward_mode_through_the_unrolled_solver(open_model):
    """The custom VJP against forward-mode differentiation of the solver's own iterations (both gn
    stages, the LM polish and the Newton steps, unrolled by jax.jvp through ``_forward``): the
    same directional derivative along a translation and a loss-weight direction."""
    with x64():
        (pr,) = float64_problems(open_model, (2,))
        W = LossWeights(*(jnp.float64(v) for v in LossWeights()))
        dt = jnp.asarray(np.random.default_rng(1).normal(size=pr.human.init_transl.shape))
        hp = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, CFG.hyper()
        )

        def unrolled(transl, wt):
            p = with_inputs(pr, transl, pr.scene.anchor_depth)
            return solution_scalar(_forward(p, wt, hp, CFG.structure(), TIGHT)[0], p)

        def implicit(transl, wt):
            p = with_inputs(pr, transl, pr.scene.anchor_depth)
            return solution_scalar(solve_differentiable(p, wt, CFG, TIGHT), p)

        g_t, g_w = jax.grad(implicit, argnums=(0, 1))(pr.human.init_transl, W)
        wd = W._replace(robust_delta=jnp.float64(TIGHT.smoothing))  # as solve_differentiable sets it
        dw = jax.tree_util.tree_map(jnp.zeros_like, wd)._replace(smooth=jnp.float64(1.0))
        _, tangent = jax.jit(lambda: jax.jvp(unrolled, (pr.human.init_transl, wd), (dt, dw)))()
        want = float(jnp.sum(g_t * dt) + g_w.smooth)
        np.testing.assert_allclose(float(tangent), want, rtol=2e-5)  # measured 2.8e-6
        assert abs(want) > 0.1
