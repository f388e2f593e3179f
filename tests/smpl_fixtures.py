"""Synthetic SMPL-format models for tests (the licensed SMPL files are not available).

Two on-disk layouts:
- a plain-numpy pickle (what smplx reads without chumpy), and
- one that mimics the official release: a Python-2 protocol-2 pickle whose byte
  strings are BINSTRING opcodes (needs ``encoding='latin1'``), ``shapedirs`` a
  ``chumpy.reordering.Select`` over a ``chumpy.ch.Ch``, ``v_template`` a
  ``chumpy.ch.Ch``, ``J_regressor`` a ``scipy.sparse.csc.csc_matrix``, arrays
  referencing ``numpy.core.multiarray``, and the kintree root 4294967295.
"""

import io
import pickle
import struct
import sys
import types

import numpy as np
import scipy.sparse

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
V = 6890  # smplx's extra-joint vertex ids assume SMPL's vertex count


def synthetic_smpl_arrays(seed=0, num_betas=10):
    rng = np.random.default_rng(seed)
    # A rough body-sized cloud: joints on a skeleton, vertices scattered around them.
    joints = rng.normal(scale=0.3, size=(24, 3))
    owner = rng.integers(0, 24, V)
    v_template = joints[owner] + rng.normal(scale=0.05, size=(V, 3))
    weights = np.zeros((V, 24))
    weights[np.arange(V), owner] = 1.0
    other = rng.integers(0, 24, V)
    weights[np.arange(V), other] += rng.uniform(0, 1, V)
    weights /= weights.sum(1, keepdims=True)
    J = np.zeros((24, V))
    for j in range(24):
        idx = np.where(owner == j)[0][:20]
        J[j, idx] = rng.uniform(0.5, 1.0, len(idx))
    J /= J.sum(1, keepdims=True)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, num_betas)),
        "posedirs": rng.normal(scale=0.005, size=(V, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(J),
        "weights": weights,
        "f": rng.integers(0, V, size=(13776, 3)).astype(np.uint32),
        "kintree_table": np.array([[2**32 - 1] + SMPL_PARENTS[1:], list(range(24))], dtype=np.int64),
    }


def write_plain_pickle(path, arrays):
    data = dict(arrays)
    data["kintree_table"] = arrays["kintree_table"].astype(np.int64)
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python-2 ``str`` opcodes (SHORT_BINSTRING/BINSTRING)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_py2(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_py2


def _fake_chumpy():
    """Temporary modules named like chumpy's, so pickle records those names."""
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        pass

    class Select:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch.Ch, reordering.Select = Ch, Select
    pkg = types.ModuleType("chumpy")
    return {"chumpy": pkg, "chumpy.ch": ch, "chumpy.reordering": reordering}, Ch, Select


def write_chumpy_style_pickle(path, arrays):
    mods, Ch, Select = _fake_chumpy()
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        vt = Ch()
        vt.__dict__.update({"x": arrays["v_template"]})
        base = Ch()
        base.__dict__.update({"x": arrays["shapedirs"].ravel()})
        sd = Select()
        sd.__dict__.update(
            {"a": base, "idxs": np.arange(arrays["shapedirs"].size), "preferred_shape": arrays["shapedirs"].shape}
        )
        data = {
            "v_template": vt,
            "shapedirs": sd,
            "posedirs": arrays["posedirs"],
            "J_regressor": arrays["J_regressor"],
            "weights": arrays["weights"],
            "f": arrays["f"],
            "kintree_table": arrays["kintree_table"].astype(np.int64),
            "bs_type": b"lrotmin",
            "bs_style": b"lbs",
        }
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(data)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    raw = buf.getvalue()
    # Module paths as the 2015 release has them.
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    raw = raw.replace(b"scipy.sparse._csc\n", b"scipy.sparse.csc\n")
    assert b"chumpy.ch\nCh\n" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw
    with open(path, "wb") as fh:
        fh.write(raw)
