"""The differentiable solve (josh_jax.solve.differentiable): implicit gradients against finite
differences (float64) on two synthetic worlds, vmap, jit without recompiles, and the smoothing."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64

from josh_jax.losses import LossWeights, scene_geometry, total_loss
from josh_jax.problem import build_problem, problem_sizes
from josh_jax.solve import SolveConfig, stack_problems
from josh_jax.solve.differentiable import DiffConfig, _forward, _implicit, _prepared, solve_differentiable
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


@pytest.fixture(scope="module", autouse=True)
def _few_mappings_first():
    """This module's fixture compiles programs that map ~40k regions of the 65,530 Linux allows a
    process (XLA:CPU maps each program's code): start it with JAX's compiled programs of earlier test
    files dropped, or a long-lived test worker aborts in the compile (seen in a full run: SIGABRT in
    backend_compile_and_load, after which pytest-xdist hung)."""
    import gc

    jax.clear_caches()
    gc.collect()
    yield


@pytest.fixture(scope="module")
def implicit(open_model):
    """Two float64 worlds, their perturbation directions and jax.grad through the solve (vmapped
    over the worlds) of the sum of their scalars: (probs, W, dirs, f, (g_w, g_t, g_d))."""
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

        stacked = stack_problems(probs)

        def batch_total(wt, transl, depth):
            return jnp.sum(jax.vmap(lambda pr, t, d: f(pr, wt, t, d))(stacked, transl, depth))

        grads = jax.grad(batch_total, argnums=(0, 1, 2))(W, stacked.human.init_transl, stacked.scene.anchor_depth)
    return probs, W, dirs, f, grads


@pytest.mark.slow
def test_implicit_gradients_match_finite_differences_on_two_worlds(implicit):
    """jax.grad through the solve (vmapped over two worlds) against central differences in float64:
    loss weights, the body front end's translations, the scene's depths; 1e-4 relative."""
    probs, W, dirs, f, (g_w, g_t, g_d) = implicit
    with x64():

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
def test_implicit_gradient_matches_forward_mode_through_the_unrolled_solver(implicit):
    """The custom VJP against forward-mode differentiation of the solver's own iterations (both gn
    stages, the LM polish and the Newton steps, unrolled by jax.jvp through ``_forward``): the
    same directional derivative along the first world's translation and depth directions."""
    probs, W, dirs, _, (_, g_t, g_d) = implicit
    pr, (dt, dd) = probs[0], dirs[0]
    with x64():
        _, wd, hp = _prepared(pr, W, CFG, TIGHT)  # as solve_differentiable prepares them

        def unrolled(transl, depth):
            p = with_inputs(pr, transl, depth)
            return solution_scalar(_forward(p, wd, hp, CFG.structure(), TIGHT)[0], p)

        primals = (pr.human.init_transl, pr.scene.anchor_depth)
        _, tangent = jax.jit(lambda: jax.jvp(unrolled, primals, (dt, dd)))()
        want = float(jnp.sum(g_t[0] * dt) + jnp.sum(g_d[0] * dd))
        np.testing.assert_allclose(float(tangent), want, rtol=2e-5)
        assert abs(want) > 0.1


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
