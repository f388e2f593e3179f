"""The EMDB / RICH / SLOPER4D scripts on fixtures written in each dataset's layout
from a synthetic world whose answer is known (the open body stands in for SMPL)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from josh_jax.body import load as load_body
from josh_jax.eval import emdb, rich, sloper4d
from josh_jax.eval import metrics as M
from josh_jax.eval.common import METRICS
from josh_jax.eval.safe_pickle import DatasetError, load_pickle
from josh_jax.results import Results
from josh_jax.synthetic.worlds import SynthConfig, make_world


@pytest.fixture(scope="module")
def world():
    model = load_body("open")
    _, gt = make_world(model, seed=3, cfg=SynthConfig(num_keyframes=9, opt_interval=5, camera="orbit"))
    J0 = np.asarray(model.J_template + np.einsum("jcb,b->jc", model.J_shapedirs, gt["betas"][0]))[0]
    return model, gt, J0.astype(np.float64)


# a dataset world that is not the first camera: rotated about every axis and moved
W = np.eye(4)
W[:3, :3] = Rotation.from_rotvec([0.3, -1.1, 0.5]).as_matrix()
W[:3, 3] = [2.0, -0.7, 5.0]


def dataset_truth(world_):
    """The person and cameras in the dataset world: axis-angle poses, SMPL transl, world->camera."""
    _, gt, J0 = world_
    F = len(gt["frame_index"])
    root = W[:3, :3] @ gt["global_orient"][0]
    rot = np.concatenate([root[:, None], gt["body_pose"][0]], 1).reshape(-1, 3, 3)
    poses = Rotation.from_matrix(rot).as_rotvec().reshape(F, 72)
    trans = (gt["transl"][0] + J0) @ W[:3, :3].T + W[:3, 3] - J0
    w2c = np.linalg.inv(W @ gt["cam_to_world"].astype(np.float64))
    return poses, trans, w2c, gt["betas"][0].astype(np.float64)


def write_emdb(root: Path, world_, name="P0_00_walk", mask=None):
    poses, trans, w2c, betas = dataset_truth(world_)
    F = len(poses)
    mask = np.ones(F, bool) if mask is None else mask
    d = root / "P0" / name
    d.mkdir(parents=True)
    ann = {
        "n_frames": F,
        "gender": "male",
        "emdb2": True,
        "good_frames_mask": mask,
        "smpl": {"poses_root": poses[:, :3], "poses_body": poses[:, 3:], "betas": betas, "trans": trans},
        "camera": {"extrinsics": w2c, "intrinsics": np.eye(3)},
    }
    (d / f"{name}_data.pkl").write_bytes(pickle.dumps(ann))
    return name


def write_rich(root: Path, world_, name="Gym_010_pushup1", step=2):
    poses, trans, _, betas = dataset_truth(world_)
    d = root / name
    (d / "images").mkdir(parents=True)
    for i in range(len(poses)):
        fid = f"{i:05d}"
        (d / "images" / f"{fid}_00.jpeg").write_bytes(b"")
        if i % step == 0:  # RICH has ground truth on a subset of the frames
            (d / fid).mkdir()
            fit = {
                "global_orient": poses[i : i + 1, :3],
                "body_pose": poses[i : i + 1, 3:],
                "betas": betas[None],
                "transl": trans[i : i + 1],
            }
            (d / fid / "000_smpl.pkl").write_bytes(pickle.dumps(fit))
    return name


def write_sloper4d(root: Path, world_, name="seq002_football_001"):
    poses, trans, w2c, betas = dataset_truth(world_)
    F = len(poses)
    d = root / name
    d.mkdir(parents=True)
    labels = {
        "framerate": 20,
        "total_frames": F,
        "frame_num": list(range(F)),
        "second_person": {
            "opt_pose": poses.astype(np.float32),
            "opt_trans": trans.astype(np.float32),
            "beta": list(betas),
            "gender": "female",
        },
        "RGB_frames": {"cam_pose": w2c, "file_basename": [f"{i:06d}.jpg" for i in range(F)]},
        "first_person": {"lidar_traj": np.zeros((F, 9))},
    }
    (d / f"{name}_labels.pkl").write_bytes(pickle.dumps(labels))
    return name


def save_pred(results_root: Path, name: str, pred: dict):
    Results.from_dict(pred).save(results_root / name / "results.npz")


def run(mod, data, res, tmp_path, *extra):
    out = tmp_path / "m.json"  # rewritten by a later call of the same test: --overwrite, as a user would
    rc = mod.main([str(data), str(res), "--smpl-dir", "open", "--json", str(out), "--overwrite", *extra])
    assert rc == 0
    return json.loads(out.read_text())


def shifted(gt, d):
    p = {k: np.array(v) for k, v in gt.items()}
    for k in ("joints_world", "foot_vertices_world"):
        p[k] = (p[k] + d).astype(np.float32)
    p["transl"] = (p["transl"] + d).astype(np.float32)
    return p


def own(gt):
    """Jitter and foot sliding of the ground truth itself (what a perfect prediction scores)."""
    j, f = gt["joints_world"][0].astype(np.float64), gt["foot_vertices_world"][0].astype(np.float64)
    return j, f


ERRORS_EMDB = ("pa_mpjpe", "mpjpe", "pve", "accel", "w_mpjpe100", "wa_mpjpe100", "rte")


@pytest.mark.parametrize("offset", [0.0, 0.1])
def test_emdb_perfect_and_translated_prediction(world, tmp_path, offset, capsys):
    """Perfect: every error metric 0. A 10 cm world translation of the prediction: still 0
    (every metric aligns or centres it away), jitter and foot sliding the ground truth's own."""
    _, gt, _ = world
    name = write_emdb(tmp_path / "EMDB", world)
    save_pred(tmp_path / "res", name, shifted(gt, np.array([offset, 0.0, 0.0])))
    m = run(emdb, tmp_path / "EMDB", tmp_path / "res", tmp_path)
    s = m["sequences"][0]
    assert s["sequence"] == name and s["frames"] == len(gt["frame_index"])
    for k in ERRORS_EMDB:
        assert abs(s[k]) < 0.05, (k, s[k])  # float32 storage: hundredths of a mm
    assert s["camera_ate"] < 1e-4
    j, f = own(gt)
    assert s["jitter"] == pytest.approx(M.jitter(j, 30.0), rel=1e-3, abs=1e-3)
    assert s["foot_sliding"] == pytest.approx(M.foot_sliding(f, f), abs=0.05)
    assert m["overall"]["mpjpe"] == pytest.approx(s["mpjpe"])
    table = capsys.readouterr().out
    assert "| sequence | frames | PA-MPJPE (mm)" in table and "**overall**" in table


