"""Per-frame detail between keyframes: the bundle's track_frame_ray / track_frame_seen (version 3),
the front ends writing them and build_results following them."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from josh_jax import body
from josh_jax import bundle as jbundle
from josh_jax.losses import init_params
from josh_jax.problem import build_problem
from josh_jax.results import build_results
from josh_jax.synthetic.worlds import SynthConfig, make_world


@pytest.fixture(scope="module")
def model():
    return body.load("open")


@pytest.fixture(scope="module")
def world(model):
    w, _ = make_world(model, 0, SynthConfig(num_keyframes=5, width=96, height=72, focal=90.0, pair_window=2))
    return w


def _rays_of(w: jbundle.Window, model, offset) -> tuple[np.ndarray, np.ndarray]:
    """Rays on every frame: the keyframes' own rays interpolated linearly, plus ``offset(t)`` (Fw, 2)."""
    first, Fw = int(w.frame_index[0]), int(w.frame_index[-1] - w.frame_index[0] + 1)
    t = np.arange(Fw) + first
    rays = np.zeros((w.num_tracks, Fw, 2), np.float32)
    for p in range(w.num_tracks):
        J0 = np.asarray(body.rest_joints(model, jnp.asarray(w.track_betas[p].mean(0))))[0]
        root = J0 + w.track_transl[p]
        kray = root[:, :2] / root[:, 2:]
        lin = np.stack([np.interp(t, w.frame_index, kray[:, i]) for i in range(2)], 1)
        rays[p] = lin + offset(t)
    return rays, np.ones((w.num_tracks, Fw), bool)


def _sway(t):
    """A sideways and vertical sway in normalized coordinates, zero on every 5th frame (the keyframes)."""
    s = np.sin(np.pi * (t % 5) / 5.0)
    return np.stack([0.02 * s, -0.01 * s], 1)


def _pixel(res, p: int, f: int) -> np.ndarray:
    T = res.cam_to_world[f].astype(np.float64)
    x = np.linalg.inv(T) @ np.r_[res.joints_world[p, f, 0], 1.0]
    uvw = res.intrinsics.astype(np.float64) @ x[:3]
    return uvw[:2] / uvw[2], x[2]


def test_results_follow_the_frame_rays_between_keyframes(world, model):
    rays, seen = _rays_of(world, model, _sway)
    wd = dataclasses.replace(world, track_frame_ray=rays, track_frame_seen=seen)
    jbundle.validate(wd)
    pr = build_problem(wd, model)
    params = init_params(pr)
    plain = build_results(params, pr, world, model)
    detail = build_results(params, pr, wd, model)
    off = build_results(params, pr, wd, model, frame_detail=False)
    np.testing.assert_array_equal(off.joints_world, plain.joints_world)
    kf = world.frame_index
    # keyframes unchanged, cameras unchanged
    np.testing.assert_allclose(detail.transl[:, kf], plain.transl[:, kf], atol=1e-6)
    np.testing.assert_array_equal(detail.cam_to_world, plain.cam_to_world)
    s = world.scale_to_original
    moved = 0
    for p in range(world.num_tracks):
        for f in range(int(kf[-1]) + 1):
            if not plain.visible[p, f]:
                continue
            (u0, z0), (u1, z1) = _pixel(plain, p, f), _pixel(detail, p, f)
            # the offset is the sway in pixels of the human front end's focal, at the same depth
            want = _sway(np.array([f]))[0] * world.hmr_focal * s
            np.testing.assert_allclose(u1 - u0, want, atol=2e-3 * world.hmr_focal * s)
            assert abs(z1 - z0) < 1e-4 * z0
            moved += np.abs(want).max() > 0
    assert moved > 0


def test_unseen_frames_and_brackets_get_no_offset(world, model):
    rays, seen = _rays_of(world, model, _sway)
    seen[:, 6] = False  # frame 6 itself
    seen[:, 10] = False  # the keyframe that closes frames 6-9 and opens 11-14
    wd = dataclasses.replace(world, track_frame_ray=rays, track_frame_seen=seen)
    pr = build_problem(wd, model)
    params = init_params(pr)
    plain, detail = build_results(params, pr, world, model), build_results(params, pr, wd, model)
    d = np.linalg.norm(detail.transl - plain.transl, axis=-1)
    assert np.all(d[:, 6:15] < 1e-6)
    assert np.all(d[:, [1, 2, 3, 4, 16, 17]] > 1e-4)


