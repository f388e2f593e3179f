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


# ---------------------------------------------------------------- build_problem on a hand-built window
#
# 3 keyframes of a 32 x 24 working image, 8-pixel anchor blocks (4 x 3 = 12 anchors: an even
# count). Each block has its own constant depth 1.5 + 0.1 a (a = block index), so the median of
# the 12 anchors is 2.0 (lower middle, torch.median) or 2.05 (mean of the two middle values).
# One person stands still; one vertex near a joint is labelled contact and projects (initial
# focal) to the exact point (15.8, 12.5), truncated pixel (15, 12), in block 5 (depth 2.0).
# Only two pixels are confident scene: A = (17, 12) in block 6 (depth 2.1) and B = (14, 12) in
# block 5. From the exact point A is nearer (1.2^2 + 0.5^2 < 1.8^2 + 0.5^2); from the truncated
# pixel B is (1 < 2). The depth ratio human / A is 2.0 / 2.1 on the absolute map (dropped by
# the 1.01 filter) and 1.0 / 1.0 on the relative map (kept).

F_INIT, SUB = 30.0, 8
TARGET = (15.8, 12.5)
PIX_A, PIX_B = (17, 12), (14, 12)


def _contact_vertex(model):
    """A vertex within 5 cm of exactly one joint in the rest pose, and its rest position."""
    import josh_jax.body as jb

    out = jb.forward(
        model,
        np.zeros(model.num_betas, np.float32),
        np.tile(np.eye(3, dtype=np.float32), (24, 1, 1)),
        np.zeros(3, np.float32),
    )
    v = np.asarray(out.vertices)
    joints = np.asarray(model.J_regressor) @ v
    d = np.linalg.norm(joints[:, None] - v[None], axis=-1)  # (24, V)
    for vid in np.argsort(d.min(0)):
        if (d[:, vid] < 0.05).sum() == 1 and d[:, vid].min() < 0.03:
            return int(vid), v[vid]
    raise AssertionError("no vertex near exactly one joint")


