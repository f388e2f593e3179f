"""Embedded front ends on rendered video with exact ground truth (the bundled example clip and small renders)."""

import cv2
import numpy as np
import pytest
from conftest import run_isolated

from josh_jax import body
from josh_jax.demo import EXAMPLE_CLIP
from josh_jax.frontends import FrontEndConfig, FrontEndError, VideoError, probe, run_frontends
from josh_jax.frontends import blazepose as bp
from josh_jax.frontends.sfm import run_sfm
from josh_jax.synthetic.clips import render_clip

GT = EXAMPLE_CLIP.with_name("walk_gt.npz")


def _angle(R):
    return np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


@pytest.mark.slow
def test_sfm_recovers_known_relative_poses():
    run_isolated(_sfm_recovers_known_relative_poses)


def _sfm_recovers_known_relative_poses():
    gt = render_clip(None, frames=37, width=480, height=270, seed=5, person=False)
    idx = np.arange(0, 37, 4)
    imgs = list(gt["frames"][idx])
    sfm = run_sfm(imgs)
    assert sfm.registered.all()
    f_true = gt["focal"]
    assert abs(sfm.focal / f_true - 1) < 0.1, (sfm.focal, f_true)
    Tw = gt["cam_to_world"][idx]
    est = [np.vstack([sfm.cam_from_world[k], [0, 0, 0, 1]]) for k in range(len(idx))]
    for a, b in ((0, 1), (0, 4), (3, 8), (0, 9)):
        rel_gt = np.linalg.inv(Tw[b]) @ Tw[a]  # camera a -> camera b
        rel = est[b] @ np.linalg.inv(est[a])
        assert _angle(rel[:3, :3].T @ rel_gt[:3, :3]) < 1.0
        ta, tb = rel[:3, 3], rel_gt[:3, 3]
        cos = ta @ tb / np.linalg.norm(ta) / np.linalg.norm(tb)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 5.0


@pytest.mark.slow
def test_blazepose_finds_the_rendered_person_where_the_truth_projects():
    run_isolated(_blazepose_finds_the_rendered_person_where_the_truth_projects)


def _blazepose_finds_the_rendered_person_where_the_truth_projects():
    open_model = body.load("open")
    gt = np.load(GT)
    info = probe(EXAMPLE_CLIP)
    cap = cv2.VideoCapture(str(EXAMPLE_CLIP))
    model = bp.BlazePose(threads=1)
    J = np.asarray(body.forward(open_model, gt["betas"], gt["rotmats"], gt["transl"]).joints)
    f = float(gt["focal"])
    errs = []
    for t in range(0, 120, 20):
        cap.set(cv2.CAP_PROP_POS_FRAMES, t)
        ok, im = cap.read()
        rgb = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        dets = model.detect(rgb)
        assert dets, f"no person detected on frame {t}"
        Tcw = np.linalg.inv(gt["cam_to_world"][t])
        Jc = J[t] @ Tcw[:3, :3].T + Tcw[:3, 3]
        pix = Jc[:, :2] / Jc[:, 2:] * f + [info.width / 2, info.height / 2]
        box = dets[0].box
        # the detector's box is the face / upper body: the true head projects inside it
        assert box[0] - 20 < pix[15, 0] < box[2] + 20 and box[1] - 20 < pix[15, 1] < box[3] + 20, (box, pix[15])
        roi = bp.roi_from_points(dets[0].keypoints[0], dets[0].keypoints[1])
        # the hip-centre keypoint lands near the true pelvis
        assert np.linalg.norm(dets[0].keypoints[0] - pix[0]) < 0.15 * roi.size
        r = model.landmarks(rgb, roi)
        assert r["presence"] > 0.5
        lm = r["image"][:, :2]
        for smpl_j, blaze_j in (
            (7, bp.L_ANKLE),
            (8, bp.R_ANKLE),
            (4, bp.L_KNEE),
            (5, bp.R_KNEE),
            (16, bp.L_SHOULDER),
            (17, bp.R_SHOULDER),
        ):
            errs.append(np.linalg.norm(lm[blaze_j] - pix[smpl_j]) / roi.size)
    assert np.median(errs) < 0.05, np.median(errs)  # within 5 % of the person's box


@pytest.mark.slow
def test_frontends_on_a_short_clip():
    run_isolated(_frontends_on_a_short_clip)


def _frontends_on_a_short_clip():
    open_model = body.load("open")
    info = probe(EXAMPLE_CLIP, 0, 60)
    out = run_frontends(info, open_model, FrontEndConfig(threads=2), progress=False, log=lambda m: None)
    (w,) = out.windows
    assert out.meta.registered >= 0.8 * out.meta.keyframes
    assert w.num_tracks == 1
    tr = out.tracks[int(w.track_ids[0])]
    assert len(tr.frames) >= 0.8 * 60
    # contacts on the keyframes: only sole vertices, on the feet that truly stay put
    gt = np.load(GT)
    verts = np.asarray(body.forward(open_model, gt["betas"], gt["rotmats"], gt["transl"]).vertices)
    markers = verts[:, open_model.vertex_set("foot_markers")]  # left heel, left toe, right heel, right toe
    soles = [open_model.vertex_set(s) for s in ("left_sole", "right_sole")]
    allowed = np.zeros(open_model.num_vertices, bool)
    allowed[np.concatenate(soles)] = True
    c = w.track_contact[0]
    assert not c[:, ~allowed].any()
    agree, swing_labelled = [], []
    for k, t in enumerate(w.frame_index[:-1]):
        speed = np.linalg.norm(markers[t + 1] - markers[t], axis=1)  # metres per frame
        for f in range(2):
            planted = speed[2 * f : 2 * f + 2].min() < 0.005
            labelled = c[k, soles[f]].any()
            agree.append(planted == labelled)
            if speed[2 * f : 2 * f + 2].min() > 0.05:
                swing_labelled.append(labelled)
    assert np.mean(agree) > 0.7, np.mean(agree)
    assert swing_labelled and not any(swing_labelled)
    # the per-frame labels of tracks.npz also exist for every tracked frame
    assert tr.contact.shape == (len(tr.frames), open_model.num_vertices)


@pytest.mark.parametrize("case", ["missing", "folder", "text", "truncated", "tiny", "start"])
def test_video_errors_are_one_line(tmp_path, case):
    p = tmp_path / "clip.mp4"
    kwargs = {}
    if case == "folder":
        p = tmp_path
    elif case == "text":
        p.write_text("not a video\n" * 100)
    elif case == "truncated":
        p.write_bytes(EXAMPLE_CLIP.read_bytes()[:2000])
    elif case == "tiny":
        vw = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 30, (32, 32))
        for _ in range(5):
            vw.write(np.zeros((32, 32, 3), np.uint8))
        vw.release()
    elif case == "start":
        p = EXAMPLE_CLIP
        kwargs = {"start": 500}
    with pytest.raises(VideoError) as e:
        probe(p, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 300
    # each message names the file and says what is wrong (and, where there is one, what to do)
    assert str(p) in msg
    want = {
        "missing": "does not exist",
        "folder": "is a folder",
        "text": "not a video",
        "truncated": "truncated",
        "tiny": "32x32",
        "start": "500",
    }[case]
    assert want in msg, msg


def test_too_short_clip_is_refused(open_model):
    info = probe(EXAMPLE_CLIP, 0, 8)
    with pytest.raises(FrontEndError, match="a window needs at least"):
        run_frontends(info, open_model, progress=False, log=lambda m: None)
