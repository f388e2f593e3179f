"""results.npz as a typed Results (save, load, validate), build_results on a solved window, and
the window join on hand-built windows whose answer is known."""

import dataclasses

import numpy as np
import pytest

from josh_jax.join import join_windows, overlap_similarity, transform_results
from josh_jax.results import RESULT_KEYS, RESULTS_FORMAT_VERSION, Results, ResultsError


def _rot_y(a):
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _truth(F=30, P=1, frames0=0, seed=0) -> Results:
    """A camera moving along x and a person walking along z, every frame visible."""
    rng = np.random.default_rng(seed)
    f = np.arange(F)
    cams = np.tile(np.eye(4), (F, 1, 1))
    for i in range(F):
        cams[i, :3, :3] = _rot_y(0.01 * i)
    cams[:, 0, 3] = 0.05 * f
    cams[:, 1, 3] = 0.01 * np.sin(f)
    pelvis = np.stack([0.2 * np.ones(F), 0.9 * np.ones(F), 3 + 0.04 * f], 1)
    offsets = rng.normal(scale=0.3, size=(24, 3))
    offsets[0] = 0
    joints = pelvis[None, :, None] + offsets[None, None]
    feet = pelvis[None, :, None] + rng.normal(scale=0.3, size=(1, 1, 4, 3))
    return Results(
        frame_index=(frames0 + f).astype(np.int64),
        cam_to_world=cams.astype(np.float32),
        intrinsics=np.array([[500, 0, 320], [0, 500, 180], [0, 0, 1]], np.float32),
        image_size=np.array([640, 360], np.int64),
        person_ids=np.arange(P, dtype=np.int64),
        visible=np.ones((P, F), bool),
        betas=np.zeros((P, 10), np.float32),
        global_orient=np.tile(np.eye(3, dtype=np.float32), (P, F, 1, 1)),
        body_pose=np.tile(np.eye(3, dtype=np.float32), (P, F, 23, 1, 1)),
        transl=np.repeat(pelvis[None], P, 0).astype(np.float32),
        joints_world=np.repeat(joints, P, 0).astype(np.float32),
        foot_vertices_world=np.repeat(feet, P, 0).astype(np.float32),
        points=rng.normal(size=(50, 3)).astype(np.float32),
        point_colors=np.full((50, 3), 200, np.uint8),
        body_model=np.array("josh-open-body"),
    )


def _window(res: Results, lo: int, hi: int) -> Results:
    sl = slice(lo, hi)
    return res.replace(
        frame_index=res.frame_index[sl],
        cam_to_world=res.cam_to_world[sl],
        visible=res.visible[:, sl],
        global_orient=res.global_orient[:, sl],
        body_pose=res.body_pose[:, sl],
        transl=res.transl[:, sl],
        joints_world=res.joints_world[:, sl],
        foot_vertices_world=res.foot_vertices_world[:, sl],
    )


# ---------------------------------------------------------------- Results