def test_emdb_joint_offset_known_mpjpe(world, tmp_path):
    """All 22 joints but the hips moved 10 cm in the world: pelvis-centred MPJPE = 100 * 22 / 24 mm."""
    _, gt, _ = world
    name = write_emdb(tmp_path / "EMDB", world)
    p = {k: np.array(v) for k, v in gt.items()}
    moved = np.ones(24, bool)
    moved[[1, 2]] = False
    p["joints_world"][:, :, moved] += np.array([0.0, 0.06, 0.08], np.float32)
    save_pred(tmp_path / "res", name, p)
    s = run(emdb, tmp_path / "EMDB", tmp_path / "res", tmp_path)["sequences"][0]
    assert s["mpjpe"] == pytest.approx(100 * 22 / 24, abs=0.05)
    assert abs(s["pve"]) < 0.05  # vertices come from the parameters, which are untouched


def _noisy(gt, seed=0):
    rng = np.random.default_rng(seed)
    p = {k: np.array(v) for k, v in gt.items()}
    F = p["joints_world"].shape[1]
    walk = np.cumsum(rng.normal(0, 0.01, (F, 3)), 0)
    p["joints_world"] = (p["joints_world"] + walk[None, :, None] + rng.normal(0, 0.02, p["joints_world"].shape)).astype(
        np.float32
    )
    p["foot_vertices_world"] = (p["foot_vertices_world"] + walk[None, :, None]).astype(np.float32)
    p["transl"] = (p["transl"] + walk[None]).astype(np.float32)
    c = p["cam_to_world"].copy()
    c[:, :3, 3] += rng.normal(0, 0.05, (F, 3))
    p["cam_to_world"] = c.astype(np.float32)
    return p


