"""Reading ``.npz`` files that may be truncated, corrupt or hostile: checked before anything is allocated.

Every reader of an on-disk ``.npz`` (``results.npz``, the bundle's windows, the work folder's solved
windows) goes through :func:`read_npz`. Before an array is read, its ``.npy`` header (dtype, shape) is
checked against what the zip archive's directory says the member holds: a header that declares more
bytes than the member has (``2**30`` elements in a few bytes) is refused without allocating them;
object arrays (pickles) are refused; a truncated archive, a bad CRC or a broken deflate stream become
one :class:`NpzError` line naming the file and the member, never ``BadZipFile``, ``zlib.error`` or a
``MemoryError``. ``max_bytes`` bounds the whole file's uncompressed arrays (default
:data:`MAX_BYTES`), so memory stays bounded whatever the file declares.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError

#: the most uncompressed bytes one .npz may hold by default (a long video's results are ~1 GB)
MAX_BYTES = 8 * 2**30
#: the most members one .npz may have
MAX_MEMBERS = 4096


class NpzError(JoshError, ValueError):
    """An .npz file cannot be read safely: one line naming the file, the member and what to do."""


def _header(f, name: str, path: Path):
    """(shape, fortran_order, dtype) of the .npy stream ``f``."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise NpzError(f"{path}: member {name} has .npy format version {version}, which is not read")


def read_npz(path: str | Path, max_bytes: int = MAX_BYTES, what: str = "file") -> dict[str, np.ndarray]:
    """All arrays of the .npz ``path`` by name, checked as the module docstring says.

    ``what`` names the file's role in messages (e.g. "results.npz"). Raises :class:`NpzError`, or
    FileNotFoundError / IsADirectoryError for a missing path or a folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a {what}")
    redo = f"the {what} is damaged: write it again"
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged archive can raise anything zipfile meets while parsing it
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "truncated or not an .npz archive"
        raise NpzError(f"{path} cannot be read as a {what} ({why}); {redo}") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise NpzError(f"{path} has {len(infos)} members (at most {MAX_MEMBERS}); {redo}")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise NpzError(
                f"{path} holds {total / 2**30:.1f} GiB of arrays, more than the {max_bytes / 2**30:.1f} GiB "
                f"a {what} may hold; {redo}"
            )
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with zf.open(info) as f:
                    shape, fortran, dtype = _header(f, name, path)
                    if dtype.hasobject:
                        raise NpzError(f"{path}: member {name} holds Python objects, which are never loaded")
                    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
                    nbytes = n * dtype.itemsize
                    if n < 0 or nbytes > info.file_size:
                        raise NpzError(
                            f"{path}: member {name} declares shape {shape} ({nbytes} bytes) but holds "
                            f"{info.file_size} bytes; {redo}"
                        )
                    data = f.read(nbytes)
                    if len(data) != nbytes:
                        raise NpzError(f"{path}: member {name} is truncated; {redo}")
                    f.read()  # to the member's end: zipfile checks its CRC there
                    a = np.frombuffer(data, dtype=dtype, count=n)
                    a = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
                    out[name] = a.copy()  # writable, owns its memory
            except NpzError:
                raise
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, TypeError, ArithmeticError) as exc:
                why = "broken compressed data" if isinstance(exc, zlib.error) else type(exc).__name__
                raise NpzError(f"{path}: member {name} is corrupt ({why}); {redo}") from None
            except (NotImplementedError, RuntimeError) as exc:  # a flipped compression method or flag bit
                raise NpzError(f"{path}: member {name} is corrupt ({type(exc).__name__}); {redo}") from None
    return out
