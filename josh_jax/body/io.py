"""Loading body models: official SMPL pickles (without chumpy), SMPL-format npz,
and the embedded open model.

``load("open")`` always works offline. ``load("path/to/SMPL_NEUTRAL.pkl")`` reads
the file from the SMPL website (Python-2 pickle holding chumpy objects) with
numpy/scipy only.
"""

from __future__ import annotations

import codecs
import copyreg
import json
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from josh_jax.errors import JoshError

from .model import NUM_JOINTS, BodyModel, make_model

OPEN_MODEL_NAMES = ("open", "josh-open-body", "default")
OPEN_MODEL_PATH = Path(__file__).with_name("data") / "open_body.npz"
SMPL_HINT = (
    "expected an SMPL model file such as SMPL_NEUTRAL.pkl (from https://smpl.is.tue.mpg.de, "
    "'SMPL for Python', renamed as in smplx) or an SMPL-format .npz; or use the embedded model: 'open'"
)
# SMPL's heel/toe markers used for foot sliding (left heel, left toe, right heel, right toe)
SMPL_FOOT_MARKERS = (3216, 3387, 6617, 6787)


class BodyModelError(JoshError, ValueError):
    """A body model file is missing or malformed. The message says what to provide."""


class _Stub:
    """Stands in for chumpy classes: keeps the pickled state, nothing else."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slotstate)
            state = state[0] or {}
        if isinstance(state, dict):
            self.__dict__.update(state)


class _ChumpyCh(_Stub):
    pass


class _ChumpySelect(_Stub):
    pass


# Exactly what an SMPL file (official chumpy release, or smplx's plain-numpy conversion) needs. Any
# other global a pickle names is refused: a pickle can call whatever it names, e.g. os.system.
_NUMPY_MODULES = (
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core._multiarray_umath",
    "numpy._core._multiarray_umath",
    "numpy.core.numeric",
    "numpy._core.numeric",
    "numpy",
)
_NUMPY_NAMES = ("_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer")
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array")
_BUILTINS = {
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("copy_reg", "_reconstructor"),
    ("__builtin__", "object"),
    ("_codecs", "encode"),
}


class _SmplUnpickler(pickle.Unpickler):
    """Reads SMPL pickles with an allow-list: numpy arrays/dtypes/scalars, scipy sparse matrices,
    stand-ins for chumpy's classes and the object reconstructor of Python-2 pickles; anything else
    raises ``pickle.UnpicklingError``."""

    def find_class(self, module, name):
        if module.split(".")[0] == "chumpy":
            return {"Ch": _ChumpyCh, "Select": _ChumpySelect}.get(name, _Stub)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            return getattr(scipy.sparse, name)
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            if name in ("ndarray", "dtype"):
                return getattr(np, name)
            core = np._core if hasattr(np, "_core") else np.core
            sub = module.rsplit(".", 1)[-1] if module != "numpy" else "multiarray"
            return getattr(
                getattr(
                    core, "numeric" if name == "_frombuffer" else ("multiarray" if sub == "_multiarray_umath" else sub)
                ),
                name,
            )
        if (module, name) in _BUILTINS:
            return {"_reconstructor": copyreg._reconstructor, "object": object, "encode": codecs.encode}[name]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: an SMPL file holds only numpy arrays, "
            "scipy sparse matrices and chumpy objects (is this file really an SMPL model?)"
        )


def _to_array(obj, key: str) -> np.ndarray:
    """Turn chumpy stubs, sparse matrices and arrays into a dense ndarray."""
    if isinstance(obj, np.ndarray):
        return obj
    if scipy.sparse.issparse(obj):
        return np.asarray(obj.todense())
    if isinstance(obj, _ChumpySelect):
        base = _to_array(obj.__dict__.get("a"), key).ravel()
        out = base[np.asarray(obj.__dict__["idxs"]).ravel()]
        shape = obj.__dict__.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if isinstance(obj, _Stub):
        for attr in ("x", "r", "a"):
            if attr in obj.__dict__:
                return _to_array(obj.__dict__[attr], key)
        raise BodyModelError(f"cannot read field {key!r} (unknown chumpy object): {SMPL_HINT}")
    try:
        return np.asarray(obj)
    except Exception as exc:  # pragma: no cover - defensive
        raise BodyModelError(f"cannot read field {key!r}: {exc}") from exc


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = _SmplUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        raise BodyModelError(
            f"{path} is not a readable SMPL pickle ({type(exc).__name__}: {exc}); {SMPL_HINT}"
        ) from exc
    if not isinstance(data, dict):
        raise BodyModelError(f"{path} holds a {type(data).__name__}, not an SMPL dict; {SMPL_HINT}")
    return data


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise BodyModelError(f"{path} is not a readable .npz ({type(exc).__name__}: {exc}); {SMPL_HINT}") from exc


def derive_vertex_sets(v_template: np.ndarray, weights: np.ndarray, smpl_topology: bool) -> list:
    """Named vertex sets from rest geometry: soles, hands and heel/toe markers.

    Soles are the vertices skinned mainly to an ankle/foot joint within 2 cm of
    that foot's lowest point (rest pose, y up); hands are those skinned mainly
    to a wrist/hand joint. Markers: (left heel, left toe, right heel, right toe),
    SMPL's published ids on SMPL topology, else the back-most/front-most sole vertex.
    """
    dom = np.argmax(weights, 1)
    sets, markers = [], []
    for side, (ankle, foot, wrist, hand) in (("left", (7, 10, 20, 22)), ("right", (8, 11, 21, 23))):
        on_foot = np.isin(dom, (ankle, foot))
        y_min = v_template[on_foot, 1].min()
        sole = np.where(on_foot & (v_template[:, 1] < y_min + 0.02))[0]
        sets.append((f"{side}_sole", sole))
        sets.append((f"{side}_hand", np.where(np.isin(dom, (wrist, hand)))[0]))
        z = v_template[sole, 2]
        markers += [int(sole[np.argmin(z)]), int(sole[np.argmax(z)])]
    if smpl_topology:
        markers = list(SMPL_FOOT_MARKERS)
    sets.append(("foot_markers", np.array(markers)))
    return sets


def _from_dict(data: dict, path: Path, name: str, num_betas: int | None) -> BodyModel:
    required = ("v_template", "shapedirs", "J_regressor", "weights", "f")
    missing = [k for k in required if k not in data]
    if missing:
        raise BodyModelError(f"{path} lacks {', '.join(missing)}; {SMPL_HINT}")
    arr = {k: _to_array(data[k], k) for k in (*required, "posedirs", "kintree_table") if k in data}
    for k, a in arr.items():
        if a.dtype.kind not in "fiub":
            raise BodyModelError(f"{path}: field {k!r} holds {a.dtype} data, not numbers; {SMPL_HINT}")
    v = arr["v_template"].astype(np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise BodyModelError(f"{path}: v_template has shape {v.shape}, expected (V, 3)")
    S = arr["shapedirs"].astype(np.float64)
    if num_betas is not None:
        S = S[..., :num_betas]
    if "kintree_table" in arr:
        parents = arr["kintree_table"][0].astype(np.int64)
        parents = np.where(parents >= 2**31, -1, parents)  # root is stored as 2**32 - 1
    else:
        from .model import SMPL_PARENTS

        parents = np.array(SMPL_PARENTS)
    if len(parents) != NUM_JOINTS:
        raise BodyModelError(
            f"{path}: {len(parents)} joints; josh_jax needs SMPL's 24-joint skeleton "
            "(SMPL-H/SMPL-X files are not supported)"
        )
    posedirs = arr.get("posedirs", np.zeros((v.shape[0], 3, 0)))
    try:
        return make_model(
            v,
            S,
            posedirs,
            arr["J_regressor"],
            arr["weights"],
            arr["f"],
            parents,
            name=name,
            vertex_sets=derive_vertex_sets(v, arr["weights"], v.shape[0] == 6890),
        )
    except ValueError as exc:
        raise BodyModelError(f"{path}: {exc}; {SMPL_HINT}") from exc


def load(path_or_name: str | Path = "open", num_betas: int | None = 10) -> BodyModel:
    """Load a body model.

    Args:
        path_or_name: ``"open"`` for the embedded open body (MakeHuman CC0 data,
            not SMPL); a path to an SMPL ``.pkl`` (official files work without
            chumpy) or SMPL-format ``.npz``; or a folder holding
            ``SMPL_NEUTRAL.pkl``/``.npz``.
        num_betas: keep this many shape components (None: all in the file).
    Raises:
        BodyModelError: one line saying which file is expected and where to get it.
    """
    if isinstance(path_or_name, str) and path_or_name.lower() in OPEN_MODEL_NAMES:
        return load_open(num_betas)
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        for cand in ("SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL.npz", "smpl/SMPL_NEUTRAL.pkl", "smpl/SMPL_NEUTRAL.npz"):
            if (path / cand).is_file():
                path = path / cand
                break
        else:
            raise BodyModelError(f"no SMPL_NEUTRAL.pkl or .npz in folder {path}; {SMPL_HINT}")
    if not path.is_file():
        raise BodyModelError(f"body model file not found: {path}; {SMPL_HINT}")
    if path.suffix == ".pkl":
        data = _read_pickle(path)
    elif path.suffix == ".npz":
        data = _read_npz(path)
    else:
        raise BodyModelError(f"{path}: unknown body model format {path.suffix!r}; {SMPL_HINT}")
    stem = path.stem.lower()
    name = "smpl" if ("smpl" in stem or "basicmodel" in stem) else path.stem
    return _from_dict(data, path, name, num_betas)


def load_open(num_betas: int | None = 10) -> BodyModel:
    """The embedded open body (baked by scripts/build_open_body.py)."""
    if not OPEN_MODEL_PATH.is_file():
        raise BodyModelError(
            f"the embedded body {OPEN_MODEL_PATH} is missing from this install; "
            "rebuild it with `python scripts/build_open_body.py`"
        )
    data = _read_npz(OPEN_MODEL_PATH)
    return _from_dict(data, OPEN_MODEL_PATH, "josh-open-body", num_betas)


def open_model_info() -> dict:
    """Provenance and license of the embedded open body."""
    with np.load(OPEN_MODEL_PATH) as z:
        return json.loads(str(z["meta"]))
