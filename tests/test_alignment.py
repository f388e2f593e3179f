"""2D alignment of a result with the tracks' landmarks (josh_jax.eval.alignment): the numbers summary.json
reports and the demo warns on."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from josh_jax.eval.alignment import JOINT_PAIRS, alignment, person_errors, worse_people
from josh_jax.frontends.pipeline import TrackFit


def _scene(shift_px=0.0, scale=2.0, seed=0):
    """A result whose 24 joints project (turned camera, per-frame intrinsics) onto landmarks given in working
    pixels (video px / ``scale``), the landmarks moved right by ``shift_px`` video px; frames 3-12."""
    rng = np.random.default_rng(seed)
    F = 10
    frames = np.arange(3, 3 + F)
    T = np.tile(np.eye(4), (F, 1, 1))
    T[:, :3, :3] = Rotation.from_euler("yx", rng.uniform(-0.4, 0.4, (F, 2))).as_matrix()
    T[:, :3, 3] = rng.normal(size=(F, 3))
    K = np.tile(np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]]), (F, 1, 1))
    K[:, 0, 0] = K[:, 1, 1] = np.linspace(700, 900, F)
    cam = rng.uniform([-0.5, -0.8, 4.0], [0.5, 0.8, 6.0], (F, 24, 3))  # camera-frame joints
    joints = np.einsum("fab,fjb->fja", T[:, :3, :3], cam) + T[:, None, :3, 3]
    uv = np.einsum("fab,fjb->fja", K, cam)
    uv = uv[..., :2] / uv[..., 2:]
    lm = np.zeros((F, 33, 3))
    lm[:, :, :2] = uv[:, :1]  # every landmark somewhere
    for j, ids in JOINT_PAIRS:
        for i in ids:
            lm[:, i, :2] = uv[:, j]
    lm[:, 0, 1], lm[:, 32, 1] = uv[:, :, 1].min(1) - 50, uv[:, :, 1].max(1) + 50  # a box height
    height = lm[:, :, 1].max(1) - lm[:, :, 1].min(1)
    lm[:, :, 0] += shift_px
    res = SimpleNamespace(
        frame_index=frames,
        visible=np.ones((1, F), bool),
        joints_world=joints[None],
        cam_to_world=T,
        intrinsics=K[0],
        intrinsics_per_frame=K,
        person_ids=np.array([7]),
    )
    track = TrackFit(frames, None, None, None, None, landmarks=lm / scale)
    return res, track, height


def test_a_result_on_its_landmarks_has_no_error_and_a_shift_is_measured():
    res, track, height = _scene()
    np.testing.assert_allclose(person_errors(res, 0, track, 2.0), 0.0, atol=1e-9)
    res, track, height = _scene(shift_px=12.0)
    np.testing.assert_allclose(person_errors(res, 0, track, 2.0), 100 * 12.0 / height, rtol=1e-9)


def test_only_frames_both_have_count_and_the_table_compares_init():
    res, track, _ = _scene()
    short = track._replace(frames=track.frames[:4], landmarks=track.landmarks[:4])
    assert len(person_errors(res, 0, short, 2.0)) == 4
    far, _, _ = _scene(shift_px=0.0)
    off, track_off, height = _scene(shift_px=30.0)
    table = alignment(res, {7: track_off}, 2.0, init=far)
    e = table["7"]
    assert e["joint"]["frames"] == 10 and e["init"]["frames"] == 10
    assert e["joint"]["median"] == pytest.approx(np.median(100 * 30.0 / height), abs=0.01)
    assert worse_people({"7": {"joint": {"median": 5.0}, "init": {"median": 3.9}}}) == ["7"]
    assert worse_people({"7": {"joint": {"median": 4.5}, "init": {"median": 3.9}}}) == []
    assert alignment(res, {}, 2.0) == {}
