"""Rotation conversions and interpolation, all NaN-safe under ``jax.grad``.

Conventions (see docs/conventions.md):
- rotation matrices act on column vectors, ``x_a = R_a_b @ x_b``;
- quaternions are **wxyz** (scalar first) everywhere in josh_jax; use
  :func:`quat_xyzw_to_wxyz` at the boundary with roma/scipy-style data;
- axis-angle vectors are ``angle * unit_axis`` in radians;
- the 6D representation is the first two **columns** of the matrix,
  concatenated ``[c0, c1]`` (as HMR/TRAM-style heads output it).

Every function takes arbitrary leading batch axes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Below this angle (rad) the small-angle series replace sin/theta terms.
_EPS = {jnp.dtype("float32"): 1e-4, jnp.dtype("float64"): 1e-8}


def _small(x) -> float:
    return _EPS.get(jnp.result_type(x), 1e-4)


def skew(v: jnp.ndarray) -> jnp.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrix: ``skew(v) @ u == cross(v, u)``."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = jnp.zeros_like(x)
    return jnp.stack([jnp.stack([o, -z, y], -1), jnp.stack([z, o, -x], -1), jnp.stack([-y, x, o], -1)], -2)


def axis_angle_to_matrix(aa: jnp.ndarray) -> jnp.ndarray:
    """Rodrigues: (..., 3) radians -> (..., 3, 3). Exact gradient at zero."""
    theta2 = jnp.sum(aa * aa, -1)
    small = theta2 < _small(aa) ** 2
    # Double-where: the unused branch gets a safe input so its gradient stays finite.
    theta2_safe = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(theta2_safe)
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)  # sin t / t
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / theta2_safe)  # (1 - cos t) / t^2
    K = skew(aa)
    eye = jnp.broadcast_to(jnp.eye(3, dtype=aa.dtype), K.shape)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def matrix_to_quat(R: jnp.ndarray) -> jnp.ndarray:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion wxyz with w >= 0.

    Shepperd's method: the branch with the largest diagonal term is selected,
    so no division by a near-zero number occurs in the value that is used.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    cands = jnp.stack(
        [
            jnp.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            jnp.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            jnp.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            jnp.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        -2,
    )  # (..., 4, 4); row i is 4 * q_i * q
    diag = jnp.stack([cands[..., i, i] for i in range(4)], -1)
    best = jnp.argmax(diag, -1)
    row = jnp.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    piv = jnp.take_along_axis(diag, best[..., None], axis=-1)
    q = row / (2.0 * jnp.sqrt(jnp.maximum(piv, 1e-12)))
    return q * jnp.where(q[..., :1] < 0, -1.0, 1.0)


def quat_to_matrix(q: jnp.ndarray) -> jnp.ndarray:
    """(..., 4) wxyz quaternion (normalized here) -> (..., 3, 3)."""
    q = q / jnp.sqrt(jnp.sum(q * q, -1, keepdims=True) + 1e-20)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return jnp.stack(
        [
            jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def quat_to_axis_angle(q: jnp.ndarray) -> jnp.ndarray:
    """(..., 4) wxyz -> (..., 3) axis-angle with angle in [0, pi]."""
    q = q * jnp.where(q[..., :1] < 0, -1.0, 1.0)
    v = q[..., 1:]
    s2 = jnp.sum(v * v, -1)
    small = s2 < _small(q) ** 2
    s = jnp.sqrt(jnp.where(small, 1.0, s2))
    angle = 2.0 * jnp.arctan2(s, q[..., 0])
    scale = jnp.where(small, 2.0 / q[..., 0], angle / s)
    return v * scale[..., None]


def axis_angle_to_quat(aa: jnp.ndarray) -> jnp.ndarray:
    """(..., 3) -> (..., 4) wxyz."""
    theta2 = jnp.sum(aa * aa, -1)
    small = theta2 < _small(aa) ** 2
    theta = jnp.sqrt(jnp.where(small, 1.0, theta2))
    half_sinc = jnp.where(small, 0.5 - theta2 / 48.0, jnp.sin(theta / 2) / theta)
    w = jnp.where(small, 1.0 - theta2 / 8.0, jnp.cos(theta / 2))
    return jnp.concatenate([w[..., None], aa * half_sinc[..., None]], -1)


def matrix_to_axis_angle(R: jnp.ndarray) -> jnp.ndarray:
    """(..., 3, 3) -> (..., 3), via the quaternion (stable near 0 and pi)."""
    return quat_to_axis_angle(matrix_to_quat(R))


def rot6d_to_matrix(x: jnp.ndarray) -> jnp.ndarray:
    """(..., 6) = first two columns [c0, c1] -> (..., 3, 3) by Gram-Schmidt."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = a1 / jnp.sqrt(jnp.sum(a1 * a1, -1, keepdims=True) + 1e-20)
    a2 = a2 - jnp.sum(b1 * a2, -1, keepdims=True) * b1
    b2 = a2 / jnp.sqrt(jnp.sum(a2 * a2, -1, keepdims=True) + 1e-20)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], -1)


