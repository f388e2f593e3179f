"""``python -m josh_jax.batch`` on Ray: many videos, the demo's outputs per video, faults, resume, --address.

The end-to-end tests share one local Ray head (``ray start --head --block`` on a loopback port with
2 CPUs, in its own process group, killed at the end of the module) and one batch run of three short
rendered clips plus a corrupt file, with one worker made to exit mid-run. The batch and the demo run
as CLIs in subprocesses, as users run them.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from josh_jax import batch
from josh_jax.demo import EXAMPLE_CLIP

ROOT = Path(__file__).resolve().parents[1]
# --baseline: the batch passes the demo's flags on (init.npz compared below)
FAST = ["--set", "solve.iters_stage1=60", "--set", "solve.iters_stage2=20", "--no-overlay", "--baseline"]
CLIPS = ("walk_a", "walk_b", "walk_c")


def _env(**extra) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    )  # Ray's single-machine mode: addresses stay on 127.0.0.1
    env.pop(batch.CRASH_ONCE_ENV, None)
    env.update(extra)
    return env


def _cli(module: str, argv: list[str], timeout: float = 600, **env) -> tuple[int, str]:
    p = subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
        cwd=ROOT,
    )
    return p.returncode, p.stderr


def _error_lines(err: str) -> list[str]:
    import re

    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)
    return [l.strip() for l in err.splitlines() if l.strip().startswith("error:")]


# ------------------------------------------------------------------ fast: inputs, names, summaries, no Ray


def test_inputs_from_files_folders_and_lists(tmp_path):
    (tmp_path / "vids").mkdir()
    for n in ("b.mp4", "a.MOV", "notes.txt.bak"):
        (tmp_path / "vids" / n).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# clips\nvids/a.MOV\n\n/abs/missing.mp4  # gone\nvids/b.mp4\n")
    got = batch.expand_inputs([tmp_path / "vids", tmp_path / "list.txt", tmp_path / "other.mp4"])
    assert got == [
        tmp_path / "vids" / "a.MOV",
        tmp_path / "vids" / "b.mp4",
        Path("/abs/missing.mp4"),
        tmp_path / "other.mp4",
    ]  # each once, in order; missing paths kept (their rows fail)
    assert batch.output_names([Path("x/a.mp4"), Path("y/a.mp4"), Path("y/b.mp4")]) == ["x_a", "y_a", "b"]
    with pytest.raises(batch.BatchError, match="no videos"):
        batch.expand_inputs([tmp_path / "empty.txt"] if (tmp_path / "empty.txt").write_text("#\n") else [])
    (tmp_path / "none").mkdir()
    with pytest.raises(batch.BatchError, match="has no videos"):
        batch.expand_inputs([tmp_path / "none"])


def test_each_video_runs_the_demo_command(tmp_path):
    """A batch video's RunSpec is the one the demo builds from ``VIDEO --out OUT`` and the same flags,
    carries every batch setting, and survives the JSON trip to a Ray task unchanged."""
    from josh_jax import demo
    from josh_jax.run import RunSpec

    flags = ["--set", "solve.iters_stage1=7", "--no-overlay", "--frontends", "official", "--compile-cache", "off"]
    flags += ["--objective", "josh+", "--baseline", "--method", "josh3r+joint", "--models", "M"]
    args = batch._parser().parse_args(["v.mp4", "--out", str(tmp_path)] + flags)
    spec = batch.video_spec(Path("v.mp4"), tmp_path / "v", args)
    assert spec == RunSpec.from_args(demo._parser().parse_args(["v.mp4", "--out", str(tmp_path / "v")] + flags))
    assert spec.video == Path("v.mp4") and spec.out == tmp_path / "v" and spec.overrides == ("solve.iters_stage1=7",)
    assert spec.no_overlay and spec.frontends == "official" and spec.compile_cache == "off" and not spec.overwrite
    assert spec.objective == "josh+" and spec.baseline and spec.method == "josh3r+joint"
    assert spec.models == Path("M") and spec.work == tmp_path / "v.work"
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    plain = batch.video_spec(Path("v.mp4"), tmp_path / "v", batch._parser().parse_args(["v.mp4", "--out", "x"]))
    assert plain == RunSpec(video=Path("v.mp4"), out=tmp_path / "v")  # no flag: every default


def test_summary_files(tmp_path):
    rows = [batch._row("a", Path("a.mp4"), tmp_path / "a"), batch._row("b", Path("b.mp4"), tmp_path / "b")]
    rows[0].update(
        status="done",
        frames=24,
        people=1,
        windows=2,
        final_loss=[1.5, 2.25],
        seconds={"frontends": 3.0, "solve": 4.0, "total": 9.0},
    )
    rows[1].update(status="failed", error="error: b.mp4 does not exist, really")
    batch.write_summaries(tmp_path, rows, {"command": "x"})
    j = json.loads((tmp_path / "batch_summary.json").read_text())
    assert [r["status"] for r in j["videos"]] == ["done", "failed"]
    with open(tmp_path / "batch_summary.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert got[0]["final_loss"] == "1.5;2.25" and got[0]["seconds_solve"] == "4.00" and got[0]["seconds_join"] == ""
    assert got[1]["error"] == "error: b.mp4 does not exist, really"
    assert not [p for p in tmp_path.iterdir() if "josh-tmp" in p.name]


def test_ray_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert batch.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "pip install -e '.[cluster]'" in line


def test_prepare_counts_solved_windows_and_none_for_josh3r(monkeypatch):
    """The windows bar's counts come from stage_prepare: windows solved by an earlier run count as done,
    the rest are to do; --method josh3r solves none (its results come from the finish stage), so its
    windows are neither done nor to do (they used to show as solved)."""
    import types

    from josh_jax.run import RunSpec, method, stages

    info = types.SimpleNamespace(num_frames=300)
    monkeypatch.setattr(
        stages, "prepare", lambda spec, **kw: types.SimpleNamespace(info=info, method=method(spec.method))
    )
    monkeypatch.setattr(stages, "front_ends", lambda p, seconds=None: (p, None, [0, 1, 2]))
    monkeypatch.setattr(stages, "window_done", lambda p, i: i == 1)
    out = batch.stage_prepare(RunSpec(method="josh"))
    assert out["windows"] == 3 and out["todo"] == [0, 2] and out["solved"] == 1
    out = batch.stage_prepare(RunSpec(method="josh3r"))
    assert out["windows"] == 3 and out["todo"] == [] and out["solved"] == 0


def test_output_file_is_refused(tmp_path, capsys):
    (tmp_path / "o").write_text("keep me")
    assert batch.main([str(tmp_path / "a.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "existing file" in _error_lines(capsys.readouterr().err)[0]
    assert (tmp_path / "o").read_text() == "keep me"


# ------------------------------------------------------------------ end to end on a local Ray head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local Ray head with 2 CPUs on a loopback port; its whole process group is killed at the end."""
    pytest.importorskip("ray", reason="Ray is the [cluster] extra; .ci/run installs it")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")
    cmd = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--object-store-memory={256 * 2**20}",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.time() < deadline, "the Ray head did not start in 120 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                time.sleep(1)  # the group's other members (raylet, workers) get the signal too
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the group left behind
        except ProcessLookupError:
            pass
        log.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three 24-frame 320x180 rendered walks and a truncated copy of the example clip."""
    from josh_jax.synthetic.clips import render_clip

    d = tmp_path_factory.mktemp("clips")
    for name, seed in zip(CLIPS, (3, 5, 7)):
        render_clip(d / f"{name}.mp4", frames=24, width=320, height=180, seed=seed)
    (d / "corrupt.mp4").write_bytes(EXAMPLE_CLIP.read_bytes()[:3000])
    return d


@pytest.fixture(scope="module")
def first_run(ray_head, clips, tmp_path_factory):
    """The batch over the clip folder on the head, with the first window task's worker exiting once."""
    out = tmp_path_factory.mktemp("batch") / "out"
    marker = out.parent / "crashed.txt"
    argv = [str(clips), "--out", str(out), "--address", ray_head] + FAST
    t = time.perf_counter()
    rc, err = _cli("josh_jax.batch", argv, **{batch.CRASH_ONCE_ENV: str(marker)})
    return {"argv": argv, "out": out, "rc": rc, "err": err, "marker": marker, "seconds": time.perf_counter() - t}


