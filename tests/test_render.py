"""The CPU rasterizers: the overlay's z-buffer (draw_meshes) against geometry and against draw_mesh."""

import numpy as np

from josh_jax.export.render import draw_mesh, draw_meshes

# a square of side 1 m facing the camera (both triangles wound towards it)
SQUARE = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
SQUARE_FACES = np.array([[0, 2, 1], [0, 3, 2]])


def _square(depth, shift=(0.0, 0.0)):
    return SQUARE + np.array([shift[0], shift[1], depth])


def test_a_square_covers_exactly_the_pixel_centres_inside_it():
    img = np.zeros((100, 120, 3), np.uint8)
    out = draw_meshes(img, [(_square(2.0), (200, 100, 50))], SQUARE_FACES, 100.0, (60, 50))
    # projected corners: x 35..85, y 25..75 (inclusive pixel centres)
    want = np.zeros((100, 120), bool)
    want[25:76, 35:86] = True
    np.testing.assert_array_equal(out.any(-1), want)
    # nearly frontal flat shading: the colour itself (shade >= 0.99)
    assert np.abs(out[want].astype(int) - [200, 100, 50]).max() <= 2
    assert img.max() == 0  # the input is not changed


def test_the_nearer_mesh_wins_whatever_the_order():
    img = np.zeros((100, 120, 3), np.uint8)
    near, far = (_square(2.0), (255, 0, 0)), (_square(3.0, (0.3, 0.0)), (0, 0, 255))
    a = draw_meshes(img, [near, far], SQUARE_FACES, 100.0, (60, 50))
    b = draw_meshes(img, [far, near], SQUARE_FACES, 100.0, (60, 50))
    np.testing.assert_array_equal(a, b)
    assert a[50, 60, 0] > 200 and a[50, 60, 2] == 0  # the overlap shows the near square
    # the far square shows where the near one does not reach: x = (0.3 + 0.5) / 3 * 100 + 60 = 86.7
    assert a[50, 86, 2] > 200 and a[50, 86, 0] == 0


def test_alpha_blends_and_back_faces_are_culled():
    img = np.full((100, 120, 3), 100, np.uint8)
    out = draw_meshes(img, [(_square(2.0), (200, 200, 200))], SQUARE_FACES, 100.0, (60, 50), alpha=0.5)
    assert abs(int(out[50, 60, 0]) - 150) <= 2 and out[5, 5, 0] == 100
    back = draw_meshes(img, [(_square(2.0), (200, 200, 200))], SQUARE_FACES[:, ::-1], 100.0, (60, 50))
    np.testing.assert_array_equal(back, img)
    behind = draw_meshes(img, [(_square(0.01), (200, 200, 200))], SQUARE_FACES, 100.0, (60, 50))
    np.testing.assert_array_equal(behind, img)  # closer than `near`: skipped


def test_a_body_matches_the_painters_rasterizer(open_model):
    """Two bodies, one partly behind the other: the z-buffer covers the pixels the painter's
    algorithm covers (its anti-aliased edges aside) with the same flat colours."""
    import jax.numpy as jnp

    from josh_jax.body import forward_jit

    rot = np.tile(np.eye(3, dtype=np.float32), (24, 1, 1))
    v = np.asarray(forward_jit(open_model, jnp.zeros(10), jnp.asarray(rot), jnp.zeros(3)).vertices, np.float64)
    faces = np.asarray(open_model.faces)
    v1, v2 = v + [0.0, 0.2, 3.0], v + [0.3, 0.25, 4.0]
    img = np.full((270, 480, 3), 40, np.uint8)
    f, pp = 400.0, (240, 135)
    painter = draw_mesh(draw_mesh(img, v2, faces, f, pp, color=(70, 150, 230)), v1, faces, f, pp, color=(230, 120, 60))
    zbuf = draw_meshes(img, [(v2, (70, 150, 230)), (v1, (230, 120, 60))], faces, f, pp)
    a, b = (painter != 40).any(-1), (zbuf != 40).any(-1)
    assert b.sum() > 5000
    assert (a & b).sum() / (a | b).sum() > 0.85  # anti-aliased edges add a rim of pixels to the painter's
    # away from the edges the colours agree
    import cv2

    inner = cv2.erode(b.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.median(np.abs(painter[inner].astype(int) - zbuf[inner]).max(-1)) <= 3
