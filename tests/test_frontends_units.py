"""Embedded front ends, part by part, on synthetic inputs with known answers."""

import numpy as np
import pytest

from josh_jax.frontends import blazepose as bp
from josh_jax.frontends.bodyfit import JOINT_MAP, FitWeights, camera_translation, fit_track
from josh_jax.frontends.sfm import SfmResult, dense_depth, scene_arrays

# ------------------------------------------------------------------ detector decoding


def test_anchor_layout_matches_the_detector_output():
    a = bp.ssd_anchors()
    assert a.shape == (2254, 2)
    # stride 8: 28 x 28 cells, 2 anchors each, row-major, centres at (i + 0.5) / 28
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2 * 28], [0.5 / 28, 1.5 / 28])
    # stride 16 starts after 1568; the three stride-32 layers share a 7 x 7 grid with 6 anchors per cell
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(a[1568 + 392], [0.5 / 7, 0.5 / 7])
    np.testing.assert_allclose(a[1568 + 392 + 5], [0.5 / 7, 0.5 / 7])
    np.testing.assert_allclose(a[1568 + 392 + 6], [1.5 / 7, 0.5 / 7])


def test_decode_boxes_by_hand():
    anchors = np.array([[0.25, 0.5]], np.float32)
    raw = np.array([[22.4, -11.2, 44.8, 89.6, 0, 0, 11.2, 0, 0, -22.4, 2.24, 4.48]], np.float32)
    boxes, kps = bp.decode_boxes(raw, anchors)
    # centre (0.25 + 0.1, 0.5 - 0.05), size (0.2, 0.4)
    np.testing.assert_allclose(boxes[0], [0.25, 0.25, 0.45, 0.65], atol=1e-6)
    np.testing.assert_allclose(kps[0], [[0.25, 0.5], [0.3, 0.5], [0.25, 0.4], [0.26, 0.52]], atol=1e-6)


def test_weighted_nms_merges_overlaps_and_keeps_separate_boxes():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], float)
    kps = np.zeros((3, 4, 2))
    kps[:, 0] = [[0.5, 0.5], [0.6, 0.5], [5.5, 5.5]]
    scores = np.array([0.9, 0.6, 0.7])
    out = bp.weighted_nms(boxes, kps, scores, 0.3)
    assert [round(s, 3) for s, _, _ in out] == [0.9, 0.7]
    np.testing.assert_allclose(out[0][1], [0.04, 0, 1.04, 1])  # (0.9 * 0 + 0.6 * 0.1) / 1.5
    np.testing.assert_allclose(out[0][2][0], [0.54, 0.5])
    np.testing.assert_allclose(out[1][1], boxes[2])


def test_letterbox_geometry():
    img = np.full((100, 200, 3), 255, np.uint8)
    lb, s, (px, py) = bp.letterbox(img, 224)
    assert s == pytest.approx(1.12) and (px, py) == (0, 56)  # 112 rows centred in 224
    assert lb[55].max() == 0 and lb[56].min() == 255 and lb[167].min() == 255 and lb[168].max() == 0


# ------------------------------------------------------------------ regions of interest


