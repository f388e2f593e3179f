"""Run several ``python -m josh_jax.X ARGS`` command lines in one interpreter, as ``-m`` runs them.

Used by tests/test_reliability_cli.py: its ~60 bad-input cases each started a fresh interpreter (JAX,
onnxruntime and pycolmap imported ~60 times, about half of the fast tier). Here one process imports them
once and runs each case through :func:`runpy.run_module` under ``__main__`` (the code path of ``-m``),
with file descriptors 1 and 2 redirected per case, so that a stray C-level log line or a traceback is
seen exactly as in a subprocess. What differs from one process per case: modules are imported once, and
the interpreter's own exit (a traceback printed by the interpreter, exit code 1) is reproduced here.

Usage: ``python tests/cli_batch.py CASES.json RESULTS.json``; CASES: a list of
``{"module": "josh_jax.solve", "args": [...], "cwd": "...", "stderr": "capture file"}``; RESULTS: a list of
``{"rc": int, "stderr": str}`` in the same order. Set ``JOSH_TEST_CLI_ISOLATED=1`` in the test run
to give every case its own process instead (the old behaviour, ~5x slower).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
import warnings


def _exit_code(e: SystemExit) -> int:
    """The exit status the interpreter would give for ``SystemExit(e.code)``."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def _forget_compile_cache() -> None:
    """Turn JAX's persistent compilation cache off again, as a fresh process starts (a CLI that turned it
    on did so for its own run only)."""
    if "jax" in sys.modules:
        import jax
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()


def run_case(module: str, args: list, cwd: str, capture: str) -> dict:
    """Run ``python -m MODULE ARGS`` in ``cwd``; stderr (fd 2) goes to ``capture``."""
    filters = list(warnings.filters)
    here = os.getcwd()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    err = os.open(capture, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    argv = sys.argv
    try:
        os.chdir(cwd)
        sys.argv = [module, *args]
        # what -m executes must not be imported yet (a fresh interpreter has not; runpy warns otherwise)
        sys.modules.pop(f"{module}.__main__", None)
        if module in sys.modules and not hasattr(sys.modules[module], "__path__"):
            del sys.modules[module]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            rc = 0
        except SystemExit as e:
            rc = _exit_code(e)
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            rc = 1
    finally:
        sys.argv = argv
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.chdir(here)
        # every case sees its warnings, as a fresh process would (no "already shown once" registry)
        warnings.filters[:] = filters
        getattr(warnings, "_filters_mutated", lambda: None)()
        _forget_compile_cache()
    with open(capture, encoding="utf-8", errors="replace") as f:
        return {"rc": rc, "stderr": f.read()}


def main(argv: list) -> int:
    cases_file, results_file = argv
    with open(cases_file, encoding="utf-8") as f:
        cases = json.load(f)
    results = [run_case(c["module"], c["args"], c["cwd"], c["stderr"]) for c in cases]
    with open(results_file, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
