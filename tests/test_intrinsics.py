"""--intrinsics: the accepted forms, one-line errors naming the format, and a held focal coming back."""

import json

import cv2
import numpy as np
import pytest
from conftest import run_isolated

from josh_jax.frontends.intrinsics import EXPECTED, Intrinsics, IntrinsicsError, apply_to_config, parse, to_video
from josh_jax.results import load_results


def test_forms(tmp_path):
    assert parse("1450,1440,960.5,540") == Intrinsics(1450, 1440, 960.5, 540)
    assert parse(" 1450, 1450, 960, 540 ").focal == 1450
    j = tmp_path / "k.json"
    j.write_text(json.dumps({"fx": 800, "fy": 810, "cx": 320, "cy": 240, "width": 640, "height": 480}))
    assert parse(str(j)) == Intrinsics(800, 810, 320, 240, 640, 480)
    j.write_text(json.dumps({"K": [[700, 0, 300], [0, 700, 200], [0, 0, 1]]}))
    assert parse(str(j)) == Intrinsics(700, 700, 300, 200)
    y = tmp_path / "calib.yaml"  # what cv2.FileStorage writes after cv2.calibrateCamera
    fs = cv2.FileStorage(str(y), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 1280)
    fs.write("image_height", 720)
    fs.write("camera_matrix", np.array([[1000.0, 0, 640], [0, 1002.0, 360], [0, 0, 1]]))
    fs.write("distortion_coefficients", np.zeros((1, 5)))
    fs.release()
    k = parse(str(y))
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (1000, 1002, 640, 360, 1280, 720)
    # a calibration at 1280x720 used on a 640x360 video: scaled (pixel centres at integers)
    v = to_video(k, 640, 360)
    assert np.allclose([v.fx, v.fy, v.cx, v.cy], [500, 501, 319.75, 179.75])
    with pytest.raises(IntrinsicsError, match="aspect ratio"):
        to_video(k, 640, 480)


@pytest.mark.parametrize("spec", ["1450,1450,960", "a,b,c,d", "1450,-1,960,540", "nope.json", "1,2,3,4,5"])
def test_wrong_format_names_the_format(spec, tmp_path):
    with pytest.raises(IntrinsicsError) as e:
        parse(spec)
    msg = str(e.value)
    assert msg.startswith(EXPECTED) and "\n" not in msg


def test_bad_files(tmp_path):
    j = tmp_path / "k.json"
    j.write_text(json.dumps({"focal": 3}))
    y = tmp_path / "k.yaml"
    y.write_text("%YAML:1.0\n---\nfoo: 1\n")
    for p in (j, y):
        with pytest.raises(IntrinsicsError, match="expected|camera_matrix|fx"):
            parse(str(p))


def test_config_in_working_pixels():
    from josh_jax.config import DemoConfig

    cfg = DemoConfig()
    info = type("Info", (), {"width": 1920, "height": 1080, "size_at": lambda self, s: (512, 288)})()
    c = apply_to_config(cfg, "1500,1500,950,530", info)
    s = 512 / 1920
    assert np.isclose(c.frontends.focal, 1500 * s) and np.allclose(c.frontends.principal, (950 * s, 530 * s))
    assert c.frontends.fixed_intrinsics and not c.frontends.refine_focal and not c.solve.optimize_focal
    c = apply_to_config(cfg, "1500,1500,950,530", info, free=True)
    assert not c.frontends.fixed_intrinsics and c.frontends.refine_focal and c.solve.optimize_focal
    assert apply_to_config(cfg, None, info) is cfg


def _demo(argv):
    import contextlib
    import io

    from josh_jax.demo import main

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(argv)
    return rc, buf.getvalue()


@pytest.mark.slow  # a demo run end to end (front ends, solve, exports): ~2 min of the fast tier
def test_demo_holds_the_given_focal(tmp_path):
    """The example clip (640x360, true focal 576 px) with its intrinsics given: results.npz has them exactly."""
    out = tmp_path / "o"
    fast = ["--set", "solve.iters_stage1=60", "--set", "solve.iters_stage2=20", "--no-overlay"]
    rc, err = run_isolated(_demo, ["--frames", "30", "--intrinsics", "576,576,320,180", "--out", str(out)] + fast)
    assert rc == 0, err
    K = load_results(out / "results.npz").intrinsics
    assert abs(K[0, 0] - 576) < 1e-3 and abs(K[1, 1] - 576) < 1e-3, K
    assert np.allclose(K[:2, 2], [320, 180], atol=1e-3), K
    s = json.loads((out / "summary.json").read_text())
    assert "animation.glb" in s["outputs"] and (out / "animation.glb").is_file()
    assert (out / "bvh" / "person_0.bvh").is_file() or list((out / "bvh").glob("person_*.bvh"))


