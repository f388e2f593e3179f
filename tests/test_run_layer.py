"""josh_jax.run: the run's specification, the methods table, and the one window solve."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from josh_jax.bundle import BundleMeta
from josh_jax.run import METHODS, MethodError, RunSpec, RunSpecError, hold_cameras, method
from josh_jax.solve import SolveConfig

PKG = Path(__file__).resolve().parents[1] / "josh_jax"


def test_a_run_spec_survives_json_and_refuses_what_it_did_not_write(tmp_path):
    spec = RunSpec(
        video=Path("clip.mp4"),
        out=tmp_path / "o",
        overrides=("solve.iters_stage1=7", "weights.prior=2"),
        focal=1200.0,
        frames=30,
        max_people=3,
        baseline=True,
        method="josh3r+joint",
        models="models_onnx",  # a string path becomes a Path
    )
    assert spec.models == Path("models_onnx") and spec.work == tmp_path / "o.work"
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["version"] == 1 and d["overrides"] == ["solve.iters_stage1=7", "weights.prior=2"]
    assert RunSpec.from_dict(d) == spec
    assert RunSpec.from_dict({**RunSpec().to_dict(), "focal": 1000}).focal == 1000.0  # JSON's int for a float
    for bad, match in (
        ({**d, "colour": "red"}, "unknown field"),
        ({**d, "frames": "30"}, "frames must be a int"),
        ({**d, "baseline": 1}, "baseline must be a bool"),
        ({**d, "version": 99}, "version 99"),
        ({**d, "overrides": "a=b"}, "overrides must be a list"),
        ({**d, "method": "josh4"}, "unknown method 'josh4'; choose one of josh, josh3r, josh3r\\+joint"),
        ({**d, "camera": "drone"}, "camera 'drone'"),
        ({**d, "frames": 0}, "frames >= 1"),
        ([], "not a JSON object"),
    ):
        with pytest.raises((RunSpecError, MethodError), match=match):
            RunSpec.from_dict(bad)


def test_the_demo_flags_make_the_spec_and_a_config_file_keeps_its_people_count():
    from josh_jax import demo

    spec = RunSpec.from_args(demo._parser().parse_args([]))
    assert spec == RunSpec()  # no flag: every default, the bundled clip
    assert spec.max_people is None  # --max-people not given: the config's frontends.max_people holds
    got = RunSpec.from_args(demo._parser().parse_args(["v.mp4", "--max-people", "2", "--set", "a=b", "--fresh"]))
    assert (got.video, got.max_people, got.overrides, got.fresh) == (Path("v.mp4"), 2, ("a=b",), True)


def test_the_methods_are_one_table():
    from josh_jax import demo

    assert list(METHODS) == ["josh", "josh3r", "josh3r+joint"]
    assert [m.optimizes for m in METHODS.values()] == [True, False, True]
    assert [m.josh3r_pairs for m in METHODS.values()] == [False, True, True]
    assert [m.warm_start for m in METHODS.values()] == [False, False, True]
    (action,) = [a for a in demo._parser()._actions if a.dest == "method"]
    assert tuple(action.choices) == tuple(METHODS)  # the CLI offers exactly the table's methods
    with pytest.raises(MethodError, match="choose one of josh, josh3r"):
        method("joint")


def test_what_a_camera_model_holds_is_decided_once():
    free = SolveConfig()
    assert free.optimize_cameras and free.optimize_focal
    for camera in ("static", "rotation"):
        held = hold_cameras(free, BundleMeta(camera=camera))
        assert not held.optimize_cameras and not held.optimize_focal, camera
    focal_only = hold_cameras(free, BundleMeta(camera="sfm", fixed_intrinsics=True))
    assert focal_only.optimize_cameras and not focal_only.optimize_focal
    for camera in ("sfm", "point maps"):
        assert hold_cameras(free, BundleMeta(camera=camera)) == free


@pytest.mark.slow  # compiles a (small) solve: ~25 s
def test_the_window_solve_is_the_solver_on_the_problem_and_its_baseline(open_model):
    """solve_window = build_problem, the joint solve and the front-ends-only baseline, each as the
    solver gives it (same program, same numbers), and the results built from them."""
    from josh_jax.losses import LossWeights
    from josh_jax.problem import build_problem
    from josh_jax.results import build_results
    from josh_jax.run import WindowSettings, solve_window
    from josh_jax.solve import front_ends_only, solve
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    w, _ = make_world(open_model, 0, SynthConfig(num_keyframes=6))
    scfg = SolveConfig(iters_stage1=6, iters_stage2=4)
    got = solve_window(w, open_model, WindowSettings(solve=scfg, baseline=True), progress=False)
    problem = build_problem(w, open_model)
    joint = solve(problem, LossWeights(), scfg)
    base = solve(*front_ends_only(problem), scfg)
    for a, b in zip(jax.tree_util.tree_leaves(got.result.params), jax.tree_util.tree_leaves(joint.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree_util.tree_leaves(got.init_params), jax.tree_util.tree_leaves(base.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert got.seconds_joint > 0 and got.seconds_init > 0
    np.testing.assert_array_equal(
        got.results(w, open_model).joints_world, build_results(joint.params, problem, w, open_model).joints_world
    )
    # no baseline: the init results are the problem's starting point, and no second solve ran
    alone = solve_window(w, open_model, WindowSettings(solve=scfg), progress=False)
    assert alone.seconds_init is None and alone.init_problem is alone.problem
    for a, b in zip(jax.tree_util.tree_leaves(alone.init_params), jax.tree_util.tree_leaves(joint.init)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _calls(path: Path, names: set) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            linalg = isinstance(f, ast.Attribute) and "linalg" in ast.unparse(f.value)  # np.linalg.solve
            if name in names and not linalg:
                out.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {name}")
    return out


def test_the_window_solve_exists_once():
    """Only josh_jax/run/window.py calls the solver on a window (its joint solve, its baseline, the vmapped
    batch): the demo, the batch CLI, the solve CLI and the synthetic demo go through it."""
    names = {"solve", "solve_batch", "front_ends_only"}
    calls = [
        c for p in sorted(PKG.rglob("*.py")) if "solve" not in p.relative_to(PKG).parts[:1] for c in _calls(p, names)
    ]
    calls += _calls(PKG / "solve" / "__main__.py", names)
    assert calls and all(c.startswith("josh_jax/run/window.py:") for c in calls), calls


def test_the_demo_is_arguments_stage_order_and_printing():
    """demo.py defines no stage: prepare, front ends, window solves and exports live in josh_jax.run."""
    tree = ast.parse((PKG / "demo.py").read_text())
    defs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defs <= {
        "_log",
        "add_run_args",
        "_parser",
        "_print_alignment",
        "_print_summary",
        "main",
        "_release_on_interrupt",
        "_interrupted_message",
    }, defs
    assert dataclasses.is_dataclass(RunSpec)


def test_a_method_added_to_the_table_is_offered_and_asked(monkeypatch):
    """The architecture guide's recipe, done once: a new METHODS entry is a valid RunSpec method, the demo's
    and the batch CLI's --method offer it, and the stages ask its entry (here: no optimization, so the
    batch's prepare stage schedules no window solve)."""
    import types

    from josh_jax import batch, demo
    from josh_jax.run import Method, stages

    mine = Method("mine", "a method of one's own", josh3r_pairs=False, optimizes=False, warm_start=False)
    monkeypatch.setitem(METHODS, "mine", mine)
    assert RunSpec(method="mine").method == "mine"
    assert demo._parser().parse_args(["--method", "mine"]).method == "mine"
    assert batch._parser().parse_args(["v.mp4", "--out", "o", "--method", "mine"]).method == "mine"
    info = types.SimpleNamespace(num_frames=10)
    monkeypatch.setattr(
        stages, "prepare", lambda spec, **kw: types.SimpleNamespace(info=info, method=method(spec.method))
    )
    monkeypatch.setattr(stages, "front_ends", lambda p, seconds=None: (p, None, [0, 1]))
    monkeypatch.setattr(stages, "window_done", lambda p, i: False)
    assert batch.stage_prepare(RunSpec(method="mine"))["todo"] == []
    assert batch.stage_prepare(RunSpec(method="josh"))["todo"] == [0, 1]