@pytest.mark.slow
def test_three_clips_complete_and_the_corrupt_one_is_reported(first_run, clips):
    out, err = first_run["out"], first_run["err"]
    assert first_run["rc"] == batch.EXIT_SOME_FAILED, err
    rows = {r["name"]: r for r in json.loads((out / "batch_summary.json").read_text())["videos"]}
    assert sorted(rows) == sorted(CLIPS + ("corrupt",))
    for name in CLIPS:
        r = rows[name]
        assert r["status"] == "done" and r["error"] == "", r
        assert r["frames"] == 24 and r["people"] == 1 and r["windows"] == 1 and len(r["final_loss"]) == 1
        assert r["seconds"]["frontends"] > 0 and r["seconds"]["solve"] > 0 and r["seconds"]["total"] > 0
        for f in (
            "results.npz",
            "init.npz",
            "scene.glb",
            "animation.glb",
            "trajectory.png",
            "loss_curve.png",
            "summary.json",
        ):
            assert (out / name / f).is_file(), (name, f)
        assert not (out / f"{name}.work").exists()
    # the corrupt file: its row has the demo's one-line error, no output folder, nothing half-written
    rc, demo_err = _cli("josh_jax.demo", [str(clips / "corrupt.mp4"), "--out", str(out.parent / "demo_corrupt")])
    assert rc == 2
    (demo_line,) = _error_lines(demo_err)
    assert rows["corrupt"]["status"] == "failed" and rows["corrupt"]["error"] == demo_line
    assert not (out / "corrupt").exists() and not (out / "corrupt.work").exists()
    assert not [p for p in out.iterdir() if "josh-tmp" in p.name]
    assert f"corrupt: {demo_line}" in err and "3 of 4 video(s) finished, 1 failed" in err
    with open(out / "batch_summary.csv", newline="") as f:
        csv_rows = {r["name"]: r for r in csv.DictReader(f)}
    assert csv_rows["corrupt"]["error"] == demo_line and csv_rows[CLIPS[0]]["status"] == "done"


