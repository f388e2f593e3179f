"""A linear-blend-skinning body model (SMPL and friends) as an immutable pytree.

The functions here are pure and plain (not jitted): compose them under your own
``jax.jit`` / ``jax.vmap`` / ``jax.grad``. Units are metres and radians; the
body frame is SMPL's (y up, facing +z, the body's left at +x).

Typical use::

    model = josh_jax.body.load("open")            # or a path to SMPL_NEUTRAL.pkl
    out = josh_jax.body.forward(model, betas, rotmats, transl)
    out.vertices   # (..., V, 3)
    out.joints     # (..., 24, 3)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..geometry import axis_angle_to_matrix, rot6d_to_matrix

NUM_JOINTS = 24

SMPL_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BodyModel:
    """An SMPL-format skinned body. Array fields are pytree leaves, the rest is static.

    Attributes:
        v_template: (V, 3) rest-pose template vertices, metres.
        shapedirs: (V, 3, B) shape blend shapes (per unit beta), metres.
        posedirs: (V, 3, P) pose-corrective blend shapes over the flattened
            ``R_j - I`` of joints 1..23 (P = 207), or P = 0 for none.
        J_regressor: (24, V) joint regressor (dense).
        J_template: (24, 3) ``J_regressor @ v_template`` (cached).
        J_shapedirs: (24, 3, B) ``J_regressor @ shapedirs`` (cached).
        weights: (V, 24) skinning weights, rows sum to 1.
        faces: (F, 3) int32 triangle indices.
        parents: static tuple of 24 parent indices (root: -1).
        name: static model name, e.g. "smpl" or "josh-open-body".
        vertex_sets: static tuple of (name, vertex indices) pairs, e.g.
            "left_sole", "right_sole", "left_hand", "right_hand", "foot_markers".
    """

    v_template: jax.Array
    shapedirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    J_template: jax.Array
    J_shapedirs: jax.Array
    weights: jax.Array
    faces: jax.Array
    parents: tuple = dataclasses.field(default=SMPL_PARENTS, metadata=dict(static=True))
    name: str = dataclasses.field(default="body", metadata=dict(static=True))
    vertex_sets: tuple = dataclasses.field(default=(), metadata=dict(static=True))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[-1]

    def vertex_set(self, key: str) -> np.ndarray:
        """Indices of a named vertex set (see ``vertex_sets``)."""
        for k, idx in self.vertex_sets:
            if k == key:
                return np.asarray(idx, dtype=np.int32)
        raise KeyError(f"body model {self.name!r} has no vertex set {key!r}; known: {[k for k, _ in self.vertex_sets]}")

    def subset(self, vertex_ids) -> BodyModel:
        """A view of the body restricted to the vertices ``vertex_ids`` (U,) (repeats allowed).

        :func:`forward` on the view returns the same joints as on the full body
        and vertices equal to ``forward(full).vertices[..., vertex_ids, :]``: the
        joint bases ``J_template`` / ``J_shapedirs`` stay the full body's, the
        per-vertex tables (template, shape and pose blend shapes, skinning
        weights) keep only the chosen rows. The view has no faces, no vertex sets
        and an empty (24, 0) ``J_regressor`` (its joints cannot be regressed from
        a subset). The losses skin their contact vertices through such a view, so
        the solver runs the smplx-checked :func:`forward`.
        """
        ids = np.asarray(vertex_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_vertices):
            raise ValueError(f"vertex ids must lie in [0, {self.num_vertices}), got {ids.min()}..{ids.max()}")
        take = lambda a: jnp.asarray(a)[ids]  # noqa: E731
        return dataclasses.replace(
            self,
            v_template=take(self.v_template),
            shapedirs=take(self.shapedirs),
            posedirs=take(self.posedirs),
            weights=take(self.weights),
            J_regressor=jnp.zeros((NUM_JOINTS, 0), jnp.asarray(self.J_regressor).dtype),
            faces=jnp.zeros((0, 3), jnp.int32),
            vertex_sets=(),
        )


def make_model(
    v_template,
    shapedirs,
    posedirs,
    J_regressor,
    weights,
    faces,
    parents=SMPL_PARENTS,
    name="body",
    vertex_sets=(),
    dtype=jnp.float32,
) -> BodyModel:
    """Build a :class:`BodyModel` from numpy arrays (caches the joint bases)."""
    v = np.asarray(v_template, np.float64)
    S = np.asarray(shapedirs, np.float64)
    J = np.asarray(J_regressor, np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"v_template must be (V, 3), got {v.shape}")
    V = v.shape[0]
    P = np.asarray(posedirs).reshape(V, 3, -1)
    checks = {
        "shapedirs": (S.shape[:2], (V, 3)),
        "J_regressor": (J.shape, (NUM_JOINTS, V)),
        "weights": (np.shape(weights), (V, NUM_JOINTS)),
    }
    for key, (got, want) in checks.items():
        if tuple(got) != want:
            raise ValueError(f"{key} has shape {got}, expected leading {want}")
    if P.shape[-1] not in (0, (NUM_JOINTS - 1) * 9):
        raise ValueError(f"posedirs must have 0 or 207 components, got {P.shape[-1]}")
    as_j = lambda x: jnp.asarray(np.asarray(x), dtype)  # noqa: E731
    return BodyModel(
        v_template=as_j(v),
        shapedirs=as_j(S),
        posedirs=as_j(P),
        J_regressor=as_j(J),
        J_template=as_j(J @ v),
        J_shapedirs=as_j(np.einsum("jv,vcb->jcb", J, S)),
        weights=as_j(weights),
        faces=jnp.asarray(np.asarray(faces), jnp.int32),
        parents=tuple(int(p) for p in parents),
        name=name,
        vertex_sets=tuple((k, tuple(int(i) for i in idx)) for k, idx in vertex_sets),
    )


class BodyOutput(NamedTuple):
    """Posed body. ``T_world_joint`` places each joint's frame in the output frame."""

    vertices: jax.Array  # (..., V, 3) or (..., K, 3) for a vertex subset
    joints: jax.Array  # (..., 24, 3)
    T_world_joint: jax.Array  # (..., 24, 4, 4)


