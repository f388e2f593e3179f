"""Safe outputs: checked up front, written atomically, never touching an input.

- :func:`check_output` is the one check every CLI runs before any work: the
  output must not equal or contain an input, must not be a file, must be empty
  unless ``--overwrite`` was given, and its parent must be writable.
- :func:`atomic_folder` writes into a temp folder beside the target and moves
  it into place when complete (a failure or Ctrl-C leaves the target as it was).
- Temp folders and files carry the writing process's id in their name
  (``.PREFIX.josh-tmp-PID-xxxxxxxx``); :func:`clean_stale` removes the ones whose process is
  gone (a run killed with ``kill -9``), and :data:`IN_FLIGHT` lists the live
  ones so that the Ctrl-C handler (:mod:`josh_jax._cli.interrupt`) can delete them.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from josh_jax.errors import JoshError

#: temp paths this process is writing now (removed by the Ctrl-C handler before it exits)
IN_FLIGHT: set[Path] = set()


class OutputError(JoshError, ValueError):
    """An output path cannot be used; the message says why and what to do (one line)."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ".PREFIX.josh-tmp-PID-xxxxxxxx" (mkdtemp/mkstemp's 8 random characters, ".npz" for files) or "...-PID-old"
_TEMP = re.compile(r"^\..*\.josh-tmp-(?P<pid>\d+)-([a-z0-9_]{8}(\.npz)?|old)$")


def clean_stale(folder: str | Path) -> list[Path]:
    """Remove temp folders/files of our naming (:func:`temp_name`) in ``folder`` whose process is gone."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if not m or _pid_alive(int(m["pid"])):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def temp_name(prefix: str) -> str:
    """The prefix of a temp path of this process (``.PREFIX.josh-tmp-PID-``); :func:`clean_stale`
    recognises exactly this form, so no other hidden file is ever touched."""
    return f".{prefix}.josh-tmp-{os.getpid()}-"


def _inside(a: Path, b: Path) -> bool:
    """a == b or a lies inside b (both resolved)."""
    return a == b or b in a.parents


MIN_FREE_BYTES = 64 * 2**20  # outputs and work folders of one run take tens of MB


def write_text_atomic(path: str | Path, text) -> Path:
    """Write a file atomically: a temp file beside it, renamed over it (a crash leaves the old file or
    the new one, never half of one; the temp file is removed on failure, and Ctrl-C's handler removes
    it too: ``IN_FLIGHT``). ``text``: str (UTF-8), bytes, or a callable that writes into the open
    binary file (e.g. ``lambda f: np.savez_compressed(f, **arrays)``). The one atomic writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_name(path.name), suffix=".tmp")
    IN_FLIGHT.add(Path(tmp))
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(text):
                text(f)
            else:
                f.write(text.encode() if isinstance(text, str) else text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        IN_FLIGHT.discard(Path(tmp))
    return path


def check_file_outputs(outputs, inputs=(), overwrite: bool = False, flag: str = "--overwrite") -> None:
    """Refuse output files (or folders) of a CLI that would lose data, before any work: an output that
    is or holds an input, or is an existing file inside an input folder, is refused always; an existing one unless ``overwrite`` (the
    user asked to replace it); a folder output holding files likewise. Raises :class:`OutputError`
    naming the path and the fix."""
    ins = [Path(i).expanduser().resolve() for i in inputs if i is not None and Path(i).expanduser().exists()]
    for target in outputs:
        target = Path(target)
        t = target.expanduser().resolve()
        for i in ins:
            if _inside(i, t) or (i.is_dir() and t.exists() and _inside(t, i)):  # an input, or a file of an input folder
                raise OutputError(
                    f"output {target} {'holds' if _inside(i, t) and i != t else 'is'} the input "
                    f"{i if _inside(i, t) else target}; choose another output path"
                )
        if target.is_symlink() or target.exists():
            if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
                continue
            if not overwrite:
                raise OutputError(f"{target} exists; pass {flag} to replace it, or choose another output path")


def check_output(out: str | Path, inputs=(), overwrite: bool = False, also=(), min_free: int = MIN_FREE_BYTES) -> Path:
    """Refuse an output path that would lose data or fail late; returns ``out``.

    ``inputs``: paths the run reads (a video, a bundle folder, a body model, a config file);
    ``also``: further paths the run writes besides ``out`` (e.g. the demo's ``OUT.work``).
    Raises :class:`OutputError` when ``out`` (or one of ``also``) equals or contains an input,
    is an existing file, is a non-empty folder and ``overwrite`` is False, cannot be written, or
    its disk has less than ``min_free`` bytes free.
    """
    out = Path(out)
    for target in (out, *map(Path, also)):
        t = target.resolve()
        for inp in inputs:
            if inp is None:
                continue
            i = Path(inp).expanduser()
            if not i.exists():
                continue
            if _inside(i.resolve(), t):
                raise OutputError(
                    f"output {target} {'is' if i.resolve() == t else 'contains'} the input {inp}; "
                    "choose an output folder outside the inputs"
                )
    if out.is_symlink() and not out.exists():
        raise OutputError(f"--out {out} is a broken symbolic link; remove it or choose another folder")
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"--out {out} is an existing file, not a folder; choose a folder path (or remove the file yourself)"
        )
    if out.is_dir():
        try:
            non_empty = any(out.iterdir())
        except PermissionError:
            raise OutputError(
                f"output folder {out} cannot be read (permission denied); choose another folder"
            ) from None
        if non_empty and not overwrite:
            raise OutputError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    # the nearest existing ancestor must let us create the temp folder beside the target
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {parent} (permission denied); choose an output folder you can write")
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        free = None
    if free is not None and free < min_free:
        raise OutputError(
            f"only {free / 2**20:.0f} MiB free on the disk of {parent}; a run needs at least "
            f"{min_free / 2**20:.0f} MiB: free some space or choose another output folder"
        )
    return out


def describe_os_error(exc: OSError, where: str | Path | None = None) -> str:
    """One line for an OSError met while writing (disk full, read-only file system, ...); ``where``
    names the output when the error itself names no file."""
    hint = {
        errno.ENOSPC: "the disk is full; free some space and run again",
        errno.EFBIG: "the file size limit or the disk is full; free some space and run again",
        errno.EDQUOT: "the disk quota is exceeded; free some space and run again",
        errno.EROFS: "the file system is read-only; choose another output folder",
        errno.EACCES: "permission denied; choose an output folder you can write",
        errno.EPERM: "permission denied; choose an output folder you can write",
    }.get(exc.errno, "")
    name = exc.filename or where
    msg = f"cannot write{f' {name}' if name else ''}: {exc.strerror or exc}"
    return msg + (f" ({hint})" if hint else "")


@contextmanager
def atomic_folder(dest: str | Path, prefix: str):
    """Yield an empty temp folder next to ``dest``; when the block ends normally it replaces ``dest``,
    when it raises (Ctrl-C included) the temp folder is deleted and ``dest`` is untouched.

    Callers check ``dest`` with :func:`check_output` first (an existing ``dest`` is only replaced
    when the user asked for it). Stale temp folders of killed runs beside ``dest`` are removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=temp_name(prefix), dir=dest.parent))
    IN_FLIGHT.add(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders
        if dest.is_dir() and not dest.is_symlink():
            old = dest.with_name(f"{temp_name(prefix)}old")
            os.replace(dest, old)  # moved aside first: the new folder lands in one rename
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        IN_FLIGHT.discard(tmp)