def test_results_round_trip_with_a_format_version(tmp_path):
    r = _truth()
    path = r.save(tmp_path / "results.npz")
    with np.load(path) as z:
        assert set(z.files) == set(RESULT_KEYS) | {"format_version"}
        assert int(z["format_version"]) == RESULTS_FORMAT_VERSION
    back = Results.load(path)
    for k in RESULT_KEYS:
        a, b = getattr(r, k), getattr(back, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert back.num_frames == 30 and back.num_people == 1
    with pytest.raises(TypeError):  # no dict face: fields are attributes (to_dict() for the plain dict)
        back["points"]
    # a file written before the version key (a plain npz of the fields) still loads
    np.savez(tmp_path / "old.npz", **r.to_dict())
    assert Results.load(tmp_path / "old.npz").num_frames == 30


def test_results_errors_name_the_field(tmp_path):
    r = _truth()
    with pytest.raises(ResultsError, match="'visible': shape \\(1, 29\\), expected \\(1, 30\\)"):
        r.replace(visible=r.visible[:, :-1]).validate()
    with pytest.raises(ResultsError, match="'joints_world': holds NaN"):
        r.replace(joints_world=np.full_like(r.joints_world, np.nan)).validate()
    with pytest.raises(ResultsError, match="'point_colors': dtype float32 is not uint8"):
        r.replace(point_colors=r.point_colors.astype(np.float32)).validate()
    d = r.to_dict()
    del d["betas"]
    np.savez(tmp_path / "partial.npz", **d)
    with pytest.raises(ResultsError, match="missing betas"):
        Results.load(tmp_path / "partial.npz")
    np.savez(tmp_path / "future.npz", **r.to_dict(), format_version=np.array(RESULTS_FORMAT_VERSION + 1))
    with pytest.raises(ResultsError, match="upgrade josh_jax"):
        Results.load(tmp_path / "future.npz")
    with pytest.raises(ResultsError, match="does not exist"):
        Results.load(tmp_path / "nope.npz")
    for exc in (ResultsError("x"),):
        assert isinstance(exc, ValueError)  # the CLIs report ValueErrors in one line
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.frame_index = np.zeros(3)  # frozen


# ---------------------------------------------------------------- join


def test_join_undoes_a_rigid_change_of_world_exactly():
    truth = _truth()
    a, b = _window(truth, 0, 20), _window(truth, 15, 30)  # 5 shared frames
    R, t = _rot_y(0.7), np.array([0.5, -0.2, 1.0])
    # window b in its own world: x_b = R^T (x - t)
    b_own = transform_results(b, 1.0, R.T, -R.T @ t)
    s_est, R_est, t_est = overlap_similarity(a, b_own)
    assert s_est == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(R_est, R, atol=1e-5)
    np.testing.assert_allclose(t_est, t, atol=1e-5)
    joined, sims = join_windows([a, b_own])
    assert isinstance(joined, Results) and joined.frame_index.tolist() == list(range(30))
    np.testing.assert_allclose(joined.cam_to_world, truth.cam_to_world, atol=1e-5)
    np.testing.assert_allclose(joined.joints_world, truth.joints_world, atol=1e-5)
    np.testing.assert_allclose(joined.foot_vertices_world, truth.foot_vertices_world, atol=1e-5)
    assert joined.visible.all() and len(joined.points) == 100
    np.testing.assert_allclose(sims[1][1], R, atol=1e-5)


def test_join_estimates_the_scale_from_the_cameras_and_takes_the_middle_of_the_overlap():
    truth = _truth(P=1)
    a, b = _window(truth, 0, 20), _window(truth, 14, 30)  # shared frames 14..19
    b = b.replace(person_ids=np.array([5]))  # another person: the scale comes from the cameras alone
    s, R, t = 0.5, _rot_y(-0.4), np.array([0.0, 1.0, -2.0])
    Ri = R.T
    b_own = transform_results(b, 1 / s, Ri, -Ri @ t / s)
    s_est, R_est, t_est = overlap_similarity(a, b_own)
    assert s_est == pytest.approx(s, rel=1e-4)
    np.testing.assert_allclose(R_est, R, atol=1e-5)
    joined, _ = join_windows([a, b_own])
    np.testing.assert_allclose(joined.cam_to_world[:, :3, 3], truth.cam_to_world[:, :3, 3], atol=1e-4)
    assert joined.person_ids.tolist() == [0, 5]
    # frames up to the middle of the overlap (16.5) from the earlier window, after it from the later
    assert joined.visible[0].tolist() == [True] * 17 + [False] * 13
    assert joined.visible[1].tolist() == [False] * 17 + [True] * 13


def test_join_refuses_windows_without_overlap():
    truth = _truth()
    with pytest.raises(ValueError, match="do not overlap"):
        join_windows([_window(truth, 0, 10), _window(truth, 10, 20)])


# ---------------------------------------------------------------- build_results


def test_build_results_on_an_unsolved_window_returns_the_front_end_values(open_model):
    """At the initial parameters the cameras are the identity chain (every camera at the world
    origin up to the depth offset), and the bodies are the bundle's, moved into the world."""
    import josh_jax.body as jb
    from josh_jax.losses import init_params
    from josh_jax.problem import build_problem
    from josh_jax.results import build_results
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    w, _ = make_world(open_model, 2, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))
    pr = build_problem(w, open_model)
    r = build_results(init_params(pr), pr, w, open_model)
    r.validate()
    F = w.frame_index[-1] - w.frame_index[0] + 1
    assert r.num_frames == F and r.frame_index[0] == w.frame_index[0]
    np.testing.assert_allclose(r.cam_to_world[0], np.eye(4), atol=1e-6)  # world = the first keyframe's camera
    np.testing.assert_allclose(r.intrinsics[0, 0], float(pr.init_focal) * w.scale_to_original, rtol=1e-5)
    np.testing.assert_allclose(r.intrinsics[:2, 2], np.asarray(w.principal_point) * w.scale_to_original, rtol=1e-5)
    # on a keyframe, the world body is the bundle's camera-frame body (translation rescaled by
    # f_init / f_hmr) moved by that keyframe's camera
    k = 1
    fi = int(w.frame_index[k] - w.frame_index[0])
    T = r.cam_to_world[fi].astype(np.float64)
    rot = np.asarray(w.track_rotmats[0, k], np.float32)
    tr = np.asarray(w.track_transl[0, k], np.float64).copy()
    tr[2] *= float(pr.init_focal) / w.hmr_focal
    betas = np.asarray(pr.human.init_betas[0])
    cam_joints = np.asarray(jb.forward(open_model, betas, rot, tr.astype(np.float32)).joints, np.float64)
    np.testing.assert_allclose(r.joints_world[0, fi], cam_joints @ T[:3, :3].T + T[:3, 3], atol=2e-4)
    assert r.visible[0, fi] and r.body_model == open_model.name
