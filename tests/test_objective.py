"""``--objective josh+`` (issue 20): each switch changes nothing when off, and does what it claims
on a tiny hand-made case (a sliding foot in stance is pulled back; a jittery path is smoothed)."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from josh_jax import body
from josh_jax.eval.metrics import jitter
from josh_jax.losses import LossWeights, init_params, pose_bodies, scene_geometry, static_contact, total_loss
from josh_jax.objective import ObjectiveConfig, finish_results, loss_weights, problem_config, refine_config
from josh_jax.problem import ProblemConfig, build_problem
from josh_jax.refine import RefineConfig, refine_results, stance_entries
from josh_jax.results import Results
from josh_jax.synthetic.worlds import SynthConfig, make_world


@pytest.fixture(scope="module")
def model():
    return body.load("open")


@pytest.fixture(scope="module")
def world(model):
    """A small world seen from a camera that stands still, with an exact human front end: at the
    front end's values a planted foot is planted, so a slide is the only static-contact error."""
    return make_world(
        model,
        0,
        SynthConfig(
            num_keyframes=7,
            width=96,
            height=72,
            focal=90.0,
            cam_speed=0.0,
            shake=0.0,
            hmr_depth_noise=0.0,
            hmr_pose_noise=0.0,
            hmr_betas_noise=0.0,
            contact_fn=0.0,
        ),
    )


# ------------------------------------------------------------------ off = the reference, unchanged


def test_josh_preset_is_the_reference():
    w = LossWeights()
    pc = ProblemConfig()
    for obj in (ObjectiveConfig(), ObjectiveConfig(name="josh", shared_static=True, refine=True)):
        assert obj.active() == ()
        assert problem_config(pc, obj) is pc
        assert loss_weights(w, obj) is w
        assert refine_config(obj) is None
        res = object()
        assert finish_results(res, None, None, obj) is res
    plus = ObjectiveConfig(name="josh+")
    assert plus.active() == ("refine",)
    assert problem_config(pc, plus) is pc and loss_weights(w, plus) is w  # josh+ solves the reference's window
    assert refine_config(plus.toggled("refine")) is None
    both = plus.toggled("shared_static")
    assert both.active() == ("refine", "shared_static")
    assert problem_config(pc, both).static_entries == "shared" and loss_weights(w, both).static == both.static_weight
    assert ProblemConfig().static_entries == "nearest"
    with pytest.raises(ValueError, match="objective must be one of"):
        ObjectiveConfig(name="josh++")


def _tree_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


@pytest.mark.slow
def test_shared_static_off_builds_the_reference_problem(model, world):
    window, _ = world
    ref = build_problem(window, model)
    off = build_problem(window, model, problem_config(ProblemConfig(), ObjectiveConfig("josh+")))
    assert _tree_equal(ref, off)
    assert _tree_equal(ref, build_problem(window, model, ProblemConfig(static_entries="nearest")))


@pytest.mark.slow
def test_shared_static_off_keeps_value_and_gradient(model, world):
    window, _ = world
    ref = build_problem(window, model)
    off = build_problem(window, model, problem_config(ProblemConfig(), ObjectiveConfig("josh+")))
    p = init_params(ref)
    f = jax.jit(jax.value_and_grad(lambda q, pr: total_loss(q, pr, LossWeights(), 2).total))
    (v0, g0), (v1, g1) = f(p, ref), f(p, off)
    assert float(v0) == float(v1) and _tree_equal(g0, g1)


