"""Rotations, rigid transforms and their interpolation (pure JAX); the numpy pinhole projection."""
from .pinhole import project, project_K
from .rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quat,
    make_se3,
    matrix_slerp,
    matrix_to_axis_angle,
    matrix_to_quat,
    matrix_to_rot6d,
    nearest_rotation,
    quat_normalize,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
    quat_wxyz_to_xyzw,
    quat_xyzw_to_wxyz,
    rot6d_to_matrix,
    se3_interpolate,
    se3_inverse,
    skew,
)

__all__ = [
    "axis_angle_to_matrix", "axis_angle_to_quat", "make_se3", "matrix_slerp", "matrix_to_axis_angle",
    "matrix_to_quat", "matrix_to_rot6d", "nearest_rotation", "project", "project_K", "quat_normalize", "quat_slerp", "quat_to_axis_angle",
    "quat_to_matrix", "quat_wxyz_to_xyzw", "quat_xyzw_to_wxyz", "rot6d_to_matrix", "se3_interpolate",
    "se3_inverse", "skew",
]
