"""Host-side problem building: keyframes, windows, buckets, camera tree, anchors."""
import numpy as np
import pytest

from josh_jax.problem import bucket, camera_tree, keyframe_indices, pixel_anchor, window_starts


def test_keyframes_follow_the_reference_rule():
    kf = keyframe_indices(300)
    assert kf.tolist() == list(range(0, 101, 5)) and len(kf) == 21  # 101-frame window, 21 keyframes
    kf = keyframe_indices(150)  # fewer than 201 frames remain: the rest of the clip
    assert kf[0] == 0 and kf[-1] == 149 and kf[-2] == 145
    kf = keyframe_indices(300, start_frame=200)
    assert kf[0] == 200 and kf[-1] == 299
    with pytest.raises(ValueError):
        keyframe_indices(5, start_frame=4)


def test_windows_share_one_frame_and_cover_the_clip():
    for n in (150, 250, 450, 1000):
        starts = window_starts(n)
        ends = [keyframe_indices(n, s)[-1] for s in starts]
        assert ends[-1] == n - 1
        for s, e in zip(starts[1:], ends[:-1]):
            assert s == e  # neighbours share exactly one frame
    assert window_starts(150) == [0] and window_starts(450) == [0, 100, 200, 300]


def test_buckets_round_up_monotonically():
    sizes = [bucket(n, 1) for n in range(1, 5000)]
    assert all(b >= n for b, n in zip(sizes, range(1, 5000)))
    assert all(a <= b for a, b in zip(sizes, sizes[1:]))
    assert len(set(sizes)) < 60  # few distinct programs


def test_camera_tree_spans_and_prefers_strong_pairs():
    pairs = np.array([[0, 1], [1, 2], [0, 2], [2, 3]])
    parent, order = camera_tree(pairs, np.array([10.0, 10.0, 1.0, 5.0]), 4)
    assert sorted(order.tolist()) == [0, 1, 2, 3] and parent[order[0]] == order[0]
    edges = {tuple(sorted((i, int(parent[i])))) for i in range(4) if parent[i] != i}
    assert edges == {(0, 1), (1, 2), (2, 3)}  # the weak 0-2 pair is not used
    with pytest.raises(ValueError, match="groups"):
        camera_tree(np.array([[0, 1]]), np.array([1.0]), 3)


def test_pixel_anchor_blocks():
    # 8-pixel blocks, grid from 4: pixel (15, 9) lies in block (1, 1) of a 4-wide grid
    H, W = 32, 32
    assert pixel_anchor(np.array([15.0]), np.array([9.0]), H, W, 8)[0] == 1 * 4 + 1
    assert pixel_anchor(np.array([31.9]), np.array([31.9]), H, W, 8)[0] == 15
