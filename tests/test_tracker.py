"""The people tracker's global assignment on synthetic box sequences, and the face-free person detector."""

import numpy as np
import pytest

from josh_jax.frontends import person_detector as pdet
from josh_jax.frontends.onnx_models import FrontEndError
from josh_jax.frontends.tracker import (
    Observation,
    Tracker,
    TrackerConfig,
    hist_similarity,
    merge_same,
)


def _hist(hue_bin: int) -> np.ndarray:
    h = np.full((2, 48), 0.02 / 47)
    h[:, hue_bin] = 0.98
    return h / h.sum(-1, keepdims=True)


def _box(cx, cy=200.0, w=60.0, h=160.0):
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _run(seq, cfg=None):
    """seq: per frame a list of (person, box, hist); returns {person: [track id per frame seen]}."""
    tr = Tracker(cfg or TrackerConfig())
    got = {}
    for t, people in enumerate(seq):
        obs = [Observation(b, 0.9, hist=h, payload=p) for p, b, h in people]
        for tid, k in tr.step(t, obs):
            got.setdefault(obs[k].payload, []).append(tid)
    return got, tr


def test_two_people_crossing_keep_their_ids():
    # A walks right, B walks left; they overlap (B hidden behind A for 4 frames) and come out
    seq = []
    for t in range(40):
        a, b = 100 + 8 * t, 420 - 8 * t
        people = [("A", _box(a), _hist(3))]
        if abs(a - b) > 20:  # B is hidden while A passes in front
            people.append(("B", _box(b, 205), _hist(30)))
        seq.append(people)
    got, tr = _run(seq)
    assert set(got) == {"A", "B"}
    for p, ids in got.items():
        assert len(set(ids)) == 1, (p, ids)  # no identity switch, re-identified after the occlusion
    assert got["A"][0] != got["B"][0]
    assert tr.next_id == 2


def test_two_people_side_by_side_never_share_a_track():
    seq = [[("L", _box(200 + t), _hist(5)), ("R", _box(262 + t), _hist(20))] for t in range(30)]
    got, _ = _run(seq)
    assert len(set(got["L"])) == 1 and len(set(got["R"])) == 1
    assert got["L"][0] != got["R"][0]
    assert len(got["L"]) == len(got["R"]) == 30


def test_identical_looking_neighbours_swap_nothing_when_boxes_jitter():
    rng = np.random.default_rng(0)
    seq = [
        [("L", _box(200 + rng.normal(0, 4)), _hist(5)), ("R", _box(270 + rng.normal(0, 4)), _hist(5))]
        for _ in range(40)
    ]
    got, _ = _run(seq)
    assert len(set(got["L"])) == 1 and len(set(got["R"])) == 1 and got["L"][0] != got["R"][0]


def test_a_long_absence_starts_a_new_track_and_max_people_caps_live_tracks():
    cfg = TrackerConfig(max_gap=5, max_people=2)
    seq = (
        [[("A", _box(100), _hist(3))] for _ in range(5)]
        + [[] for _ in range(10)]
        + [[("A", _box(100), _hist(3))] for _ in range(5)]
    )
    got, _ = _run(seq, cfg)
    assert len(set(got["A"])) == 2  # gone longer than max_gap: a new track
    seq = [[(p, _box(100 + 80 * i), _hist(4 * i)) for i, p in enumerate("ABC")] for _ in range(5)]
    got, tr = _run(seq, cfg)
    assert len(tr.tracks) == 2 and "C" not in got


def test_a_different_person_is_not_taken_for_a_lost_track():
    # A leaves at frame 10; at frame 13 C (other colours) appears where A was: a new id
    seq = (
        [[("A", _box(200), _hist(3))] for _ in range(10)]
        + [[] for _ in range(3)]
        + [[("C", _box(205), _hist(30))] for _ in range(5)]
    )
    got, _ = _run(seq)
    assert got["A"][0] != got["C"][0]