def _hand_window(model, base_focal=(28.0, 30.0, 32.0)):
    from josh_jax.bundle import Window, validate

    K, W, H = 3, 32, 24
    block = (np.arange(H)[:, None] // SUB) * 4 + (np.arange(W)[None] // SUB)  # block index of each pixel
    depth = np.broadcast_to((1.5 + 0.1 * block).astype(np.float32), (K, H, W)).copy()
    conf = np.zeros((K, H, W), np.float32)
    for x, y in (PIX_A, PIX_B):
        conf[:, y, x] = 0.9
    vid, p_rest = _contact_vertex(model)
    z = 3.0
    X = z * np.array([(TARGET[0] - W / 2) / F_INIT, (TARGET[1] - H / 2) / F_INIT, 1.0])
    transl = (X - p_rest).astype(np.float32)
    contact = np.zeros((1, K, model.num_vertices), bool)
    contact[..., vid] = True
    pairs = np.array([[0, 1], [1, 0], [1, 2], [2, 1]])
    corr_pair = np.repeat(np.arange(4), 3)
    corr_pix = np.tile(np.array([[[3.0, 4.0], [5.0, 6.0]]], np.float32), (12, 1, 1))
    w = Window(
        frame_index=np.array([0, 5, 10]),
        image_size=np.array([W, H]),
        scale_to_original=2.0,
        base_focal=np.array(base_focal),
        init_focal=F_INIT,
        principal_point=np.array([W / 2, H / 2]),
        depth=depth,
        conf=conf,
        pair_index=pairs,
        pair_score=np.array([10.0, 10.0, 5.0, 5.0]),
        corr_pair=corr_pair,
        corr_pix=corr_pix,
        corr_conf=np.full(12, 0.5, np.float32),
        track_ids=np.array([7]),
        track_valid=np.ones((1, K), bool),
        track_rotmats=np.tile(np.eye(3, dtype=np.float32), (1, K, 24, 1, 1)),
        track_betas=np.zeros((1, K, model.num_betas), np.float32),
        track_transl=np.tile(transl, (1, K, 1)),
        track_contact=contact,
        hmr_focal=F_INIT,
    )
    return validate(w, model.num_vertices), vid


def test_hand_built_window_gives_the_exact_entries(open_model):
    from josh_jax.problem import Sizes, build_problem, problem_sizes

    w, vid = _hand_window(open_model)
    pr = build_problem(w, open_model)  # reference conventions (the defaults)
    h, s = pr.human, pr.scene
    sz = problem_sizes(pr)
    assert isinstance(sz, Sizes)
    assert sz == Sizes(
        keyframes=11,
        pair_rows=16,
        row_slots=16,
        tracks=1,
        scale_entries=16,
        static_entries=16,
        smooth_triples=16,
        contact_vertices=16,
    )
    E = 3  # one contact-scale entry per keyframe, at pixel A: anchor 6 = row 1, column 2
    assert h.scale_track[:E].tolist() == [0, 0, 0] and h.scale_kf[:E].tolist() == [0, 1, 2]
    assert h.scale_anchor[:E].tolist() == [6, 6, 6] and h.scale_vert[:E].tolist() == [0, 0, 0]
    np.testing.assert_allclose(h.scale_ratio[:E], 1.0, rtol=1e-6)  # 2.1 / anchor depth 2.1
    np.testing.assert_allclose(h.scale_w[:E], 0.9)
    assert not h.scale_w[E:].any()
    # static entries: the vertex is kept on keyframes 1 and 2 and on the keyframe before each
    S = 2
    assert h.static_kf[:S].tolist() == [1, 2] and h.static_kf_prev[:S].tolist() == [0, 1]
    assert h.static_track[:S].tolist() == [0, 0] and h.static_vert[:S].tolist() == [0, 0]
    assert h.static_w.tolist() == [1.0] * S + [0.0] * (16 - S)
    assert h.smooth_kf[0].tolist() == [0, 1, 2] and h.smooth_w.tolist() == [1.0] + [0.0] * 15
    assert h.vert_ids[0] == vid and h.body.v_template.shape == (16, 3)
    np.testing.assert_allclose(np.asarray(h.body.v_template[0]), np.asarray(open_model.v_template[vid]))
    # correspondences: 4 pairs of 3 matches, one row each
    assert (s.corr_w > 0).sum() == 12 and s.pair_img[:4].tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert bool(s.enforce_scale) is False and s.kf_valid.tolist() == [True] * 3 + [False] * 8
    # scene anchors: lower median (torch.median) and the initial focal as every keyframe's base focal
    np.testing.assert_allclose(s.median_depth[:3], 2.0, rtol=1e-6)
    np.testing.assert_allclose(s.base_focal, F_INIT)


def test_median_is_the_lower_middle_value(open_model):
    from josh_jax.problem import ProblemConfig, build_problem, median_lower

    x = np.array([[4.0, 1.0, 3.0, 2.0]])
    assert median_lower(x, 1).tolist() == [2.0] and np.median(x) == 2.5
    w, _ = _hand_window(open_model)
    lower = build_problem(w, open_model).scene
    mean = build_problem(w, open_model, ProblemConfig(median="mean")).scene
    np.testing.assert_allclose(lower.median_depth[:3], 2.0, rtol=1e-6)
    np.testing.assert_allclose(mean.median_depth[:3], 2.05, rtol=1e-6)
    np.testing.assert_allclose(lower.anchor_depth[0, 5], 1.0, rtol=1e-6)  # block 5 holds the median


def test_nearest_valid_pixel_from_the_exact_projection(open_model):
    from josh_jax.problem import ProblemConfig, build_problem, nearest_valid_pixel

    mask = np.zeros((24, 32), bool)
    mask[PIX_A[1], PIX_A[0]] = mask[PIX_B[1], PIX_B[0]] = True
    assert nearest_valid_pixel(np.argwhere(mask), *TARGET) == PIX_A
    assert nearest_valid_pixel(np.argwhere(mask), 15.0, 12.0) == PIX_B
    # ties: the first valid pixel in row-major order, as torch.argmin over torch.argwhere
    assert nearest_valid_pixel(np.argwhere(mask), 15.5, 12.0) == PIX_B
    w, _ = _hand_window(open_model)
    exact = build_problem(w, open_model).human
    pixel = build_problem(w, open_model, ProblemConfig(nearest_valid="pixel")).human
    assert exact.scale_anchor[:3].tolist() == [6, 6, 6]  # A, block 6
    assert pixel.scale_anchor[:3].tolist() == [5, 5, 5]  # B, block 5
    assert int((pixel.scale_w > 0).sum()) == 3


def test_depth_filter_on_the_relative_map(open_model):
    from josh_jax.problem import ProblemConfig, build_problem, relative_depth

    w, _ = _hand_window(open_model)
    rel = relative_depth(w.depth, SUB)
    np.testing.assert_allclose(rel, 1.0, rtol=1e-6)  # constant blocks: every pixel at its anchor's depth
    kept = build_problem(w, open_model).human
    dropped = build_problem(w, open_model, ProblemConfig(depth_filter="absolute")).human
    assert int((kept.scale_w > 0).sum()) == 3
    assert int((dropped.scale_w > 0).sum()) == 0  # 2.1 / 2.0 > 1.01 on the absolute map
    assert bool(build_problem(w, open_model, ProblemConfig(depth_filter="absolute")).scene.enforce_scale)


def test_base_focal_is_the_initial_focal_unless_asked(open_model):
    from josh_jax.problem import ProblemConfig, build_problem

    w, _ = _hand_window(open_model, base_focal=(28.0, 30.0, 32.0))
    ref = build_problem(w, open_model).scene.base_focal
    own = build_problem(w, open_model, ProblemConfig(base_focal="bundle")).scene.base_focal
    np.testing.assert_allclose(ref, F_INIT)
    np.testing.assert_allclose(own[:3], [28.0, 30.0, 32.0])
    np.testing.assert_allclose(own[3:], F_INIT)  # padding
    # an init_focal override replaces the base focals too (the reference writes init_K's focal into them)
    np.testing.assert_allclose(build_problem(w, open_model, ProblemConfig(init_focal=40.0)).scene.base_focal, 40.0)


def test_problem_config_rejects_unknown_choices():
    from josh_jax.problem import ProblemConfig

    with pytest.raises(ValueError, match="median must be one of lower, mean"):
        ProblemConfig(median="avg")
    with pytest.raises(ValueError, match="init_focal"):
        ProblemConfig(init_focal=-1.0)


def test_sizes_force_buckets_by_name(open_model):
    from josh_jax.problem import build_problem, problem_sizes

    w, _ = _hand_window(open_model)
    big = build_problem(w, open_model, sizes={"keyframes": 21, "scale_entries": 32})
    sz = problem_sizes(big)
    assert sz.keyframes == 21 and sz.scale_entries == 32 and sz.static_entries == 16
    with pytest.raises(ValueError, match="unknown size names"):
        build_problem(w, open_model, sizes={"K": 21})
    with pytest.raises(ValueError, match="smaller than the window"):
        build_problem(w, open_model, sizes={"keyframes": 2})


def test_static_entries_index_the_track_keyframes_directly(open_model):
    """The documented deviation: with no contact on keyframe 1, the vertex kept on keyframes 0
    and 2 gives one static entry (2, previous keyframe 1), indexed by the track's keyframes (the
    reference counts contact keyframes only, so its index drifts here)."""
    import dataclasses

    from josh_jax.problem import build_problem

    w, vid = _hand_window(open_model)
    contact = w.track_contact.copy()
    contact[0, 1] = False
    h = build_problem(dataclasses.replace(w, track_contact=contact), open_model).human
    assert int(h.static_w.sum()) == 1
    assert (h.static_kf[0], h.static_kf_prev[0]) == (2, 1)
    assert h.scale_kf[:2].tolist() == [0, 2] and int((h.scale_w > 0).sum()) == 2


def test_consensus_weights_let_no_single_person_drag_the_scale():
    """Per-track contact-scale weights: three people agree on the scene's scale, a fourth's feet sit 23 %
    deeper than the scene under them (log ratio -0.21): it weighs 1 / (1 + 2.1^2) = 0.18; the others ~1;
    one track alone, no entries or sigma 0 (the reference): all 1."""
    from josh_jax.problem import ScaleEntries, consensus_weights

    track = np.repeat(np.arange(4), 5)
    rng = np.random.default_rng(0)
    lr = np.array([0.02, 0.0, -0.01, np.log(1 / 1.23)]).repeat(5) + rng.normal(0, 0.002, 20)
    z = np.zeros(20)
    sc = ScaleEntries(track, z, z, z + 1, z + 1, z, log_depth_ratio=lr)
    w = consensus_weights(sc, 5, 0.1)
    assert w[3] == pytest.approx(1 / (1 + (np.log(1 / 1.23) / 0.1) ** 2), abs=0.02)
    assert (w[:3] > 0.9).all() and w[4] == 1.0  # track 4 has no entry
    np.testing.assert_array_equal(consensus_weights(sc, 5, 0.0), 1.0)
    one = ScaleEntries(*(a[:5] for a in sc))
    np.testing.assert_array_equal(consensus_weights(one, 5, 0.1), 1.0)


def test_reference_problem_config_is_the_reference(open_model):
    from josh_jax.problem import ProblemConfig, build_problem
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    ref = ProblemConfig.reference()
    assert ref.body_depth == "reference" and ref.contact_consensus == 0.0
    assert ProblemConfig.reference(median="mean").median == "mean"
    w, _ = make_world(open_model, seed=1, cfg=SynthConfig(num_keyframes=6, width=96, height=72, focal=90.0))
    pr = build_problem(w, open_model, ref)
    assert pr.body_depth == "reference"
    np.testing.assert_array_equal(pr.human.scale_track_w, 1.0)
    with pytest.raises(ValueError, match="contact_consensus"):
        ProblemConfig(contact_consensus=-1.0)