def matrix_to_rot6d(R: jnp.ndarray) -> jnp.ndarray:
    """(..., 3, 3) -> (..., 6) first two columns."""
    return jnp.concatenate([R[..., :, 0], R[..., :, 1]], -1)


def quat_xyzw_to_wxyz(q: jnp.ndarray) -> jnp.ndarray:
    return jnp.concatenate([q[..., 3:], q[..., :3]], -1)


def quat_wxyz_to_xyzw(q: jnp.ndarray) -> jnp.ndarray:
    return jnp.concatenate([q[..., 1:], q[..., :1]], -1)


def quat_normalize(q: jnp.ndarray) -> jnp.ndarray:
    return q / jnp.sqrt(jnp.sum(q * q, -1, keepdims=True) + 1e-20)


def quat_slerp(q0: jnp.ndarray, q1: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Spherical interpolation of wxyz quaternions along the short arc; t (...,) in [0, 1]."""
    q0, q1 = quat_normalize(q0), quat_normalize(q1)
    dot = jnp.sum(q0 * q1, -1)
    q1 = q1 * jnp.where(dot < 0, -1.0, 1.0)[..., None]
    dot = jnp.abs(dot)
    t = jnp.asarray(t, q0.dtype)[..., None]
    near = (dot > 1.0 - 1e-6)[..., None]
    omega = jnp.arccos(jnp.clip(jnp.where(near[..., 0], 0.5, dot), -1.0, 1.0))[..., None]
    so = jnp.sin(omega)
    w0 = jnp.where(near, 1.0 - t, jnp.sin((1.0 - t) * omega) / so)
    w1 = jnp.where(near, t, jnp.sin(t * omega) / so)
    return quat_normalize(w0 * q0 + w1 * q1)


def matrix_slerp(R0: jnp.ndarray, R1: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Geodesic SO(3) interpolation between (..., 3, 3) matrices."""
    return quat_to_matrix(quat_slerp(matrix_to_quat(R0), matrix_to_quat(R1), t))


def se3_interpolate(T0: jnp.ndarray, T1: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Interpolate (..., 4, 4) rigid transforms: slerp on rotation, linear on translation
    (the convention used for camera paths; exact at t = 0 and t = 1)."""
    t = jnp.asarray(t, T0.dtype)
    R = matrix_slerp(T0[..., :3, :3], T1[..., :3, :3], t)
    p = (1.0 - t)[..., None] * T0[..., :3, 3] + t[..., None] * T1[..., :3, 3]
    return make_se3(R, p)


def make_se3(R: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """(..., 3, 3), (..., 3) -> (..., 4, 4) homogeneous transform."""
    top = jnp.concatenate([R, t[..., None]], -1)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], R.dtype), top.shape[:-2] + (1, 4))
    return jnp.concatenate([top, bottom], -2)


def se3_inverse(T: jnp.ndarray) -> jnp.ndarray:
    R = T[..., :3, :3]
    Rt = jnp.swapaxes(R, -1, -2)
    return make_se3(Rt, -(Rt @ T[..., :3, 3:4])[..., 0])


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to each 3x3 matrix, by SVD (host side, numpy).

    (..., 3, 3) -> (..., 3, 3): ``U diag(1, 1, det(U V^T)) V^T``.
    """
    u, _, vt = np.linalg.svd(np.asarray(M))
    d = np.sign(np.linalg.det(u @ vt)).astype(u.dtype)
    D = np.broadcast_to(np.eye(3, dtype=u.dtype), d.shape + (3, 3)).copy()
    D[..., 2, 2] = d
    return u @ D @ vt  # in the input's precision (float32 stays float32)
