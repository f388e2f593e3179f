"""Official front ends: contracts, pre/post-processing against hand-computed values, runners on tiny models."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_isolated

from josh_jax.frontends import FrontEndError
from josh_jax.frontends.official import CONTRACTS, REQUIRED, OfficialModels, missing_models
from josh_jax.frontends.official import images as im
from josh_jax.frontends.official.people import IouTracker, chunks, detections, window_picks
from josh_jax.frontends.official.scene import focal_shift, match_pair, pi3x_scene, window_pairs

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "josh_jax" / "data" / "example" / "walk.mp4"  # 640 x 360
TINY_WORK = 256  # the tiny MASt3R runs at long side 256 (the default is MASt3R's 512) to keep matching quick


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx", reason="the tiny models are exported with torch.onnx (dev extra)")
    from tiny_official import build

    return build(tmp_path_factory.mktemp("tiny"), mast3r_size=im.mast3r_sizes(640, 360, TINY_WORK)[1])


# ---------------------------------------------------------------- contracts


def test_manifest_states_every_official_contract():
    manifest = json.loads((ROOT / "models_onnx" / "manifest.json").read_text())["models"]
    for name in REQUIRED:
        entry = manifest[name]
        for key in ("file", "inputs", "outputs", "preprocess", "postprocess", "source", "license", "export"):
            assert entry[key] == CONTRACTS[name][key], (
                f"{name}.{key}: regenerate with "
                "python -m josh_jax.frontends.official.contracts models_onnx/manifest.json"
            )
        assert "sha256" in entry


def test_missing_models_are_listed_with_their_scripts(tmp_path):
    (tmp_path / CONTRACTS["deco"]["file"]).write_bytes(b"")
    gone = missing_models(tmp_path)
    assert len(gone) == len(REQUIRED) - 1
    assert any("vimo_backbone.onnx (scripts/export_vimo.py)" == g for g in gone)
    assert not any("deco.onnx" in g for g in gone)
    with pytest.raises(FrontEndError, match="missing: person_segmenter.onnx"):
        OfficialModels(tmp_path)


@pytest.mark.slow
def test_contract_mismatches_are_named(tmp_path):
    pytest.importorskip("onnx")
    from tiny_official import build

    build(tmp_path / "a", backbone_channels=1024)
    with pytest.raises(FrontEndError, match=r"vimo_backbone: output 'feature' has shape \[.*1024.*1280"):
        OfficialModels(tmp_path / "a")
    build(tmp_path / "b", rename={"feature": "features"})
    with pytest.raises(FrontEndError, match="vimo_backbone: output 'feature' missing"):
        OfficialModels(tmp_path / "b")


@pytest.mark.slow
def test_providers_cpu_and_fallback(tiny):
    import onnxruntime as ort

    assert OfficialModels(tiny, device="cpu").providers == ["CPUExecutionProvider"]
    auto = OfficialModels(tiny, device="auto").providers
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert auto[0] == "CUDAExecutionProvider"
    else:
        assert auto == ["CPUExecutionProvider"]
        with pytest.raises(FrontEndError, match=r"\.\[gpu\]"):
            OfficialModels(tiny, device="gpu")


@pytest.mark.slow
def test_export_size_mismatch_names_the_export_command(tiny, tmp_path, smpl_files):
    import josh_jax.body as jb
    from josh_jax.frontends import FrontEndConfig, probe
    from josh_jax.frontends.official import run_official

    info = probe(CLIP, 0, 20)
    with pytest.raises(FrontEndError, match=r"mast3r.onnx was exported for 256x144.*export_mast3r.py --size 512x288"):
        run_official(info, jb.load(smpl_files["plain"]), FrontEndConfig(models_dir=str(tiny)), progress=False)
    with pytest.raises(FrontEndError, match="--smpl"):
        run_official(info, jb.load("open"), FrontEndConfig(models_dir=str(tiny)), progress=False)


# ---------------------------------------------------------------- pre-processing, hand-computed


def _ramp(w=256, h=256):
    """RGB frame with R = x, G = y, B = 77 (uint8)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full_like(x, 77)], -1).astype(np.uint8)


