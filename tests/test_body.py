"""The body layer against smplx (CPU torch) and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import x64

import josh_jax.body as jb
from josh_jax.geometry import axis_angle_to_matrix

torch = pytest.importorskip("torch")
smplx = pytest.importorskip("smplx")


def random_inputs(seed, batch=()):
    rng = np.random.default_rng(seed)
    betas = rng.normal(size=batch + (10,)).astype(np.float32)
    aa = rng.normal(scale=0.4, size=batch + (24, 3)).astype(np.float32)
    transl = rng.normal(size=batch + (3,)).astype(np.float32)
    return betas, aa, transl


def smplx_forward(path, betas, aa, transl):
    model = smplx.SMPL(model_path=str(path), num_betas=10)
    b = betas.reshape(-1, 10)
    a = aa.reshape(-1, 24, 3)
    t = transl.reshape(-1, 3)
    rot = torch.from_numpy(np.array(axis_angle_to_matrix(jnp.asarray(a)), np.float32))  # a writable copy
    with torch.no_grad():
        out = model(
            betas=torch.from_numpy(b),
            global_orient=rot[:, :1],
            body_pose=rot[:, 1:],
            transl=torch.from_numpy(t),
            pose2rot=False,
        )
    return out.vertices.numpy(), out.joints[:, :24].numpy()


@pytest.mark.parametrize("kind", ["plain", "official", "npz"])
def test_loading_without_chumpy_matches_arrays(smpl_files, smpl_arrays, kind):
    m = jb.load(smpl_files[kind])
    np.testing.assert_allclose(m.v_template, smpl_arrays["v_template"], atol=1e-6)
    np.testing.assert_allclose(m.shapedirs, smpl_arrays["shapedirs"], atol=1e-6)
    np.testing.assert_allclose(m.J_regressor, smpl_arrays["J_regressor"].toarray(), atol=1e-6)
    assert m.parents == tuple(jb.SMPL_PARENTS)
    assert m.posedirs.shape == (6890, 3, 207)
    assert m.vertex_set("foot_markers").tolist() == [3216, 3387, 6617, 6787]


def test_folder_lookup(smpl_files):
    m = jb.load(smpl_files["plain"].parent)
    assert m.name == "smpl" and m.num_vertices == 6890


@pytest.mark.parametrize("kind", ["plain", "official"])
def test_forward_matches_smplx_batched(smpl_files, kind):
    m = jb.load(smpl_files[kind])
    betas, aa, transl = random_inputs(1, (4,))
    ref_v, ref_j = smplx_forward(smpl_files["plain"], betas, aa, transl)
    out = jax.jit(jb.forward)(m, betas, jb.rotmats_from_axis_angle(aa), transl)
    assert out.vertices.dtype == jnp.float32
    np.testing.assert_allclose(out.vertices, ref_v, atol=1e-5)
    np.testing.assert_allclose(out.joints, ref_j, atol=1e-5)


@pytest.mark.slow
def test_forward_unbatched_and_vmap(smpl_files):
    m = jb.load(smpl_files["plain"])
    betas, aa, transl = random_inputs(2, (3,))
    ref_v, ref_j = smplx_forward(smpl_files["plain"], betas, aa, transl)
    rot = jb.rotmats_from_axis_angle(aa)
    single = jb.forward(m, betas[0], rot[0], transl[0])
    np.testing.assert_allclose(single.vertices, ref_v[0], atol=1e-5)
    vm = jax.jit(jax.vmap(jb.forward, in_axes=(None, 0, 0, 0)))(m, betas, rot, transl)
    np.testing.assert_allclose(vm.vertices, ref_v, atol=1e-5)
    np.testing.assert_allclose(vm.joints, ref_j, atol=1e-5)


@pytest.mark.slow
def test_vertex_subset_equals_full(smpl_files):
    m = jb.load(smpl_files["plain"])
    betas, aa, transl = random_inputs(3, (2,))
    rot = jb.rotmats_from_axis_angle(aa)
    ids = [0, 17, 3216, 6889]
    full = jb.forward(m, betas, rot, transl)
    sub = jb.forward(m, betas, rot, transl, vertex_ids=ids)
    np.testing.assert_allclose(sub.vertices, full.vertices[:, ids], atol=1e-6)
    np.testing.assert_allclose(sub.joints, full.joints, atol=1e-6)


@pytest.mark.slow
def test_subset_model_is_the_same_body_on_fewer_vertices(smpl_files):
    """BodyModel.subset: forward on the view = the full forward's rows (the losses pose
    their contact vertices this way), also with repeated ids, under vmap and jit."""
    m = jb.load(smpl_files["plain"])
    betas, aa, transl = random_inputs(5, (3,))
    rot = jb.rotmats_from_axis_angle(aa)
    ids = [6889, 0, 17, 17, 3216]
    view = m.subset(ids)
    assert view.num_vertices == 5 and view.J_regressor.shape == (24, 0) and view.faces.shape == (0, 3)
    assert view.parents == m.parents and view.vertex_sets == ()
    full = jb.forward(m, betas, rot, transl)
    part = jax.jit(jb.forward)(view, betas, rot, transl)
    np.testing.assert_allclose(part.vertices, full.vertices[:, ids], atol=1e-6)
    np.testing.assert_allclose(part.joints, full.joints, atol=1e-6)
    # only the betas a caller passes are used, as for the full model
    np.testing.assert_allclose(
        jb.forward(view, betas[:, :4], rot, transl).vertices,
        jb.forward(m, betas[:, :4], rot, transl).vertices[:, ids],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="vertex ids must lie in"):
        m.subset([m.num_vertices])


def test_rot6d_and_axis_angle_inputs_agree(open_model):
    _, aa, transl = random_inputs(4)
    R = jb.rotmats_from_axis_angle(aa.reshape(72))
    six = jnp.concatenate([R[..., :, 0], R[..., :, 1]], -1)
    a = jb.forward(open_model, jnp.zeros(10), R, transl)
    b = jb.forward(open_model, jnp.zeros(10), jb.rotmats_from_rot6d(six.reshape(144)), transl)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)


@pytest.mark.slow
def test_gradients_match_finite_differences(smpl_files):
    with x64():
        m = jb.load(smpl_files["plain"])
        m = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if x.dtype == jnp.float32 else x, m)
        betas, aa, transl = (jnp.asarray(x, jnp.float64) for x in random_inputs(5))
        w = jnp.asarray(np.random.default_rng(0).normal(size=(6890, 3)))

        def f(betas, aa, transl):
            out = jb.forward(m, betas, jb.rotmats_from_axis_angle(aa), transl)
            return jnp.sum(out.vertices * w) + jnp.sum(out.joints**2)

        grads = jax.grad(f, argnums=(0, 1, 2))(betas, aa, transl)
        rng = np.random.default_rng(1)
        for i, x in enumerate((betas, aa, transl)):
            d = jnp.asarray(rng.normal(size=x.shape))
            eps = 1e-6
            args_p = [betas, aa, transl]
            args_m = [betas, aa, transl]
            args_p[i] = x + eps * d
            args_m[i] = x - eps * d
            fd = (f(*args_p) - f(*args_m)) / (2 * eps)
            np.testing.assert_allclose(jnp.sum(grads[i] * d), fd, rtol=1e-6)


def test_second_call_does_not_recompile(open_model):
    traces = []

    @jax.jit
    def fwd(model, betas, rot, transl):
        traces.append(1)  # runs only while tracing
        return jb.forward(model, betas, rot, transl)

    for seed in (6, 7, 8):
        betas, aa, transl = random_inputs(seed, (2,))
        fwd(open_model, betas, jb.rotmats_from_axis_angle(aa), transl).vertices.block_until_ready()
    assert len(traces) == 1


# ---- the embedded open body -------------------------------------------------------------


def test_open_model_is_plausible(open_model):
    info = jb.open_model_info()
    assert info["data_license"].startswith("CC0") and "Not SMPL" in info["description"]
    out = jb.forward(open_model, jnp.zeros(10), jnp.tile(jnp.eye(3), (24, 1, 1)))
    v, j = np.asarray(out.vertices), np.asarray(out.joints)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.5 < height < 1.9
    feet = np.concatenate([open_model.vertex_set("left_sole"), open_model.vertex_set("right_sole")])
    assert v[feet, 1].min() == pytest.approx(v[:, 1].min(), abs=1e-6)  # feet lowest
    # left/right symmetry: joints mirror across x = 0
    mirror = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
    np.testing.assert_allclose(j[mirror] * [-1, 1, 1], j, atol=5e-3)
    assert j[1, 0] > 0 and j[16, 0] > 0  # the body's left at +x, as SMPL
    assert j[15, 1] > j[0, 1] > j[7, 1]  # head above pelvis above ankles
    # T-pose: wrists roughly level with the shoulders
    assert abs(j[20, 1] - j[16, 1]) < 0.05


def test_open_model_shape_basis_changes_height(open_model):
    rest = jnp.tile(jnp.eye(3), (24, 1, 1))
    heights = []
    for b0 in (-2.0, 0.0, 2.0):
        v = np.asarray(jb.forward(open_model, jnp.array([b0] + [0.0] * 9), rest).vertices)
        heights.append(v[:, 1].max() - v[:, 1].min())
    assert heights[0] < heights[1] < heights[2]
    assert 1.3 < heights[0] and heights[2] < 2.2


def test_open_model_poses_plausibly(open_model):
    # Bending the left knee 90 degrees moves the left ankle backwards and up, not the right.
    aa = np.zeros((24, 3), np.float32)
    aa[4] = [np.pi / 2, 0, 0]
    rest = jb.forward(open_model, jnp.zeros(10), jnp.tile(jnp.eye(3), (24, 1, 1)))
    bent = jb.forward(open_model, jnp.zeros(10), jb.rotmats_from_axis_angle(aa))
    d = np.asarray(bent.joints - rest.joints)
    assert d[7, 1] > 0.2 and d[7, 2] < -0.2
    np.testing.assert_allclose(d[8], 0, atol=1e-6)
    # a 90-degree turn about the knee moves a point by at most sqrt(2) x its distance
    # to the knee; blended skinning stays within that bound
    moved = np.linalg.norm(np.asarray(bent.vertices - rest.vertices), axis=1)
    reach = np.linalg.norm(np.asarray(rest.vertices) - np.asarray(rest.joints[4]), axis=1)
    assert np.all(moved <= np.sqrt(2) * reach + 1e-4)
    assert moved[open_model.vertex_set("left_sole")].min() > 0.2
    assert moved[open_model.vertex_set("right_sole")].max() < 1e-6


# ---- errors -----------------------------------------------------------------------------


def test_missing_file_error_is_one_line(tmp_path):
    with pytest.raises(jb.BodyModelError) as e:
        jb.load(tmp_path / "SMPL_NEUTRAL.pkl")
    msg = str(e.value)
    assert "\n" not in msg and "SMPL_NEUTRAL.pkl" in msg and "smpl.is.tue.mpg.de" in msg


def test_malformed_file_error(tmp_path):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(jb.BodyModelError, match="not a readable SMPL pickle"):
        jb.load(bad)
    other = tmp_path / "x.npz"
    np.savez(other, v_template=np.zeros((5, 3)))
    with pytest.raises(jb.BodyModelError, match="lacks shapedirs"):
        jb.load(other)
