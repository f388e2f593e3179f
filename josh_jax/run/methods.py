"""The methods a run can use, as one table: what each one runs after the front ends.

A method is data, not a string compared in several places: the stages ask the entry
(:func:`method`) whether to run JOSH3R on the frame pairs, whether to solve the windows, and whether
the problems start at JOSH3R's cameras. docs/josh3r.md describes the two JOSH3R methods.
"""

from __future__ import annotations

import dataclasses

from josh_jax.errors import JoshError


@dataclasses.dataclass(frozen=True)
class Method:
    """One entry of :data:`METHODS`."""

    name: str
    help: str
    josh3r_pairs: bool  # JOSH3R runs on the lead person's frame pairs after the front ends (needs josh3r.onnx)
    optimizes: bool  # the windows are solved (the joint optimization); False: JOSH3R's trajectory is the result
    warm_start: bool  # each problem starts at JOSH3R's cameras and metric scale


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("josh", "the joint optimization (default)", josh3r_pairs=False, optimizes=True, warm_start=False),
        Method(
            "josh3r",
            "the feed-forward JOSH3R model, no optimization",
            josh3r_pairs=True,
            optimizes=False,
            warm_start=False,
        ),
        Method(
            "josh3r+joint",
            "the joint optimization started at JOSH3R's cameras and scale",
            josh3r_pairs=True,
            optimizes=True,
            warm_start=True,
        ),
    )
}


class MethodError(JoshError, ValueError):
    """An unknown method name."""


def method(name: str) -> Method:
    """The entry of ``name``; an unknown name is one line listing the known ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise MethodError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
