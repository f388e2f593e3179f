"""Two runs on one output never mix: ``OUT.lock`` (josh_jax._cli.lock) for the demo and the batch,
and a resumed work folder whose front-end outputs are damaged computes them again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from josh_jax._cli.lock import RunLock, RunLockError, lock_path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "josh_jax" / "data" / "example" / "walk.mp4"

_HOLD = """
import sys, time
from josh_jax._cli.lock import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held_by_another_process(tmp_path):
    """``tmp_path/out`` locked by a live subprocess (killed afterwards)."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "held"
    yield out, p.pid
    p.kill()
    p.wait()


def test_a_second_run_on_the_same_output_is_refused_and_names_the_holder(held_by_another_process):
    out, pid = held_by_another_process
    with pytest.raises(RunLockError, match=f"process {pid}"):
        RunLock(out).acquire()


def test_the_lock_is_free_again_after_release_and_after_its_process_died(tmp_path):
    out = tmp_path / "o"
    with RunLock(out) as lock:
        assert lock_path(out).is_file() and lock.acquired
    assert not lock_path(out).exists()  # a finished run removes its lock file
    lock_path(out).write_text(f"josh_jax run lock pid {2**22 + 7}\n")  # left by a run killed with -9
    with RunLock(out):
        pass
    assert not lock_path(out).exists()


@pytest.mark.parametrize("kind", ["foreign file", "link", "folder"])
def test_a_lock_path_that_is_not_ours_is_never_used(tmp_path, kind):
    out = tmp_path / "o"
    p = lock_path(out)
    if kind == "foreign file":
        p.write_text("my notes\n")
    elif kind == "link":
        (tmp_path / "target").write_text("keep")
        p.symlink_to(tmp_path / "target")
    else:
        p.mkdir()
    with pytest.raises(RunLockError, match="move it away"):
        RunLock(out).acquire()
    if kind == "foreign file":
        assert p.read_text() == "my notes\n"
    if kind == "link":
        assert (tmp_path / "target").read_text() == "keep" and p.is_symlink()


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*") if not p.is_symlink()}


def test_the_demo_refuses_an_output_another_run_is_writing_and_touches_nothing(held_by_another_process, capsys):
    from josh_jax.demo import main

    out, pid = held_by_another_process
    work = out.with_name(out.name + ".work")
    (work / "solved").mkdir(parents=True)  # the other run's unfinished work folder
    (work / "fingerprint.json").write_text(json.dumps({"video": "other.mp4"}))
    before = _listing(out.parent)
    rc = main([str(EXAMPLE), "--out", str(out), "--device", "cpu", "--fresh"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"process {pid}" in err[0], err
    assert _listing(out.parent) == before  # the other run's work folder is untouched, even with --fresh


def test_the_batch_refuses_an_output_another_run_is_writing(held_by_another_process, capsys):
    pytest.importorskip("ray")
    from josh_jax.batch import main

    out, pid = held_by_another_process
    before = _listing(out.parent)
    rc = main([str(EXAMPLE), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"process {pid}" in err[0], err
    assert set(_listing(out.parent)) - set(before) <= {"out"}  # at most its own (empty) output folder


def test_a_damaged_bundle_in_a_resumed_work_folder_is_removed_and_said(tmp_path, capsys):
    import josh_jax.body as jb
    from josh_jax.bundle import save
    from josh_jax.run.stages import _resumed_bundle
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    model = jb.load("open")
    w, _ = make_world(model, 0, SynthConfig(num_keyframes=6))
    good = tmp_path / "good"
    save(good, [w], {"body_model": "open"})
    assert _resumed_bundle(good, model.num_vertices) is not None  # read back once, for the front ends to use
    assert (good / "bundle.json").is_file()  # a whole bundle is kept
    for damage in ("window", "json", "tracks"):
        b = tmp_path / damage
        save(b, [w], {"body_model": "open"})
        if damage == "window":
            data = (b / "window_000.npz").read_bytes()
            (b / "window_000.npz").write_bytes(data[: len(data) // 2])
        elif damage == "json":
            (b / "bundle.json").write_bytes(b'{"format": "josh-bun')
        else:
            (b / "tracks.npz").write_bytes(b"PK\x03\x04 truncated")
        capsys.readouterr()
        assert _resumed_bundle(b, model.num_vertices) is None
        assert not b.exists()
        assert "computing them again" in capsys.readouterr().err