def test_merge_same_keeps_one_observation_per_person():
    o = [Observation(_box(100), 0.6), Observation(_box(104), 0.9), Observation(_box(300), 0.7)]
    kept = merge_same(o, 0.5)
    assert sorted(k.score for k in kept) == [0.7, 0.9]
    assert hist_similarity(_hist(3), _hist(3)) > 0.99
    assert hist_similarity(_hist(3), _hist(30)) < 0.2


def test_fill_gaps_bridges_short_gaps_only():
    """Gaps up to max_gap frames are filled by linear interpolation (score 0, half the lower visibility of
    the two ends); longer gaps stay gaps; observed frames are untouched."""
    from josh_jax.frontends.blazepose import PoseTrack
    from josh_jax.frontends.tracker import fill_gaps

    rng = np.random.default_rng(0)
    frames = [0, 1, 5, 20]
    tr = PoseTrack(0)
    for f in frames:
        tr.frames.append(f)
        tr.image.append(rng.normal(size=(33, 3)).astype(np.float32))
        tr.world.append(rng.normal(size=(33, 3)).astype(np.float32))
        tr.box.append(rng.uniform(0, 100, 4).astype(np.float32))
        tr.visibility.append(rng.uniform(size=33).astype(np.float32))
        tr.score.append(0.9)
    before = {k: [np.array(x) for x in getattr(tr, k)] for k in ("image", "world", "box", "visibility")}
    assert fill_gaps(tr, max_gap=10) == 3  # frames 2-4; the 14-frame gap 6-19 is too long
    assert tr.frames == [0, 1, 2, 3, 4, 5, 20]
    assert tr.score == [0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9]
    a = tr.arrays()
    for k in ("image", "world", "box"):
        np.testing.assert_allclose(a[k][3], 0.5 * (before[k][1] + before[k][2]), atol=1e-6)  # frame 3: halfway
        np.testing.assert_allclose(a[k][2], 0.75 * before[k][1] + 0.25 * before[k][2], atol=1e-6)
        for i, j in ((0, 0), (1, 1), (5, 2), (6, 3)):
            np.testing.assert_array_equal(a[k][i], before[k][j])
    np.testing.assert_allclose(a["visibility"][4], 0.5 * np.minimum(before["visibility"][1], before["visibility"][2]))
    assert fill_gaps(tr, max_gap=10) == 0  # nothing left to fill
    assert fill_gaps(tr, max_gap=14) == 14 and tr.frames == list(range(21))


def test_box_decoding_and_nms():
    # anchors (ymin, xmin, ymax, xmax); zero encodings give the anchor itself
    anchors = np.array([[0.1, 0.2, 0.5, 0.4], [0.12, 0.2, 0.52, 0.4], [0.5, 0.5, 0.9, 0.7]], np.float32)
    enc = np.zeros((3, 4), np.float32)
    enc[2] = [10 * 0.1 / 0.4 * 1.0, 0.0, 5 * np.log(1.5), 0.0]  # centre y moved by 0.1, height x 1.5
    logits = np.array([[0, 3.0], [0, 2.0], [0, 1.0]], np.float32)
    boxes, scores = pdet.postprocess(enc, logits, anchors, min_score=0.5)
    assert len(boxes) == 2  # anchor 1 overlaps anchor 0 (IoU ~0.9): suppressed
    np.testing.assert_allclose(boxes[0], [0.2, 0.1, 0.4, 0.5], atol=1e-6)
    np.testing.assert_allclose(boxes[1], [0.5, 0.5, 0.7, 1.0], atol=1e-6)  # y 0.8 +- 0.3, clipped at 1
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-np.array([3.0, 1.0]))), rtol=1e-6)