def test_bundle_v3_fields_validated_and_round_trip(world, model, tmp_path):
    rays, seen = _rays_of(world, model, _sway)
    wd = dataclasses.replace(world, track_frame_ray=rays, track_frame_seen=seen)
    jbundle.save(tmp_path / "b", [wd])
    meta, (w2,) = jbundle.load(tmp_path / "b")
    assert meta["version"] == 3
    np.testing.assert_array_equal(w2.track_frame_ray, rays)
    np.testing.assert_array_equal(w2.track_frame_seen, seen)
    with pytest.raises(jbundle.BundleError, match="track_frame_seen.*come together"):
        jbundle.validate(dataclasses.replace(world, track_frame_ray=rays))
    with pytest.raises(jbundle.BundleError, match="track_frame_ray.*come together"):
        jbundle.validate(dataclasses.replace(world, track_frame_seen=seen))
    with pytest.raises(jbundle.BundleError, match="track_frame_ray.*shape"):
        jbundle.validate(dataclasses.replace(wd, track_frame_ray=rays[:, :-1], track_frame_seen=seen[:, :-1]))
    with pytest.raises(jbundle.BundleError, match="track_frame_ray.*beyond 20"):
        jbundle.validate(dataclasses.replace(wd, track_frame_ray=rays * 0 + 50.0))
    bad = rays.copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(jbundle.BundleError, match="track_frame_ray.*non-finite"):
        jbundle.validate(dataclasses.replace(wd, track_frame_ray=bad))


def test_front_end_window_writes_the_rays_of_every_frame(model):
    from josh_jax.frontends.pipeline import TrackFit, _window

    T, V, B = 12, model.num_vertices, model.num_betas
    rng = np.random.default_rng(0)
    transl = np.stack([0.3 + 0.05 * np.arange(T), -0.2 + 0.01 * np.arange(T), 4.0 + 0.02 * np.arange(T)], 1)
    fit = TrackFit(
        frames=np.arange(3, 3 + T),  # frames 3 .. 14: the window's keyframes 0, 5, 10, 15 see it on 5 and 10
        rotmats=np.tile(np.eye(3, dtype=np.float32), (T, 24, 1, 1)),
        betas=rng.normal(0, 0.5, B).astype(np.float32),
        transl=transl.astype(np.float32),
        contact=np.zeros((T, V), bool),
    )
    kf = np.array([0, 5, 10, 15])
    K, W, H = len(kf), 32, 24
    scene = dict(
        depth=np.ones((K, H, W)),
        conf=np.ones((K, H, W)),
        **jbundle.pair_fields([(0, 1, np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1))]),
    )
    common = dict(focal=30.0, principal=np.array([16.0, 12.0]), work=(W, H), scale_to_original=2.0)
    w = _window(kf, np.zeros((K, H, W, 3), np.uint8), scene, {7: fit}, model, **common)
    jbundle.validate(w)
    assert w.track_frame_ray.shape == (1, 16, 2) and w.track_frame_seen.shape == (1, 16)
    np.testing.assert_array_equal(w.track_frame_seen[0], (np.arange(16) >= 3) & (np.arange(16) <= 14))
    J0 = np.asarray(body.rest_joints(model, jnp.asarray(fit.betas)))[0]
    root = J0 + transl
    np.testing.assert_allclose(w.track_frame_ray[0, 3:15], root[:, :2] / root[:, 2:], rtol=1e-5)
    # on the keyframes the ray is the keyframe translation's
    for k in (1, 2):
        r = J0 + w.track_transl[0, k]
        np.testing.assert_allclose(w.track_frame_ray[0, kf[k]], r[:2] / r[2], rtol=1e-5)
    plain = _window(kf, np.zeros((K, H, W, 3), np.uint8), scene, {7: fit}, model, **common, frame_detail=False)
    assert plain.track_frame_ray is None and plain.track_frame_seen is None
