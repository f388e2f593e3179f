"""The JAX objective against an independent PyTorch port, finite differences,
padding invariance, recompilation and NaN handling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64

from josh_jax.losses import LossWeights, Params, init_params, robust_distance, scene_geometry, total_loss
from josh_jax.problem import build_problem, problem_sizes
from josh_jax.synthetic.worlds import SynthConfig, make_world

torch = pytest.importorskip("torch")
from benchmarks.torch_reference import faithful as torch_josh  # noqa: E402

TL = jax.jit(total_loss, static_argnums=(3,))
SMALL = SynthConfig(num_keyframes=6, width=96, height=72, focal=90.0, pair_window=3, stride=8)


@pytest.fixture(scope="module")
def problem_and_model(open_model):
    w, _ = make_world(open_model, seed=3, cfg=SMALL)
    pr = build_problem(w, open_model)
    h = pr.human
    rng = np.random.default_rng(0)
    # extra random contact entries so that every term has several of them
    E = len(h.scale_w)
    K = int(pr.scene.kf_valid.sum())
    A = pr.scene.anchor_depth.shape[1]
    U = int((h.vert_ids > 0).sum()) or 1
    n = min(E, 12)
    scale_w = h.scale_w.copy()
    scale_kf = h.scale_kf.copy()
    scale_anchor = h.scale_anchor.copy()
    scale_ratio = h.scale_ratio.copy()
    scale_vert = h.scale_vert.copy()
    scale_w[:n] = rng.uniform(0.2, 1, n)
    scale_kf[:n] = rng.integers(0, K, n)
    scale_anchor[:n] = rng.integers(0, A, n)
    scale_ratio[:n] = rng.uniform(0.8, 1.2, n)
    scale_vert[:n] = rng.integers(0, U, n)
    # and static entries: same vertex on consecutive keyframes of track 0
    m = min(len(h.static_w), 6)
    static_w = h.static_w.copy()
    static_kf = h.static_kf.copy()
    static_prev = h.static_kf_prev.copy()
    static_vert = h.static_vert.copy()
    static_track = h.static_track.copy()
    static_w[:m] = 1.0
    static_kf[:m] = rng.integers(1, K, m)
    static_prev[:m] = static_kf[:m] - 1
    static_vert[:m] = rng.integers(0, U, m)
    static_track[:m] = 0
    assert h.valid[0, :K].all()
    pr = pr._replace(
        human=h._replace(
            scale_w=scale_w,
            scale_kf=scale_kf,
            scale_anchor=scale_anchor,
            scale_ratio=scale_ratio,
            scale_vert=scale_vert,
            static_w=static_w,
            static_kf=static_kf,
            static_kf_prev=static_prev,
            static_vert=static_vert,
            static_track=static_track,
            # a per-track contact-scale weight (ProblemConfig.contact_consensus) that is not 1
            scale_track_w=np.full_like(h.scale_track_w, 0.6),
        )
    )
    return pr, open_model


def perturbed_params(pr, seed=1):
    p = init_params(pr)
    rng = np.random.default_rng(seed)
    noise = lambda x, s: x + s * rng.normal(size=np.shape(x)).astype(np.float32)  # noqa: E731
    cam = p.cam._replace(
        quat=noise(p.cam.quat, 0.05),
        trans=noise(p.cam.trans, 0.05),
        log_size=noise(p.cam.log_size, 0.1),
        log_focal=p.cam.log_focal + 0.05,
        anchor_depth=noise(p.cam.anchor_depth, 0.02),
    )
    hu = p.human._replace(
        quat=noise(p.human.quat, 0.05),
        transl=noise(p.human.transl, 0.05),
        body=noise(p.human.body, 0.05),
        betas=noise(p.human.betas, 0.1),
    )
    return Params(cam=cam, human=hu)


@pytest.mark.slow
@pytest.mark.parametrize("body_depth", ["focal", "reference"])
@pytest.mark.parametrize("stage", [1, 2])
def test_terms_and_gradients_match_torch_port(problem_and_model, stage, body_depth):
    """Both body-depth models (josh_jax's default and the reference's) against the PyTorch port;
    the perturbed start moves the focal (+5 %), so the two models differ here."""
    pr, model = problem_and_model
    pr = dataclasses.replace(pr, body_depth=body_depth)
    params = perturbed_params(pr)
    wts = LossWeights()
    terms = TL(params, pr, wts, stage)
    cam, hp = torch_josh.params_to_torch(params)
    tot, parts = torch_josh.total(cam, hp, pr, model, wts, stage)
    for name in ("scene", "scale", "prior", "static", "smooth"):
        assert float(parts[name].detach()) > 0, name  # every term is exercised
        np.testing.assert_allclose(float(getattr(terms, name)), float(parts[name].detach()), rtol=2e-4, err_msg=name)
    np.testing.assert_allclose(float(terms.total), float(tot), rtol=2e-4)
    tot.backward()
    grads = jax.grad(lambda p: TL(p, pr, wts, stage).total)(params)
    for group, ref in (("cam", cam), ("human", hp)):
        for name, tv in ref.items():
            g_jax = np.asarray(getattr(getattr(grads, group), name), np.float64)
            g_ref = tv.grad.numpy() if tv.grad is not None else np.zeros_like(g_jax)
            scale = max(np.abs(g_ref).max(), 1e-6)
            np.testing.assert_allclose(g_jax, g_ref, atol=2e-3 * scale, err_msg=f"{group}.{name}")


@pytest.mark.slow
@pytest.mark.parametrize("body_depth", ["focal", "reference"])
def test_gradient_matches_finite_differences(problem_and_model, body_depth):
    pr, _ = problem_and_model
    pr = dataclasses.replace(pr, body_depth=body_depth)
    with x64():
        pr64 = jax.tree_util.tree_map(
            lambda x: jnp.asarray(x, jnp.float64) if np.asarray(x).dtype == np.float32 else jnp.asarray(x), pr
        )
        p = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), perturbed_params(pr, 2))
        f = lambda q: TL(q, pr64, LossWeights(), 2).total  # noqa: E731
        g = jax.grad(f)(p)
        leaves, tree = jax.tree_util.tree_flatten(p)
        rng = np.random.default_rng(3)
        d = [jnp.asarray(rng.normal(size=x.shape)) for x in leaves]
        eps = 1e-6
        plus = jax.tree_util.tree_unflatten(tree, [x + eps * dx for x, dx in zip(leaves, d)])
        minus = jax.tree_util.tree_unflatten(tree, [x - eps * dx for x, dx in zip(leaves, d)])
        fd = (f(plus) - f(minus)) / (2 * eps)
        an = sum(jnp.sum(gx * dx) for gx, dx in zip(jax.tree_util.tree_leaves(g), d))
        np.testing.assert_allclose(float(an), float(fd), rtol=1e-5)


@pytest.mark.slow
def test_padding_changes_nothing(problem_and_model, open_model):
    w, _ = make_world(open_model, seed=3, cfg=SMALL)
    small = build_problem(w, open_model)
    sz = problem_sizes(small)
    big = build_problem(w, open_model, sizes={k: v * 2 if k != "keyframes" else 21 for k, v in sz._asdict().items()})
    for stage in (1, 2):
        a = TL(init_params(small), small, LossWeights(), stage)
        p_big = perturbed_params(big, 0)._replace(cam=init_params(big).cam, human=init_params(big).human)
        b = TL(p_big, big, LossWeights(), stage)
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-7)
    # gradients w.r.t. padded slots are exactly zero and finite
    g = jax.grad(lambda p: TL(p, big, LossWeights(), 2).total)(init_params(big))
    K0 = w.num_keyframes
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.asarray(g.cam.trans)[K0:] == 0) and np.all(np.asarray(g.cam.log_size)[K0:] == 0)
    assert np.all(np.asarray(g.human.transl)[1:] == 0)  # padded tracks


def test_robust_distance_definition():
    a = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    b = jnp.zeros((2, 2))
    gamma = 1.1
    c = (1 / gamma) ** (1 / (gamma - 1))
    np.testing.assert_allclose(robust_distance(a, b, gamma), [0.0, (5 + c) ** gamma - c**gamma], rtol=1e-6)
    # slope 1 at zero (L1-like), finite gradient at exactly zero distance
    g = jax.grad(lambda x: robust_distance(x, jnp.zeros(2), gamma))(jnp.zeros(2))
    assert np.all(np.isfinite(g))
    d = jax.grad(lambda s: robust_distance(jnp.array([s, 0.0]), jnp.zeros(2), gamma))(1e-4)
    np.testing.assert_allclose(d, 1.0, atol=1e-3)


@pytest.mark.parametrize("stage", [1, 2])
def test_vectorized_torch_flavour_matches(problem_and_model, stage):
    """The benchmark's vectorized PyTorch flavour reads josh_jax's padded layout, so it is not an
    independent check of josh_jax; it is checked here against the faithful flavour (the independent
    reference, per-entry loops on the body model itself) and, for the benchmark's sake, against JAX."""
    from benchmarks.torch_reference import vectorized as tv

    pr, model = problem_and_model
    params = perturbed_params(pr, 4)
    wts = LossWeights()
    terms = TL(params, pr, wts, stage)
    D = tv.to_torch(pr)
    cam = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.cam._asdict().items()}
    hum = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.human._asdict().items()}
    tot, parts = tv.objective(cam, hum, D, wts, stage)
    f_cam, f_hp = torch_josh.params_to_torch(params)
    _, faithful_parts = torch_josh.total(f_cam, f_hp, pr, model, wts, stage)
    for name in ("scene", "scale", "prior", "static", "smooth"):
        np.testing.assert_allclose(
            float(parts[name].detach()), float(faithful_parts[name].detach()), rtol=2e-4, err_msg=name
        )
        np.testing.assert_allclose(float(getattr(terms, name)), float(parts[name].detach()), rtol=2e-4, err_msg=name)
    tot.backward()
    grads = jax.grad(lambda p: TL(p, pr, wts, stage).total)(params)
    for group, name, tvv in [("cam", k, v) for k, v in cam.items()] + [("human", k, v) for k, v in hum.items()]:
        g_jax = np.asarray(getattr(getattr(grads, group), name))
        g_ref = tvv.grad.numpy() if tvv.grad is not None else np.zeros_like(g_jax)
        np.testing.assert_allclose(g_jax, g_ref, atol=2e-3 * max(np.abs(g_ref).max(), 1e-6), err_msg=name)