def test_demo_wrong_intrinsics_is_one_line(tmp_path, capsys):
    from josh_jax.demo import main

    assert main(["--intrinsics", "576,576", "--out", str(tmp_path / "o")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "fx,fy,cx,cy" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_solve_cli_holds_the_focal_of_a_bundle_with_fixed_intrinsics(open_model, tmp_path):
    """A bundle made with --intrinsics records fixed_intrinsics; the solve CLI then keeps its focal."""
    import dataclasses

    import josh_jax.bundle as jbundle
    from josh_jax.solve.__main__ import main
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    w, _ = make_world(open_model, 0, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))
    w = dataclasses.replace(w, init_focal=80.0)  # start away from the truth (90 px)
    focals = {}
    for held in (True, False):
        b = tmp_path / f"b{held}"
        jbundle.save(b, [w], {"body_model": "open", "fixed_intrinsics": held})
        out = tmp_path / f"o{held}"
        assert main([str(b), "--out", str(out), "--iters-stage1", "5", "--iters-stage2", "20"]) == 0
        focals[held] = float(load_results(out / "results.npz").intrinsics[0, 0])
    s = float(w.scale_to_original)
    assert abs(focals[True] - 80.0 * s) < 1e-3 * s, focals
    assert abs(focals[False] - 80.0 * s) > 1e-2 * s, focals  # free: the solve moves it


def test_working_transform_of_each_front_end_path():
    """Original -> working pixels: the default path's resize; the official path's resize and centred crop."""
    from josh_jax.frontends.intrinsics import working_transform

    info = type("Info", (), {"width": 1000, "height": 600, "size_at": lambda self, s: (s, round(600 * s / 1000))})()
    s, off = working_transform(info, 512)
    assert s == 512 / 1000 and off == (0.0, 0.0)
    # official: DUSt3R's resize to 512 x 307, then the crop about (256, 153) to 512 x 304: one row off the top
    s, off = working_transform(info, 512, "official")
    assert s == 512 / 1000 and tuple(off) == (0, 1)


@pytest.mark.parametrize(
    "name, content",
    [
        ("w_abc.json", '{"fx": 900, "fy": 900, "cx": 480, "cy": 270, "width": "abc", "height": 540}'),
        ("w_half.json", '{"fx": 900, "fy": 900, "cx": 480, "cy": 270, "width": 0.5, "height": 540}'),
        ("w_inf.json", '{"fx": 900, "fy": 900, "cx": 480, "cy": 270, "width": 1e999, "height": 540}'),
        ("w_nan.json", '{"fx": 900, "fy": 900, "cx": 480, "cy": 270, "width": NaN, "height": 540}'),
        ("deep.json", "[" * 100000 + "]" * 100000),
        ("latin1.json", b'{"fx": 900, "fy": 900, "cx": 480, "cy": 270, "note": "\xe9"}'),
        ("scalar.yaml", "%YAML:1.0\n---\ncamera_matrix: 3\n"),
        ("broken.yaml", "%YAML:1.0\n---\ncamera_matrix: !!opencv-matrix\n  rows: [\n"),
        (
            "huge.yaml",
            "%YAML:1.0\n---\ncamera_matrix: !!opencv-matrix\n  rows: 100000\n  cols: 100000\n  dt: d\n  data: [ 1. ]\n",
        ),
        ("k_short.json", '{"K": {"rows": 3, "cols": 3, "data": [1, 2]}}'),
        ("big.json", " " * (2 << 20) + "{}"),
    ],
)
def test_a_malformed_calibration_file_is_one_line(tmp_path, name, content):
    """Every malformed calibration file of the bad-input round ends in an IntrinsicsError (one line, the
    expected format or the field), never ValueError, ZeroDivisionError, OverflowError, RecursionError,
    UnicodeDecodeError, cv2.error, SystemError or a huge allocation."""
    from josh_jax.frontends.intrinsics import IntrinsicsError, parse, to_video

    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IntrinsicsError) as e:
        to_video(parse(str(p)), 960, 540)
    assert "\n" not in str(e.value)