def _expected_in_synth_frame(gt, p, fps, mask, ate="mean"):
    """The metrics computed directly in the synthetic world's own frame (no dataset layout)."""
    gj, pj = gt["joints_world"][0][mask].astype(np.float64), p["joints_world"][0][mask].astype(np.float64)
    to_c = lambda T, x: np.einsum("nij,nkj->nki", np.linalg.inv(T)[:, :3, :3], x) + np.linalg.inv(T)[:, None, :3, 3]
    gjc = to_c(gt["cam_to_world"][mask].astype(np.float64), gj)
    pjc = to_c(p["cam_to_world"][mask].astype(np.float64), pj)
    pel = lambda x: x - x[:, 1:3].mean(1, keepdims=True)
    e = {
        "mpjpe": M.mpjpe(pjc, gjc),
        "pa_mpjpe": M.pa_mpjpe(pjc, gjc),
        "accel": M.accel_error(pel(pjc), pel(gjc), fps),
        "w_mpjpe100": M.w_mpjpe(pj, gj),
        "wa_mpjpe100": M.wa_mpjpe(pj, gj),
        "jitter": M.jitter(pj, fps),
        "foot_sliding": M.foot_sliding(
            p["foot_vertices_world"][0][mask].astype(np.float64), gt["foot_vertices_world"][0][mask].astype(np.float64)
        ),
        "rte": M.rte(p["transl"][0][mask].astype(np.float64), gt["transl"][0][mask].astype(np.float64)),
    }
    # ATE on the world(first camera)->camera translations, every frame
    Pc, Gc = p["cam_to_world"].astype(np.float64), gt["cam_to_world"].astype(np.float64)
    pt = np.linalg.inv(np.linalg.inv(Pc[0]) @ Pc)[:, :3, 3]
    gtt = np.linalg.inv(np.linalg.inv(Gc[0]) @ Gc)[:, :3, 3]
    _, R, t = M.umeyama(pt, gtt, with_scale=False)
    err = np.linalg.norm(pt @ R.T + t - gtt, axis=-1)
    e["camera_ate"] = err.mean() if ate == "mean" else np.sqrt((err**2).mean())
    return e


def test_emdb_noisy_prediction_matches_direct_metrics(world, tmp_path):
    """A noisy prediction and a good-frames mask: the script's numbers (dataset world, extrinsics,
    axis-angle pickles) equal the metrics computed straight in the synthetic frame."""
    _, gt, _ = world
    F = len(gt["frame_index"])
    mask = np.ones(F, bool)
    mask[[7, 8, 30]] = False
    name = write_emdb(tmp_path / "EMDB", world, mask=mask)
    p = _noisy(gt)
    save_pred(tmp_path / "res", name, p)
    s = run(emdb, tmp_path / "EMDB", tmp_path / "res", tmp_path)["sequences"][0]
    assert s["frames"] == mask.sum()
    e = _expected_in_synth_frame(gt, p, 30.0, mask)
    for k, v in e.items():
        assert s[k] == pytest.approx(v, rel=2e-3, abs=0.02), k
    assert s["w_mpjpe100"] > 10 and s["camera_ate"] > 0.01  # the noise is really seen


