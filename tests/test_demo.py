"""The demo end to end on the bundled example clip, long videos with resume, and every bad input."""

import json

import cv2
import numpy as np
import pytest
from conftest import run_isolated

from josh_jax.demo import EXAMPLE_CLIP, main
from josh_jax.results import Results
from josh_jax.run import stages

FAST = ["--set", "solve.iters_stage1=60", "--set", "solve.iters_stage2=20", "--no-overlay"]


def _main_capture(argv):
    """(exit code, stderr) of the demo's main in this process."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(argv)
    return rc, buf.getvalue()


def _demo(argv):
    """The demo in a fresh process: (exit code, stderr)."""
    return run_isolated(_main_capture, argv)


def _error_line(err: str) -> str:
    import re

    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)
    lines = [l.strip() for l in err.splitlines() if l.strip().startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _one_line_error(capsys) -> str:
    import re

    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", capsys.readouterr().err)  # progress bars' cursor moves
    lines = [l.strip() for l in err.splitlines() if l.strip().startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _no_output(tmp_path, name="o"):
    assert not (tmp_path / name).exists()
    assert not (tmp_path / f"{name}.work").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}-")]


@pytest.mark.slow
def test_default_demo_writes_every_output(tmp_path):
    """The README's newcomer command: no argument -> the bundled clip, every output, a true summary."""
    out = tmp_path / "demo"
    rc, err = _demo(["--out", str(out)])
    assert rc == 0, err
    for name in (
        "results.npz",
        "scene.glb",
        "overlay.mp4",
        "trajectory.png",
        "loss_curve.png",
        "summary.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 1000, name
    assert len(list((out / "overlay_frames").glob("*.png"))) == 3
    assert not (tmp_path / "demo.work").exists()
    res = Results.load(out / "results.npz")
    assert res.num_frames == 120 and res.visible.mean() > 0.8  # Results.load validated every field
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    import trimesh

    scene = trimesh.load(out / "scene.glb")
    assert len(scene.geometry) >= 3
    s = json.loads((out / "summary.json").read_text())
    assert s["people"] == 1 and s["windows"] == 1 and s["seconds"]["total"] > 0
    check = s["example_clip_check"]
    # metric scale from the human: the camera path within 25 % of the truth (front ends alone are ~2.5x off)
    assert abs(check["camera_path_m"] / check["true_camera_path_m"] - 1) < 0.25, check
    # no baseline solve unless asked (--baseline): no init.npz, but the alignment still compares the
    # joint result with the front ends' own bodies (the problem's starting point)
    assert not (out / "init.npz").exists() and "init.npz" not in s["outputs"]
    assert [w["init"] for w in s["window_info"]] == ["start"] and s["window_info"][0]["seconds_front_ends_only"] == 0
    (entry,) = s["alignment"].values()
    assert entry["init"]["median"] < 5 and entry["joint"]["median"] < 5, entry
    assert "outputs in" in err


def _interrupted_run(argv):
    """The demo with a Ctrl-C arriving while the second window solves."""
    real = stages._solve_one
    calls = {"n": 0}

    def interrupt_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    stages._solve_one = interrupt_second
    return _main_capture(argv)


@pytest.mark.slow
def test_long_video_windows_join_and_an_interrupted_run_resumes(tmp_path):
    # 81 frames: the fewest that give two windows of 41 frames 30 apart (windows.window_starts)
    args = ["--frames", "81", "--set", "frontends.window=41", "--set", "frontends.stride=30"] + FAST
    out = tmp_path / "o"
    rc, err = run_isolated(_interrupted_run, ["--out", str(out)] + args)
    assert rc == 130 and "resume" in err
    assert not out.exists()
    assert len(list((tmp_path / "o.work" / "solved").glob("window_*_results.npz"))) == 1
    rc, err = _demo(["--out", str(out)] + args)
    assert rc == 0 and "resuming" in err
    assert not (tmp_path / "o.work").exists()
    fresh = tmp_path / "fresh"
    assert _demo(["--out", str(fresh)] + args)[0] == 0
    a, b = Results.load(out / "results.npz"), Results.load(fresh / "results.npz")
    for k in ("cam_to_world", "joints_world", "transl", "points"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-5, err_msg=k)
    s = json.loads((out / "summary.json").read_text())
    assert s["windows"] == 2 and len(a.frame_index) == 81
    # one continuous trajectory: no jump where the windows meet
    c = a.cam_to_world[:, :3, 3]
    step = np.linalg.norm(np.diff(c, axis=0), axis=1)
    assert step.max() < 4 * np.median(step) + 1e-3, (step.max(), np.median(step))
    sim = s["window_similarities"][1]
    assert 0.5 < sim["scale"] < 2.0


SOLVER_PROGRAMS = ("_solve_jit", "_adam_chunk", "_solve_batch_jit")  # what "the solver" compiles


def _window_solve_cache_misses(tmp: str, method: str) -> list[str]:
    """The demo's solve of one window (``josh_jax.run.solve_window``: its solver settings, progress bars
    included) in this process with the persistent compile cache in ``tmp``/cache, as the demo turns
    it on; returns the solver programs that JAX compiled instead of loading them from the cache."""
    import dataclasses
    import logging
    from pathlib import Path

    import josh_jax.body as jb
    from josh_jax.config import DemoConfig
    from josh_jax.run.window import WindowSettings, solve_window
    from josh_jax.solve import SolveConfig
    from josh_jax.solve.compile_cache import enable
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    misses: list[str] = []

    class Misses(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if "PERSISTENT COMPILATION CACHE MISS" in msg and any(n in msg for n in SOLVER_PROGRAMS):
                misses.append(msg.split("'")[1])

    log = logging.getLogger("jax._src.compiler")
    log.setLevel(logging.DEBUG)
    log.addHandler(Misses())
    enable(str(Path(tmp) / "cache"))
    model = jb.load("open")
    w, _ = make_world(model, seed=3, cfg=SynthConfig(num_keyframes=11, cam_speed=0.03))
    solve = SolveConfig(method=method, iters_stage1=60, iters_stage2=20)
    cfg = dataclasses.replace(DemoConfig(), solve=solve)
    solve_window(w, model, WindowSettings.of(cfg))
    return misses


@pytest.mark.slow
@pytest.mark.parametrize("method", ["adam", "gn"])
def test_a_second_run_compiles_no_solver_program(tmp_path, method):
    """Every method, progress bars included: the demo's window solve run again in a fresh process
    with the same persistent compile cache loads the solver's programs and compiles none."""
    first = run_isolated(_window_solve_cache_misses, str(tmp_path), method)
    assert first, "the first run compiles the solver (else this test sees nothing)"
    second = run_isolated(_window_solve_cache_misses, str(tmp_path), method)
    assert second == [], second


# ------------------------------------------------------------------ bad input, one test each


def test_missing_video(tmp_path, capsys):
    assert main([str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    _no_output(tmp_path)


def test_not_a_video(tmp_path, capsys):
    p = tmp_path / "notes.mp4"
    p.write_text("hello\n" * 1000)
    assert main([str(p), "--out", str(tmp_path / "o")]) == 2
    assert "video" in _one_line_error(capsys)
    _no_output(tmp_path)


def test_truncated_video(tmp_path, capsys):
    p = tmp_path / "cut.mp4"
    p.write_bytes(EXAMPLE_CLIP.read_bytes()[:3000])
    assert main([str(p), "--out", str(tmp_path / "o")]) == 2
    assert "corrupt/truncated" in _one_line_error(capsys)
    _no_output(tmp_path)


def test_too_few_frames(tmp_path, capsys):
    assert main(["--frames", "8", "--out", str(tmp_path / "o")]) == 2
    assert "needs at least" in _one_line_error(capsys)
    _no_output(tmp_path)


def test_extreme_resolution(tmp_path, capsys):
    p = tmp_path / "tiny.mp4"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 30, (40, 40))
    for _ in range(30):
        vw.write(np.full((40, 40, 3), 128, np.uint8))
    vw.release()
    assert main([str(p), "--out", str(tmp_path / "o")]) == 2
    assert "resolution" in _one_line_error(capsys)
    _no_output(tmp_path)


@pytest.mark.slow
def test_no_person(tmp_path):
    from josh_jax.synthetic.clips import render_clip

    p = tmp_path / "empty.mp4"
    render_clip(p, frames=25, width=320, height=180, person=False)
    rc, err = _demo([str(p), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no person" in _error_line(err)
    _no_output(tmp_path)


@pytest.mark.slow
def test_static_camera_is_found_without_a_flag_and_the_alias_still_works(tmp_path):
    """Issue 14: a static camera is chosen from the data (it used to stop and suggest --static-camera)."""
    from josh_jax.synthetic.clips import render_clip

    p = tmp_path / "static.mp4"
    render_clip(p, frames=30, width=320, height=180, camera="static")
    assert _demo([str(p), "--out", str(tmp_path / "o")] + FAST)[0] == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["camera"]["mode"] == "static" and summary["static_camera"]
    ev = summary["camera"]["evidence"]
    assert ev["max_pair_shift_px"] < 0.35
    res = Results.load(tmp_path / "o" / "results.npz")
    # a static camera cannot measure its focal from motion: the background's vanishing points are tried;
    # on this small 320 x 180 clip its lines do not pin the focal (they gave 154 px for 288 before the
    # thin-line threshold), so the default is used, and said so; the vanishing points' accuracy is
    # checked on the crossing clip (test_camera_motion.py) and on drawn lines (test_vanishing.py)
    assert ev["focal_source"].startswith("default") and "no focal" in ev["vanishing"], ev
    assert float(res.intrinsics[0, 0]) == pytest.approx(1.2 * 320, rel=1e-4)
    c = res.cam_to_world[:, :3, 3]
    assert np.abs(c - c[0]).max() < 0.2  # the camera stays (nearly) where it is
    assert _demo([str(p), "--out", str(tmp_path / "o2"), "--static-camera"] + FAST)[0] == 0
    assert json.loads((tmp_path / "o2" / "summary.json").read_text())["camera"]["mode"] == "static"


def test_existing_output_is_refused(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("keep me")
    assert main(["--out", str(tmp_path / "o")]) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert (tmp_path / "o" / "x").read_text() == "keep me"


def test_missing_smpl_file(tmp_path, capsys):
    assert main(["--smpl", str(tmp_path / "SMPL_NEUTRAL.pkl"), "--out", str(tmp_path / "o")]) == 2
    assert "SMPL_NEUTRAL.pkl" in _one_line_error(capsys)
    _no_output(tmp_path)


def test_missing_onnx_model(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    assert main(["--models", str(tmp_path / "models"), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys)
    assert "blazepose" in line and "export_blazepose.py" in line
    _no_output(tmp_path)


def test_official_front_ends_list_what_is_missing(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    assert main(["--frontends", "official", "--models", str(tmp_path / "models"), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys)
    for name, script in (
        ("person_segmenter.onnx", "docs/frontends.md"),
        ("vimo_backbone.onnx", "export_vimo.py"),
        ("vimo_temporal.onnx", "export_vimo.py"),
        ("deco.onnx", "export_deco.py"),
        ("pi3x.onnx", "export_pi3x.py"),
        ("mast3r.onnx", "export_mast3r.py"),
    ):
        assert name in line and script in line
    _no_output(tmp_path)


def _poisoned_run(argv):
    """The demo with a NaN in the body translation the front ends return."""
    import josh_jax.frontends as fe_pkg

    real = fe_pkg.run_frontends

    def poisoned(*a, **k):
        out = real(*a, **k)
        out.windows[0].track_transl[0, 1, 2] = np.nan
        return out

    fe_pkg.run_frontends = poisoned
    return _main_capture(argv)


@pytest.mark.slow
def test_nan_from_a_front_end(tmp_path):
    rc, err = run_isolated(_poisoned_run, ["--frames", "30", "--out", str(tmp_path / "o")] + FAST)
    assert rc == 2 and "track_transl" in _error_line(err)
    _no_output(tmp_path)


def test_bad_config(tmp_path, capsys):
    assert main(["--set", "solve.iters_stage9=3", "--out", str(tmp_path / "o")]) == 2
    assert "iters_stage9" in _one_line_error(capsys)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[weights]\nprior = 'lots'\n")
    assert main(["--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)
    _no_output(tmp_path)


def test_config_file_and_reference_names():
    from josh_jax.config import load

    cfg = load(
        None,
        [
            "prior_loss_weight=50",
            "max_frames=11",
            "scene_graph=window-5",
            "solve.lr_stage1=0.1",
            "optimize_focal=false",
        ],
    )
    assert cfg.weights.prior == 50.0 and cfg.frontends.window == 51 and cfg.frontends.pair_window == 5
    assert cfg.solve.lr_stage1 == 0.1 and cfg.solve.optimize_focal is False


@pytest.mark.slow
def test_person_leaving_the_frame(tmp_path):
    """The person walks out for 20 frames: tracks stop there and the bundle marks those keyframes invalid."""
    run_isolated(_leaving_body, tmp_path)


def _leaving_body(tmp_path):
    from josh_jax import body
    from josh_jax.frontends import FrontEndConfig, probe, run_frontends

    open_model = body.load("open")
    from josh_jax.synthetic.clips import render_clip

    full = render_clip(None, frames=70, width=480, height=270)["frames"]
    empty = render_clip(None, frames=70, width=480, height=270, person=False)["frames"]
    frames = np.concatenate([full[:25], empty[25:45], full[45:]])
    p = tmp_path / "leave.mp4"
    vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 30, (480, 270))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    out = run_frontends(probe(p), open_model, FrontEndConfig(threads=2), progress=False, log=lambda m: None)
    for tr in out.tracks.values():
        assert not np.isin(tr.frames, np.arange(28, 43)).any()
    (w,) = out.windows
    gone = np.isin(w.frame_index, [30, 35, 40])
    assert not w.track_valid[:, gone].any() and w.track_valid[:, ~gone].any(0).mean() > 0.7


@pytest.mark.slow
def test_rerun_recording(tmp_path):
    """--rerun writes a recording with the scene, the camera, its images and the person."""
    pytest.importorskip("rerun", reason="rerun-sdk is the [viz] extra; .ci/run installs it")
    from rerun.chunk import RrdReader

    out = tmp_path / "o"
    rc, err = _demo(["--frames", "30", "--rerun", "--out", str(out)] + FAST)
    assert rc == 0, err
    entities = {str(ch.entity_path) for ch in RrdReader(out / "recording.rrd").stream()}
    for e in ("/world/scene", "/world/camera", "/world/camera/image", "/world/person_0"):
        assert e in entities, entities


def test_a_work_folder_the_demo_did_not_make_is_never_removed(tmp_path, capsys):
    """OUT.work without a josh_jax fingerprint (the user's own folder) stops the demo with one line and is
    left as it was, --fresh included; a josh_jax work folder of another run is kept unless --fresh."""
    work = tmp_path / "o.work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    for extra in ([], ["--fresh"]):
        rc = main([str(EXAMPLE_CLIP), "--out", str(tmp_path / "o"), *extra])
        line = _one_line_error(capsys)
        assert rc == 2 and "not a josh_jax work folder" in line and "nothing was touched" in line, line
        assert (work / "notes.txt").read_text() == "mine" and not (tmp_path / "o").exists()
    (work / "fingerprint.json").write_text(json.dumps({"video": "another.mp4", "frames": 7}))
    rc = main([str(EXAMPLE_CLIP), "--out", str(tmp_path / "o")])
    line = _one_line_error(capsys)
    assert rc == 2 and "--fresh" in line and (work / "notes.txt").is_file(), line
    (tmp_path / "f.work").write_text("a file")
    rc = main([str(EXAMPLE_CLIP), "--out", str(tmp_path / "f")])
    assert rc == 2 and "not a folder" in _one_line_error(capsys)
    assert (tmp_path / "f.work").read_text() == "a file"


def test_a_damaged_solved_window_is_solved_again(tmp_path, open_model, capsys):
    """On resume, a solved window whose files do not read back whole (truncated results, garbage JSON) is
    not trusted: its files are removed, it is said, and the window counts as not done."""
    from types import SimpleNamespace

    from josh_jax.synthetic.worlds import SynthConfig, make_world

    _, gt = make_world(open_model, 0, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))
    p = SimpleNamespace(solved=tmp_path)

    def write_window(i):
        prefix = tmp_path / f"window_{i:03d}"
        np.savez(f"{prefix}_init.npz", **gt)
        np.savez(f"{prefix}_loss.npz", s1_total=np.ones(3))
        (tmp_path / f"window_{i:03d}.json").write_text("{}")
        np.savez(f"{prefix}_results.npz", **gt)
        return prefix

    write_window(0)
    assert stages.window_done(p, 0)
    prefix = write_window(1)
    data = open(f"{prefix}_results.npz", "rb").read()
    open(f"{prefix}_results.npz", "wb").write(data[: len(data) // 2])
    assert not stages.window_done(p, 1)
    assert "damaged" in capsys.readouterr().err and not list(tmp_path.glob("window_001*"))
    write_window(2)
    (tmp_path / "window_002.json").write_text("{not json")
    assert not stages.window_done(p, 2) and stages.window_done(p, 0)
    assert not stages.window_done(p, 3)  # never solved
