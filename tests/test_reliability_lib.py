"""Issue 16 at the library level: the SMPL unpickler's allow-list, shape checks, the hang and the
memory bound, temp-folder hygiene, and the truthful stills, plots and progress labels."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import josh_jax.body as jb
from josh_jax._cli import atomic
from josh_jax.bundle import BundleError
from josh_jax.config import ConfigError
from josh_jax.config import load as load_config

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ code execution


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.parametrize("where", ["top", "inside_array_field"])
def test_a_payload_pickle_is_refused_and_runs_nothing(tmp_path, where):
    target = tmp_path / "PWNED"
    data = _Payload(target) if where == "top" else {"v_template": _Payload(target), "f": np.zeros((1, 3))}
    p = tmp_path / "SMPL_NEUTRAL.pkl"
    p.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(jb.BodyModelError, match="refusing to load posix.system"):
        jb.load(p)
    assert not target.exists()


def test_official_style_and_plain_pickles_still_load(smpl_files):
    for kind in ("plain", "official"):
        assert jb.load(smpl_files[kind]).num_vertices == 6890


def test_a_string_field_is_one_line(tmp_path, smpl_arrays):
    from smpl_fixtures import write_plain_pickle

    p = tmp_path / "SMPL_NEUTRAL.pkl"
    write_plain_pickle(p, {**smpl_arrays, "weights": "oops"})
    with pytest.raises(jb.BodyModelError, match="'weights' holds"):
        jb.load(p)


# ------------------------------------------------------------------ silently wrong shapes


@pytest.mark.parametrize(
    "betas,rot,transl,word",
    [
        ((10,), (23, 3, 3), (3,), "rotmats"),
        ((10,), (24, 3), (3,), "rotmats"),
        ((10,), (24, 3, 3), (2,), "transl"),
        ((4, 10), (5, 24, 3, 3), (3,), "do not broadcast"),
    ],
)
def test_forward_refuses_wrong_shapes(open_model, betas, rot, transl, word):
    rots = jnp.broadcast_to(jnp.eye(3), rot[:-2] + (3, 3)) if rot[-1] == 3 and len(rot) > 2 else jnp.zeros(rot)
    with pytest.raises(ValueError, match=word):
        jb.forward(open_model, jnp.zeros(betas), rots, jnp.zeros(transl))


def test_forward_under_jit_still_checks(open_model):
    with pytest.raises(ValueError, match="rotmats"):
        jax.jit(jb.forward)(open_model, jnp.zeros(10), jnp.tile(jnp.eye(3), (23, 1, 1)))


# ------------------------------------------------------------------ hang


def test_stride_zero_cannot_hang():
    from josh_jax.problem import window_starts

    with pytest.raises(ValueError, match="stride"):
        window_starts(200, 20, 0)
    with pytest.raises(ConfigError, match="frontends.stride"):
        load_config(None, ["frontends.window=20", "frontends.stride=0"])
    with pytest.raises(ConfigError, match="frontends.stride"):
        load_config(None, ["frontends.window=20", "frontends.stride=20"])  # windows must overlap


@pytest.mark.parametrize(
    "override,word",
    [
        ("frontends.opt_interval=0", "opt_interval"),
        ("solve.iters_stage1=0", "iters_stage1"),
        ("solve.lr_stage1=-0.5", "lr_stage1"),
        ("solve.lr_stage2=nan", "lr_stage2"),
        ("weights.prior=nan", "prior"),
        ("problem.init_focal=1e30", "init_focal"),
        ("max_frames=abc", "max_frames"),
        ("solve.b1=1.5", "b1"),
    ],
)
def test_settings_are_validated_up_front(override, word):
    with pytest.raises(ConfigError, match=word):
        load_config(None, [override])


# ------------------------------------------------------------------ memory bound


@pytest.fixture(scope="module")
def solved_world(open_model):
    from josh_jax.losses import init_params
    from josh_jax.problem import build_problem
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    w, _ = make_world(open_model, 0, SynthConfig(num_keyframes=6))
    problem = build_problem(w, open_model)
    return w, problem, init_params(jax.tree_util.tree_map(jnp.asarray, problem))


def _problem_bytes(problem) -> int:
    return sum(int(x.nbytes) for x in jax.tree_util.tree_leaves(problem) if hasattr(x, "nbytes"))


@pytest.mark.slow
def test_an_adversarial_frame_gap_is_refused_before_any_allocation(solved_world, open_model):
    from josh_jax.results import build_results, check_result_size

    w, problem, params = solved_world
    bad = dataclasses.replace(w, frame_index=np.array([0, 5, 10, 15, 20, 2_000_000_000]))
    tracemalloc.start()
    with pytest.raises(BundleError, match="per-frame results would need"):
        check_result_size(problem, bad)
    with pytest.raises(BundleError, match="per-frame results would need"):
        build_results(params, problem, bad, open_model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20  # refused before the per-frame arrays (~18 TB here) were allocated


@pytest.mark.slow
def test_the_largest_accepted_gap_stays_within_the_bound(solved_world, open_model):
    """The per-frame allocation of build_results (numpy, measured) at the largest span the check
    accepts stays under max(4 x the padded problem, the floor): the estimate is conservative."""
    from josh_jax import results as R

    w, problem, params = solved_world
    limit = max(R.MEMORY_FACTOR * _problem_bytes(problem), R.MEMORY_FLOOR)
    per_frame = w.num_tracks * R.RESULT_BYTES_PER_PERSON_FRAME + R.RESULT_BYTES_PER_FRAME
    span = limit // per_frame  # the largest accepted
    K = w.num_keyframes
    fi = np.round(np.linspace(0, span - 1, K)).astype(np.int64)
    ok = dataclasses.replace(w, frame_index=fi)
    R.check_result_size(problem, ok)
    with pytest.raises(BundleError):
        R.check_result_size(
            problem, dataclasses.replace(w, frame_index=np.round(np.linspace(0, span + 10, K)).astype(np.int64))
        )

    def peak_of(window):
        tracemalloc.start()
        R.build_results(params, problem, window, open_model)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    base = peak_of(dataclasses.replace(w, frame_index=np.arange(K)))  # what does not grow with the span
    grown = peak_of(ok) - base
    assert 0 < grown <= limit, (grown, limit)


# ------------------------------------------------------------------ temp folders


def test_stale_temp_folders_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".o.josh-tmp-{dead}-abcd1234"
    stale.mkdir()
    (stale / "big.npz").write_bytes(b"x" * 1000)
    stale_file = tmp_path / f".window_000_results.josh-tmp-{dead}-k2j4h5g6.npz"
    stale_file.write_bytes(b"x")
    live = tmp_path / f".o.josh-tmp-{os.getpid()}-efgh5678"
    live.mkdir()
    others = [tmp_path / ".not-ours", tmp_path / f".backup-{dead}-oldstuff", tmp_path / f".o-{dead}-abcd1234"]
    for other in others:
        other.mkdir()
    with atomic.atomic_folder(tmp_path / "o", "o") as tmp:
        (tmp / "a.txt").write_text("1")
    assert not stale.exists() and not stale_file.exists() and live.exists()
    assert all(o.exists() for o in others)  # a user's hidden files are never touched
    assert (tmp_path / "o" / "a.txt").read_text() == "1"


def test_a_failed_write_leaves_the_old_output(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_folder(tmp_path / "o", "o") as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert (tmp_path / "o" / "old.txt").read_text() == "old"


@pytest.mark.parametrize(
    "case,word",
    [
        ("equal", "is the input"),
        ("contains", "contains the input"),
        ("file", "existing file"),
        ("nonempty", "not empty"),
        ("work-holds-input", "contains the input"),
    ],
)
def test_check_output(tmp_path, case, word):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "x").write_text("x")
    out, also = {
        "equal": (inp, ()),
        "contains": (tmp_path, ()),
        "file": (inp / "x", ()),
        "nonempty": (inp, ()),
        "work-holds-input": (tmp_path / "o", (tmp_path / "in",)),
    }[case]
    inputs = [] if case in ("file", "nonempty") else [inp / "x" if case == "work-holds-input" else inp]
    with pytest.raises(atomic.OutputError, match=word):
        atomic.check_output(out, inputs=inputs, overwrite=case not in ("nonempty",), also=also)


# ------------------------------------------------------------------ stills, plots, labels


def _res(visible: np.ndarray, ids=(0, 1)):
    """The fields of a Results that the plots read (as attributes)."""
    from types import SimpleNamespace

    P, F = visible.shape
    t = np.linspace(0, 1, F)
    cams = np.tile(np.eye(4, dtype=np.float32), (F, 1, 1))
    cams[:, 0, 3] = t
    joints = np.zeros((P, F, 24, 3), np.float32)
    for p in range(P):
        joints[p, :, 0] = np.stack([t + p, np.zeros(F), 3 + t], 1)
    return SimpleNamespace(
        frame_index=np.arange(100, 100 + F),
        cam_to_world=cams,
        person_ids=np.array(ids),
        visible=visible,
        joints_world=joints,
        points=np.random.default_rng(0).normal(size=(500, 3)) * 20,
        point_colors=np.full((500, 3), 128, np.uint8),
    )


def test_stills_are_where_the_most_people_are_tracked():
    from josh_jax.export.plots import pick_stills

    vis = np.zeros((2, 90), bool)
    vis[0, 10:80] = True
    vis[1, 25:35] = True
    vis[1, 60:62] = True
    picks = pick_stills(_res(vis), 3)
    fr = np.arange(100, 190)
    count = vis.sum(0)
    assert len(picks) == 3
    for p, part in zip(picks, np.array_split(np.arange(90), 3)):
        assert count[list(fr).index(p)] == count[part].max() > 0  # the best frame of each third, never empty
    assert pick_stills(_res(np.zeros((2, 90), bool)), 3)  # nobody anywhere: still three frames


def test_trajectory_colours_are_the_overlays_and_framed_on_cameras_and_people(tmp_path):
    from josh_jax.export.overlay import PALETTE
    from josh_jax.export.plots import plot_trajectory, trajectory_figure

    vis = np.ones((2, 30), bool)
    res = _res(vis, ids=(0, 3))
    fig = trajectory_figure(res, res)
    ax, ax2 = fig.axes[:2]
    people = {line.get_label(): line.get_color() for line in ax.get_lines() if line.get_label().startswith("person")}
    assert set(people) == {"person 0", "person 3"}
    for pid in (0, 3):
        np.testing.assert_allclose(np.asarray(people[f"person {pid}"])[:3], PALETTE[pid % len(PALETTE)] / 255.0)
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"person 0", "person 3", "camera"}
    x0, x1 = ax.get_xlim()
    assert x1 - x0 < 10  # framed on cameras and people (x in 0..2), not on the 20 m scene cloud
    assert "own panel" in ax2.get_title()
    plot_trajectory(res, res, tmp_path / "t.png")
    import cv2

    img = cv2.imread(str(tmp_path / "t.png"))[..., ::-1].astype(int)
    for pid in (0, 3):
        col = PALETTE[pid % len(PALETTE)]
        assert (np.abs(img - col).sum(-1) < 30).sum() > 50, pid  # the person's colour is in the picture


def test_loss_curve_marks_the_stage_boundary_and_explains_the_rise(tmp_path):
    from josh_jax.export.plots import LOSS_CAPTION, loss_figure, plot_losses

    h = [{"s1_total": np.geomspace(10, 1, 50), "s2_total": np.geomspace(5, 1, 20)}]
    fig = loss_figure(h)
    ax = fig.axes[0]
    vlines = [line for line in ax.get_lines() if np.allclose(line.get_xdata(), 50)]
    assert vlines, "no line at the stage boundary"
    texts = [t.get_text() for t in fig.texts] + [t.get_text() for t in ax.texts]
    assert LOSS_CAPTION in texts and any("stage 2" in t for t in texts)
    plot_losses(h, tmp_path / "l.png")
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_progress_bars_are_labelled(capsys):
    from josh_jax.solve import solver

    with solver.progress_label("window 1/2 joint"):
        lab = solver.label_id(solver._Bars.label)
        solver._progress(np.int32(lab), np.int32(1), np.int32(5), np.int32(10))
        assert solver._Bars.bars[(lab, 1)].desc == "window 1/2 joint: stage 1"
        solver._progress(np.int32(lab), np.int32(1), np.int32(10), np.int32(10))
    with solver.progress_label("window 1/2 front ends only"):
        lab = solver.label_id(solver._Bars.label)
        solver._progress(np.int32(lab), np.int32(2), np.int32(10), np.int32(10))
    err = capsys.readouterr().err
    assert "window 1/2 joint: stage 1" in err and "window 1/2 front ends only: stage 2" in err
    assert solver._Bars.label == ""


def test_the_compile_notice_comes_once_per_size(capsys, solved_world):
    from josh_jax.run import window
    from josh_jax.solve import SolveConfig

    _, problem, _ = solved_world
    window._Compiled.seen.clear()
    say = lambda m: print(m, file=sys.stderr)
    window.compile_notice(problem, SolveConfig(), say)
    window.compile_notice(problem, SolveConfig(), say)
    assert capsys.readouterr().err.count("compiling the solver for this size (once per size)") == 1


def test_focal_is_taken_in_original_pixels():
    from josh_jax.frontends.intrinsics import working_focal
    from josh_jax.video import VideoInfo

    info = VideoInfo(Path("v.mp4"), 1280, 720, 30.0, 0, 10)
    assert working_focal(1000.0, info, 512) == pytest.approx(400.0)  # 1280 -> 512
    assert working_focal(None, info) is None


def test_sfm_hint_on_a_short_clip_says_to_use_a_longer_one():
    from josh_jax.frontends.sfm import _sfm_hint

    assert "longer clip" in _sfm_hint(3) and "--camera static" in _sfm_hint(3)
    # the right next step for each camera: auto's fallbacks, a pan/tilt/zoom, a camera that does not move
    assert all(w in _sfm_hint(20) for w in ("--camera auto", "--camera rotation", "--camera static"))


def test_check_file_outputs_never_replaces_an_input_nor_asks_twice(tmp_path):
    """One check for every CLI's output files: an input (or a file inside an input folder, or a folder
    holding an input) is refused even with overwrite; an existing file or non-empty folder needs overwrite;
    a new path, or an empty folder, passes."""
    res = tmp_path / "run" / "results.npz"
    res.parent.mkdir()
    res.write_bytes(b"x")
    other = tmp_path / "run" / "init.npz"
    other.write_bytes(b"y")
    for target, ok_with_overwrite in (
        (res, False),  # the input itself
        (tmp_path / "run", False),  # a folder holding it
        (other, True),  # an existing output
    ):
        with pytest.raises(atomic.OutputError):
            atomic.check_file_outputs([target], [res])
        if ok_with_overwrite:
            atomic.check_file_outputs([target], [res], overwrite=True)
        else:
            with pytest.raises(atomic.OutputError, match="input"):
                atomic.check_file_outputs([target], [res], overwrite=True)
    root = tmp_path / "results_root"
    (root / "seq").mkdir(parents=True)
    (root / "seq" / "results.npz").write_bytes(b"z")
    with pytest.raises(atomic.OutputError, match="input"):  # a file of an input folder
        atomic.check_file_outputs([root / "seq" / "results.npz"], [root], overwrite=True)
    atomic.check_file_outputs([root / "table.json"], [root])  # a new file beside them is fine
    (tmp_path / "empty").mkdir()
    atomic.check_file_outputs([tmp_path / "empty", tmp_path / "new.json"], [res])
    assert res.read_bytes() == b"x" and other.read_bytes() == b"y"


def test_evaluate_never_writes_over_its_inputs(solved_world, tmp_path, capsys):
    """python -m josh_jax.evaluate --json F: F one of the inputs, or an existing file without --overwrite,
    is refused with one line before anything is read or written."""
    from josh_jax.evaluate import main as evaluate_main

    res, gt = tmp_path / "results.npz", tmp_path / "gt.npz"
    res.write_bytes(b"not read")
    gt.write_bytes(b"not read either")
    for target in (res, gt):
        assert evaluate_main([str(res), str(gt), "--json", str(target), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "input" in err, err
    old = tmp_path / "old.json"
    old.write_text("{}")
    assert evaluate_main([str(res), str(gt), "--json", str(old)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert res.read_bytes() == b"not read" and gt.read_bytes() == b"not read either" and old.read_text() == "{}"
