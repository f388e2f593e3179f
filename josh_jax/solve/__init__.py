"""The two-stage JOSH solve: ``solve(problem)`` for one window, ``solve_batch`` vmapped."""

from .differentiable import DiffConfig, DiffResult, solve_differentiable
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
    "DiffConfig",
    "DiffResult",
    "solve_differentiable",
    "SolveConfig",
    "SolveResult",
    "StageResult",
    "cosine_lr",
    "front_ends_only",
    "solve",
    "solve_batch",
    "stack_problems",
]
