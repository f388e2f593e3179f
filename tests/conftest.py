"""Shared test fixtures. Tests run on CPU in float32 unless a test enters ``x64()``."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# no persistent compilation cache in tests (CLIs run in-process or in subprocesses would share one
# user folder across tests and runs); the cache is measured in benchmarks/README.md
os.environ.setdefault("JOSH_JAX_CACHE_DIR", "off")
# the PyTorch reference flavours live in benchmarks/torch_reference (tests check agreement)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import contextlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from smpl_fixtures import write_chumpy_style_pickle, write_plain_pickle, synthetic_smpl_arrays  # noqa: E402


@contextlib.contextmanager
def x64():
    """float64 inside the block (for finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield


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