def test_detector_contract_is_checked(tmp_path):
    import json
    import shutil

    from josh_jax.frontends.onnx_models import default_models_dir

    src = default_models_dir()
    shutil.copy(src / pdet.FILE, tmp_path / pdet.FILE)
    m = json.loads((src / "manifest.json").read_text())
    entry = m["models"][pdet.NAME]
    entry["outputs"]["class_logits"]["shape"] = [1, 1917, 91]
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {pdet.NAME: entry}}))
    with pytest.raises(FrontEndError, match="class_logits") as e:
        pdet.PersonDetector(tmp_path, device="cpu", threads=1)
    assert "\n" not in str(e.value)
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(FrontEndError, match="no entry"):
        pdet.PersonDetector(tmp_path, device="cpu", threads=1)
    (tmp_path / pdet.FILE).unlink()
    with pytest.raises(FrontEndError, match="missing"):
        pdet.PersonDetector(tmp_path, device="cpu", threads=1)


def test_prominence_orders_by_size_duration_and_centrality():
    from josh_jax.frontends.blazepose import PoseTrack
    from josh_jax.frontends.tracker import prominence

    def track(box, n):
        return PoseTrack(0, list(range(n)), box=[np.array(box, np.float32)] * n)

    size = (640, 360)
    centre = track([300, 100, 340, 260], 50)  # 160 px tall, at the centre
    edge = track([0, 100, 40, 260], 50)  # as tall, at the left edge
    short = track([300, 100, 340, 260], 20)  # central, seen for fewer frames
    small = track([310, 150, 330, 230], 50)  # central, half as tall (further away)
    cut = track([-200, 0, 200, 500], 50)  # a passer-by close to the camera, mostly outside the frame
    seated = track([300, 100, 340, 260], 50)
    seated.visibility = [np.r_[np.ones(23), np.full(6, 0.1), np.ones(4)]] * 50  # legs hidden
    assert prominence(centre, size) == pytest.approx(160 * 50)
    p = {
        k: prominence(t, size)
        for k, t in dict(centre=centre, edge=edge, short=short, small=small, cut=cut, seated=seated).items()
    }
    assert all(p["centre"] > v for k, v in p.items() if k != "centre"), p


def _people_stage(preset, people=None, max_people=4):
    """Render a multi-person clip, run the people stage on its decoded frames, score the tracks."""
    import tempfile
    from pathlib import Path

    from josh_jax.frontends import blazepose as bp
    from josh_jax.frontends.tracker import track_people
    from josh_jax.synthetic.clips import render_people_clip, tracking_report
    from josh_jax.video import iter_frames, probe

    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / f"{preset}.mp4"
        gt = render_people_clip(clip, preset, people=people)
        info = probe(clip)
        tracks, _ = track_people(
            bp.BlazePose(threads=2),
            pdet.PersonDetector(threads=2),
            (im for _, im in iter_frames(info, 1280)),
            info.fps,
            max_people=max_people,
        )
    return gt, tracking_report(gt, {tr.track_id: dict(zip(map(int, tr.frames), tr.image)) for tr in tracks})


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["walk_away", "crossing"])
def test_every_person_tracked_without_identity_switch(preset):
    from conftest import run_isolated

    gt, rep = run_isolated(_people_stage, preset)
    assert len(rep) == len(gt["betas"])
    for r in rep:
        assert r["switches"] == 0 and not r["shared_tracks"], r  # one track per person, one person per track
        assert len(r["track_ids"]) == 1, r
        if r["visible_fraction"] >= 0.9:  # the criterion
            assert r["tracked"] >= 0.9, r
        else:  # the crossing's far walker, hidden behind the near one for ~8 frames
            assert r["tracked"] >= 0.6, r
    assert len({r["track_ids"][0] for r in rep}) == len(rep)  # distinct people, distinct tracks


@pytest.mark.slow
def test_more_people_than_max_people_keeps_whole_identities():
    """Five walkers side by side and max_people 4: four tracks, each one person whole (no track shared
    with or switching to the fifth), and the one left out is a walker at the edge of the picture."""
    from conftest import run_isolated

    gt, rep = run_isolated(_people_stage, "walk_away", 5, 4)
    tracked = [r for r in rep if r["track_ids"]]
    assert len(tracked) == 4, rep
    for r in rep:
        assert r["switches"] == 0 and not r["shared_tracks"], r
        assert len(r["track_ids"]) <= 1, r
    assert len({r["track_ids"][0] for r in tracked}) == 4
    left_out = [p for p, r in enumerate(rep) if not r["track_ids"]]
    assert left_out in ([0], [4]), rep  # side by side, left to right: an outer walker


