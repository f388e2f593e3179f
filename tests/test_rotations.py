"""Rotation helpers: round trips, agreement with scipy, NaN-free gradients at singular points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64
from scipy.spatial.transform import Rotation

import josh_jax.geometry as g


def rand_aa(n, seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, 3))


def test_axis_angle_matrix_matches_scipy():
    aa = rand_aa(50)
    np.testing.assert_allclose(
        g.axis_angle_to_matrix(jnp.asarray(aa, jnp.float32)), Rotation.from_rotvec(aa).as_matrix(), atol=2e-6
    )


def test_quaternion_wxyz_matches_scipy_xyzw():
    R = Rotation.random(50, random_state=1)
    q = g.matrix_to_quat(jnp.asarray(R.as_matrix(), jnp.float32))
    ref = g.quat_xyzw_to_wxyz(jnp.asarray(R.as_quat(), jnp.float32))
    ref = ref * jnp.sign(ref[:, :1])
    np.testing.assert_allclose(q, ref, atol=2e-6)
    np.testing.assert_allclose(g.quat_to_matrix(q), R.as_matrix(), atol=2e-6)


@pytest.mark.parametrize("angle", [0.0, 1e-7, 0.3, np.pi - 1e-4, np.pi])
def test_round_trips_including_singular_angles(angle):
    axis = np.array([0.3, -0.5, 0.8])
    aa = jnp.asarray(axis / np.linalg.norm(axis) * angle, jnp.float32)
    R = g.axis_angle_to_matrix(aa)
    R2 = g.axis_angle_to_matrix(g.matrix_to_axis_angle(R))
    np.testing.assert_allclose(R2, R, atol=1e-5)
    np.testing.assert_allclose(g.rot6d_to_matrix(g.matrix_to_rot6d(R)), R, atol=1e-6)
    np.testing.assert_allclose(g.quat_to_matrix(g.axis_angle_to_quat(aa)), R, atol=1e-6)


@pytest.mark.slow
def test_gradients_finite_at_zero_rotation():
    zero = jnp.zeros(3)
    for f in (
        lambda a: jnp.sum(g.axis_angle_to_matrix(a) ** 3),
        lambda a: jnp.sum(g.axis_angle_to_quat(a) ** 3),
        lambda a: jnp.sum(g.matrix_to_axis_angle(g.axis_angle_to_matrix(a)) ** 2),
    ):
        for jac in (jax.grad(f), jax.jacfwd(f)):
            assert np.all(np.isfinite(jac(zero)))
    # d R / d aa at 0 is the generator: dR/da_k = skew(e_k)
    J = jax.jacfwd(g.axis_angle_to_matrix)(zero)
    for k in range(3):
        np.testing.assert_allclose(J[..., k], g.skew(jnp.eye(3)[k]), atol=1e-6)


@pytest.mark.slow
def test_jacobians_agree_with_finite_differences():
    with x64():
        fns = {
            "aa->R": (g.axis_angle_to_matrix, rand_aa(1, 3)[0]),
            "aa->q": (g.axis_angle_to_quat, rand_aa(1, 4)[0]),
            "q->aa": (g.quat_to_axis_angle, np.array([0.9, 0.1, -0.3, 0.2])),
            "6d->R": (g.rot6d_to_matrix, np.random.default_rng(5).normal(size=6)),
            "R->q": (lambda x: g.matrix_to_quat(g.axis_angle_to_matrix(x)), rand_aa(1, 6)[0]),
        }
        for name, (f, x0) in fns.items():
            x0 = jnp.asarray(x0, jnp.float64)
            jf, jr = jax.jacfwd(f)(x0), jax.jacrev(f)(x0)
            np.testing.assert_allclose(jf, jr, atol=1e-10, err_msg=name)
            eps = 1e-6
            fd = jnp.stack([(f(x0 + eps * e) - f(x0 - eps * e)) / (2 * eps) for e in jnp.eye(x0.size)], -1)
            np.testing.assert_allclose(jf, fd, atol=1e-7, err_msg=name)


def test_slerp_and_se3_interpolation():
    R = Rotation.random(2, random_state=3)
    q = jnp.asarray(g.quat_xyzw_to_wxyz(jnp.asarray(R.as_quat())), jnp.float32)
    mid = g.quat_slerp(q[0], q[1], 0.5)
    # geodesic midpoint: equal angle to both ends, half the total angle
    ang = lambda a, b: 2 * np.arccos(min(1.0, abs(float(jnp.dot(a, b)))))  # noqa: E731
    total = ang(q[0], q[1])
    assert ang(q[0], mid) == pytest.approx(total / 2, abs=1e-3)
    assert ang(mid, q[1]) == pytest.approx(total / 2, abs=1e-3)
    T0 = g.make_se3(jnp.asarray(R[0].as_matrix(), jnp.float32), jnp.array([0.0, 1.0, 2.0]))
    T1 = g.make_se3(jnp.asarray(R[1].as_matrix(), jnp.float32), jnp.array([2.0, 1.0, 0.0]))
    np.testing.assert_allclose(g.se3_interpolate(T0, T1, 0.0), T0, atol=1e-5)
    np.testing.assert_allclose(g.se3_interpolate(T0, T1, 1.0), T1, atol=1e-5)
    np.testing.assert_allclose(g.se3_interpolate(T0, T1, 0.5)[:3, 3], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(g.se3_inverse(T0) @ T0, np.eye(4), atol=1e-5)
    # slerp of identical quaternions is well defined (no 0/0)
    assert np.all(np.isfinite(jax.grad(lambda t: jnp.sum(g.quat_slerp(q[0], q[0], t)))(0.3)))


def test_nearest_rotation_by_svd():
    from scipy.spatial.transform import Rotation

    from josh_jax.geometry import nearest_rotation

    rng = np.random.default_rng(0)
    R = Rotation.random(5, random_state=1).as_matrix()
    noisy = R + 0.01 * rng.normal(size=R.shape)
    out = nearest_rotation(noisy)
    np.testing.assert_allclose(out @ np.swapaxes(out, -1, -2), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(out), 1.0, atol=1e-12)
    assert np.abs(out - R).max() < 0.03
    np.testing.assert_allclose(nearest_rotation(R[0]), R[0], atol=1e-12)  # unbatched, a rotation stays itself
    # a reflection: the nearest proper rotation flips the smallest singular direction, det +1
    F = np.diag([1.0, 1.0, -1.0]) @ R[1]
    assert np.linalg.det(nearest_rotation(F)) == pytest.approx(1.0)
    assert nearest_rotation(noisy.astype(np.float32)).dtype == np.float32  # precision kept