@pytest.mark.slow
def test_full_schedule_final_losses_agree(problem_and_model):
    """JAX, the faithful and the vectorized PyTorch flavours, same start, same (short) schedule."""
    from benchmarks.torch_reference import faithful, vectorized
    from josh_jax.solve import SolveConfig, solve

    pr, model = problem_and_model
    iters, lrs = (60, 30), (0.07, 0.014)
    # the reference's problem and schedule (the PyTorch flavours step the focal once per keyframe)
    pr = dataclasses.replace(pr, body_depth="reference")
    cfg = SolveConfig(iters_stage1=iters[0], iters_stage2=iters[1], focal_updates="reference")
    res = solve(pr, LossWeights(), cfg)
    jax_final = float(res.stage2.history.total[-1])
    v_final, _ = vectorized.solve(pr, LossWeights(), iters, lrs)
    faithful.set_dtype(torch.float32)
    try:
        f_final, _ = faithful.solve(pr, model, LossWeights(), iters, lrs)
    finally:
        faithful.set_dtype(torch.float64)
    # float32 rounding differs between the implementations and this short schedule
    # is volatile (the first steps jump the loss by 40x): 3 % here; the benchmark
    # checks 1 % on the full 500 + 200 schedule
    assert abs(v_final - jax_final) < 0.03 * abs(jax_final)
    assert abs(f_final - jax_final) < 0.03 * abs(jax_final)