def test_sloper4d_perfect_and_noisy(world, tmp_path):
    _, gt, _ = world
    name = write_sloper4d(tmp_path / "S4D", world)
    save_pred(tmp_path / "res", name, gt)
    s = run(sloper4d, tmp_path / "S4D", tmp_path / "res", tmp_path)["sequences"][0]
    for k in ERRORS_EMDB:
        assert abs(s[k]) < 0.05, (k, s[k])
    assert s["camera_ate"] < 1e-4
    # noisy: RTE scores the predicted cameras carrying the true camera-frame translation
    p = _noisy(gt, seed=1)
    save_pred(tmp_path / "res2", name, p)
    s = run(sloper4d, tmp_path / "S4D", tmp_path / "res2", tmp_path)["sequences"][0]
    mask = np.ones(len(gt["frame_index"]), bool)
    e = _expected_in_synth_frame(gt, p, 20.0, mask, ate="rmse")
    Gc, Pc = gt["cam_to_world"].astype(np.float64), p["cam_to_world"].astype(np.float64)
    # SMPL transl as a point, in each true camera, then out through the predicted camera
    t_w = gt["transl"][0].astype(np.float64)
    t_c = np.einsum("nij,nj->ni", np.linalg.inv(Gc)[:, :3, :3], t_w) + np.linalg.inv(Gc)[:, :3, 3]
    t_p = np.einsum("nij,nj->ni", Pc[:, :3, :3], t_c) + Pc[:, :3, 3]
    e["rte"] = M.rte(t_p, t_w)
    for k in ("mpjpe", "pa_mpjpe", "accel", "w_mpjpe100", "wa_mpjpe100", "jitter", "rte", "camera_ate"):
        assert s[k] == pytest.approx(e[k], rel=2e-3, abs=0.02), k


def test_sloper4d_seq009_has_no_ate(world, tmp_path):
    _, gt, _ = world
    name = write_sloper4d(tmp_path / "S4D", world, name="seq009_running_002")
    save_pred(tmp_path / "res", name, gt)
    s = run(sloper4d, tmp_path / "S4D", tmp_path / "res", tmp_path)["sequences"][0]
    assert s["camera_ate"] is None and abs(s["mpjpe"]) < 0.05


def test_rich_sparse_ground_truth(world, tmp_path):
    """RICH: ground truth on every second image; only those frames are scored, world metrics only."""
    _, gt, _ = world
    name = write_rich(tmp_path / "RICH", world, step=2)
    save_pred(tmp_path / "res", name, gt)
    m = run(rich, tmp_path / "RICH", tmp_path / "res", tmp_path)
    s = m["sequences"][0]
    F = len(gt["frame_index"])
    assert s["frames"] == len(range(0, F, 2))
    for k in ("w_mpjpe100", "wa_mpjpe100", "rte", "accel"):
        assert abs(s[k]) < 0.05, (k, s[k])
    for k in ("pa_mpjpe", "mpjpe", "pve", "camera_ate"):
        assert s[k] is None
    p = _noisy(gt, seed=2)
    save_pred(tmp_path / "res2", name, p)
    s = run(rich, tmp_path / "RICH", tmp_path / "res2", tmp_path)["sequences"][0]
    e = _expected_in_synth_frame(gt, p, 30.0, np.arange(0, F, 2))
    for k in ("w_mpjpe100", "wa_mpjpe100", "jitter", "foot_sliding", "rte"):
        assert s[k] == pytest.approx(e[k], rel=2e-3, abs=0.02), k


def _move_sequence(tmp_path, world_, root: Path, participant: str, name: str, mask=None):
    """write_emdb into a scratch root, then move the sequence under ``root/participant``."""
    scratch = tmp_path / f"scratch_{name}"
    write_emdb(scratch, world_, name=name, mask=mask)
    (root / participant).mkdir(parents=True, exist_ok=True)
    (scratch / "P0" / name).rename(root / participant / name)


