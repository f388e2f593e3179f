"""Each metric on small hand-computed fixtures."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from josh_jax.eval import metrics as M


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    R = Rotation.random(random_state=1).as_matrix()
    y = 2.5 * x @ R.T + [1.0, -2.0, 0.5]
    s, R2, t = M.umeyama(x, y)
    assert s == pytest.approx(2.5) and np.allclose(R2, R) and np.allclose(t, [1.0, -2.0, 0.5])
    s, _, _ = M.umeyama(x, y, with_scale=False)
    assert s == 1.0


def test_w_mpjpe_aligns_on_first_two_frames_only():
    gt = np.zeros((4, 3, 3))
    gt[:, :, 0] = np.arange(3)  # three joints on the x axis
    gt[:, :, 2] = np.arange(4)[:, None]  # moving forward 1 m per frame
    pred = gt.copy()
    pred[2:, :, 1] += 0.1  # frames 2, 3 are 10 cm off
    # the first two frames agree exactly: identity; then 6 of 12 joints are 100 mm off
    assert M.w_mpjpe(pred, gt) == pytest.approx(50.0, abs=1e-6)
    # a global similarity of the prediction changes nothing
    R = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    assert M.w_mpjpe(3 * pred @ R.T + 5, gt) == pytest.approx(50.0, abs=1e-4)
    assert M.wa_mpjpe(pred, gt) < 50.0


def test_rte_is_rigid_and_relative_to_path_length():
    gt = np.stack([np.arange(11.0), np.zeros(11), np.zeros(11)], 1)  # 10 m path
    pred = gt * 1.1  # 10 % too long: a rigid fit cannot undo scale
    r = M.rte(pred, gt)
    # best rigid fit centres the error: |0.1 (x - 5)| averaged over x = 0..10 = 0.1 * 30 / 11
    assert r == pytest.approx(100 * (0.1 * 30 / 11) / 10, rel=1e-6)
    R = Rotation.from_euler("y", 50, degrees=True).as_matrix()
    assert M.rte(gt @ R.T + 3, gt) == pytest.approx(0.0, abs=1e-9)


def test_jitter_of_a_cubic():
    t = np.arange(10) / 30.0
    x = np.zeros((10, 1, 3))
    x[:, 0, 0] = t**3  # third derivative 6 m/s^3 -> 0.6 in units of 10 m/s^3
    assert M.jitter(x, fps=30) == pytest.approx(0.6, rel=1e-6)
    assert M.jitter(np.zeros((10, 2, 3)) + np.arange(10)[:, None, None]) == pytest.approx(0.0)


def test_foot_sliding_counts_only_ground_truth_stance():
    gt = np.zeros((5, 1, 3))
    gt[3:, 0, 0] = [1.0, 2.0]  # stance for steps 0-1, 1-2; moving on 2-3, 3-4
    pred = np.zeros((5, 1, 3))
    pred[:, 0, 0] = [0, 0.01, 0.03, 1.0, 2.0]  # slides 10 mm then 20 mm during stance
    assert M.foot_sliding(pred, gt) == pytest.approx(15.0)


def test_camera_ate_and_camera_frame_errors():
    gt = np.stack([np.arange(5.0), np.zeros(5), np.zeros(5)], 1)
    pred = gt + [0.0, 0.3, 0.0]
    assert M.camera_ate(pred, gt) == pytest.approx(0.0, abs=1e-9)  # a shift is aligned away
    j = np.random.default_rng(0).normal(size=(3, 24, 3))
    assert M.mpjpe(j + 1.0, j) == pytest.approx(0.0, abs=1e-9)  # pelvis subtracted
    assert M.pa_mpjpe(2 * j, j) == pytest.approx(0.0, abs=1e-6)
    assert M.mpjpe(j * [1, 1, 1.01], j) > 0
