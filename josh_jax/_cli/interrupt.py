"""Ctrl-C that works at any point, XLA compiles included.

Python runs a SIGINT handler only in the main thread between bytecodes, so a
``KeyboardInterrupt`` waits for a long XLA compile to return and may then be
raised inside a JAX/XLA callback (swallowed, or a crash during teardown). The
CLIs instead call :func:`exit_on_interrupt`: the C-level signal handler writes
to a wakeup socket that a watcher thread reads (XLA releases the GIL while it
compiles, so the thread runs within milliseconds); the first Ctrl-C deletes this
process's temp outputs (:data:`josh_jax._cli.atomic.IN_FLIGHT`), prints the CLI's
message and ends the process with exit code 130 through ``os._exit``, which
skips the interpreter teardown that crashed under running XLA threads.

Everything a run keeps is written atomically (temp name, then rename), so
finished work (e.g. the demo's solved windows) survives an exit at any
instant. A second Ctrl-C while the first is handled is ignored.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager

EXIT_CODE = 130


def _remove_in_flight() -> None:
    from josh_jax._cli.atomic import IN_FLIGHT

    for p in list(IN_FLIGHT):
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError:
            pass


@contextmanager
def exit_on_interrupt(message: Callable[[], str] | str, cleanup: Callable[[], None] | None = None):
    """Within the block, Ctrl-C (SIGINT) or SIGTERM ends the process at once: temp outputs are
    deleted, ``cleanup()`` runs, ``message`` is printed to stderr and the exit code is 130 (143 for
    SIGTERM). Outside the main thread, or when SIGINT is ignored, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    lock = threading.Lock()

    def fire(signum: int) -> None:
        if not lock.acquire(blocking=False):
            return
        try:
            _remove_in_flight()
            if cleanup is not None:
                cleanup()
            text = message() if callable(message) else message
            sys.stderr.write(f"\n{text}\n")
            sys.stderr.flush()
        finally:
            os._exit(EXIT_CODE if signum == signal.SIGINT else 128 + signum)

    w = _watcher()
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    old = {s: signal.signal(s, lambda signum, frame: fire(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    prev_fire, _WATCH["fire"] = _WATCH["fire"], fire
    try:
        yield
    finally:
        _WATCH["fire"] = prev_fire
        for s, h in old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_fd)


# One watcher thread per process, started on first use and reused by every later block: it reads the
# signal numbers that Python's wakeup fd writes (also while XLA holds the main thread in a compile) and
# calls the innermost block's handler. Starting a new thread per block left blocked threads behind in
# long-lived processes (a later Thread.start hung in the test suite).
_WATCH: dict = {"thread": None, "w": None, "fire": None}


def _watcher() -> socket.socket:
    if _WATCH["thread"] is None or not _WATCH["thread"].is_alive():
        r, w = socket.socketpair()
        r.setblocking(True)
        w.setblocking(False)

        def watch() -> None:
            while True:
                try:
                    data = r.recv(1)
                except OSError:
                    return
                if not data:
                    return
                fire = _WATCH["fire"]
                if fire is not None and data[0] in (signal.SIGINT, signal.SIGTERM):
                    fire(data[0])

        t = threading.Thread(target=watch, name="josh-interrupt", daemon=True)
        t.start()
        _WATCH.update(thread=t, w=w)
    return _WATCH["w"]