@pytest.mark.slow
def test_a_killed_worker_is_retried(first_run):
    """The first window task ended its worker process (os._exit); Ray retried it and the batch completed."""
    assert "exited on purpose" in first_run["marker"].read_text()
    rows = json.loads((first_run["out"] / "batch_summary.json").read_text())["videos"]
    assert sum(r["status"] == "done" for r in rows) == 3


@pytest.mark.slow
def test_outputs_equal_the_demo(first_run, clips, tmp_path):
    """The batch writes what `python -m josh_jax.demo CLIP --out DIR` writes (same files, same arrays)."""
    name = CLIPS[0]
    demo_out = tmp_path / name
    rc, err = _cli("josh_jax.demo", [str(clips / f"{name}.mp4"), "--out", str(demo_out)] + FAST)
    assert rc == 0, err
    got = first_run["out"] / name
    listing = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*"))
    assert listing(got) == listing(demo_out)
    for f in ("results.npz", "init.npz"):
        with np.load(got / f) as a, np.load(demo_out / f) as b:
            assert sorted(a.files) == sorted(b.files)
            for k in a.files:
                if a[k].dtype.kind in "fc":
                    np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=1e-5, err_msg=f"{f}:{k}")
                else:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{f}:{k}")
    s_batch, s_demo = (json.loads((d / "summary.json").read_text()) for d in (got, demo_out))
    for k in ("frames", "people", "windows", "camera", "coverage", "outputs", "config"):
        assert s_batch[k] == s_demo[k], k


@pytest.mark.slow
def test_a_second_run_does_no_work(first_run):
    out = first_run["out"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "batch_summary" not in p.name}
    t = time.perf_counter()
    rc, err = _cli("josh_jax.batch", first_run["argv"])
    assert time.perf_counter() - t < 0.5 * first_run["seconds"]
    assert rc == batch.EXIT_SOME_FAILED, err  # the corrupt file is tried again (cheap) and fails again
    rows = {r["name"]: r for r in json.loads((out / "batch_summary.json").read_text())["videos"]}
    assert all(rows[n]["status"] == "skipped" and rows[n]["windows"] == 1 for n in CLIPS), rows
    assert rows["corrupt"]["status"] == "failed"
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "batch_summary" not in p.name}
    assert after == before  # no output rewritten


@pytest.mark.slow
def test_embedded_local_ray_reports_bad_inputs(tmp_path):
    """No --address: an embedded Ray starts and stops; a missing and a no-person video each end their row."""
    from josh_jax.synthetic.clips import render_clip

    render_clip(tmp_path / "empty.mp4", frames=24, width=320, height=180, person=False)
    (tmp_path / "list.txt").write_text("empty.mp4\nmissing.mp4\n")
    out = tmp_path / "out"
    rc, err = _cli("josh_jax.batch", [str(tmp_path / "list.txt"), "--out", str(out), "--num-cpus", "2"] + FAST)
    assert rc == batch.EXIT_SOME_FAILED, err
    rows = {r["name"]: r for r in json.loads((out / "batch_summary.json").read_text())["videos"]}
    assert "does not exist" in rows["missing"]["error"] and "no person" in rows["empty"]["error"], rows
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "batch_summary.json"]


