"""Every bad input of issue 16, run as a user runs the CLIs: ``python -m josh_jax.X`` in a subprocess.

Each row: which CLI, how the case is set up, and a piece of the one-line message. Every case must
end with exit code 2, exactly one line on stderr (``error: ...``), no traceback, and nothing new
left in the folder (no output folder, no ``OUT.work``, no hidden temp folder), inputs untouched.
docs/reliability.md lists the same table with the messages.

All cases are set up first, then run by tests/cli_batch.py: one subprocess per kind of process (as
root: one with root's permission override dropped, one under a file size limit, one plain), each
running its cases one after another as ``-m`` does, with fds 1 and 2 captured per case. That imports
JAX, onnxruntime and pycolmap 3 times instead of ~60 (the table took ~8 min, now ~1). Set
``JOSH_TEST_CLI_ISOLATED=1`` to run every case in a fresh process of its own instead.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# preexec_fn (SIGINT back to default / a file size limit) makes subprocess fork; the child execs at once
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called")
EXAMPLE = REPO / "josh_jax" / "data" / "example" / "walk.mp4"
# root ignores file permissions: permission cases run the CLI without the capabilities that allow it
DROP_CAPS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns if p.is_file() else None for p in d.rglob("*")}


BATCH = Path(__file__).resolve().parent / "cli_batch.py"


def run_batch(
    cases: list, work: Path, no_root: bool = False, fsize: int | None = None, timeout=900, path: str = ""
) -> list:
    """[(exit code, stderr)] of ``python -m josh_jax.MODULE ARGS`` in ``cwd`` for each (module, args, cwd),
    all run in one subprocess by tests/cli_batch.py (without root's permission override when ``no_root``,
    under a file size limit of ``fsize`` bytes, as a full disk)."""
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o777)
    home = work / "home"  # caches (matplotlib, onnxruntime) go there, not into the cases' folders
    home.mkdir(exist_ok=True)
    os.chmod(home, 0o777)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [path, str(REPO)])),
        JAX_PLATFORMS="cpu",
        MPLCONFIGDIR=str(home / "mpl"),
        HOME=str(home),
        TQDM_DISABLE="1",
    )
    spec = [
        {
            "module": f"josh_jax.{m}",
            "args": [str(a) for a in args],
            "cwd": str(cwd),
            "stderr": str(work / f"err_{i}.txt"),
        }
        for i, (m, args, cwd) in enumerate(cases)
    ]
    (work / "cases.json").write_text(json.dumps(spec))
    results = work / "results.json"

    def pre():
        if fsize is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    prefix = DROP_CAPS if no_root else []
    p = subprocess.run(
        [*prefix, sys.executable, str(BATCH), str(work / "cases.json"), str(results)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pre,
    )
    assert p.returncode == 0 and results.is_file(), (p.returncode, p.stderr[-3000:])
    return [(r["rc"], r["stderr"]) for r in json.loads(results.read_text())]


def one_error_line(rc: int, err: str) -> str:
    """The one ``error:`` line; before it only the CLI's own progress lines (``[frontends] ...``)."""
    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: "), err
    assert all(re.match(r"^\[[a-z_.]+\] ", line) for line in lines[:-1]), err
    return lines[-1]


