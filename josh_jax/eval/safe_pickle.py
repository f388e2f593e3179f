"""Reading the datasets' pickles without running arbitrary code.

:func:`load_pickle` unpickles with an allow-list: builtin containers and
scalars, ``collections.OrderedDict``, and numpy arrays / dtypes / scalars
(numpy 1 and 2 module paths). Any other class in the file (a torch tensor, a
chumpy object, an attacker's ``os.system``) stops the load with
:class:`DatasetError` instead of being imported.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or folder is missing or not in the released layout; the message says what to do."""


_ALLOWED = {
    ("builtins", n)
    for n in (
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "bool",
        "str",
        "bytes",
        "bytearray",
        "slice",
        "range",
    )
} | {("collections", "OrderedDict"), ("_codecs", "encode")}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED |= {(_mod, "_reconstruct"), (_mod, "scalar")}
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED.add((_mod, "_frombuffer"))  # arrays pickled with protocol 5
_ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY_DTYPE_MODULES = ("numpy", "numpy.dtypes")


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED or (module in _NUMPY_DTYPE_MODULES and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: str | Path):
    """Unpickle ``path`` allowing only numpy arrays/dtypes and builtin containers.

    Raises:
        DatasetError: the file is missing, unreadable, or holds another class.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    data = path.read_bytes()
    try:
        return _AllowListUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(
            f"{path}: {exc} (only numpy arrays and builtin containers are read; "
            "convert the file with numpy if it holds other objects)"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise DatasetError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc})") from None
