"""Objective presets: ``josh`` (the reference, default) and ``josh+`` (planted feet, less jitter).

``josh`` is the reference objective unchanged. ``josh+`` adds switches, each of
which can be turned off on its own (``--set objective.<switch>=false``; the
accuracy bench writes one ablation row per switch):

- ``refine`` (on): after the window solve, a per-frame refinement of every
  track on all frames with the cameras fixed (:mod:`josh_jax.refine`): planted
  vertices held still between keyframes that label them, world-joint
  acceleration, a prior to the interpolated window solution;
- ``shared_static`` (tried, off: it cost W-MPJPE and camera accuracy on the
  synthetic suite, see docs/objective.md): static-contact entries from every
  vertex labelled in contact on two consecutive keyframes of a track (not only
  the one nearest a joint, :class:`~josh_jax.problem.ProblemConfig`
  ``static_entries="shared"``), with the static weight set to ``static_weight``.

The window solve's compiled program is the same for both presets (only problem
data and traced weights differ); the refinement is one more program per bucket.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .losses import LossWeights
from .problem import ProblemConfig
from .refine import RefineConfig

OBJECTIVES = ("josh", "josh+")
SWITCHES = ("refine", "shared_static")


@dataclass(frozen=True)
class ObjectiveConfig:
    """``name``: "josh" (reference) or "josh+". The other fields are josh+'s switches (read only
    with ``name="josh+"``)."""

    name: str = "josh"
    shared_static: bool = False
    static_weight: float = 1.0  # weights.static under shared_static (the reference: 0.1)
    refine: bool = True
    refine_iters: int = 150

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.name!r}")
        if not (isinstance(self.static_weight, (int, float)) and self.static_weight >= 0):
            raise ValueError(f"objective static_weight must be a number >= 0, got {self.static_weight!r}")
        if not isinstance(self.refine_iters, int) or isinstance(self.refine_iters, bool) or self.refine_iters < 1:
            raise ValueError(f"objective refine_iters must be a whole number >= 1, got {self.refine_iters!r}")

    @property
    def plus(self) -> bool:
        return self.name == "josh+"

    def active(self) -> tuple[str, ...]:
        """The switches in effect (none for ``josh``)."""
        return tuple(s for s in SWITCHES if self.plus and getattr(self, s))

    def toggled(self, switch: str) -> ObjectiveConfig:
        """The same preset with one switch flipped (an ablation row)."""
        if switch not in SWITCHES:
            raise ValueError(f"unknown switch {switch!r}; known: {', '.join(SWITCHES)}")
        return dataclasses.replace(self, **{switch: not getattr(self, switch)})


def problem_config(pcfg: ProblemConfig, obj: ObjectiveConfig) -> ProblemConfig:
    """The problem-building settings under ``obj`` (``josh``: unchanged)."""
    if "shared_static" in obj.active():
        return dataclasses.replace(pcfg, static_entries="shared")
    return pcfg


def loss_weights(weights: LossWeights, obj: ObjectiveConfig) -> LossWeights:
    """The window solve's loss weights under ``obj`` (``josh``: unchanged)."""
    if "shared_static" in obj.active():
        return weights._replace(static=float(obj.static_weight))
    return weights


def refine_config(obj: ObjectiveConfig) -> RefineConfig | None:
    """The per-frame refinement's settings, or None when it is off."""
    return RefineConfig(iters=obj.refine_iters) if "refine" in obj.active() else None


def finish_results(res, window, model, obj: ObjectiveConfig):
    """Per-frame Results of a window after the objective's post-solve stages (``josh``: as is)."""
    rc = refine_config(obj)
    if rc is None:
        return res
    from .refine import refine_results

    return refine_results(res, window, model, rc)[0]
