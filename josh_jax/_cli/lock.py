"""One run per output: ``OUT.lock`` beside ``OUT`` (and its ``OUT.work``), held with ``flock``.

Two demos (or a demo and a batch, or two batches) given the same ``--out`` would write into one work
folder and into one output folder. :class:`RunLock` takes an exclusive, non-blocking ``flock`` on
``OUT.lock`` for the whole run; a second run on that output stops at once with one line naming the
process that holds it, and touches nothing. The kernel drops the lock when its process ends (also on
``kill -9``), so a stale ``OUT.lock`` file never blocks a later run; a finished run removes the file.

A file named ``OUT.lock`` that this project did not write (non-empty, without the lock's first line) is
never used or removed: the run stops and says so.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from josh_jax.errors import JoshError

_HEADER = "josh_jax run lock"


class RunLockError(JoshError, RuntimeError):
    """Another run holds the output's lock, or ``OUT.lock`` is not ours (nothing was touched)."""


def lock_path(out: str | Path) -> Path:
    """``OUT.lock`` for the output path ``OUT``."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


class RunLock:
    """Context manager: hold ``OUT.lock`` for a run. ``acquired`` stays True once it was held (the
    caller's clean-up after an error or Ctrl-C may only touch the work folder when this run held it)."""

    def __init__(self, out: str | Path, what: str = "--out"):
        self.out = Path(out)
        self.path = lock_path(out)
        self.what = what
        self.fd: int | None = None
        self.acquired = False

    def _foreign(self, fd: int) -> bool:
        head = os.pread(fd, 64, 0)
        return bool(head) and not head.startswith(_HEADER.encode())

    def acquire(self) -> RunLock:
        for _ in range(5):  # the file may be removed by the run that held it between open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise RunLockError(f"{self.path} is a link, not a josh_jax run lock; move it away") from None
                if exc.errno == errno.EISDIR:
                    raise RunLockError(f"{self.path} is a folder, not a josh_jax run lock; move it away") from None
                raise RunLockError(
                    f"cannot create the run lock {self.path} ({exc.strerror}); choose another {self.what}"
                ) from None
            try:
                if self._foreign(fd):
                    raise RunLockError(
                        f"{self.path} exists and was not written by josh_jax; move it away or choose another {self.what}"
                    )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
                    pid = holder[-1] if holder and holder[-1].isdigit() else "?"
                    raise RunLockError(
                        f"another josh_jax run (process {pid}) is writing {self.out} now; wait for it to finish "
                        f"or choose another {self.what}"
                    ) from None
                try:
                    same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # removed (and maybe re-created) by the previous holder: try the new file
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{_HEADER} pid {os.getpid()}\n".encode(), 0)
            except BaseException:
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise
            self.fd, self.acquired = fd, True
            return self
        raise RunLockError(f"{self.path} keeps changing; another run is starting on {self.out}: wait for it")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)  # ours: removed while still held, so no other run can be inside
        except OSError:
            pass
        os.close(self.fd)  # drops the flock
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
