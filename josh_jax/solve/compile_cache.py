"""JAX's persistent compilation cache for the command-line tools.

A second run of ``python -m josh_jax.demo`` or ``python -m josh_jax.solve`` on a
problem of the same bucket sizes loads the compiled solver from disk instead of
compiling it again. The folder is, in order of precedence: the ``--compile-cache``
flag, the ``JOSH_JAX_CACHE_DIR`` environment variable, ``$XDG_CACHE_HOME/josh_jax/jax``
(``~/.cache/josh_jax/jax``). ``off`` (flag or variable) disables it. Entries are
keyed by JAX on the program, the jax/jaxlib versions and the device, so a stale
entry is never used; delete the folder to reclaim the space.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV = "JOSH_JAX_CACHE_DIR"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "josh_jax" / "jax"


def resolve_cache_dir(flag: str | None = None) -> Path | None:
    """The folder to use, or None when disabled ("off")."""
    value = flag if flag else os.environ.get(ENV)
    if value is not None and value.strip().lower() in ("off", "none", "0", ""):
        return None
    return Path(value).expanduser() if value else default_cache_dir()


def enable(flag: str | None = None) -> Path | None:
    """Turn the persistent cache on for this process (call before the first compile).
    Returns the folder, or None when disabled or the folder cannot be created."""
    import jax

    path = resolve_cache_dir(flag)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: run without the cache rather than fail
    jax.config.update("jax_compilation_cache_dir", str(path))
    # a cache entry that cannot be written (disk full, file size limit) or read costs a compile next
    # time, nothing else: JAX's warning about it would only crowd the CLIs' one-line errors
    for what in ("writing", "reading"):
        warnings.filterwarnings("ignore", message=f"Error {what} persistent compilation cache entry")
    # cache every program, the small ones too: the front ends' and the exports' hundreds of small programs
    # cost ~3.5 s of compiling per run (demo on 30 frames, warm: 23 -> 19.5 s; the folder holds ~240 entries,
    # a few MB, and does not grow on later runs)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
