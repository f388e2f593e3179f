"""Ctrl-C at several points, as a user presses it: SIGINT to a child process whose SIGINT is not
ignored. Each must end within ~2 s with exit code 130, one message and no traceback or crash, keep
finished work (the demo's solved windows) and leave no temp folder behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# preexec_fn (SIGINT back to default / a file size limit) makes subprocess fork; the child execs at once
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called")
FAST = ["--set", "solve.iters_stage1=60", "--set", "solve.iters_stage2=20", "--no-overlay"]
TWO_WINDOWS = ["--frames", "100", "--set", "frontends.window=41", "--set", "frontends.stride=30"] + FAST


class Child:
    """A CLI in a subprocess; stderr is collected line by line on a thread."""

    def __init__(self, args: list, cwd: Path):
        # no compilation cache: these runs are interrupted while the solver compiles, which the session's
        # cache (conftest.py) would make instant once another test has compiled the same size
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            JAX_PLATFORMS="cpu",
            MPLCONFIGDIR=str(cwd / ".mpl"),
            JOSH_JAX_CACHE_DIR="off",
        )
        self.p = subprocess.Popen(
            [sys.executable, "-m", *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 600) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if any(re.search(pattern, line) for line in list(self.lines)):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.p.kill()
        raise AssertionError(f"{pattern!r} never appeared:\n{''.join(self.lines)}")

    def interrupt(self, after: float = 0.0) -> tuple[int, float, str]:
        """SIGINT ``after`` seconds from now: (exit code, seconds it took to exit, stderr)."""
        time.sleep(after)
        assert self.p.poll() is None, "".join(self.lines)
        t = time.perf_counter()
        self.p.send_signal(signal.SIGINT)
        try:
            rc = self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise
        dt = time.perf_counter() - t
        self.t.join(5)
        return rc, dt, "".join(self.lines)


def _clean(err: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)


def _assert_clean_exit(rc: int, dt: float, err: str) -> None:
    assert rc == 130, (rc, err)
    assert dt < 3.0, dt
    assert "Traceback" not in err and "Segmentation" not in err and "Exception ignored" not in err, err
    assert "interrupted" in err


def _no_temp(folder: Path) -> None:
    left = [p.name for p in folder.rglob(".*") if re.match(r"^\..+-\d+-", p.name)]
    assert not left, left


@pytest.mark.slow
def test_exit_on_interrupt_stops_an_xla_compile_at_once(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import sys, jax, jax.numpy as jnp\n"
        "from josh_jax._cli.interrupt import exit_on_interrupt\n"
        "def f(x):\n"
        "    for i in range(400):\n"
        "        x = jnp.sin(x) @ x + i\n"
        "    return x\n"
        "with exit_on_interrupt('interrupted: bye'):\n"
        "    print('compiling', file=sys.stderr, flush=True)\n"
        "    jax.jit(f).lower(jnp.ones((8, 8))).compile()\n"
        "    print('compiled', file=sys.stderr, flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    p = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stderr.readline().strip() == "compiling"
    time.sleep(1.0)
    t = time.perf_counter()
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    err = p.stderr.read()
    assert rc == 130 and time.perf_counter() - t < 2.0 and "interrupted: bye" in err and "compiled" not in err


@pytest.mark.slow
def test_solve_cli_during_the_first_compile(tmp_path):
    from josh_jax.synthetic.worlds import main as synth_main

    assert synth_main([str(tmp_path / "b"), "--keyframes", "6"]) == 0
    c = Child(["josh_jax.solve", "b", "--out", "o"], tmp_path)
    c.wait_for("compiling the solver")
    rc, dt, err = c.interrupt(after=1.0)
    _assert_clean_exit(rc, dt, err)
    assert not (tmp_path / "o").exists()
    _no_temp(tmp_path)


@pytest.mark.slow
def test_frontends_cli_during_people_tracking(tmp_path):
    c = Child(["josh_jax.frontends", REPO / "josh_jax/data/example/walk.mp4", "--out", "o", "--frames", "60"], tmp_path)
    c.wait_for(r"\[frontends\] walk.mp4")
    rc, dt, err = c.interrupt(after=1.5)
    _assert_clean_exit(rc, dt, err)
    assert not (tmp_path / "o").exists()
    _no_temp(tmp_path)


@pytest.mark.slow  # three demo runs on the example clip (~2 min); the fast tier keeps the solve and front-end cases
def test_demo_at_three_points_keeps_finished_work_and_resumes(tmp_path):
    # 1) during the front ends: nothing finished, nothing kept
    c = Child(["josh_jax.demo", "--out", "o"] + TWO_WINDOWS, tmp_path)
    c.wait_for(r"\[demo\] walk.mp4")
    rc, dt, err = c.interrupt(after=2.0)
    _assert_clean_exit(rc, dt, err)
    assert "nothing kept" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.work").exists()
    # 2) during the first compile: the finished front ends are kept
    c = Child(["josh_jax.demo", "--out", "o"] + TWO_WINDOWS, tmp_path)
    c.wait_for("compiling the solver for this size")
    rc, dt, err = c.interrupt(after=1.0)
    _assert_clean_exit(rc, dt, err)
    assert (tmp_path / "o.work" / "bundle" / "bundle.json").is_file() and "resume" in err
    assert not (tmp_path / "o").exists()
    # 3) resumed (front ends skipped), interrupted while window 2 solves: window 1 is kept
    c = Child(["josh_jax.demo", "--out", "o"] + TWO_WINDOWS, tmp_path)
    c.wait_for(r"window 2/2: frames")
    rc, dt, err = c.interrupt(after=0.5)
    _assert_clean_exit(rc, dt, err)
    assert "resuming the interrupted run" in err
    assert re.search(r"window 1/2 joint: stage \d", _clean(err)), err  # labelled bars
    assert "front ends only" not in _clean(err)  # no baseline solve unless --baseline
    solved = sorted(p.name for p in (tmp_path / "o.work" / "solved").glob("window_*_results.npz"))
    assert solved == ["window_000_results.npz"], solved
    assert not (tmp_path / "o").exists()
    _no_temp(tmp_path)