def _betas_bases(model: BodyModel, betas: jax.Array):
    nb = betas.shape[-1]
    if nb > model.num_betas:
        raise ValueError(f"betas has {nb} components, model {model.name!r} has {model.num_betas}")
    return model.shapedirs[..., :nb], model.J_shapedirs[..., :nb]


def rest_joints(model: BodyModel, betas: jax.Array) -> jax.Array:
    """(..., B) -> (..., 24, 3) joint locations of the shaped body in the rest pose."""
    _, Js = _betas_bases(model, betas)
    offsets = jnp.einsum("jcb,...b->...jc", Js, betas)
    return jnp.broadcast_to(model.J_template, offsets.shape) + offsets


def kinematic_chain(parents: tuple, rotmats: jax.Array, joints: jax.Array) -> jax.Array:
    """Forward kinematics.

    Args:
        parents: 24 static parent indices.
        rotmats: (..., 24, 3, 3) local joint rotations (root first).
        joints: (..., 24, 3) rest-pose joint locations.
    Returns:
        (..., 24, 4, 4) world transforms of the joint frames (rotation, joint position).
    """
    rel = jnp.stack([joints[..., i, :] - (joints[..., p, :] if p >= 0 else 0.0) for i, p in enumerate(parents)], -2)
    out_R, out_t = [], []
    for i, p in enumerate(parents):
        if p < 0:
            out_R.append(rotmats[..., i, :, :])
            out_t.append(rel[..., i, :])
        else:
            out_R.append(out_R[p] @ rotmats[..., i, :, :])
            out_t.append(out_t[p] + (out_R[p] @ rel[..., i, :, None])[..., 0])
    R = jnp.stack(out_R, -3)
    t = jnp.stack(out_t, -2)
    top = jnp.concatenate([R, t[..., None]], -1)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], R.dtype), top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], -2)


def _check_shapes(model: BodyModel, betas, rotmats, transl, vertex_ids) -> None:
    """ValueError naming the argument when a shape is wrong (JAX would clamp out-of-range indices
    and return a plausible but wrong body instead of failing)."""
    nj = len(model.parents)
    if betas.ndim < 1:
        raise ValueError(f"betas: expected shape (..., B) with B <= {model.num_betas}, got a scalar")
    if rotmats.ndim < 3 or rotmats.shape[-3:] != (nj, 3, 3):
        raise ValueError(
            f"rotmats: expected shape (..., {nj}, 3, 3) (local rotations, root first), got {tuple(rotmats.shape)}"
        )
    try:
        batch = jnp.broadcast_shapes(betas.shape[:-1], rotmats.shape[:-3])
    except ValueError:
        raise ValueError(
            f"betas {tuple(betas.shape)} and rotmats {tuple(rotmats.shape)}: batch shapes do not broadcast"
        ) from None
    if transl is not None:
        ts = np.shape(transl)
        if len(ts) < 1 or ts[-1] != 3:
            raise ValueError(f"transl: expected shape (..., 3), got {tuple(ts)}")
        try:
            jnp.broadcast_shapes(batch, tuple(ts[:-1]))
        except ValueError:
            raise ValueError(f"transl {tuple(ts)} does not broadcast with the batch shape {batch}") from None
    if vertex_ids is not None:
        ids = np.asarray(vertex_ids)
        if ids.size and (ids.min() < 0 or ids.max() >= model.num_vertices):
            raise ValueError(f"vertex_ids: must lie in [0, {model.num_vertices})")


