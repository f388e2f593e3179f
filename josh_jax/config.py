"""One configuration for the whole pipeline: front ends, problem, solver, loss weights, outputs.

``DemoConfig`` groups the settings of every stage; each field can be set from
a JSON or TOML file (sections ``frontends``, ``problem``, ``solve``,
``weights``, ``output``, ``objective``) and from the command line (``--set section.key=value``,
or the reference's own names, e.g. ``--set prior_loss_weight=50``).

The reference's ``JOSHConfig`` (josh/config.py) maps as follows:

========================  ======================================================
reference                 josh_jax
========================  ======================================================
optimize_smpl             solve.optimize_smpl
optimize_focal            solve.optimize_focal
init_focal                problem.init_focal (working pixels)
optimize_depth            solve.optimize_depth
scale_loss_weight         weights.scale
prior_loss_weight         weights.prior
static_loss_weight        weights.static
smooth_loss_weight        weights.smooth
scene_graph ("window-N")  frontends.pair_window = N (keyframe pairs matched)
opt_interval              frontends.opt_interval
start_frame, num_frames   ``--start``, ``--frames``
max_frames (keyframes)    frontends.window = (max_frames - 1) * opt_interval + 1
conf_thres                problem.conf_thres
depth_filter_ratio        problem.depth_filter_ratio
update_correspondences    not implemented (only the reference's default, False)
use_depth_model           not applicable (the scene front end is chosen by --frontends)
visualize_results         output.overlay / output.glb
(joint_opt.py code)       problem.median, problem.nearest_valid,
                          problem.depth_filter, problem.base_focal: defaults as
                          the reference's code, alternatives documented in
                          josh_jax.problem.ProblemConfig
========================  ======================================================
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from josh_jax.errors import JoshError

from .frontends.pipeline import FrontEndConfig
from .losses import LossWeights
from .objective import ObjectiveConfig
from .problem import ProblemConfig
from .solve import SolveConfig


@dataclass(frozen=True)
class OutputConfig:
    overlay: bool = True  # overlay.mp4
    overlay_side: int = 960  # long side of overlay.mp4 (never above the video's)
    glb: bool = True  # scene.glb
    glb_every: int = 15  # a body mesh every this many frames in scene.glb
    rerun: bool = False  # recording.rrd (needs rerun-sdk: pip install -e '.[viz]')
    baseline: bool = False  # init.npz: the front-ends-only baseline, a second solve per window (--baseline)


@dataclass(frozen=True)
class DemoConfig:
    frontends: FrontEndConfig = field(default_factory=FrontEndConfig)
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    solve: SolveConfig = field(default_factory=SolveConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    output: OutputConfig = field(default_factory=OutputConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # josh (reference) | josh+ (docs/objective.md)

    def to_dict(self) -> dict:
        return {
            "frontends": dataclasses.asdict(self.frontends),
            "problem": dataclasses.asdict(self.problem),
            "solve": {  # extra_terms are code (SolveConfig), not settings
                f.name: getattr(self.solve, f.name) for f in dataclasses.fields(self.solve) if f.name != "extra_terms"
            },
            "weights": dict(self.weights._asdict()),
            "output": dataclasses.asdict(self.output),
            "objective": dataclasses.asdict(self.objective),
        }


#: the largest --config file read
MAX_CONFIG_BYTES = 2**20


class ConfigError(JoshError, ValueError):
    """A config file or override names an unknown setting or a bad value."""


REFERENCE_NAMES = {
    "optimize_smpl": "solve.optimize_smpl",
    "optimize_focal": "solve.optimize_focal",
    "init_focal": "problem.init_focal",
    "optimize_depth": "solve.optimize_depth",
    "scale_loss_weight": "weights.scale",
    "prior_loss_weight": "weights.prior",
    "static_loss_weight": "weights.static",
    "smooth_loss_weight": "weights.smooth",
    "opt_interval": "frontends.opt_interval",
    "conf_thres": "problem.conf_thres",
    "depth_filter_ratio": "problem.depth_filter_ratio",
}


def _field_types(obj) -> dict:
    if isinstance(obj, LossWeights):
        return {k: type(v) for k, v in obj._asdict().items()}
    return {f.name: f.type for f in dataclasses.fields(obj)}


def _coerce(value, current, key: str):
    if isinstance(value, str):
        low = value.strip().lower()
        if isinstance(current, bool):
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        if low in ("none", "null"):
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def apply(cfg: DemoConfig, updates: dict) -> DemoConfig:
    """Apply {"section.key" or reference name: value} updates; unknown names raise ConfigError."""
    sections = {s: getattr(cfg, s) for s in ("frontends", "problem", "solve", "weights", "output", "objective")}
    for raw_key, value in updates.items():
        key = REFERENCE_NAMES.get(raw_key, raw_key)
        if raw_key == "scene_graph":
            key, value = "frontends.pair_window", str(value).split("-")[-1]
        if raw_key == "max_frames":
            try:
                n = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"max_frames: expected a whole number, got {value!r}") from None
            key, value = "frontends.window", (n - 1) * sections["frontends"].opt_interval + 1
            fe = sections["frontends"]
            if isinstance(value, int) and fe.stride > value - 1:  # keep windows overlapping by 3 keyframes
                sections["frontends"] = dataclasses.replace(fe, stride=max(1, value - 1 - 2 * fe.opt_interval))
        if "." not in key:
            raise ConfigError(
                f"unknown setting {raw_key!r}; use section.key (sections: {', '.join(sections)}) "
                f"or a reference name ({', '.join(sorted(REFERENCE_NAMES))}, scene_graph, max_frames)"
            )
        sec, name = key.split(".", 1)
        if sec not in sections:
            raise ConfigError(f"unknown section {sec!r} in {raw_key!r}; sections: {', '.join(sections)}")
        obj = sections[sec]
        names = _field_types(obj)
        if name not in names:
            raise ConfigError(f"unknown setting {name!r} in section {sec!r}; known: {', '.join(names)}")
        if name == "extra_terms":
            raise ConfigError("solve.extra_terms takes loss terms from Python code (SolveConfig), not a setting")
        cur = getattr(obj, name)
        val = _coerce(value, cur, raw_key)
        if isinstance(cur, float) and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = (
            isinstance(val, bool)
            if isinstance(cur, bool)
            else number(val)
            if number(cur)
            else isinstance(val, str)
            if isinstance(cur, str)
            else val is None or number(val) or isinstance(val, str)
        )
        if not ok:
            raise ConfigError(f"{raw_key}: expected a {type(cur).__name__}, got {value!r}")
        try:
            sections[sec] = (
                obj._replace(**{name: val}) if isinstance(obj, LossWeights) else dataclasses.replace(obj, **{name: val})
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{raw_key}: {exc}") from None
    return DemoConfig(**sections)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_solve(solve: SolveConfig, weights: LossWeights) -> None:
    """ConfigError naming the setting when a solver setting or loss weight is out of range."""
    for name in ("iters_stage1", "iters_stage2", "gn_iters_stage1", "gn_iters_stage2", "cg_iters"):
        v = getattr(solve, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"solve.{name} must be a whole number >= 1, got {v!r}")
    for name in ("lr_stage1", "lr_stage2", "eps", "damping", "cg_tol", "irls_eps"):
        v = getattr(solve, name)
        if not _finite(v) or v <= 0:
            raise ConfigError(f"solve.{name} must be a positive finite number, got {v!r}")
    for name in ("tol", "gn_tol", "gn_tol_stage1"):
        v = getattr(solve, name)
        if not _finite(v) or v < 0:
            raise ConfigError(f"solve.{name} must be a finite number >= 0 (0: off), got {v!r}")
    for name in ("b1", "b2"):
        v = getattr(solve, name)
        if not _finite(v) or not 0 <= v < 1:
            raise ConfigError(f"solve.{name} must lie in [0, 1), got {v!r}")
    if solve.focal_updates not in ("reference", "single"):
        raise ConfigError(f"solve.focal_updates must be 'reference' or 'single', got {solve.focal_updates!r}")
    for name, v in weights._asdict().items():
        if not _finite(v) or v < 0:
            raise ConfigError(f"weights.{name} must be a finite number >= 0, got {v!r}")


def check(cfg: DemoConfig) -> DemoConfig:
    """Range checks of every section (ConfigError naming the setting); returns ``cfg``."""
    fe, pr, out = cfg.frontends, cfg.problem, cfg.output

    def whole(sec: str, name: str, v, lo: int) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(f"{sec}.{name} must be a whole number >= {lo}, got {v!r}")

    for name, lo in (
        ("opt_interval", 1),
        ("window", 3),
        ("stride", 1),
        ("max_people", 1),
        ("min_track_frames", 1),
        ("fit_iters", 1),
        ("mask_dilate", 0),
        ("sfm_overlap", 1),
        ("pair_window", 1),
        ("work_side", 64),
        ("pose_side", 64),
    ):
        whole("frontends", name, getattr(fe, name), lo)
    if fe.window < 2 * fe.opt_interval + 1:
        raise ConfigError(
            f"frontends.window ({fe.window} frames) must hold at least 3 keyframes "
            f"(>= 2 x opt_interval + 1 = {2 * fe.opt_interval + 1})"
        )
    if fe.stride > fe.window - 1:
        raise ConfigError(
            f"frontends.stride ({fe.stride}) must be below frontends.window ({fe.window}): "
            "neighbouring windows must share frames to be joined; set --set frontends.stride=N too"
        )
    if fe.threads is not None:
        whole("frontends", "threads", fe.threads, 1)
    if fe.focal is not None and (not _finite(fe.focal) or fe.focal <= 0):
        raise ConfigError(f"frontends.focal must be a positive number of pixels, got {fe.focal!r}")
    if fe.device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"frontends.device must be auto, cpu or gpu, got {fe.device!r}")
    if not _finite(pr.conf_thres):
        raise ConfigError(f"problem.conf_thres must be a finite number, got {pr.conf_thres!r}")
    whole("problem", "subsample", pr.subsample, 1)
    for name in ("depth_filter_ratio", "contact_joint_radius"):
        if not _finite(getattr(pr, name)) or getattr(pr, name) <= 0:
            raise ConfigError(f"problem.{name} must be a positive finite number, got {getattr(pr, name)!r}")
    if pr.init_focal is not None and (not _finite(pr.init_focal) or not 1 <= pr.init_focal <= 1e5):
        raise ConfigError(
            f"problem.init_focal must be a focal length in working pixels (1 to 1e5), got {pr.init_focal!r}"
        )
    whole("output", "overlay_side", out.overlay_side, 64)
    whole("output", "glb_every", out.glb_every, 1)
    check_solve(cfg.solve, cfg.weights)
    return cfg


def load(
    path: str | Path | None = None, overrides: list[str] | tuple = (), base: DemoConfig | None = None
) -> DemoConfig:
    """Defaults <- a JSON/TOML file <- ``key=value`` overrides."""
    cfg = base or DemoConfig()
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"--config {p} is a folder; give a .json or .toml file")
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            if p.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"config file {p} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; it is not a config")
            if p.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(p.read_bytes().decode("utf-8"))
            else:
                from .jsonfile import read_json

                data = read_json(p, "config file", 'write it as {"section": {"key": value}}', MAX_CONFIG_BYTES, object)
        except ConfigError:
            raise
        except ValueError as exc:  # JSON / TOML syntax, NaN, nesting, size (jsonfile's one-line reasons)
            raise ConfigError(f"config file {p} could not be parsed: {exc}") from None
        except RecursionError:
            raise ConfigError(f"config file {p} is nested too deeply; it is not a config") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - any parse error is reported in one line
            raise ConfigError(f"config file {p} could not be parsed: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {p}: the top level must be a table of sections "
                f'(e.g. {{"solve": {{"iters_stage1": 300}}}}), got a {type(data).__name__}'
            )
        flat = {}
        for sec, values in data.items():
            if isinstance(values, dict):
                flat.update({f"{sec}.{k}": v for k, v in values.items()})
            else:
                flat[sec] = values
        cfg = apply(cfg, flat)
    upd = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        upd[k.strip()] = v
    return check(apply(cfg, upd))
