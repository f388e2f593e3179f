"""josh_jax.config: defaults, files, --set overrides, the reference's names, one-line errors."""

import json

import pytest

from josh_jax.config import ConfigError, DemoConfig, apply, load
from josh_jax.losses import LossWeights
from josh_jax.problem import ProblemConfig


def test_defaults_are_the_reference():
    cfg = load()
    assert cfg == DemoConfig()
    assert cfg.weights == LossWeights() and cfg.weights.prior == 100.0 and cfg.weights.static == 0.1
    p = cfg.problem
    assert (p.conf_thres, p.subsample, p.depth_filter_ratio, p.init_focal) == (0.1, 8, 1.01, None)
    assert (p.median, p.nearest_valid, p.depth_filter, p.base_focal) == ("lower", "exact", "relative", "initial")
    assert (cfg.solve.iters_stage1, cfg.solve.iters_stage2, cfg.solve.lr_stage1) == (500, 200, 0.07)
    assert cfg.frontends.opt_interval == 5 and cfg.frontends.window == 101


def test_set_every_problem_setting():
    cfg = load(
        None,
        [
            "problem.median=mean",
            "problem.nearest_valid=pixel",
            "problem.depth_filter=absolute",
            "problem.base_focal=bundle",
            "problem.contact_joint_radius=0.08",
            "problem.subsample=4",
            "init_focal=400",
            "conf_thres=0.2",
            "depth_filter_ratio=1.05",
        ],
    )
    assert cfg.problem == ProblemConfig(
        median="mean",
        nearest_valid="pixel",
        depth_filter="absolute",
        base_focal="bundle",
        contact_joint_radius=0.08,
        subsample=4,
        init_focal=400.0,
        conf_thres=0.2,
        depth_filter_ratio=1.05,
    )
    assert isinstance(cfg.problem.init_focal, float)
    assert load(None, ["problem.init_focal=none"]).problem.init_focal is None


def test_files_json_and_toml_then_overrides(tmp_path):
    (tmp_path / "c.json").write_text(
        json.dumps({"problem": {"median": "mean"}, "weights": {"prior": 50}, "smooth_loss_weight": 0.3})
    )
    cfg = load(tmp_path / "c.json", ["weights.prior=20"])
    assert cfg.problem.median == "mean" and cfg.weights.prior == 20.0 and cfg.weights.smooth == 0.3
    toml = '[solve]\niters_stage1 = 30\noptimize_depth = true\n[problem]\nbase_focal = "bundle"\n'
    (tmp_path / "c.toml").write_text(toml)
    cfg = load(tmp_path / "c.toml")
    assert cfg.solve.iters_stage1 == 30 and cfg.solve.optimize_depth is True and cfg.problem.base_focal == "bundle"
    # to_dict is what the demo records in summary.json; it reads back to the same config
    flat = {f"{s}.{k}": v for s, d in cfg.to_dict().items() for k, v in d.items()}
    assert apply(DemoConfig(), flat) == cfg


@pytest.mark.parametrize(
    "item, match",
    [
        ("problem.median=avg", "median must be one of lower, mean"),
        ("problem.nope=1", "unknown setting 'nope' in section 'problem'"),
        ("nosection=1", "unknown setting 'nosection'"),
        ("bad.key=1", "unknown section 'bad'"),
        ("solve.iters_stage1=many", "expected a int"),
        ("solve.optimize_focal=maybe", "expected true/false"),
        ("problem.init_focal=-3", "init_focal must be positive"),
        ("noequals", "expects key=value"),
        ("solve.damping=0", "solve.damping must be a positive finite number"),
        ("solve.gn_tol_stage1=-0.1", r"solve.gn_tol_stage1 must be a finite number >= 0"),
        ("solve.gn_iters_stage2=0", "solve.gn_iters_stage2 must be a whole number >= 1"),
    ],
)
def test_errors_are_one_line_and_name_the_setting(item, match):
    with pytest.raises(ConfigError, match=match) as e:
        load(None, [item])
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load(tmp_path / "broken.json")
