"""The package's public API and the direction of imports (docs/architecture.md)."""

import json
import subprocess
import sys

import pytest

import josh_jax


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [m for m in json.loads(out.stdout.splitlines()[-1]) if m.startswith("josh_jax")]


def test_every_public_name_resolves():
    for name in josh_jax.__all__:
        assert getattr(josh_jax, name) is not None, name
    assert josh_jax.solve.solve.__module__ == "josh_jax.solve.solver"
    assert josh_jax.load_body is josh_jax.body.load


def test_import_is_cheap():
    mods = _modules_after("import josh_jax")
    assert mods == ["josh_jax"]
    assert (
        "jax"
        not in subprocess.run(
            [sys.executable, "-c", "import josh_jax, sys; print(' '.join(sys.modules))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )


def test_numpy_geometry_does_not_load_jax():
    code = "import josh_jax.geometry.pinhole, josh_jax.geometry.boxes, sys; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "jax" not in loaded
    from josh_jax import geometry

    assert geometry.quat_to_matrix.__module__ == "josh_jax.geometry.rotations"  # the lazy names still resolve
    assert set(geometry.__all__) <= set(dir(geometry))


@pytest.mark.slow
def test_imports_go_down_the_flow():
    # the front ends never need the problem stage, the objective or the solver
    mods = _modules_after("import josh_jax.frontends, josh_jax.frontends.official")
    assert not [
        m
        for m in mods
        if m.count(".") and m.split(".")[1] in ("problem", "losses", "solve", "results", "join", "export")
    ], mods
    # the exports read results and video, never the front ends
    mods = _modules_after(
        "import josh_jax.export.scene, josh_jax.export.anim, josh_jax.export.bvh, "
        "josh_jax.export.overlay, josh_jax.export.plots, josh_jax.export.rrd, josh_jax.export.motion"
    )
    assert not [m for m in mods if m.startswith("josh_jax.frontends")], mods