def test_roi_rotation_and_crop_round_trip():
    up = bp.roi_from_points(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert up.angle == pytest.approx(0.0) and up.size == pytest.approx(250.0)
    right = bp.roi_from_points(np.array([0.0, 0.0]), np.array([10.0, 0.0]))
    assert right.angle == pytest.approx(np.pi / 2)
    rng = np.random.default_rng(0)
    roi = bp.Roi(320.0, 200.0, 180.0, 0.7)
    crop = rng.uniform(0, 256, (20, 2))
    img = roi.to_image(crop, 256)
    M = roi.crop_matrix(256)
    back = img @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(back, crop, atol=1e-9)
    np.testing.assert_allclose(roi.to_image(np.array([128.0, 128.0]), 256), [320, 200])
    # the crop's "up" (decreasing crop y) points from the centre towards the scale point
    r2 = bp.roi_from_points(np.array([50.0, 50.0]), np.array([90.0, 10.0]))
    top = r2.to_image(np.array([128.0, 0.0]), 256) - [50, 50]
    np.testing.assert_allclose(top / np.linalg.norm(top), np.array([40, -40]) / np.hypot(40, 40), atol=1e-9)


def test_one_euro_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    # pixels of a 100-pixel person: 1 px jitter at rest, 3 px per frame when moving
    f = bp.OneEuro()
    noisy = 10 + rng.normal(0, 1, 300)
    out = np.array([f(np.array([x]), t / 30.0, scale=100.0)[0] for t, x in enumerate(noisy)])
    assert out[50:].std() < 0.6 * noisy[50:].std()
    g = bp.OneEuro()
    ramp = np.array([g(np.array([3.0 * t]), t / 30.0, scale=100.0)[0] for t in range(200)])
    assert abs(ramp[-1] - 3.0 * 199) < 3.0  # lags by less than a frame's motion


# ------------------------------------------------------------------ body fit


def _fake_landmarks(model, rotmats, betas):
    from josh_jax import body

    J = np.asarray(body.forward(model, betas, rotmats).joints)
    lm = np.zeros(J.shape[:-2] + (33, 3), np.float32)
    for j, ids, _ in JOINT_MAP:
        for i in ids:
            lm[..., i, :] = J[..., j, :]
    return lm, J


@pytest.mark.slow
def test_body_fit_recovers_a_known_pose(open_model):
    import jax.numpy as jnp

    from josh_jax import body

    rng = np.random.default_rng(1)
    T = 12
    aa = rng.normal(0, 0.25, (T, 24, 3))
    aa[:, 0] = [np.pi, 0, 0] + rng.normal(0, 0.2, (T, 3))  # upright in the camera (y down)
    R = np.asarray(body.rotmats_from_axis_angle(jnp.asarray(aa, jnp.float32)))
    betas = rng.normal(0, 1, 10).astype(np.float32)
    lm, J = _fake_landmarks(open_model, R, betas)
    hip = 0.5 * (lm[:, 23] + lm[:, 24])
    fit = fit_track(
        open_model,
        lm - hip[:, None],
        np.zeros((T, 33, 3)),
        np.ones((T, 33), np.float32),
        500.0,
        np.array([320.0, 240.0]),
        weights=FitWeights(smooth=0.0, pose_prior=1e-5, shape_prior=1e-5),
        smooth_sigma=0.0,
    )
    J2 = np.asarray(body.forward(open_model, fit.betas, fit.rotmats).joints)
    err = np.linalg.norm((J2 - J2[:, :1]) - (J - J[:, :1]), axis=-1)
    assert fit.joint_error.mean() < 0.01
    assert err.mean() < 0.02, err.mean()
    # the root orientation is the camera-frame one (body up = camera -y)
    np.testing.assert_allclose(fit.rotmats[:, 0, :, 1] @ np.array([0, -1.0, 0]), 1.0, atol=0.15)


def test_camera_translation_is_exact_without_noise():
    rng = np.random.default_rng(2)
    joints = rng.normal(0, 0.4, (17, 3))
    t = np.array([0.3, -0.2, 5.0])
    f, c = 600.0, np.array([320.0, 180.0])
    X = joints + t
    pix = X[:, :2] / X[:, 2:] * f + c
    np.testing.assert_allclose(camera_translation(joints, pix, np.ones(17), f, c), t, atol=1e-9)


# ------------------------------------------------------------------ contact


@pytest.mark.slow
def test_stance_contacts_label_the_planted_foot(open_model):
    from josh_jax import body
    from josh_jax.frontends.contact import stance_contacts
    from josh_jax.synthetic.worlds import SynthConfig, _walk

    rng = np.random.default_rng(0)
    betas = np.zeros(10, np.float32)
    rots, trans = _walk(open_model, betas, 60, np.zeros(3), -np.pi / 2, rng, SynthConfig())
    c = stance_contacts(open_model, rots.astype(np.float32), betas)
    verts = np.asarray(body.forward(open_model, betas, rots.astype(np.float32), trans.astype(np.float32)).vertices)
    height = -verts[..., 1]  # world y down, ground at y = 0
    labelled = c.any(1)
    assert labelled.all()  # walking: a foot is always on the ground
    on = height[c]
    assert np.mean(on < 0.03) > 0.9, np.mean(on < 0.03)
    for side in ("left_sole", "right_sole"):
        ids = open_model.vertex_set(side)
        swing = height[:, ids].min(1) > 0.08
        assert not c[swing][:, ids].any()


# ------------------------------------------------------------------ scene arrays


def test_dense_depth_is_exact_on_a_plane():
    rng = np.random.default_rng(0)
    f, w, h = 200.0, 160, 120
    n, d = np.array([0.0, -1.0, -0.3]), -1.5  # plane n . X = d (floor seen from above)
    n /= np.linalg.norm(n)
    xy = rng.uniform([0, 70], [w - 1, h - 1], (60, 2))
    rays = np.c_[(xy - [w / 2, h / 2]) / f, np.ones(len(xy))]
    z = d / (rays @ n)
    assert (z > 0).all()
    depth, dist = dense_depth(xy, z, (w, h))
    from scipy.spatial import Delaunay

    inside = Delaunay(xy).find_simplex(np.c_[np.mgrid[0:h, 0:w][1].ravel(), np.mgrid[0:h, 0:w][0].ravel()]) >= 0
    gy, gx = np.mgrid[0:h, 0:w]
    r = np.stack([(gx - w / 2) / f, (gy - h / 2) / f, np.ones_like(gx, float)], -1)
    with np.errstate(divide="ignore"):
        truth = d / (r @ n)
    np.testing.assert_allclose(depth.ravel()[inside], truth.ravel()[inside], rtol=1e-9)
    assert dist.min() == 0 or dist.min() < 1


def test_scene_arrays_pairs_and_person_pixels():
    K, w, h = 5, 64, 48
    rng = np.random.default_rng(0)
    xy0 = rng.uniform(-1, 1, (200, 2))
    pts = np.c_[xy0, 5.0 + 0.5 * xy0[:, 0]]  # a slanted wall
    T = np.tile(np.eye(4)[:3], (K, 1, 1))
    T[:, 0, 3] = -0.1 * np.arange(K)
    obs = []
    for k in range(K):
        X = pts + T[k, :, 3]
        xy = X[:, :2] / X[:, 2:] * 50 + [w / 2, h / 2]
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        obs.append((xy[ok], np.where(ok)[0]))
    sfm = SfmResult(np.ones(K, bool), T, 50.0, np.array([w / 2, h / 2]), pts, np.full(200, 0.5), tuple(obs))
    person = np.zeros((K, h, w), bool)
    person[:, 10:30, 20:40] = True
    a = scene_arrays(sfm, (w, h), person, pair_window=2)
    pi = a["pair_index"]
    assert np.abs(pi[:, 0] - pi[:, 1]).max() == 2 and (pi[:, 0] != pi[:, 1]).all()
    assert {tuple(p) for p in pi} == {tuple(p[::-1]) for p in pi}  # both orders
    assert (a["conf"][person] == 0).all() and (a["conf"][~person] > 0).any()
    assert (np.bincount(a["corr_pair"]) >= 12).all()
    # invalid pixels (people) carry the depth of a valid pixel (the nearest one)
    d, bad = a["depth"][0], a["conf"][0] <= 0.1
    assert np.isfinite(d).all() and (d > 0).all() and bad[20, 30]
    assert np.isin(d[bad], d[~bad]).all()
    # valid pixels at observed points have the point's depth
    xy, pid = obs[0]
    x, y = np.round(xy).astype(int).T
    ok = ~bad[y, x]
    assert ok.sum() > 50
    np.testing.assert_allclose(d[y[ok], x[ok]], pts[pid[ok], 2] + T[0, 2, 3], rtol=0.02)


def test_tracks_npz_round_trip_keeps_the_fields_and_keys(tmp_path):
    from josh_jax.frontends import TrackFit, load_tracks, save_tracks

    rng = np.random.default_rng(0)
    T, V = 4, 7
    a = TrackFit(
        np.arange(T) * 2,
        rng.normal(size=(T, 24, 3, 3)).astype(np.float32),
        np.zeros(10, np.float32),
        rng.normal(size=(T, 3)).astype(np.float32),
        rng.random((T, V)) > 0.5,
        landmarks=rng.normal(size=(T, 33, 3)).astype(np.float32),
    )
    b = a._replace(landmarks=None, boxes=rng.random((T, 4)))
    flat = save_tracks({3: a, 5: b})
    assert sorted(flat) == sorted(
        ["track_ids"]
        + [f"t3_{k}" for k in ("frames", "rotmats", "betas", "transl", "contact", "landmarks")]
        + [f"t5_{k}" for k in ("frames", "rotmats", "betas", "transl", "contact", "boxes")]
    )
    np.savez(tmp_path / "tracks.npz", **flat)
    back = load_tracks(tmp_path / "tracks.npz")
    assert list(back) == [3, 5] and back[5].landmarks is None and back[3].boxes is None
    for want, got in ((a, back[3]), (b, back[5])):
        for k, v in want.arrays().items():
            w = getattr(got, k)
            assert w.dtype == v.dtype and np.array_equal(w, v), k
