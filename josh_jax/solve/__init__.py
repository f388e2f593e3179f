"""The two-stage JOSH solve: ``solve(problem)`` for one window, ``solve_batch`` vmapped."""

from .solver import (
    SolveConfig,
    SolveResult,
    StageResult,
    cosine_lr,
    front_ends_only,
    solve,
    solve_batch,
    stack_problems,
)

__all__ = [
    "SolveConfig",
    "SolveResult",
    "StageResult",
    "cosine_lr",
    "front_ends_only",
    "solve",
    "solve_batch",
    "stack_problems",
]
