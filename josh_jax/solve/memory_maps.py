"""Compiled programs and the process's memory-mapping limit.

XLA:CPU maps the code of every compiled program into the process, and JAX keeps
each executable for as long as its jit cache does. Measured on the 2-core CPU
(jax 0.10.2): one compiled Adam solve holds about 2,400 mappings, one
Gauss-Newton solve about 7,100. Linux refuses new mappings past
``vm.max_map_count`` (65,530 by default) and LLVM then aborts the next compile
(SIGABRT inside ``backend_compile_and_load``, no Python error). The demo compiles
one program per size bucket, far below that; a long-lived process that compiles
many buckets (a batch worker, a notebook sweeping sizes, the test suite) calls
:func:`release_if_crowded` between jobs.
"""

from __future__ import annotations

import gc

DEFAULT_LIMIT = 65_530


def memory_maps() -> int:
    """The number of memory mappings of this process (0 where /proc is absent)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def max_map_count() -> int:
    """The kernel's per-process mapping limit (``vm.max_map_count``)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return DEFAULT_LIMIT


def release_if_crowded(fraction: float = 0.4) -> bool:
    """Drop JAX's compiled programs (``jax.clear_caches``) when this process holds more
    than ``fraction`` of the mapping limit. Returns True when it cleared them; the next
    call of a jitted function compiles again (or loads from the persistent cache)."""
    if memory_maps() <= fraction * max_map_count():
        return False
    import jax

    jax.clear_caches()
    gc.collect()
    return True