@pytest.mark.slow
def test_shared_static_entries_pull_a_sliding_foot_back(model, world):
    window, _ = world
    ref = build_problem(window, model)
    shared = build_problem(window, model, ProblemConfig(static_entries="shared"))
    h = shared.human
    n_ref, n_shared = int((ref.human.static_w > 0).sum()), int((h.static_w > 0).sum())
    assert n_shared > max(n_ref, 5)
    # the contact-scale entries are the reference's (same keyframes, anchors, vertex ids)
    live = ref.human.scale_w > 0
    assert np.array_equal(ref.human.vert_ids[ref.human.scale_vert[live]], h.vert_ids[h.scale_vert[live]])
    assert np.array_equal(ref.human.scale_ratio, h.scale_ratio) and np.array_equal(ref.human.scale_kf, h.scale_kf)
    # a keyframe whose foot is in stance with the one before: slide the body 30 cm sideways there (the
    # labelled soles roll by a few cm between keyframes, so the slide must dominate that)
    k = int(h.static_kf[np.argmax(h.static_w > 0)])
    p = init_params(jax.tree_util.tree_map(jnp.asarray, shared))
    base = p.human.transl
    slide = jnp.zeros_like(base).at[0, k, 0].set(0.3)

    pr = jax.tree_util.tree_map(jnp.asarray, shared)
    K = len(pr.scene.kf_valid)
    geo = scene_geometry(p.cam, pr.scene)._replace(cam_to_world=jnp.tile(jnp.eye(4), (K, 1, 1)))  # the still camera

    def static(transl, pr):
        hp = p.human._replace(transl=transl)
        return static_contact(geo, pose_bodies(hp, pr.human), pr.human)[0]

    v0, v1 = float(static(base, pr)), float(static(base + slide, pr))
    assert v1 > v0 + 0.03  # the slide shows in the static term (metres, robust ~ L1)
    g = jax.grad(static)(base + slide, pr)
    assert float(jnp.sum(g * slide)) > 0.5 * float(jnp.linalg.norm(g[0, k])) * 0.3  # descent (-g) pulls it back


# ------------------------------------------------------------------ the per-frame refinement


def _standing(model, F=21, glide=None, zigzag=None) -> Results:
    """One person standing in the rest pose for F frames; ``glide`` (F,) / ``zigzag`` (F,) offsets of
    the world translation along x / z (the per-frame interpolated solve a refinement starts from)."""
    tr = np.tile(np.array([0.0, 0.0, 3.0]), (F, 1))
    if glide is not None:
        tr[:, 0] += glide
    if zigzag is not None:
        tr[:, 2] += zigzag
    rot = np.tile(np.eye(3, dtype=np.float32), (1, F, 24, 1, 1))
    betas = np.zeros((1, model.num_betas), np.float32)
    out = body.forward(model, betas[0], rot[0], tr.astype(np.float32), vertex_ids=model.vertex_set("foot_markers"))
    return Results(
        frame_index=np.arange(F, dtype=np.int64),
        cam_to_world=np.tile(np.eye(4, dtype=np.float32), (F, 1, 1)),
        intrinsics=np.array([[100, 0, 48], [0, 100, 36], [0, 0, 1]], np.float32),
        image_size=np.array([96, 72], np.int64),
        person_ids=np.zeros(1, np.int64),
        visible=np.ones((1, F), bool),
        betas=betas,
        global_orient=rot[:, :, 0],
        body_pose=rot[:, :, 1:],
        transl=tr[None].astype(np.float32),
        joints_world=np.asarray(out.joints)[None],
        foot_vertices_world=np.asarray(out.vertices)[None],
        points=np.zeros((1, 3), np.float32),
        point_colors=np.zeros((1, 3), np.uint8),
        body_model=np.array(model.name),
    )


def _window(model, F=21, every=5, contact=True):
    kf = np.arange(0, F, every)
    lab = np.zeros((1, len(kf), model.num_vertices), bool)
    if contact:
        lab[:, :, np.concatenate([model.vertex_set("left_sole"), model.vertex_set("right_sole")])] = True
    return SimpleNamespace(frame_index=kf, track_valid=np.ones((1, len(kf)), bool), track_contact=lab)


def test_stance_entries_cover_the_frames_between_labelled_keyframes(model):
    w = _window(model)
    w.track_contact[0, 2] = False  # keyframe 2 (frame 10) not in contact: frames 5..15 have no entry
    st = stance_entries(w.track_valid, w.track_contact, w.frame_index, np.arange(21), max_vertices=4)
    assert sorted(set(st.frame.tolist())) == [0, 1, 2, 3, 4, 15, 16, 17, 18, 19]
    assert len(st.track) == 10 * 4 and set(st.vertex.tolist()) <= set(np.where(w.track_contact[0, 0])[0].tolist())


