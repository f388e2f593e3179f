"""JOSH3R (``--method josh3r``): the reference's pre-processing, pairs, accumulation and interpolation on
hand-made values, the ONNX session on a tiny random model with the contract, and the demo end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from josh_jax import josh3r
from josh_jax.frontends.official import josh3r as j3
from josh_jax.frontends.onnx_models import FrontEndError


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_processing_sizes_as_preprocess_image():
    # each side round(x * 512 / S) // 16 * 16, factor 512 / S
    assert j3.proc_size(1920, 1080) == ((512, 288), 512 / 1920)
    assert j3.proc_size(640, 480) == ((512, 384), 512 / 640)
    assert j3.proc_size(1000, 700)[0] == (512, 352)  # round(358.4) = 358 -> 352
    assert j3.proc_size(720, 1280)[0] == (288, 512)


def test_crop_box_transform_hand_computed():
    # 512 x 288: the 0.5 crop's corner is (128, 72); boxes are clipped to the image, shifted, doubled
    np.testing.assert_allclose(j3.crop_box(np.array([100, -10, 300, 200]), 512, 288), [-56, -144, 344, 256])
    np.testing.assert_allclose(j3.crop_box(np.array([0, 0, 600, 300]), 512, 288), [-256, -144, 768, 432])
    # an odd size: int(W / 2) = 50, corner (101 - 50) // 2 = 25; int(75 / 2) = 37, (75 - 37) // 2 = 19
    np.testing.assert_allclose(j3.crop_box(np.array([30, 20, 60, 40]), 101, 75), [10, 2, 70, 42])


def test_centre_crop_matches_torch_bilinear():
    import torch

    rng = np.random.default_rng(0)
    img = rng.random((48, 64, 3)).astype(np.float32)
    got = j3.crop_image(img)
    t = torch.from_numpy(img).permute(2, 0, 1)[None, :, 12:36, 16:48]
    want = torch.nn.functional.interpolate(t, size=(48, 64), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(got, want[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_pairs_three_frames_apart():
    assert j3.select_pairs(np.arange(11)) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert j3.select_pairs(np.array([0, 1, 5, 6, 7, 12])) == [(0, 2), (2, 5)]
    assert j3.select_pairs(np.array([4])) == []


def test_rotation_6d_rows_convention():
    R = Rotation.random(20, random_state=1).as_matrix()
    d6 = R[:, :2].reshape(20, 6)  # the first two rows
    np.testing.assert_allclose(j3.rotation_6d_to_matrix(d6), R, atol=1e-12)
    # not orthonormal input: Gram-Schmidt
    M = j3.rotation_6d_to_matrix(np.array([2.0, 0, 0, 1.0, 3.0, 0]))
    np.testing.assert_allclose(M, np.eye(3), atol=1e-12)


def test_a_circular_walk_comes_back_as_that_circle():
    """Hand-made relative motions of a walk round a circle (radius 2 m, 36 steps, heading along the
    tangent) accumulate to that circle; interpolation at half steps lands on the chords' midpoints
    with the halfway heading."""
    r, n = 2.0, 36
    d = 2 * np.pi / n
    rel_R = np.repeat(_ry(-d)[None], n, 0)  # turn left about y by d each step
    rel_t = np.repeat(np.array([[r * np.sin(d), 0.0, r * (1 - np.cos(d))]]), n, 0)  # the chord, in the walker's frame
    T = josh3r.accumulate(rel_R, rel_t)
    th = d * np.arange(n + 1)
    circle = np.stack([r * np.sin(th), 0 * th, r * (1 - np.cos(th))], -1)
    np.testing.assert_allclose(T[:, :3, 3], circle, atol=1e-9)
    np.testing.assert_allclose(T[-1], np.eye(4), atol=1e-9)  # back where it started
    for k in (0, 9, 30):
        np.testing.assert_allclose(T[k, :3, :3], _ry(-th[k]), atol=1e-9)
    times = 3 * np.arange(n + 1)
    q = times[:-1] + 1.5
    Ti = josh3r.interpolate_se3(T, times, q)
    np.testing.assert_allclose(Ti[:, :3, 3], (circle[:-1] + circle[1:]) / 2, atol=1e-9)
    for k in (0, 17):
        np.testing.assert_allclose(Ti[k, :3, :3], _ry(-(th[k] + d / 2)), atol=1e-9)
    # the inverse gives the hand-made motions back
    bR, bt = josh3r.relative_motions(T)
    np.testing.assert_allclose(bR, rel_R, atol=1e-9)
    np.testing.assert_allclose(bt, rel_t, atol=1e-9)


def test_cameras_from_the_root_and_its_camera_view():
    """c_to_w = smpl_to_w @ inv(smpl_to_c): with a known camera path and root path, the cameras come
    back (in the first root's frame), also between the pair frames."""
    rng = np.random.default_rng(2)
    frames = np.arange(13)
    c2w = np.tile(np.eye(4), (13, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(np.outer(np.linspace(0, 0.3, 13), [0, 1, 0])).as_matrix()
    c2w[:, :3, 3] = np.outer(np.linspace(0, 1.2, 13), [1, 0, 0.2])
    s2w = np.tile(np.eye(4), (13, 1, 1))
    s2w[:, :3, :3] = Rotation.from_rotvec(np.outer(np.linspace(0, -0.5, 13), [0, 1, 0])).as_matrix()
    s2w[:, :3, 3] = np.outer(np.linspace(0, 0.9, 13), [1, 0, 1]) + [0, 0, 3]
    s2c = np.linalg.inv(c2w) @ s2w
    pf = np.array([0, 3, 6, 9, 12])
    base = np.linalg.inv(s2w[0]) @ s2w[pf]
    rR, rt = josh3r.relative_motions(base)
    motion = josh3r.Motion(pf, rR, rt + rng.normal(0, 0, rt.shape), [])
    got = josh3r.cameras_from_motion(motion, frames, s2c)
    want = np.linalg.inv(s2w[0]) @ c2w
    np.testing.assert_allclose(got[pf], want[pf], atol=1e-9)
    # between pair frames: interpolated root (linear / slerp), so the error stays small on this smooth path
    assert np.abs(got[:, :3, 3] - want[:, :3, 3]).max() < 0.02


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tiny_josh3r import build

    from josh_jax.frontends.onnx_models import default_models_dir

    d = tmp_path_factory.mktemp("josh3r_models")
    for f in default_models_dir().iterdir():  # the embedded front ends' models, next to the tiny JOSH3R
        if f.suffix == ".onnx" or f.name == "manifest.json":
            (d / f.name).symlink_to(f.resolve())
    build(d / "josh3r.onnx")
    return d


def test_missing_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(FrontEndError) as e:
        j3.josh3r_path(tmp_path)
    msg = str(e.value)
    assert (
        "\n" not in msg and "josh3r.onnx" in msg and "python scripts/export_josh3r.py" in msg and str(tmp_path) in msg
    )


def test_a_renamed_output_is_named(tmp_path):
    from tiny_josh3r import build

    build(tmp_path / "josh3r.onnx", rename={"rel_rot": "rel_rotation"})
    with pytest.raises(FrontEndError, match="output 'rel_rot' missing"):
        j3.Josh3rSession(tmp_path, "cpu")


def test_one_pair_through_the_tiny_model(tiny_models):
    s = j3.Josh3rSession(tiny_models, "cpu")
    rng = np.random.default_rng(0)
    img = rng.random((288, 512, 3)).astype(np.float32)
    o = s.pair(img, img[::-1].copy(), np.array([100, 50, 200, 250.0]), np.array([110, 50, 210, 250.0]))
    np.testing.assert_allclose(o.rel_R @ o.rel_R.T, np.eye(3), atol=1e-9)
    assert o.rel_t.shape == (3,) and np.abs(o.rel_t).max() < 0.06
    assert o.points.shape == (288, 512, 3) and o.colors.shape == (288, 512, 3) and o.colors.dtype == np.uint8
    assert 1.8 < o.points[..., 2].min() and o.points[..., 2].max() < 2.4  # the tiny model's plane, times ~1


def test_boxes_from_landmarks():
    from josh_jax.frontends.pipeline import TrackFit

    lm = np.zeros((2, 33, 3))
    lm[:, :, 0] = np.linspace(10, 30, 33)
    lm[:, :, 1] = np.linspace(5, 50, 33)
    tr = TrackFit(np.arange(2), np.zeros((2, 24, 3, 3)), np.zeros(10), np.zeros((2, 3)), np.zeros((2, 4)), lm)
    np.testing.assert_allclose(josh3r.track_boxes(tr, 2.0), [[20, 10, 60, 100]] * 2)


def _demo_josh3r(argv):
    import contextlib
    import io

    from josh_jax.demo import main

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(argv)
    return rc, buf.getvalue()


@pytest.mark.slow
def test_demo_refuses_a_missing_model_before_decoding(tmp_path):
    from conftest import run_isolated

    empty = tmp_path / "models"
    empty.mkdir()
    rc, err = run_isolated(_demo_josh3r, ["--method", "josh3r", "--models", str(empty), "--out", str(tmp_path / "o")])
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert "josh3r.onnx" in lines[0] and "python scripts/export_josh3r.py" in lines[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.work").exists()


@pytest.mark.slow
def test_demo_checks_the_configured_models_folder(tmp_path):
    """``--set frontends.models_dir=DIR`` (no --models) is the folder the run uses: the refusal names it."""
    from conftest import run_isolated

    empty = tmp_path / "models"
    empty.mkdir()
    argv = ["--method", "josh3r", "--set", f"frontends.models_dir={empty}", "--out", str(tmp_path / "o")]
    rc, err = run_isolated(_demo_josh3r, argv)
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert f"in {empty} (missing)" in lines[0]


def test_a_reexported_model_is_not_resumed_on(tmp_path):
    """The work folder's fingerprint has josh3r.onnx's identity: new weights redo the pairs."""
    import os

    from josh_jax import config as jconfig
    from josh_jax import demo
    from josh_jax.run import RunSpec
    from josh_jax.run.stages import _fingerprint

    video, models = tmp_path / "v.mp4", tmp_path / "models"
    models.mkdir()
    video.write_bytes(b"x")
    (models / "josh3r.onnx").write_bytes(b"random weights")
    args = RunSpec.from_args(
        demo._parser().parse_args([str(video), "--method", "josh3r+joint", "--models", str(models)])
    )
    cfg = jconfig.load(None, [])
    before = _fingerprint(video, args, cfg)
    (models / "josh3r.onnx").write_bytes(b"the released checkpoint")
    os.utime(models / "josh3r.onnx", ns=(1, 1))
    assert _fingerprint(video, args, cfg) != before
    plain = RunSpec.from_args(demo._parser().parse_args([str(video), "--models", str(models)]))
    assert "josh3r_model" not in _fingerprint(video, plain, cfg)  # --method josh: unchanged fingerprint


@pytest.mark.slow
def test_demo_method_josh3r_writes_every_output(tiny_models, tmp_path):
    """The bundled clip (its first 24 frames), embedded front ends, the tiny JOSH3R model."""
    from conftest import run_isolated

    from josh_jax.results import Results

    out = tmp_path / "o"
    rc, err = run_isolated(
        _demo_josh3r, ["--method", "josh3r", "--models", str(tiny_models), "--frames", "24", "--out", str(out)]
    )
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "josh3r" and s["josh3r"]["pairs"] >= 5
    for f in s["outputs"] + ["summary.json"]:
        assert (out / f).exists(), f
    for f in ("results.npz", "scene.glb", "trajectory.png", "overlay.mp4", "animation.glb"):
        assert f in s["outputs"] or (out / f).exists(), f
    res = Results.load(out / "results.npz")
    assert res.visible[0].all() and len(res.points) > 0
    np.testing.assert_allclose(res.cam_to_world[0], np.eye(4), atol=1e-5)  # world = the first camera
    # finite bodies and cameras (that each body is seen where the front end put it is checked exactly by
    # test_every_person_seen_from_its_camera_is_where_the_front_end_put_it)
    assert np.isfinite(res.joints_world).all() and np.isfinite(res.cam_to_world).all()
    assert not (tmp_path / "o.work").exists()


@pytest.mark.slow
def test_every_person_seen_from_its_camera_is_where_the_front_end_put_it():
    """build_results: each track's world body, seen from the derived camera of its frame, is the human
    front end's camera-frame body (the lead track's too: the root frame is the pelvis)."""
    import jax.numpy as jnp

    from josh_jax import body as jbody
    from josh_jax.frontends.pipeline import TrackFit

    model = jbody.load("open")
    rng = np.random.default_rng(3)

    def track(frames):
        T = len(frames)
        rot = Rotation.from_rotvec(rng.normal(0, 0.3, (T * 24, 3))).as_matrix().reshape(T, 24, 3, 3)
        tr = np.array([0.3, 0.1, 4.0]) + rng.normal(0, 0.2, (T, 3))
        return TrackFit(np.asarray(frames), rot, rng.normal(0, 0.5, 10), tr, np.zeros((T, 4), bool))

    tracks = {0: track(np.arange(10)), 4: track(np.arange(3, 14))}
    rel_R = Rotation.from_rotvec(rng.normal(0, 0.2, (3, 3))).as_matrix()
    motion = josh3r.Motion(np.array([0, 3, 6, 9]), rel_R, rng.normal(0, 0.3, (3, 3)), [])
    K = np.array([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]])
    res = josh3r.build_results(motion, tracks, model, K, (640, 360))
    assert list(res.frame_index) == list(range(10)) and list(res.person_ids) == [0, 4]
    assert res.visible[0].all() and list(np.where(res.visible[1])[0]) == list(range(3, 10))
    for p, tid in enumerate((0, 4)):
        tr = tracks[tid]
        for f in (3, 7):
            i = list(tr.frames).index(f)
            want = np.asarray(
                jbody.forward(
                    model,
                    jnp.asarray(josh3r.mean_betas(tr.betas, model.num_betas), jnp.float32),
                    jnp.asarray(tr.rotmats[i], jnp.float32),
                    jnp.asarray(tr.transl[i], jnp.float32),
                ).joints
            )
            w2c = np.linalg.inv(res.cam_to_world[f].astype(np.float64))
            got = res.joints_world[p, f] @ w2c[:3, :3].T + w2c[:3, 3]
            np.testing.assert_allclose(got, want, atol=2e-4)


@pytest.mark.slow
def test_warm_start_puts_the_cameras_and_the_scale_where_it_is_told():
    """josh3r+joint's start: the problem's initial cameras are the given metric cameras and its anchor
    depths the scene depth times the given scale (synthetic world: the true cameras and scale)."""
    import jax

    from josh_jax import body as jbody
    from josh_jax.losses import init_params, scene_geometry
    from josh_jax.problem import build_problem
    from josh_jax.synthetic.worlds import PRESETS, make_world

    model = jbody.load("open")
    w, gt = make_world(model, 0, PRESETS["easy"])
    pr = build_problem(w, model)
    c2w = gt["cam_to_world"][w.frame_index].astype(np.float64)
    scale = 1 / float(gt["depth_scale"])
    f0 = float(np.asarray(pr.init_focal))
    # with and without the contact-scale entries (g = 1 / min size); base focal = the initial focal (the
    # default, ProblemConfig.base_focal="initial") or another one (base_focal="bundle")
    for enforce, bf_ratio in ((False, 1.0), (True, 1.0), (False, 1.15), (True, 0.9)):
        sc = pr.scene._replace(enforce_scale=np.array(enforce), base_focal=np.asarray(pr.scene.base_focal) * bf_ratio)
        p0 = pr._replace(scene=sc)
        warm = josh3r.warm_start(p0, w, c2w, scale)
        geo = scene_geometry(init_params(warm).cam, jax.tree_util.tree_map(np.asarray, warm.scene))
        K0 = w.num_keyframes
        bf = float(np.asarray(sc.base_focal)[0])
        # metres per world unit: 1 / g = min size = scale x base focal / focal when enforced, else 1
        m = scale * bf / f0 if enforce else 1.0
        got = np.asarray(geo.cam_to_world, np.float64)[:K0]
        np.testing.assert_allclose(got[:, :3, :3], c2w[:, :3, :3], atol=2e-5)
        np.testing.assert_allclose(got[:, :3, 3] * m, c2w[:, :3, 3], atol=1e-4, err_msg=f"{enforce} {bf_ratio}")
        # each keyframe's median depth (anchor 1) is metric: the scene's median depth x the scale (with a
        # base focal other than the focal the other anchors follow the reference's focal reparametrisation)
        cam1 = init_params(warm).cam
        cam1 = cam1._replace(anchor_depth=np.ones_like(np.asarray(cam1.anchor_depth)))
        z = np.asarray(scene_geometry(cam1, jax.tree_util.tree_map(np.asarray, warm.scene)).anchor_depth)[:K0]
        med = np.asarray(pr.scene.median_depth)[:K0, None]
        np.testing.assert_allclose(z * m / med, scale, rtol=1e-4)
    # the default start is unchanged by the new field
    assert pr.scene.init_log_size is None and pr.scene.init_cam_quat is None


def test_a_window_without_the_lead_person_stacks_with_warm_ones(tmp_path):
    """josh3r+joint: a window JOSH3R cannot place keeps the default start, with the warm problems'
    structure, so that the batch CLI's vmapped solve can stack it with them."""
    import types

    import jax

    from josh_jax import body as jbody
    from josh_jax.losses import init_params
    from josh_jax.problem import build_problem
    from josh_jax.run import stages as demo
    from josh_jax.solve import stack_problems
    from josh_jax.synthetic.worlds import PRESETS, make_world

    model = jbody.load("open")
    w, gt = make_world(model, 0, PRESETS["easy"])
    assert w.cam_rotation is None and 99 not in list(w.track_ids)
    pr = build_problem(w, model)
    warm = josh3r.warm_start(pr, w, gt["cam_to_world"][w.frame_index].astype(np.float64), 1.0)
    motion = josh3r.Motion(np.array([0, 3]), np.eye(3)[None], np.zeros((1, 3)), [], np.ones(1), lead=99)
    josh3r.save_motion(tmp_path / demo.JOSH3R_MOTION, motion)
    cold = demo.warm_problem(types.SimpleNamespace(work=tmp_path, model=model), pr, w)
    assert jax.tree_util.tree_structure(cold) == jax.tree_util.tree_structure(warm)
    stack_problems([cold, warm])  # raised on the None fields before
    for a, b in zip(jax.tree_util.tree_leaves(init_params(cold)), jax.tree_util.tree_leaves(init_params(pr))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the same start as the plain problem


def test_keyframe_cameras_from_a_simulated_josh3r():
    """The true relative root motion through keyframe_cameras gives the true cameras back (world = the
    first root frame), from the window's camera-frame roots (synthetic world, no HMR noise)."""
    import dataclasses

    from josh_jax import body as jbody
    from josh_jax.synthetic.worlds import PRESETS, make_world

    model = jbody.load("open")
    cfg = dataclasses.replace(PRESETS["easy"], hmr_depth_noise=0.0, hmr_pose_noise=0.0, hmr_betas_noise=0.0)
    w, gt = make_world(model, 1, cfg)
    kf = np.asarray(w.frame_index)
    T = np.tile(np.eye(4), (len(kf), 1, 1))
    T[:, :3, :3] = gt["global_orient"][0, kf]
    T[:, :3, 3] = gt["joints_world"][0, kf, 0]
    rR, rt = josh3r.relative_motions(np.linalg.inv(T[0]) @ T)
    motion = josh3r.Motion(kf, rR, rt, [])
    # the synthetic HMR depth assumes the diagonal focal: read it with the true focal, as a solve would
    cams = josh3r.keyframe_cameras(motion, w, model, f_init=cfg.focal)
    want = np.linalg.inv(T[0]) @ gt["cam_to_world"][kf].astype(np.float64)
    np.testing.assert_allclose(cams[:, :3, :3], want[:, :3, :3], atol=2e-3)
    np.testing.assert_allclose(cams[:, :3, 3], want[:, :3, 3], atol=5e-3)


@pytest.mark.slow
def test_demo_method_josh3r_joint_runs(tiny_models, tmp_path):
    """josh3r+joint: the joint method's outputs, the solve started at the tiny JOSH3R's cameras."""
    from conftest import run_isolated

    out = tmp_path / "o"
    argv = ["--method", "josh3r+joint", "--models", str(tiny_models), "--frames", "24", "--out", str(out)]
    argv += ["--set", "solve.iters_stage1=60", "--set", "solve.iters_stage2=20", "--no-overlay", "--baseline"]
    rc, err = run_isolated(_demo_josh3r, argv)
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "josh3r+joint" and s["windows"] >= 1
    for f in ("results.npz", "init.npz", "loss_curve.png", "scene.glb", "summary.json"):
        assert (out / f).exists(), f
    assert "default start is used" not in err and "cameras are kept" not in err, err


@pytest.mark.slow
def test_demo_method_josh3r_on_the_official_front_ends(smpl_files, tmp_path):
    """--frontends official: VIMO's fits (tiny random models) are the human front end; the boxes are the
    segmenter's."""
    from conftest import run_isolated
    from tiny_josh3r import build as build_josh3r
    from tiny_official import build

    from josh_jax.frontends.official import images as im
    from josh_jax.results import Results

    models = build(tmp_path / "models", mast3r_size=im.mast3r_sizes(640, 360, 256)[1])
    build_josh3r(Path(models) / "josh3r.onnx")
    out = tmp_path / "o"
    argv = ["--method", "josh3r", "--frontends", "official", "--models", str(models), "--smpl"]
    argv += [str(smpl_files["plain"]), "--frames", "31", "--out", str(out), "--no-overlay"]
    argv += ["--set", "frontends.work_side=256", "--set", "frontends.pair_window=3"]
    rc, err = run_isolated(_demo_josh3r, argv)
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "josh3r" and s["front_ends"] == "official" and s["josh3r"]["pairs"] >= 9
    res = Results.load(out / "results.npz")
    assert np.isfinite(res.cam_to_world).all() and np.isfinite(res.joints_world).all()
    assert res.visible[0].all() and (out / "scene.glb").is_file()


def test_the_batch_cli_passes_the_method_to_each_video(tmp_path):
    from josh_jax import batch

    for method in ("josh3r", "josh3r+joint"):
        args = batch._parser().parse_args(["v.mp4", "--out", str(tmp_path), "--method", method, "--models", "M"])
        spec = batch.video_spec(Path("v.mp4"), tmp_path / "v", args)
        assert spec.method == method and spec.models == Path("M")
    spec = batch.video_spec(Path("v.mp4"), tmp_path / "v", batch._parser().parse_args(["v.mp4", "--out", "x"]))
    assert spec.method == "josh"
