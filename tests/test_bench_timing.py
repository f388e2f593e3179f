"""benchmarks/timing.py: the one timing loop of the solver benchmarks."""

import itertools
import time

import jax.numpy as jnp
import pytest

from benchmarks.timing import time_calls


def test_time_calls_keeps_the_fastest_call_and_its_extra():
    sleeps = iter([0.0, 0.03, 0.001, 0.02])  # the first call, then three timed ones: the second is fastest
    calls, befores = itertools.count(), []

    def fn():
        n = next(calls)
        time.sleep(next(sleeps))
        return jnp.asarray(n)

    t = time_calls(fn, 3, before=lambda: befores.append(1), after=lambda: len(befores))
    assert int(t.result) == 2 and t.extra == 2 and len(befores) == 3
    assert 0.001 <= t.best_s < 0.02 and t.end - t.start == t.best_s and t.first_s >= 0.0
    with pytest.raises(ValueError, match="repeats"):
        time_calls(fn, 0)
