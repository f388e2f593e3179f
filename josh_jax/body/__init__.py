"""Pure-functional JAX body models with SMPL's 24-joint skeleton.

- :func:`load` reads official SMPL pickles (no chumpy), SMPL-format npz, or
  the embedded open body (``"open"``, MakeHuman CC0 data; not SMPL).
- :func:`forward` poses and shapes a :class:`BodyModel` (jit/vmap/grad-friendly).
"""

from .io import BodyModelError, derive_vertex_sets, load, load_open, open_model_info
from .model import (
    NUM_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    BodyModel,
    BodyOutput,
    forward,
    forward_jit,
    kinematic_chain,
    make_model,
    rest_joints,
    rotmats_from_axis_angle,
    rotmats_from_rot6d,
)

__all__ = [
    "BodyModel",
    "BodyModelError",
    "BodyOutput",
    "NUM_JOINTS",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "derive_vertex_sets",
    "forward",
    "forward_jit",
    "kinematic_chain",
    "load",
    "load_open",
    "make_model",
    "open_model_info",
    "rest_joints",
    "rotmats_from_axis_angle",
    "rotmats_from_rot6d",
]