def _vmapped_agrees_with_one_by_one(tmp: str) -> dict:
    """Two windows in one vmapped solve (as ``--vmap-windows``) against the same windows one by one."""
    import dataclasses

    import josh_jax.body as jb
    from josh_jax import config as jconfig
    from josh_jax.results import Results
    from josh_jax.run import RunSpec
    from josh_jax.run import stages as demo
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    model = jb.load("open")
    cfg = jconfig.load(None, ["solve.iters_stage1=40", "solve.iters_stage2=10"])
    world = SynthConfig(num_keyframes=11, width=160, height=120, focal=150.0)
    windows = [make_world(model, s, world)[0] for s in (0, 1)]
    prep = lambda name: dataclasses.replace(
        demo.Prepared(spec=RunSpec(), cfg=cfg, info=None, model=model, video=None, work=Path(tmp) / name)
    )
    for name in ("one", "vmap_a", "vmap_b"):
        (Path(tmp) / name / "solved").mkdir(parents=True)
    one, a, b = prep("one"), prep("vmap_a"), prep("vmap_b")
    single = [demo.solve_window(one, windows, i) for i in (0, 1)]
    assert demo.window_bucket(a, windows, 0) == demo.window_bucket(b, windows, 0)
    # window 0 of "video" a and window 1 of "video" b, together when they share a bucket
    same = demo.window_bucket(a, windows, 0) == demo.window_bucket(b, windows, 1)
    items = [(a, windows, 0), (b, windows, 1)] if same else [(a, windows, 0), (b, windows, 0)]
    got = demo.solve_windows_vmapped(items)
    again = demo.solve_windows_vmapped(items)  # finished windows are read back, not solved again
    diffs = {}
    for (p, _, i), info in zip(items, got):
        ref = Results.load(one.solved / f"window_{i:03d}_results.npz")
        res = Results.load(p.solved / f"window_{i:03d}_results.npz")
        for k in ("cam_to_world", "transl", "joints_world", "points"):
            diffs[f"{p.work.name}:{i}:{k}"] = float(
                np.abs(np.asarray(getattr(res, k)) - np.asarray(getattr(ref, k))).max()
            )
        diffs[f"{p.work.name}:{i}:loss"] = abs(info["final_loss"] / single[i]["final_loss"] - 1)
        # no --baseline: each window's _init.npz is the front ends' starting point, the same either way
        assert info["init"] == single[i]["init"] == "start"
        ref0 = Results.load(one.solved / f"window_{i:03d}_init.npz")
        res0 = Results.load(p.solved / f"window_{i:03d}_init.npz")
        diffs[f"{p.work.name}:{i}:init_transl"] = float(np.abs(np.asarray(res0.transl) - ref0.transl).max())
        assert sorted(f.name for f in p.solved.iterdir()) == [
            f"window_{i:03d}{s}" for s in (".json", "_init.npz", "_loss.npz", "_results.npz")
        ]
    return {"diffs": diffs, "again_equal": again == got}


@pytest.mark.slow
def test_vmapped_windows_agree_with_one_by_one(tmp_path):
    from conftest import run_isolated

    out = run_isolated(_vmapped_agrees_with_one_by_one, str(tmp_path))
    assert out["again_equal"]
    for k, v in out["diffs"].items():
        assert v < (5e-3 if k.endswith("loss") else 2e-3), (k, v)  # metres; relative for the loss (float order)


@pytest.mark.slow
def test_ctrl_c_leaves_only_complete_outputs(clips, tmp_path):
    """SIGINT to the driver mid-run (embedded Ray): exit 130, rows 'interrupted', no partial output folder."""
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "josh_jax.batch", str(clips / f"{CLIPS[0]}.mp4"), "--out", str(out), "--num-cpus", "1"]
        + FAST,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
        # SIGINT back to its default in the child: a suite started in the background (nohup, `&`
        # without job control) hands its children an ignored SIGINT, which Python then keeps ignoring
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in p.stderr:  # wait until the tasks run
            if "video(s) to run" in line:
                break
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, rest
    assert "interrupted" in rest and "resume" in rest
    rows = json.loads((out / "batch_summary.json").read_text())["videos"]
    assert [r["status"] for r in rows] == ["interrupted"]
    assert not (out / CLIPS[0]).exists()  # only complete per-video outputs
    assert not [q for q in out.iterdir() if "josh-tmp" in q.name]