@pytest.mark.slow  # one refinement compile (~15 s on a quiet 2-core CPU)
def test_refine_pulls_a_sliding_foot_back_and_keeps_a_still_one(model):
    F = 21
    glide = np.clip((np.arange(F) - 5) / 5.0, 0, 1) * 0.10  # 10 cm glide over frames 5..10 while in stance
    res = _standing(model, F, glide=glide)
    out, info = refine_results(res, _window(model, F), model, RefineConfig(iters=60))
    assert info["entries"] > 0 and info["after"]["total"] < info["before"]["total"]
    step = lambda r: np.linalg.norm(np.diff(r.foot_vertices_world[0], axis=0), axis=-1).mean()  # noqa: E731
    before, after = step(res), step(out)
    assert before > 0.004 and after < 0.2 * before, (before, after)
    # the cameras are untouched, the body stays near the solve (within the 10 cm it glid)
    assert np.array_equal(out.cam_to_world, res.cam_to_world)
    assert np.abs(out.transl - res.transl).max() < 0.1
    # a body standing still with its feet planted is already optimal: nothing moves
    still = _standing(model, F)
    out2, _ = refine_results(still, _window(model, F), model, RefineConfig(iters=60))
    assert np.abs(out2.joints_world - still.joints_world).max() < 1e-4


@pytest.mark.slow  # one refinement compile
def test_refine_smooths_a_jittery_path(model):
    F = 21
    kf = np.arange(0, F, 5)
    zig = np.interp(np.arange(F), kf, 0.03 * (-1.0) ** np.arange(len(kf)))  # +-3 cm kinks at the keyframes
    res = _standing(model, F, zigzag=zig)
    out, _ = refine_results(res, _window(model, F, contact=False), model, RefineConfig(iters=60))
    j0, j1 = jitter(res.joints_world[0]), jitter(out.joints_world[0])
    assert j1 < 0.5 * j0, (j0, j1)
    assert np.abs(out.joints_world - res.joints_world).max() < 0.035  # at most the zigzag flattened


def test_config_and_demo_accept_the_objective():
    from josh_jax import config as jconfig
    from josh_jax.demo import _parser

    cfg = jconfig.load(None, ["objective.name=josh+", "objective.refine_iters=40"])
    assert cfg.objective.plus and refine_config(cfg.objective).iters == 40
    assert jconfig.load().objective.name == "josh"  # the reference stays the default
    flat = {f"{s}.{k}": v for s, d in cfg.to_dict().items() for k, v in d.items()}
    assert jconfig.apply(jconfig.DemoConfig(), flat) == cfg  # summary.json reads back
    with pytest.raises(jconfig.ConfigError, match="objective must be one of"):
        jconfig.load(None, ["objective.name=josh2"])
    assert _parser().parse_args(["--objective", "josh+"]).objective == "josh+"
    assert _parser().parse_args([]).objective is None


def _solve_cli_both(tmp: str) -> dict:
    """Solve one tiny bundle with the solve CLI under josh and josh+ (run in a fresh process)."""
    import json
    from pathlib import Path

    from josh_jax import bundle as jbundle
    from josh_jax.solve.__main__ import main

    tmp = Path(tmp)
    w, _ = make_world(body.load("open"), 0, SynthConfig(num_keyframes=5, width=96, height=72, focal=90.0))
    jbundle.save(tmp / "b", [w], {"body_model": "open"})
    out = {}
    for name in ("josh", "josh+"):
        rc = main(
            [
                str(tmp / "b"),
                "--out",
                str(tmp / name),
                "--iters-stage1",
                "20",
                "--iters-stage2",
                "10",
                "--no-progress",
                "--compile-cache",
                "off",
                "--objective",
                name,
            ]
        )
        r = Results.load(tmp / name / "results.npz")
        out[name] = dict(
            rc=rc,
            objective=json.loads((tmp / name / "summary.json").read_text())["objective"],
            joints=r.joints_world,
            cams=r.cam_to_world,
            jitter=jitter(r.joints_world[0][r.visible[0]]),
        )
    return out


@pytest.mark.slow
def test_solve_cli_objective(tmp_path):
    from conftest import run_isolated

    out = run_isolated(_solve_cli_both, str(tmp_path))
    assert out["josh"]["rc"] == 0 and out["josh+"]["rc"] == 0
    assert out["josh"]["objective"] == "josh" and out["josh+"]["objective"] == "josh+"
    # josh+ solves the same window and refines the bodies per frame: same cameras, smoother bodies
    np.testing.assert_array_equal(out["josh"]["cams"], out["josh+"]["cams"])
    assert out["josh+"]["jitter"] < 0.5 * out["josh"]["jitter"]