def forward(
    model: BodyModel, betas: jax.Array, rotmats: jax.Array, transl: jax.Array | None = None, vertex_ids=None
) -> BodyOutput:
    """Pose and shape the body (SMPL's ``lbs`` with rotation-matrix input).

    Args:
        model: the body model.
        betas: (..., B') shape coefficients, B' <= model.num_betas (unused ones are 0).
        rotmats: (..., 24, 3, 3) local rotations in SMPL joint order, root first.
            Convert other inputs with :func:`rotmats_from_axis_angle` or
            :func:`rotmats_from_rot6d`.
        transl: (..., 3) translation added to vertices and joints, metres.
        vertex_ids: optional static int sequence; skin only these vertices
            (same values as ``forward(...).vertices[..., vertex_ids, :]``, cheaper).
    Returns:
        :class:`BodyOutput` with vertices (..., V or K, 3), joints (..., 24, 3)
        and the joints' transforms (..., 24, 4, 4).
    """
    betas = jnp.asarray(betas)
    rotmats = jnp.asarray(rotmats)
    _check_shapes(model, betas, rotmats, transl, vertex_ids)
    batch = jnp.broadcast_shapes(betas.shape[:-1], rotmats.shape[:-3])
    S, _ = _betas_bases(model, betas)
    v_t, W, Pd = model.v_template, model.weights, model.posedirs
    if vertex_ids is not None:
        ids = np.asarray(vertex_ids, dtype=np.int32)
        v_t, S, W, Pd = v_t[ids], S[ids], W[ids], Pd[ids]

    J = rest_joints(model, betas)
    shaped = jnp.einsum("vcb,...b->...vc", S, betas)
    v = jnp.broadcast_to(v_t, shaped.shape) + shaped
    if Pd.shape[-1]:
        eye = jnp.broadcast_to(jnp.eye(3, dtype=rotmats.dtype), rotmats[..., 1:, :, :].shape)
        feat = (rotmats[..., 1:, :, :] - eye).reshape(rotmats.shape[:-3] + (-1,))
        v = v + jnp.einsum("vcp,...p->...vc", Pd, feat)

    T = kinematic_chain(
        model.parents, jnp.broadcast_to(rotmats, batch + rotmats.shape[-3:]), jnp.broadcast_to(J, batch + J.shape[-2:])
    )
    # Skinning transforms: A_j = T_j with the rest joint position removed.
    R = T[..., :3, :3]
    t = T[..., :3, 3] - (R @ J[..., None])[..., 0]
    vR = jnp.einsum("vj,...jab->...vab", W, R)
    vt = jnp.einsum("vj,...ja->...va", W, t)
    verts = (vR @ v[..., None])[..., 0] + vt
    joints = T[..., :3, 3]
    if transl is not None:
        transl = jnp.asarray(transl)
        verts = verts + transl[..., None, :]
        joints = joints + transl[..., None, :]
        T = T.at[..., :3, 3].add(transl[..., None, :])
    return BodyOutput(vertices=verts, joints=joints, T_world_joint=T)


forward_jit = jax.jit(forward)
"""``jax.jit(forward)`` (``vertex_ids`` must then be omitted): the one compiled forward the host-side
code shares (problem building, synthetic worlds, the overlay), so each shape compiles once per process."""


def rotmats_from_axis_angle(pose: jax.Array) -> jax.Array:
    """(..., 72) or (..., 24, 3) axis-angle (radians) -> (..., 24, 3, 3)."""
    pose = jnp.asarray(pose)
    if pose.shape[-1] == 72:
        pose = pose.reshape(pose.shape[:-1] + (24, 3))
    return axis_angle_to_matrix(pose)


def rotmats_from_rot6d(pose: jax.Array) -> jax.Array:
    """(..., 144) or (..., 24, 6) 6D rotations (first two columns) -> (..., 24, 3, 3)."""
    pose = jnp.asarray(pose)
    if pose.shape[-1] == 144:
        pose = pose.reshape(pose.shape[:-1] + (24, 6))
    return rot6d_to_matrix(pose)
