"""bundle.json's typed description (josh_jax.bundle.BundleMeta): one camera field, checked types, old files read."""

from __future__ import annotations

import json

import pytest

from josh_jax import bundle as jbundle
from josh_jax.bundle import BundleError, BundleMeta


@pytest.fixture(scope="module")
def window(open_model):
    from josh_jax.synthetic.worlds import SynthConfig, make_world

    return make_world(open_model, 0, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))[0]


def test_the_meta_round_trips_through_bundle_json(tmp_path, window):
    meta = BundleMeta(
        camera="rotation",
        body_model="open",
        source="test",
        video="clip.mp4",
        fps=29.97,
        start=3,
        num_frames=40,
        work_size=(512, 288),
        focal=480.5,
        principal=(256.0, 144.0),
        fixed_intrinsics=True,
        camera_evidence={"reason": "background fits a rotation", "rotation_residual_median_px": 0.4},
        coverage={"first": 0, "last": 39, "frames": 40, "reason": ""},
        keyframe_focals=(480.5, 490.0),
        registered=None,
        keyframes=2,
        people=1,
        seconds={"people": 1.5, "scene": 2.0},
    )
    jbundle.save(tmp_path / "b", [window], meta)
    on_disk = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert on_disk["camera"] == "rotation" and "camera_mode" not in on_disk and "static_camera" not in on_disk
    back, _ = jbundle.load(tmp_path / "b")
    assert back == meta and back.version == jbundle.VERSION
    assert back.holds_cameras and not BundleMeta(camera="sfm").holds_cameras


@pytest.mark.parametrize(
    "written, camera",
    [
        ({"camera_mode": "rotation", "static_camera": False}, "rotation"),
        ({"static_camera": True}, "static"),
        ({"frontends": "official", "static_camera": False}, "point maps"),
        ({}, "sfm"),
    ],
)
def test_bundles_written_before_the_camera_field_still_say_their_camera(written, camera):
    assert BundleMeta.from_dict({"format": "josh-bundle", "version": 2, "windows": [], **written}).camera == camera


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"focal": "500"}, "'focal' must be a finite number"),
        ({"fps": True}, "'fps' must be a finite number"),
        ({"people": 1.5}, "'people' must be an integer"),
        ({"fixed_intrinsics": 1}, "'fixed_intrinsics' must be true or false"),
        ({"work_size": "512x288"}, "'work_size' must be a list of numbers"),
        ({"camera": "drone"}, "camera 'drone' is not one of sfm, rotation, static, point maps"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(bad, match, tmp_path, window):
    with pytest.raises(BundleError, match=match):
        BundleMeta.from_dict(bad)
    jbundle.save(tmp_path / "b", [window], {"body_model": "open"})
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({**info, **bad}))
    with pytest.raises(BundleError, match=match):
        jbundle.load(tmp_path / "b")


def test_keys_a_newer_writer_adds_are_ignored():
    assert BundleMeta.from_dict({"camera": "static", "lens_distortion": [0.1, 0.0]}) == BundleMeta(camera="static")
