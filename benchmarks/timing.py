"""The one timing loop of the solver benchmarks (throughput, time_to_loss, solve_time).

Rules: one untimed-for-steady-state first call (compile + run, reported as ``first_s``), then the
fastest of ``repeats`` calls, each ended by ``jax.block_until_ready``; wall time by ``perf_counter``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple


class Timed(NamedTuple):
    first_s: float  # the first call: compile + one run, seconds
    best_s: float  # the fastest of the repeats, seconds
    result: Any  # the fastest call's result
    start: float  # perf_counter at the fastest call's start and end
    end: float
    extra: Any  # ``after()`` called right after the fastest call (None without ``after``)


def time_calls(
    fn: Callable[[], Any],
    repeats: int,
    before: Callable[[], None] | None = None,
    after: Callable[[], Any] | None = None,
) -> Timed:
    """First call, then the fastest of ``repeats`` (>= 1) calls of ``fn``; ``before()`` runs untimed
    ahead of each timed call, ``after()`` untimed after it (its value kept for the fastest call)."""
    import jax

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    best = None
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        res = jax.block_until_ready(fn())
        t1 = time.perf_counter()
        extra = after() if after is not None else None
        if best is None or t1 - t0 < best.best_s:
            best = Timed(first, t1 - t0, res, t0, t1, extra)
    return best