# ------------------------------------------------------------------ inputs the cases start from


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small synthetic bundle (6 keyframes) written once."""
    import josh_jax.body as jb
    from josh_jax.bundle import save
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    d = tmp_path_factory.mktemp("bundle") / "b"
    w, _ = make_world(jb.load("open"), 0, SynthConfig(num_keyframes=6))
    save(d, [w], {"body_model": "open"})
    return d


def _copy_bundle(bundle: Path, d: Path, **fields) -> Path:
    """A copy of ``bundle`` in ``d/b`` with some window fields replaced."""
    out = d / "b"
    shutil.copytree(bundle, out)
    if fields:
        with np.load(out / "window_000.npz") as z:
            arr = {k: z[k] for k in z.files}
        for k, v in fields.items():
            arr[k] = v(arr) if callable(v) else v
        np.savez(out / "window_000.npz", **arr)
    return out


def _json_bundle(bundle: Path, d: Path, text: bytes) -> Path:
    out = _copy_bundle(bundle, d)
    (out / "bundle.json").write_bytes(text)
    return out


class _Payload:
    """A pickle that would create a file when loaded (os.system('touch PWNED'))."""

    def __reduce__(self):
        return os.system, ("touch PWNED",)


def _evil_pickle(d: Path) -> Path:
    p = d / "SMPL_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps({"v_template": _Payload()}, protocol=2))
    return p


def _string_field_pickle(d: Path) -> Path:
    from smpl_fixtures import synthetic_smpl_arrays, write_plain_pickle

    a = synthetic_smpl_arrays()
    a["v_template"] = "not an array"
    p = d / "SMPL_NEUTRAL.pkl"
    write_plain_pickle(p, {**a, "kintree_table": a["kintree_table"]})
    return p


def _smpl(d: Path) -> Path:
    """A synthetic SMPL-topology model (6890 vertices) as a plain pickle."""
    from smpl_fixtures import synthetic_smpl_arrays, write_plain_pickle

    p = d / "smpl" / "SMPL_NEUTRAL.pkl"
    p.parent.mkdir()
    write_plain_pickle(p, synthetic_smpl_arrays())
    return p


def _nonempty(d: Path, name="o") -> Path:
    (d / name).mkdir()
    (d / name / "keep.txt").write_text("mine")
    return d / name


def _file(d: Path, name="afile") -> Path:
    (d / name).write_text("mine")
    return d / name


def _readonly_parent(d: Path) -> Path:
    """A folder the CLI (run as 'nobody' when we are root) cannot write into."""
    ro = d / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    return ro / "o"


def _truncated_video(d: Path) -> Path:
    p = d / "cut.mp4"
    p.write_bytes(EXAMPLE.read_bytes()[:20000])
    return p


def _symlink_loop(d: Path) -> Path:
    a, b = d / "a.mp4", d / "b.mp4"
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _unreadable_video(d: Path) -> Path:
    p = d / "v.mp4"
    shutil.copy(EXAMPLE, p)
    os.chmod(p, 0o000)
    return p


def _config(d: Path, text: str, name="c.json") -> Path:
    (d / name).write_text(text)
    return d / name


def _corrupt_blazepose(d: Path) -> Path:
    from josh_jax.frontends.blazepose import DETECTOR_FILE, LANDMARK_FILE

    m = d / "models"
    m.mkdir()
    for f in (DETECTOR_FILE, LANDMARK_FILE):
        (m / f).write_bytes(b"\x08\x01garbage, not a protobuf" * 10)
    return m


def _corrupt_official(d: Path) -> Path:
    from josh_jax.frontends.official.contracts import CONTRACTS

    m = d / "models"
    m.mkdir()
    for c in CONTRACTS.values():
        (m / c["file"]).parent.mkdir(parents=True, exist_ok=True)
        (m / c["file"]).write_bytes(b"\x08\x01garbage" * 10)
    return m


def _text_npz(d: Path) -> Path:
    (d / "r.npz").write_text("just text\n")
    return d / "r.npz"


S = "solve"
F0 = np.arange(6) * 5  # the fixture's keyframes
ROT = lambda a: np.zeros_like(a["track_rotmats"])

# (id, module, args(d, bundle) -> list, words of the message, True: run without root's permission override,
#  "fsize": run with a 20 kB file size limit, as a full disk)
CASES = [
    # ---- data loss
    ("synth-nonempty-dir", "synthetic.worlds", lambda d, b: [_nonempty(d), "--seed", "1"], "not empty", False),
    ("synth-existing-file", "synthetic.worlds", lambda d, b: [_file(d), "--seed", "1"], "existing file", False),
    (
        "synth-existing-file-overwrite",
        "synthetic.worlds",
        lambda d, b: [_file(d), "--overwrite"],
        "existing file",
        False,
    ),
    (
        "solve-out-is-input",
        S,
        lambda d, b: [_copy_bundle(b, d), "--out", d / "b", "--overwrite"],
        "is the input",
        False,
    ),
    (
        "solve-out-contains-input",
        S,
        lambda d, b: [_copy_bundle(b, d), "--out", d, "--overwrite"],
        "contains the input",
        False,
    ),
    (
        "demo-out-holds-video",
        "demo",
        lambda d, b: [_copy_video(d), "--out", d / "o", "--overwrite"],
        "contains the input",
        False,
    ),
    ("solve-nonempty-out", S, lambda d, b: [b, "--out", _nonempty(d)], "not empty", False),
    # ---- code execution (the payload would create PWNED)
    (
        "smpl-payload-pickle",
        S,
        lambda d, b: [b, "--out", d / "o", "--body-model", _evil_pickle(d)],
        "refusing to load posix.system",
        False,
    ),
    # ---- hang
    (
        "stride-0",
        "demo",
        lambda d, b: ["--out", d / "o", "--set", "frontends.window=20", "--set", "frontends.stride=0"],
        "frontends.stride must be",
        False,
    ),
    # ---- out of memory
    (
        "frame-gap-2e9",
        S,
        lambda d, b: [_copy_bundle(b, d, frame_index=np.array([0, 5, 10, 15, 20, 2_000_000_000])), "--out", d / "o"],
        "per-frame results would need",
        False,
    ),
    # ---- tracebacks
    ("solve-out-file", S, lambda d, b: [b, "--out", _file(d)], "existing file", False),
    ("frontends-out-file", "frontends", lambda d, b: [EXAMPLE, "--out", _file(d)], "existing file", False),
    ("demo-readonly-out", "demo", lambda d, b: ["--out", _readonly_parent(d)], "permission denied", True),
    ("synth-readonly-out", "synthetic.worlds", lambda d, b: [_readonly_parent(d)], "permission denied", True),
    (
        "frontends-readonly-out",
        "frontends",
        lambda d, b: [EXAMPLE, "--out", _readonly_parent(d)],
        "permission denied",
        True,
    ),
    ("solve-readonly-out", S, lambda d, b: [b, "--out", _readonly_parent(d)], "permission denied", True),
    (
        "blazepose-corrupt-onnx",
        "frontends",
        lambda d, b: [EXAMPLE, "--out", d / "o", "--frames", "20", "--models", _corrupt_blazepose(d)],
        "export_blazepose.py",
        False,
    ),
    (
        "official-corrupt-onnx",
        "frontends",
        lambda d, b: [
            EXAMPLE,
            "--out",
            d / "o",
            "--frames",
            "20",
            "--frontends",
            "official",
            "--models",
            _corrupt_official(d),
            "--body-model",
            _smpl(d),
        ],
        "cannot be loaded by onnxruntime",
        False,
    ),
    (
        "smpl-string-field",
        S,
        lambda d, b: [b, "--out", d / "o", "--body-model", _string_field_pickle(d)],
        "not numbers",
        False,
    ),
    (
        "config-top-level-list",
        "demo",
        lambda d, b: ["--out", d / "o", "--config", _config(d, "[1, 2]")],
        "top level must be a table",
        False,
    ),
    (
        "bundle-json-list",
        S,
        lambda d, b: [_json_bundle(b, d, b"[1, 2]"), "--out", d / "o"],
        "top level must be an object",
        False,
    ),
    (
        "bundle-windows-string",
        S,
        lambda d, b: [
            _json_bundle(
                b, d, json.dumps({"format": "josh-bundle", "version": 1, "windows": "window_000.npz"}).encode()
            ),
            "--out",
            d / "o",
        ],
        '"windows" must be a list',
        False,
    ),
    (
        "bundle-window-no-file",
        S,
        lambda d, b: [
            _json_bundle(
                b, d, json.dumps({"format": "josh-bundle", "version": 1, "windows": [{"first_frame": 0}]}).encode()
            ),
            "--out",
            d / "o",
        ],
        'needs a "file"',
        False,
    ),
    (
        "opt-interval-0",
        "demo",
        lambda d, b: ["--out", d / "o", "--set", "frontends.opt_interval=0"],
        "frontends.opt_interval must be",
        False,
    ),
    (
        "opt-interval-negative",
        "demo",
        lambda d, b: ["--out", d / "o", "--set", "frontends.opt_interval=-2"],
        "frontends.opt_interval must be",
        False,
    ),
    ("iters-stage1-0", S, lambda d, b: [b, "--out", d / "o", "--iters-stage1", "0"], "must be >= 1", False),
    ("iters-stage2-negative", S, lambda d, b: [b, "--out", d / "o", "--iters-stage2", "-5"], "must be >= 1", False),
    ("focal-updates-weird", S, lambda d, b: [b, "--out", d / "o", "--focal-updates", "weird"], "invalid choice", False),
    (
        "synth-keyframes-1",
        "synthetic.worlds",
        lambda d, b: [d / "o", "--keyframes", "1"],
        "at least 3 keyframes",
        False,
    ),
    (
        "synth-keyframes-negative",
        "synthetic.worlds",
        lambda d, b: [d / "o", "--keyframes", "-3"],
        "must be >= 0",
        False,
    ),
    ("synth-seed-negative", "synthetic.worlds", lambda d, b: [d / "o", "--seed", "-1"], "must be >= 0", False),
    (
        "synth-bad-body-model",
        "synthetic.worlds",
        lambda d, b: [d / "o", "--body-model", d / "nope.pkl"],
        "not found",
        False,
    ),
    (
        "solve-disk-full",
        S,
        lambda d, b: [b, "--out", d / "o", "--iters-stage1", "2", "--iters-stage2", "2"],
        "cannot write",
        "fsize",
    ),
    ("synth-disk-full", "synthetic.worlds", lambda d, b: [d / "o"], "cannot write", "fsize"),
    # ---- silently wrong results
    (
        "lr-negative",
        S,
        lambda d, b: [b, "--out", d / "o", "--lr-stage1", "-0.5"],
        "lr_stage1 must be a positive",
        False,
    ),
    ("lr-zero", S, lambda d, b: [b, "--out", d / "o", "--lr-stage2", "0"], "lr_stage2 must be a positive", False),
    ("lr-nan", S, lambda d, b: [b, "--out", d / "o", "--lr-stage1", "nan"], "lr_stage1 must be a positive", False),
    ("w-prior-nan", S, lambda d, b: [b, "--out", d / "o", "--w-prior", "nan"], "weights.prior must be", False),
    (
        "init-focal-1e30",
        S,
        lambda d, b: [_copy_bundle(b, d, init_focal=np.array(1e30)), "--out", d / "o"],
        "implausible",
        False,
    ),
    (
        "all-zero-conf",
        S,
        lambda d, b: [_copy_bundle(b, d, conf=lambda a: np.zeros_like(a["conf"])), "--out", d / "o"],
        "no scene pixel has confidence",
        False,
    ),
    (
        "pairs-without-correspondences",
        S,
        lambda d, b: [
            _copy_bundle(
                b,
                d,
                corr_pair=np.zeros(0, np.int64),
                corr_pix=np.zeros((0, 2, 2), np.float32),
                corr_conf=np.zeros(0, np.float32),
            ),
            "--out",
            d / "o",
        ],
        "no usable scene entries",
        False,
    ),
    (
        "negative-frame-index",
        S,
        lambda d, b: [_copy_bundle(b, d, frame_index=F0 - 10), "--out", d / "o"],
        ">= 0",
        False,
    ),
    (
        "duplicate-track-ids",
        S,
        lambda d, b: [_two_tracks_same_id(b, d), "--out", d / "o"],
        "duplicate person ids",
        False,
    ),
    (
        "optimize-focal-maybe",
        S,
        lambda d, b: [b, "--out", d / "o", "--optimize-focal", "maybe"],
        "expected true or false",
        False,
    ),
    # ---- misleading messages
    ("video-unreadable", "demo", lambda d, b: [_unreadable_video(d), "--out", d / "o"], "permission denied", True),
    ("video-symlink-loop", "demo", lambda d, b: [_symlink_loop(d), "--out", d / "o"], "symbolic link", False),
    ("config-is-folder", "demo", lambda d, b: ["--out", d / "o", "--config", d], "is a folder", False),
    ("start-negative", "demo", lambda d, b: ["--out", d / "o", "--start", "-5"], "must be >= 0", False),
    ("frames-negative", "demo", lambda d, b: ["--out", d / "o", "--frames", "-5"], "must be >= 1", False),
    ("max-people-0", "demo", lambda d, b: ["--out", d / "o", "--max-people", "0"], "must be >= 1", False),
    (
        "image-size-3",
        S,
        lambda d, b: [_copy_bundle(b, d, image_size=np.array([160, 120, 3])), "--out", d / "o"],
        "image_size",
        False,
    ),
    (
        "frame-index-2d",
        S,
        lambda d, b: [_copy_bundle(b, d, frame_index=F0.reshape(2, 3)), "--out", d / "o"],
        "expected (K,)",
        False,
    ),
    (
        "frame-index-nan",
        S,
        lambda d, b: [_copy_bundle(b, d, frame_index=np.where(F0 == 5, np.nan, F0)), "--out", d / "o"],
        "whole numbers",
        False,
    ),
    (
        "all-zero-rotations",
        S,
        lambda d, b: [_copy_bundle(b, d, track_rotmats=ROT), "--out", d / "o"],
        "not rotation matrices",
        False,
    ),
    (
        "bundle-json-not-utf8",
        S,
        lambda d, b: [_json_bundle(b, d, b"\xff\xfe\x00garbage"), "--out", d / "o"],
        "not UTF-8",
        False,
    ),
    ("evaluate-text-npz", "evaluate", lambda d, b: [_text_npz(d), _text_npz(d)], "not an .npz archive", False),
    (
        "truncated-video-one-line",
        "demo",
        lambda d, b: [_truncated_video(d), "--out", d / "o"],
        "cannot be opened",
        False,
    ),
    ("out-is-a-file", "demo", lambda d, b: ["--out", _file(d)], "existing file, not a folder", False),
    (
        "missing-video-before-output",
        "demo",
        lambda d, b: [d / "nonexistent.mp4", "--out", _nonempty(d)],
        "does not exist",
        False,
    ),
    ("focal-negative", "demo", lambda d, b: ["--out", d / "o", "--focal", "-3"], "positive", False),
]


def _copy_video(d: Path) -> Path:
    (d / "o").mkdir()
    shutil.copy(EXAMPLE, d / "o" / "walk.mp4")
    return d / "o" / "walk.mp4"


def test_the_batch_runner_sees_what_a_subprocess_sees(tmp_path):
    """A traceback, a C-level line on fd 2, a warning in every case (not once per process), the exit
    code of sys.exit and of an uncaught exception, and the working folder of each case."""
    pkg = tmp_path / "pkg"
    (pkg / "josh_jax").mkdir(parents=True)  # a stand-in package; its modules are found as josh_jax.X
    (pkg / "josh_jax" / "__init__.py").write_text("")
    (pkg / "josh_jax" / "crash.py").write_text(
        "import os, warnings\nos.write(2, b'from C\\n')\nwarnings.warn('careful')\nopen('here.txt', 'w').close()\n"
        "raise ValueError('boom')\n"
    )
    (pkg / "josh_jax" / "quit.py").write_text("import sys\nsys.exit(2)\n")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # the stand-in shadows the real package for this batch only
    res = run_batch([("crash", [], a), ("crash", [], b), ("quit", ["x"], a)], tmp_path / "w", path=str(pkg))
    for rc, err in res[:2]:
        assert rc == 1 and "from C" in err and "careful" in err and "Traceback" in err and "ValueError: boom" in err
    assert res[2] == (2, "")
    assert (a / "here.txt").is_file() and (b / "here.txt").is_file()


def test_the_table_has_unique_ids():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def outcomes(bundle, tmp_path_factory, request) -> dict:
    """Every selected case set up in its own folder, then run (one batch per kind of process):
    {id: (exit code, stderr, folder, listing before) or the exception its setup raised}."""
    selected = {
        it.callspec.params["case"][0]
        for it in request.session.items
        if it.module is request.module and "case" in getattr(getattr(it, "callspec", None), "params", {})
    }
    set_up, out = {}, {}
    for name, module, make_args, _, mode in CASES:
        if name not in selected:
            continue
        d = tmp_path_factory.mktemp(name) / "case"
        d.mkdir()
        os.chmod(d, 0o777)
        os.chmod(d.parent, 0o777)
        try:
            args = make_args(d, bundle)
        except Exception as e:  # reported by that case's test
            out[name] = e
            continue
        set_up[name] = (module, args, d, _listing(d), mode)
    isolated = os.environ.get("JOSH_TEST_CLI_ISOLATED") == "1"
    groups: dict = {}
    for name, (module, args, d, before, mode) in set_up.items():
        groups.setdefault(name if isolated else str(mode), []).append(name)
    work = tmp_path_factory.mktemp("batch")
    for k, (g, names) in enumerate(groups.items()):
        mode = set_up[names[0]][4]
        t = time.perf_counter()
        res = run_batch(
            [(set_up[n][0], set_up[n][1], set_up[n][2]) for n in names],
            work / f"g{k}",
            no_root=mode is True,
            fsize=20_000 if mode == "fsize" else None,
        )
        print(f"[cli batch] {len(names)} cases ({g}) in {time.perf_counter() - t:.1f} s")
        for n, (rc, err) in zip(names, res):
            out[n] = (rc, err, set_up[n][2], set_up[n][3])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_line(case, outcomes):
    name, module, make_args, words, mode = case
    got = outcomes[name]
    if isinstance(got, Exception):
        raise got
    rc, err, d, before = got
    line = one_error_line(rc, err)
    if words:
        assert words in line, line
    after = _listing(d)
    assert after == before, (line, set(after) ^ set(before))  # nothing left behind, inputs untouched
    assert not (d / "PWNED").exists()


def _two_tracks_same_id(bundle: Path, d: Path) -> Path:
    """The fixture's one track twice, under the same id."""

    def dup(key):
        return lambda a: np.concatenate([a[key], a[key]], 0)

    return _copy_bundle(
        bundle,
        d,
        track_ids=np.array([3, 3]),
        track_valid=dup("track_valid"),
        track_rotmats=dup("track_rotmats"),
        track_betas=dup("track_betas"),
        track_transl=dup("track_transl"),
        track_contact=dup("track_contact"),
    )
