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

from josh_jax.errors import JoshError


class DatasetError(JoshError, ValueError):
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


#: the largest dataset pickle read (the released EMDB / RICH / SLOPER4D files are far smaller)
MAX_FILE_BYTES = 4 * 2**30
#: the most items one builtin constructor called from a pickle may make (a real pickle builds its
#: containers item by item, bounded by the file's size; only a hand-made file asks ``bytearray(2**40)``)
MAX_ITEMS = 2**24
_SIZED_BUILDERS = {"bytes", "bytearray", "list", "tuple", "set", "frozenset", "dict", "str"}
_ENCODINGS = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


def _bounded(builder):
    """``builder`` (a builtin constructor) refusing arguments that would allocate without bound."""

    def build(*args, **kwargs):
        for a in (*args, *kwargs.values()):
            n = a if isinstance(a, int) and not isinstance(a, bool) else (len(a) if isinstance(a, range) else 0)
            if n > MAX_ITEMS:
                raise pickle.UnpicklingError(f"refusing {builder.__name__}() of {n} items (at most {MAX_ITEMS})")
        return builder(*args, **kwargs)

    return build


def _bounded_reconstruct(reconstruct):
    """numpy's ``_reconstruct(cls, shape, dtype)`` (its pickles ask for an empty array whose data the
    next opcode sets) refusing a shape of more than :data:`MAX_ITEMS` elements."""

    def build(cls, shape, dtype):
        import math

        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(d, int) and 0 <= d <= MAX_ITEMS for d in dims) or math.prod(dims) > MAX_ITEMS:
            raise pickle.UnpicklingError(f"refusing an empty numpy array of shape {str(shape)[:60]}")
        return reconstruct(cls, shape, dtype)

    return build


def _encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as numpy's protocol-2 pickles use it (latin-1 text to bytes), nothing else."""
    import codecs

    if not isinstance(obj, str) or str(encoding).lower() not in _ENCODINGS:
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {str(encoding)[:40]!r}")
    return codecs.encode(obj, "latin-1", errors)


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module  # protocol 0-2 pickles name Python 2's module
        if (module, name) == ("_codecs", "encode"):
            return _encode
        if (module, name) in _ALLOWED or (module in _NUMPY_DTYPE_MODULES and name.endswith("DType")):
            found = super().find_class(module, name)
            if name == "_reconstruct":
                return _bounded_reconstruct(found)
            return _bounded(found) if module == "builtins" and name in _SIZED_BUILDERS else found
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: str | Path, max_bytes: int = MAX_FILE_BYTES):
    """Unpickle ``path`` allowing only numpy arrays/dtypes and builtin containers, with memory bounded:
    the file is at most ``max_bytes``, a builtin constructor makes at most :data:`MAX_ITEMS` items,
    and numpy arrays are only made from the file's own bytes, so what is built stays within a small
    multiple of the file's size.

    Raises:
        DatasetError: the file is missing, too large, unreadable, or holds another class.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(
            f"{path} is {size / 2**30:.1f} GiB, more than a dataset pickle may be ({max_bytes / 2**30:.0f} GiB); "
            "check that it is the released file"
        )
    data = path.read_bytes()
    try:
        return _AllowListUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(
            f"{path}: {exc} (only numpy arrays and builtin containers are read; "
            "convert the file with numpy if it holds other objects)"
        ) from None
    except MemoryError:
        raise DatasetError(
            f"{path} asks for more memory than this machine has; it is not a released dataset file"
        ) from None
    except RecursionError:
        raise DatasetError(f"{path} is nested too deeply to be a dataset pickle") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError, OverflowError) as exc:
        raise DatasetError(f"{path} is not a readable pickle ({type(exc).__name__}: {str(exc)[:160]})") from None