def test_overall_is_frame_weighted(world, tmp_path):
    _, gt, _ = world
    a = write_emdb(tmp_path / "EMDB", world, name="P0_00_a")
    mask = np.zeros(len(gt["frame_index"]), bool)
    mask[:20] = True
    _move_sequence(tmp_path, world, tmp_path / "EMDB", "P1", "P1_00_b", mask=mask)
    save_pred(tmp_path / "res", a, _noisy(gt))
    save_pred(tmp_path / "res", "P1_00_b", gt)
    m = run(emdb, tmp_path / "EMDB", tmp_path / "res", tmp_path)
    sa, sb = m["sequences"]
    assert sb["frames"] == 20 and sa["mpjpe"] > 1 and sb["mpjpe"] < 0.05
    for k in ("mpjpe", "w_mpjpe100", "rte"):
        w = sa["frames"] * sa[k] + sb["frames"] * sb[k]
        assert m["overall"][k] == pytest.approx(w / (sa["frames"] + sb["frames"]), rel=1e-6), k
    assert m["overall"]["camera_ate"] == pytest.approx((sa["camera_ate"] + sb["camera_ate"]) / 2)
    assert m["overall"]["frames"] == sa["frames"] + sb["frames"]
    assert set(METRICS) <= set(m["overall"])


def test_one_line_errors(world, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JOSH_SMPL_DIR", raising=False)
    _, gt, _ = world
    name = write_emdb(tmp_path / "EMDB", world)
    (tmp_path / "res").mkdir()

    def err(argv):
        assert emdb.main(argv) == 2
        e = capsys.readouterr().err.strip().splitlines()
        assert len(e) == 1 and e[0].startswith("error: ")
        return e[0]

    assert "DATA_ROOT" in err([str(tmp_path / "nope"), str(tmp_path / "res"), "--smpl-dir", "open"])
    assert f"{name} has no results" in err([str(tmp_path / "EMDB"), str(tmp_path / "res"), "--smpl-dir", "open"])
    save_pred(tmp_path / "res", name, gt)
    (tmp_path / "smpl").mkdir()
    assert "SMPL_MALE.pkl" in err([str(tmp_path / "EMDB"), str(tmp_path / "res"), "--smpl-dir", str(tmp_path / "smpl")])
    assert "--smpl-dir" in err([str(tmp_path / "EMDB"), str(tmp_path / "res")])
    assert "RESULTS_ROOT" in err([str(tmp_path / "EMDB"), str(tmp_path / "nope"), "--smpl-dir", "open"])


def test_skip_missing(world, tmp_path):
    _, gt, _ = world
    write_emdb(tmp_path / "EMDB", world, name="P0_00_a")
    _move_sequence(tmp_path, world, tmp_path / "EMDB", "P0", "P0_01_b")
    save_pred(tmp_path / "res", "P0_01_b", gt)
    m = run(emdb, tmp_path / "EMDB", tmp_path / "res", tmp_path, "--skip-missing")
    assert [s["sequence"] for s in m["sequences"]] == ["P0_01_b"]


def test_safe_pickle_refuses_other_classes(tmp_path):
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": np.arange(3.0), "b": [np.float32(1.5), np.int64(2)], "c": "x"}, protocol=5))
    d = load_pickle(ok)
    assert np.array_equal(d["a"], np.arange(3.0)) and d["b"][0] == 1.5 and d["c"] == "x"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"p": Path("/etc")}))
    with pytest.raises(DatasetError, match="refusing to load pathlib"):
        load_pickle(bad)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DatasetError, match="refusing"):
        load_pickle(evil)


def test_accel_error_hand_computed():
    """x(t) = c t^2 (frames) on every joint: second difference 2c, so the error is 2c fps^2."""
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(12, 24, 3))
    t = np.arange(12, dtype=float)
    c = 0.001
    pred = gt + (c * t**2)[:, None, None] * np.array([0.6, 0.0, 0.8])
    assert M.accel_error(pred, gt, 30.0) == pytest.approx(2 * c * 900)
    assert M.accel_error(gt, gt, 20.0) == 0.0
    # one frame's spike of 1 cm: the reference's [1:-1] drops the first and last difference
    spike = gt.copy()
    spike[1] += 0.01 * np.array([1.0, 0, 0])
    # differences 0 and 1 see it (|.| = 0.02 and 0.01); of the 10, 1..8 are kept: one holds 0.01
    assert M.accel_error(spike, gt, 1.0) == pytest.approx(0.01 / 8)