def test_tram_crop_maps_the_dilated_square():
    box = np.array([78, 28, 178, 228.0])  # centre (128, 128), side 200 -> 240 after TRAM's 1.2
    c, s = im.tram_center_scale(box)
    assert np.allclose(c, [128, 128]) and s == pytest.approx(1.2)
    crop = im.tram_crop(_ramp(), c, s)
    assert crop.shape == (3, 256, 192)
    # crop column j (after the 32:224 cut) shows frame x = 8 + (j + 32) * 240 / 256; row i shows y = 8 + i * 240/256
    j, i = np.arange(192), np.arange(256)
    want_r = ((8 + (j + 32) * 240 / 256) / 255 - 0.485) / 0.229
    want_g = ((8 + i * 240 / 256) / 255 - 0.456) / 0.224
    tol = 0.6 / 255 / 0.224  # uint8 rounding of the warp
    assert np.abs(crop[0, 100] - want_r).max() < tol
    assert np.abs(crop[1, :, 50] - want_g).max() < tol
    assert np.allclose(crop[2], (77 / 255 - 0.406) / 0.225, atol=tol)


def test_deco_crop_is_cut_at_the_border_and_bgr():
    frame = _ramp(300, 200)
    crop = im.deco_crop(frame, np.array([0, 20, 50, 120.0]))  # centre (25, 70), side 120: x from -35 -> 0
    assert crop.shape == (3, 256, 256)
    assert np.allclose(crop[0], 77 / 255)  # BGR: channel 0 is blue
    # kept x range [0, 85), y range [10, 130): the ramp's ends land on the crop's ends
    assert crop[2, 0, 0] * 255 == pytest.approx(0, abs=1) and crop[2, 0, -1] * 255 == pytest.approx(84, abs=1.5)
    assert crop[1, 0, 0] * 255 == pytest.approx(10, abs=1) and crop[1, -1, 0] * 255 == pytest.approx(129, abs=1.5)


def test_working_and_model_sizes():
    assert im.mast3r_sizes(1920, 1080) == ((512, 288), (512, 288))
    assert im.mast3r_sizes(640, 480) == ((512, 384), (512, 384))
    assert im.mast3r_sizes(1000, 333) == ((512, 170), (512, 160))
    assert im.pi3x_size(1920, 1080) == (672, 378)  # 254016 px <= 255000
    w, h = im.pi3x_size(640, 480)
    assert w % 14 == 0 and h % 14 == 0 and w * h <= 255000 and abs(w / h - 4 / 3) < 0.05
    a = np.arange(170 * 512).reshape(170, 512)
    assert np.array_equal(im.centre_crop(a, (512, 160)), a[5:165])


def test_letterbox_input():
    x, k = im.letterbox_input(_ramp(320, 160), (160, 160))
    assert x.shape == (1, 3, 160, 160) and k == 0.5
    assert np.all(x[0, :, 80:] == 0)  # padded bottom
    assert x[0, 2, :80].mean() == pytest.approx(77 / 255, abs=1e-3)


# ---------------------------------------------------------------- people


def test_segmenter_outputs_back_to_frame_pixels():
    out = {
        "boxes": np.array([[10, 20, 50, 80], [0, 0, 5, 5.0]]),
        "scores": np.array([0.9, 0.5]),
        "masks": np.ones((2, 100, 100), np.float32),
    }
    b, s, m = detections(out, 0.5, (160, 120))
    assert np.allclose(b, [[20, 40, 100, 120]]) and len(s) == 1  # y2 = 160 clipped to the frame's 120
    assert m.shape == (1, 60, 80)  # the frame's part of the padded input


def test_tracker_keeps_ids_and_splits_gaps():
    tr = IouTracker(max_gap=2)
    a, b = np.array([0, 0, 10, 20.0]), np.array([50, 0, 60, 20.0])
    assert tr.update(0, np.stack([a, b])) == [0, 1]
    assert tr.update(1, np.stack([b + 1, a + 1])) == [1, 0]
    assert tr.update(2, np.stack([a + 2])) == [0]
    assert tr.update(6, np.stack([b])) == [2]  # track 1 last seen 5 frames ago: a new track
    assert tr.frames[0] == [0, 1, 2]


def test_chunks_and_tram_windows():
    fr = np.r_[np.arange(20), np.arange(25, 31), np.arange(40, 60)]
    runs = chunks(fr)
    assert [fr[r][0] for r in runs] == [0, 40] and [len(r) for r in runs] == [20, 20]
    for n in range(16, 41):
        got = np.sort(np.concatenate([s + rows for s, rows in window_picks(n)]))
        assert np.array_equal(got, np.arange(n)), n
    # TRAM for 20 frames: first window keeps 0-8, windows 1-3 keep their 9th frame, the last keeps 12-19
    assert [(s, list(r)) for s, r in window_picks(20)] == [
        (0, list(range(9))),
        (1, [8]),
        (2, [8]),
        (3, [8]),
        (4, list(range(8, 16))),
    ]
    assert window_picks(15) == []


# ---------------------------------------------------------------- scene


