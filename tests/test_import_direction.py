"""Imports go down the data flow, read from the source (function-local imports included).

video -> front ends -> bundle -> problem -> objective -> solver -> results -> exports/evaluation
-> CLIs (docs/architecture.md). Each top-level part of ``josh_jax`` has a rank; a module may
import only parts of its rank or lower, and no library module imports a CLI. Read with ``ast``
from the files, so an ``import`` inside a function (the lazy imports that keep ``import josh_jax``
cheap) counts the same as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "josh_jax"

#: rank of each top-level part, in the order of the data flow
RANK = {
    # what every stage may use: errors, checked readers, atomic outputs, geometry, bundled data
    "errors": 0,
    "npz": 0,
    "jsonfile": 0,
    "_cli": 0,
    "geometry": 0,
    "data": 0,
    # the body model, video decoding, windowing of frame ranges
    "body": 1,
    "video": 1,
    "windows": 1,
    # the front ends and their output format
    "frontends": 2,
    "bundle": 2,
    # the padded problem
    "problem": 3,
    # the objective
    "losses": 4,
    "refine": 4,
    # the solver and the objective presets
    "solve": 5,
    "objective": 5,
    # results of a solve, joining windows, JOSH3R's warm start
    "results": 6,
    "join": 6,
    "josh3r": 6,
    # what reads results: exports, evaluation, synthetic worlds and clips (which render and score)
    "export": 7,
    "eval": 7,
    "synthetic": 7,
    # the settings of a whole run, and running it (josh_jax.run: spec, methods, window solve, stages)
    "config": 8,
    "run": 8,
}
#: modules that are command lines (parse arguments, print, exit): nothing below them imports them
CLIS = {
    "josh_jax.demo",
    "josh_jax.batch",
    "josh_jax.evaluate",
    "josh_jax.view",
    "josh_jax.synthetic.demo",
}
CLI_RANK = 9


def _module(path: Path, pkg: Path) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_cli(mod: str) -> bool:
    return mod in CLIS or mod.endswith(".__main__")


def _rank(mod: str) -> int:
    if _is_cli(mod):
        return CLI_RANK
    parts = mod.split(".")
    return -1 if len(parts) == 1 else RANK[parts[1]]  # the package root re-exports lazily


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, imported josh_jax module) of every import statement in the file, at any depth."""
    mod = _module(path, root)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("josh_jax")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("josh_jax"):
                continue
            for a in node.names:  # "from . import demo" imports the module josh_jax.demo
                sub = f"{target}.{a.name}"
                is_mod = (root.parent / (sub.replace(".", "/") + ".py")).is_file() or (
                    root.parent / sub.replace(".", "/") / "__init__.py"
                ).is_file()
                out.append((node.lineno, sub if is_mod else target))
    return out


def _violations(root: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        mod = _module(path, root)
        r = _rank(mod)
        for line, imported in _imports(path, root):
            if imported == "josh_jax" or imported.split(".")[:2] == mod.split(".")[:2]:
                continue  # the package root, or within one part
            if _is_cli(imported) and not _is_cli(mod):
                bad.append(f"{path.relative_to(root.parent)}:{line} library module imports the CLI {imported}")
            elif _rank(imported) > r:
                bad.append(
                    f"{path.relative_to(root.parent)}:{line} {mod} (rank {r}) imports {imported} "
                    f"(rank {_rank(imported)}), up the flow"
                )
    return bad


def test_every_part_has_a_rank():
    parts = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if p.suffix == ".py" or p.is_dir()}
    parts -= {"__init__", "__pycache__"} | {m.split(".")[1] for m in CLIS if m.count(".") == 1}
    assert parts <= set(RANK), sorted(parts - set(RANK))


def test_imports_only_go_down_the_flow():
    assert _violations() == []


def test_the_check_sees_function_local_imports(tmp_path):
    """The rule catches a lazy import up the flow (a front end importing the solver inside a
    function) and a library module importing a CLI."""
    fake = tmp_path / "josh_jax"
    (fake / "frontends").mkdir(parents=True)
    (fake / "solve").mkdir()
    for p in (fake / "__init__.py", fake / "frontends" / "__init__.py", fake / "solve" / "__init__.py"):
        p.write_text("")
    (fake / "demo.py").write_text("")
    (fake / "frontends" / "x.py").write_text("def f():\n    from ..solve import solve\n    from .. import demo\n")
    found = _violations(fake)
    assert any("imports josh_jax.solve" in v and "up the flow" in v for v in found), found
    assert any("imports the CLI josh_jax.demo" in v for v in found), found