def test_a_track_that_jumps_to_another_person_is_cut_there():
    """A far passer-by (40 px) whose track slides onto a near person (110-150 px) within 10 frames is cut
    where the height leaves the 1.8x band; a person walking toward the camera, or one flickering box, is not."""
    from josh_jax.frontends.blazepose import PoseTrack
    from josh_jax.frontends.tracker import split_identity_changes

    def track(heights):
        n = len(heights)
        t = PoseTrack(3, list(range(n)))
        t.box = [np.array([100, 200 - h, 120, 200], np.float32) for h in heights]
        for k in ("image", "visibility", "world", "score"):
            setattr(t, k, [np.full(3, i, np.float32) for i in range(n)])
        return t

    h = np.r_[np.linspace(30, 40, 50), np.linspace(45, 111, 10), np.linspace(111, 156, 40)]
    pieces = split_identity_changes(track(h))
    assert len(pieces) == 2
    first, second = pieces
    assert first.frames[-1] + 1 == second.frames[0] and 50 < second.frames[0] < 60
    assert second.frames[-1] == 99 and float(second.image[0][0]) == second.frames[0]  # fields cut alike
    walking = np.linspace(60, 150, 100)  # 2.5x over 100 frames: closer and closer
    assert len(split_identity_changes(track(walking))) == 1
    flicker = np.full(100, 100.0)
    flicker[40] = 30.0  # one frame's landmarks lost the legs
    assert len(split_identity_changes(track(flicker))) == 1


def test_two_tracks_on_one_place_keep_the_more_prominent():
    """Boxes overlapping (IoU > 0.5) on most common frames: one place, one track kept (the more prominent,
    here the longer one); a person passing behind another for 8 of 48 frames keeps their track."""
    from josh_jax.frontends.blazepose import PoseTrack
    from josh_jax.frontends.tracker import drop_duplicates

    def track(tid, frames, x0, dx, w=40):
        t = PoseTrack(tid, list(frames))
        t.box = [np.array([x0 + dx * f, 100, x0 + dx * f + w, 260], np.float32) for f in frames]
        return t

    size = (640, 360)
    man = track(0, range(100), 300, 0.0)
    mixture = track(1, range(7, 62), 305, 0.0, w=48)  # on the man and the woman he hides
    other = track(2, range(100), 100, 0.0)
    assert [t.track_id for t in drop_duplicates([man, mixture, other], size)] == [0, 2]
    near = track(3, range(48), 100, 8.0)  # crossing: overlap only while one passes the other
    far = track(4, range(48), 380, -1.0)
    overlap = sum(
        float(np.minimum(a.box[f][2], b.box[f][2]) - np.maximum(a.box[f][0], b.box[f][0])) > 20
        for a, b in [(near, far)]
        for f in range(48)
    )
    assert 0 < overlap < 24
    assert len(drop_duplicates([near, far], size)) == 2


def test_seen_whole_counts_frames_with_the_legs_visible_and_the_box_inside():
    from josh_jax.frontends.blazepose import PoseTrack
    from josh_jax.frontends.tracker import seen_whole_frames

    t = PoseTrack(0, list(range(30)))
    t.box = [np.array([300, 100, 340, 260], np.float32)] * 20 + [np.array([-100, 0, 60, 360], np.float32)] * 10
    vis = np.ones((30, 33))
    vis[:5, 25:29] = 0.1  # seated behind a table on the first 5 frames
    t.visibility = list(vis)
    assert seen_whole_frames(t, (640, 360)) == 15  # 20 inside, 5 of them without legs; 10 cut by the edge
