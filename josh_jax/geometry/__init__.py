"""Rotations, rigid transforms and their interpolation (pure JAX, loaded on first use); the numpy pinhole projection."""

from .pinhole import project as project
from .pinhole import project_K as project_K

# the rotations are JAX: loaded on first use, so numpy-only users of ``pinhole`` / ``boxes`` do not import JAX
_ROTATIONS = frozenset(
    (
        "axis_angle_to_matrix",
        "axis_angle_to_quat",
        "make_se3",
        "matrix_slerp",
        "matrix_to_axis_angle",
        "matrix_to_quat",
        "matrix_to_rot6d",
        "nearest_rotation",
        "quat_normalize",
        "quat_slerp",
        "quat_to_axis_angle",
        "quat_to_matrix",
        "quat_wxyz_to_xyzw",
        "quat_xyzw_to_wxyz",
        "rot6d_to_matrix",
        "se3_interpolate",
        "se3_inverse",
        "skew",
    )
)


def __getattr__(name: str):
    if name in _ROTATIONS:
        from . import rotations

        return getattr(rotations, name)
    raise AttributeError(f"module 'josh_jax.geometry' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


__all__ = sorted(["project", "project_K", *_ROTATIONS])
