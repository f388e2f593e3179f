"""Compiled programs hold memory mappings; release_if_crowded drops them (josh_jax/solve/memory_maps.py)."""

import sys

import jax
import jax.numpy as jnp
import pytest

from josh_jax.solve.memory_maps import max_map_count, memory_maps, release_if_crowded

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux's")


@pytest.mark.slow
@linux_only
def test_compiles_add_mappings_and_release_drops_them():
    release_if_crowded(0.0)
    before = memory_maps()
    fs = [jax.jit(lambda x, i=i: jnp.sin(x) * i + jnp.cos(x) ** 2) for i in range(40)]
    for i, f in enumerate(fs):
        f(jnp.ones(i + 1)).block_until_ready()
    grown = memory_maps()
    assert grown > before + 40  # each executable maps its code (about 6 mappings for one this small)
    assert not release_if_crowded(1.0)  # far below the limit: nothing dropped
    assert memory_maps() >= grown - 5
    assert release_if_crowded(0.0)
    assert memory_maps() < grown - 40
    # the functions still work: they compile again
    assert float(fs[3](jnp.ones(4))[0]) == pytest.approx(float(jnp.sin(1.0) * 3 + jnp.cos(1.0) ** 2))


@linux_only
def test_limit_is_read_from_the_kernel():
    with open("/proc/sys/vm/max_map_count") as f:
        assert max_map_count() == int(f.read())
