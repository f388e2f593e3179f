"""scene.glb export: loads back, y-up for viewers, bodies where results.npz puts them."""

import numpy as np
import trimesh

from josh_jax.body import forward
from josh_jax.export.scene import Y_UP, main, write_glb
from josh_jax.synthetic.worlds import SynthConfig, make_world


def test_glb_round_trip_and_y_up(open_model, tmp_path):
    _, gt = make_world(open_model, 0, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))
    path = write_glb(gt, open_model, tmp_path / "scene.glb", every=5)
    scene = trimesh.load(path)
    names = list(scene.geometry)
    assert "scene_points" in names and "camera_path" in names and "cameras" in names
    people = [n for n in names if n.startswith("person_0_frame_")]
    assert len(people) == len(range(0, gt["visible"].shape[1], 5))
    mesh = scene.geometry["person_0_frame_0"]
    # the exported mesh is the results' body turned y-up (vertex by vertex, as read back from the file)
    rot = np.concatenate([gt["global_orient"][0, 0][None], gt["body_pose"][0, 0]], 0).astype(np.float32)
    want = np.asarray(forward(open_model, gt["betas"][0], rot, gt["transl"][0, 0].astype(np.float32)).vertices) @ Y_UP.T
    assert mesh.vertices.shape == want.shape
    np.testing.assert_allclose(mesh.vertices, want, atol=1e-4)
    # and standing upright in the viewer's frame: the head joint well above the ankles, the mesh's
    # top at the head (an upside-down export puts the feet on top and fails both)
    joints = gt["joints_world"][0, 0] @ Y_UP.T
    assert joints[15, 1] > joints[7, 1] + 1.0
    top = mesh.vertices[np.argmax(mesh.vertices[:, 1])]
    assert np.linalg.norm(top - joints[15]) < 0.3 and mesh.vertices[:, 1].min() < joints[7, 1] + 0.1


def test_export_cli(open_model, tmp_path, capsys):
    _, gt = make_world(open_model, 1, SynthConfig(num_keyframes=3, width=96, height=72, focal=90.0, pair_window=2))
    np.savez(tmp_path / "results.npz", **gt)
    assert main([str(tmp_path / "results.npz")]) == 0
    assert (tmp_path / "scene.glb").is_file()
    assert main([str(tmp_path / "nope.npz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