def _pinhole_points(w, h, f, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(2, 5, (h, w))
    u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    return np.stack([u / f * z, v / f * z, z - shift], -1).astype(np.float32)


def test_focal_and_shift_of_a_pinhole_point_map():
    w, h, f = 320, 240, 250.0
    fn, sh = focal_shift(_pinhole_points(w, h, f, shift=0.7), np.ones((h, w), bool))
    # the normalised focal is in units of the half diagonal; pixel centres shift uv by half a pixel
    assert fn * np.hypot(w, h) / 2 == pytest.approx(f, rel=5e-3)
    assert sh == pytest.approx(0.7, abs=0.02)
    assert focal_shift(_pinhole_points(w, h, f), np.zeros((h, w), bool)) == (1.0, 0.0)


def test_pi3x_scene_depth_conf_focal():
    w, h = 672, 378
    pts = np.stack([_pinhole_points(w, h, 0.6 * w, seed=s) for s in range(3)])
    logits = np.full((3, h, w, 1), 2.0, np.float32)
    depth, conf, focal = pi3x_scene(pts, logits, (512, 288), (512, 288))
    assert depth.shape == conf.shape == (3, 288, 512)
    assert focal == pytest.approx(0.6 * 512, rel=5e-3)  # 0.6 x Pi3X width, in working pixels
    assert np.allclose(conf, 1 / (1 + np.exp(-2.0)), atol=1e-6)
    assert 2 <= depth.min() and depth.max() <= 5


def test_matching_recovers_a_shift_and_masks_people():
    rng = np.random.default_rng(0)
    H, W, D = 48, 64, 24
    A = rng.standard_normal((H, W, D)).astype(np.float32)
    A /= np.linalg.norm(A, axis=-1, keepdims=True)
    B = np.roll(A, (2, 3), axis=(0, 1))  # pixel (x, y) of image 1 is (x + 3, y + 2) in image 2
    desc = np.stack([A, B, B, A])
    qc = np.stack([np.full((H, W), 2.0), np.full((H, W), 3.0), np.full((H, W), 3.0), np.full((H, W), 2.0)])
    person = np.zeros((H, W), bool)
    person[:16, :16] = True
    xy1, xy2, conf = match_pair(desc, qc, person1=person)
    assert len(xy1) >= (H // 8) * (W // 8)  # every grid point, both directions
    assert np.array_equal((xy1 + [3, 2]) % [W, H], xy2)
    assert len(np.unique(np.c_[xy1, xy2], axis=0)) == len(xy1)
    on_person = person[xy1[:, 1].astype(int), xy1[:, 0].astype(int)]
    assert on_person.any() and np.all(conf[on_person] == 0)
    assert np.allclose(conf[~on_person], np.sqrt(6.0))
    assert window_pairs(4, 2) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


# ---------------------------------------------------------------- end to end on tiny models


@pytest.mark.slow
def test_pi3x_groups_of_the_exported_frame_count(tiny):
    from josh_jax.frontends.official.pipeline import _pi3x

    models = OfficialModels(tiny, device="cpu")
    assert models.sessions["pi3x"].get_inputs()[0].shape[1] == 3
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (7, 378, 672, 3), dtype=np.uint8)
    pts, logits = _pi3x(models, frames)  # groups of 3, 3, 1 + 2 copies
    assert pts.shape == (7, 378, 672, 3) and logits.shape == (7, 378, 672, 1)
    # the tiny model's confidence depends on each frame's own pixels: rows stay in order
    for i in (0, 4, 6):
        group = np.repeat(frames[i : i + 1], 3, 0)
        _, lg = _pi3x(models, group)
        assert np.allclose(lg[0], logits[i], atol=1e-6)


def _official_bundle(models, smpl, out):
    """run_official on the example clip's first 31 frames, saved and read back as a bundle."""
    import josh_jax.body as jb
    from josh_jax.bundle import load, save
    from josh_jax.frontends import FrontEndConfig, probe, save_tracks
    from josh_jax.frontends.official import run_official

    model = jb.load(smpl)
    fo = run_official(
        probe(CLIP, 0, 31),
        model,
        FrontEndConfig(models_dir=str(models), work_side=TINY_WORK, pair_window=3),
        progress=False,
        log=lambda m: None,
    )
    save(
        out,
        fo.windows,
        dataclasses.replace(fo.meta, body_model=str(smpl)),
        extras={"tracks.npz": save_tracks(fo.tracks)},
    )
    meta, windows = load(out, model.num_vertices)
    w = windows[0]
    return dict(
        meta=meta,
        frame_index=w.frame_index,
        image_size=w.image_size,
        init_focal=w.init_focal,
        hmr_focal=w.hmr_focal,
        depth=w.depth,
        pair_index=w.pair_index,
        corr_pix=w.corr_pix,
        corr_conf=w.corr_conf,
        track_valid=w.track_valid,
        track_transl=w.track_transl,
        track_contact=w.track_contact,
        track_rotmats=w.track_rotmats,
        seconds=fo.seconds,
    )


@pytest.mark.slow
def test_official_runners_write_a_bundle(tiny, smpl_files, tmp_path):
    from tiny_official import PI3X_DEPTH, PI3X_FOCAL_FRACTION

    b = run_isolated(_official_bundle, tiny, smpl_files["plain"], tmp_path / "bundle")
    assert list(b["frame_index"]) == [0, 5, 10, 15, 20, 25, 30]
    assert list(b["image_size"]) == [256, 144]
    assert b["init_focal"] == pytest.approx(PI3X_FOCAL_FRACTION * 256, rel=5e-3)  # Pi3X focal, working px
    assert b["hmr_focal"] == pytest.approx(np.hypot(640, 360) * 256 / 640)  # TRAM's diagonal focal
    assert np.allclose(b["depth"], PI3X_DEPTH, rtol=1e-5)
    # window-3 graph on 7 keyframes, both orders
    assert len(b["pair_index"]) == 2 * len(window_pairs(7, 3))
    assert len(b["corr_pix"]) > 100 and np.all(b["corr_conf"] > 0)
    assert b["track_valid"].shape == (1, 7) and b["track_valid"].all()
    # the tiny VIMO's depth is TRAM's 2 f / (box side x 0.9): a person ~1/2.6 of the frame high is a few m away
    assert np.all((b["track_transl"][0, :, 2] > 1) & (b["track_transl"][0, :, 2] < 20))
    assert np.allclose(b["track_rotmats"][0, 0] @ np.swapaxes(b["track_rotmats"][0, 0], -1, -2), np.eye(3), atol=1e-5)
    assert b["track_contact"].shape == (1, 7, 6890) and b["track_contact"].any()
    assert b["meta"].frontends == "official" and b["meta"].camera == "point maps"
    for k in ("people_segmenter", "people_vimo_backbone", "people_deco", "scene_pi3x", "scene_mast3r"):
        assert k in b["seconds"]


def _demo_official(argv):
    import contextlib
    import io

    from josh_jax.demo import main

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(argv)
    return rc, buf.getvalue()


@pytest.mark.slow
def test_demo_runs_the_official_path(tiny, smpl_files, tmp_path):
    out = tmp_path / "o"
    rc, err = run_isolated(
        _demo_official,
        [
            str(CLIP),
            "--frames",
            "31",
            "--frontends",
            "official",
            "--models",
            str(tiny),
            "--smpl",
            str(smpl_files["plain"]),
            "--out",
            str(out),
            "--set",
            f"frontends.work_side={TINY_WORK}",
            "--set",
            "frontends.pair_window=3",
            "--set",
            "solve.iters_stage1=60",
            "--set",
            "solve.iters_stage2=20",
            "--no-overlay",
        ],
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["front_ends"] == "official" and summary["people"] == 1
    assert (out / "results.npz").is_file() and (out / "scene.glb").is_file()


def test_frontends_cli_stops_before_decoding_when_models_are_missing(tmp_path, capsys):
    from josh_jax.frontends.__main__ import main as fe_main

    rc = fe_main(
        [
            str(tmp_path / "no_video.mp4"),
            "--frontends",
            "official",
            "--models",
            str(tmp_path),
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing: person_segmenter.onnx" in err and "mast3r.onnx (scripts/export_mast3r.py)" in err
    assert "no_video" not in err  # the video was not looked at yet
    assert not (tmp_path / "b").exists()


def _bundle_with_a_bad_focal(models, smpl, out):
    """As _official_bundle, with Pi3X's focal recovery returning a negative focal (random weights do)."""
    import josh_jax.frontends.official.pipeline as op

    real = op.pi3x_scene
    op.pi3x_scene = lambda *a, **k: (*real(*a, **k)[:2], -463.0)
    return _official_bundle(models, smpl, out)


@pytest.mark.slow
def test_an_unusable_pi3x_focal_falls_back_to_the_diagonal(tiny, smpl_files, tmp_path):
    b = run_isolated(_bundle_with_a_bad_focal, tiny, smpl_files["plain"], tmp_path / "bundle")
    assert b["init_focal"] == pytest.approx(b["hmr_focal"]) == pytest.approx(np.hypot(640, 360) * 256 / 640)