@pytest.mark.slow
def test_body_depth_follows_the_focal(problem_and_model):
    """Under body_depth="focal" a change of focal leaves the posed body's pelvis on its pixel
    (the root's z scales by f / f_init, the projection f x / z of the root is unchanged and the
    body's own extent moves it by a fraction of its size / depth). The reference's bodies stay
    at their depth, so their pixels shrink toward the principal point by f / f_init."""
    from josh_jax.losses import pose_problem_bodies

    pr, _ = problem_and_model
    p0 = init_params(pr)
    p1 = p0._replace(cam=p0.cam._replace(log_focal=p0.cam.log_focal + np.log(1.25)))

    def pixels(problem, params):
        geo = scene_geometry(params.cam, jax.tree_util.tree_map(jnp.asarray, problem.scene))
        v = np.asarray(pose_problem_bodies(params, problem, geo).joints_cam[0, :1, 0])  # pelvis, first keyframe
        return float(geo.focal) * v[:, :2] / v[:, 2:]

    focal = dataclasses.replace(pr, body_depth="focal")
    ref = dataclasses.replace(pr, body_depth="reference")
    np.testing.assert_allclose(pixels(focal, p1), pixels(focal, p0), rtol=2e-3, atol=0.05)
    np.testing.assert_allclose(pixels(ref, p1), 1.25 * pixels(ref, p0), rtol=1e-4, atol=1e-3)