@pytest.mark.slow
def test_emdb_with_smpl_files_routes_gender(world, tmp_path):
    """SMPL-format files in --smpl-dir: the male ground truth goes through SMPL_MALE.pkl, the
    prediction's vertices (body_model "smpl") through SMPL_NEUTRAL.pkl, as the reference."""
    from smpl_fixtures import synthetic_smpl_arrays, write_plain_pickle

    from josh_jax.body import rotmats_from_axis_angle
    from josh_jax.eval.common import _body

    _, gt, _ = world
    smpl = tmp_path / "smpl"
    smpl.mkdir()
    male = synthetic_smpl_arrays(seed=1)
    write_plain_pickle(smpl / "SMPL_MALE.pkl", male)
    write_plain_pickle(smpl / "SMPL_NEUTRAL.pkl", synthetic_smpl_arrays(seed=2))
    name = write_emdb(tmp_path / "EMDB", world)
    poses, trans, w2c, betas = dataset_truth(world)
    m_male = load_body(str(smpl / "SMPL_MALE.pkl"))
    J0 = np.asarray(m_male.J_template + np.einsum("jcb,b->jc", m_male.J_shapedirs, betas))[0]
    E0 = w2c[0]
    rot = np.asarray(rotmats_from_axis_angle(poses), np.float64)
    rot[:, 0] = E0[:3, :3] @ rot[:, 0]
    transl = (trans + J0) @ E0[:3, :3].T + E0[:3, 3] - J0
    verts, joints = _body(m_male, np.broadcast_to(betas, (len(rot), len(betas))), rot, transl)
    p = {k: np.array(v) for k, v in gt.items()}
    p.update(
        global_orient=rot[None, :, 0].astype(np.float32),
        body_pose=rot[None, :, 1:].astype(np.float32),
        transl=transl[None].astype(np.float32),
        joints_world=joints[None].astype(np.float32),
        foot_vertices_world=verts[None][:, :, m_male.vertex_set("foot_markers")].astype(np.float32),
        body_model=np.array("smpl"),
    )
    save_pred(tmp_path / "res", name, p)
    out_json = tmp_path / "m.json"
    assert (
        emdb.main([str(tmp_path / "EMDB"), str(tmp_path / "res"), "--smpl-dir", str(smpl), "--json", str(out_json)])
        == 0
    )
    s = json.loads(out_json.read_text())["sequences"][0]
    for k in ("pa_mpjpe", "mpjpe", "w_mpjpe100", "wa_mpjpe100", "rte", "accel"):
        assert abs(s[k]) < 0.05, (k, s[k])
    assert s["pve"] > 5  # the prediction's vertices come from the neutral body, which differs from the male one


def test_body_in_chunks_equals_one_batch(world):
    """The chunked ground-truth forward (padded last chunk) gives the single-batch answer."""
    from josh_jax.eval.common import _body

    model, gt, _ = world
    rot = np.concatenate([gt["global_orient"][0][:, None], gt["body_pose"][0]], 1)
    b = np.broadcast_to(gt["betas"][0], (len(rot), gt["betas"].shape[1]))
    v1, j1 = _body(model, b, rot, gt["transl"][0], chunk=64)  # one chunk
    v2, j2 = _body(model, b, rot, gt["transl"][0], chunk=16)  # 41 = 16 + 16 + 9 (+7 padding)
    v3, _ = _body(model, b[:5], rot[:5], gt["transl"][0][:5])  # one chunk of 64, mostly padding
    assert np.abs(v3 - v1[:5]).max() < 1e-6
    assert v2.shape == v1.shape and np.abs(v2 - v1).max() < 1e-6 and np.abs(j2 - j1).max() < 1e-6
    assert np.abs(j1 - gt["joints_world"][0]).max() < 1e-4
