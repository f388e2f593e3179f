"""The differentiable solve (josh_jax.solve.differentiable): implicit gradients against finite
differences (float64) on two synthetic worlds, vmap, jit without recompiles, and the smoothing."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64
from diff_worlds import CFG, TIGHT, TINY, WEIGHTS_CHECKED, float64_problems, solution_scalar, with_inputs

from josh_jax.losses import LossWeights, total_loss
from josh_jax.problem import build_problem
from josh_jax.solve import SolveConfig
from josh_jax.solve.differentiable import DiffConfig, _implicit, solve_differentiable
from josh_jax.synthetic.worlds import make_world


@pytest.mark.slow
def test_implicit_gradients_match_finite_differences_on_two_worlds(open_model):
    """jax.grad through the solve (vmapped over two worlds) against central differences in float64:
    loss weights, the body front end's translations, the scene's depths; 1e-4 relative."""
    with x64():
        probs = float64_problems(open_model, (2, 3))
        W = LossWeights(*(jnp.float64(v) for v in LossWeights()))
        rng = np.random.default_rng(0)
        dirs = [
            (
                jnp.asarray(rng.normal(size=pr.human.init_transl.shape)),
                jnp.asarray(rng.normal(size=pr.scene.anchor_depth.shape)),
            )
            for pr in probs
        ]

        def f(pr, wt, transl, depth):
            p = with_inputs(pr, transl, depth)
            return solution_scalar(solve_differentiable(p, wt, CFG, TIGHT), p)

        for pr in probs:  # the gradient is that of a stationary point: the solve reached one
            res = solve_differentiable(pr, W, CFG, TIGHT)
            assert bool(res.converged) and float(res.stationarity) < 1e-6

        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *probs)
        T = stacked.human.init_transl
        D = stacked.scene.anchor_depth

        def batch_total(wt, transl, depth):
            return jnp.sum(jax.vmap(lambda pr, t, d: f(pr, wt, t, d))(stacked, transl, depth))

        g_w, g_t, g_d = jax.grad(batch_total, argnums=(0, 1, 2))(W, T, D)

        def central(g, h=5e-5):
            """Central differences with one Richardson step (h and h/2): error O(h^4)."""
            d1 = float(g(h) - g(-h)) / (2 * h)
            d2 = float(g(h / 2) - g(-h / 2)) / h
            return (4 * d2 - d1) / 3

        fd_w = {n: 0.0 for n in WEIGHTS_CHECKED}
        for i, pr in enumerate(probs):
            t0, d0 = pr.human.init_transl, pr.scene.anchor_depth
            for name in fd_w:
                fd_w[name] += central(lambda e, n=name: f(pr, W._replace(**{n: getattr(W, n) + e}), t0, d0))
            dt, dd = dirs[i]
            fd_t = central(lambda e: f(pr, W, t0 + e * dt, d0))
            fd_d = central(lambda e: f(pr, W, t0, d0 + e * dd))
            np.testing.assert_allclose(float(jnp.sum(g_t[i] * dt)), fd_t, rtol=1e-4)
            np.testing.assert_allclose(float(jnp.sum(g_d[i] * dd)), fd_d, rtol=1e-4)
            assert abs(fd_t) > 0.1 and abs(fd_d) > 0.1  # the check is not of zeros
        for name, fd in fd_w.items():
            # relative 1e-4 where the derivative is not ~0 (the prior's is ~1e-6 on these worlds)
            np.testing.assert_allclose(float(getattr(g_w, name)), fd, rtol=1e-4, atol=1e-5, err_msg=name)
        assert abs(fd_w["smooth"]) > 0.1


@pytest.mark.slow
def test_new_values_reuse_the_program_and_the_result_reports_convergence(open_model):
    """float32: a second call with other weights and front-end values does not recompile; the
    result's convergence flag reports its stationarity; the smoothing must be positive."""
    (pr,) = [jax.tree_util.tree_map(jnp.asarray, p) for p in _problems_f32(open_model)]
    dc = DiffConfig()
    res = solve_differentiable(pr, LossWeights(), CFG, dc)
    # float32 with the default settings does not reach DiffConfig.stationarity_tol here (measured
    # 0.04): reported, not hidden; the flag must be a real comparison of the two numbers
    assert bool(res.converged) == bool(float(res.stationarity) <= dc.stationarity_tol) and int(res.free) > 0
    fn = _implicit(CFG.structure(), dc)
    before = fn._cache_size()
    pr2 = dataclasses.replace(pr, human=pr.human._replace(init_transl=pr.human.init_transl * 1.01))
    jax.block_until_ready(solve_differentiable(pr2, LossWeights(smooth=0.3), CFG, dc))
    assert fn._cache_size() == before
    with pytest.raises(ValueError, match="smoothing"):
        DiffConfig(smoothing=0.0)
    with pytest.raises(ValueError, match="gn"):
        solve_differentiable(pr, LossWeights(), SolveConfig(), dc)


def _problems_f32(open_model):
    w, _ = make_world(open_model, seed=2, cfg=TINY)
    return [build_problem(w, open_model, sizes={"keyframes": TINY.num_keyframes})]


def test_robust_delta_zero_is_the_reference_kernel_and_positive_smooths_it(open_model):
    """LossWeights.robust_delta = 0 leaves every term bit for bit; > 0 smooths the kink at 0."""
    from josh_jax.losses import _robust_from_sq, init_params

    sq = jnp.array([0.0, 1e-8, 0.25, 4.0])
    np.testing.assert_array_equal(np.asarray(_robust_from_sq(sq, 1.1, 0.0)), np.asarray(_robust_from_sq(sq, 1.1)))
    smooth = lambda s: _robust_from_sq(s, 1.1, 1e-3)  # noqa: E731
    assert float(smooth(jnp.zeros(()))) == 0.0
    # the smoothed kernel is C1 at 0: its gradient in the residual vanishes there, and is close to
    # the kernel's slope (1) well outside delta
    r = lambda x: smooth(jnp.sum(x * x))  # noqa: E731
    assert float(jnp.linalg.norm(jax.grad(r)(jnp.zeros(3)))) == 0.0
    np.testing.assert_allclose(
        float(jax.grad(lambda n: smooth(n * n))(1.0)),
        float(jax.grad(lambda n: _robust_from_sq(n * n, 1.1))(1.0)),
        rtol=1e-5,
    )
    (pr,) = _problems_f32(open_model)
    p = init_params(pr)
    for stage in (1, 2):
        a = total_loss(p, pr, LossWeights(), stage)
        b = total_loss(p, pr, LossWeights(robust_delta=0.0), stage)
        for x, y in zip(a, b):
            assert float(x) == float(y)
        c = total_loss(p, pr, LossWeights(robust_delta=1e-3), stage)
        assert abs(float(c.total) - float(a.total)) < 1e-2 * abs(float(a.total))
