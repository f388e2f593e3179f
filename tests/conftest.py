"""Shared test fixtures. Tests run on CPU in float32 unless a test enters ``x64()``."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# JAX_NUMPY_RANK_PROMOTION=raise: the fast tier passes under it (python -m pytest -m "not slow" with the
# variable set); the slow tier still has implicit broadcasts to write out, so it is not the default yet
# one persistent compilation cache per test session, never the user's folder: a fresh temporary folder
# made here (in pytest's main process, before xdist starts its workers, which inherit the variable) and
# removed at the end. The CLIs that tests run (in subprocesses, as users run them) then compile a
# program once per session instead of once per process. The pytest workers themselves do not use it:
# serialising one of test_differentiable.py's float64 programs for the cache aborted the worker (XLA:CPU,
# jax 0.10.2). Tests that count compiles set a folder of their own; JOSH_JAX_CACHE_DIR=off turns it off.
_OWN_CACHE = None
if "JOSH_JAX_CACHE_DIR" not in os.environ:
    import tempfile

    _OWN_CACHE = tempfile.mkdtemp(prefix="josh_jax_test_cache_")
    os.environ["JOSH_JAX_CACHE_DIR"] = _OWN_CACHE
# ... and the CLIs that tests call in the pytest process itself (main([...])) must not turn it on there
# either; a process that run_isolated spawns (it imports this file too) keeps it, as a CLI run would
import multiprocessing  # noqa: E402

if multiprocessing.parent_process() is None:
    import josh_jax.solve.compile_cache as _compile_cache

    _compile_cache.enable = lambda flag=None: None
# the PyTorch reference flavours live in benchmarks/torch_reference (tests check agreement)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import contextlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from smpl_fixtures import synthetic_smpl_arrays, write_chumpy_style_pickle, write_plain_pickle  # noqa: E402


@contextlib.contextmanager
def x64():
    """float64 inside the block (for finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield


# XLA:CPU maps every compiled program's code into the process (an Adam solve ~2,400
# mappings, a Gauss-Newton solve ~7,100) and Linux refuses mappings past
# vm.max_map_count: the next compile then aborts (SIGABRT, seen in CI in this long
# process). See josh_jax/solve/memory_maps.py. The suite compiles hundreds of programs.
_PEAK_MAPS = [0, 0]  # peak mappings after a test, times the caches were cleared


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """After a test, drop JAX's compiled programs when the process holds many mappings."""
    yield
    from josh_jax.solve.memory_maps import memory_maps, release_if_crowded

    _PEAK_MAPS[0] = max(_PEAK_MAPS[0], memory_maps())
    _PEAK_MAPS[1] += release_if_crowded(0.4)


def pytest_terminal_summary(terminalreporter):
    if _PEAK_MAPS[0]:
        terminalreporter.write_line(
            f"peak memory mappings after a test: {_PEAK_MAPS[0]}; JAX's caches cleared {_PEAK_MAPS[1]} times"
        )


def pytest_unconfigure(config):
    if _OWN_CACHE is not None and not hasattr(config, "workerinput"):
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def smpl_arrays():
    return synthetic_smpl_arrays(seed=0)


@pytest.fixture(scope="session")
def smpl_files(tmp_path_factory, smpl_arrays):
    d = tmp_path_factory.mktemp("smpl")
    plain = d / "SMPL_NEUTRAL.pkl"
    official = d / "basicmodel_neutral_chumpy.pkl"
    write_plain_pickle(plain, smpl_arrays)
    write_chumpy_style_pickle(official, smpl_arrays)
    npz = d / "smpl_model.npz"
    np.savez(npz, **{k: (v.toarray() if hasattr(v, "toarray") else v) for k, v in smpl_arrays.items()})
    return {"plain": plain, "official": official, "npz": npz}


@pytest.fixture(scope="session")
def open_model():
    import josh_jax.body as jb

    return jb.load("open")


def run_isolated(fn, *args, timeout: float = 1200):
    """Run ``fn(*args)`` in a fresh interpreter (spawn) and return its result; exceptions propagate.

    Tests that drive the whole pipeline (pycolmap, onnxruntime, JAX in one
    process) run this way, as users run the CLIs: one process per run. In one
    long-lived pytest process a later XLA compile once hung after those
    libraries had run (a deadlock we could not pin down), so they are kept out
    of it.
    """
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result(timeout=timeout)
