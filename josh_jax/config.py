"""One configuration for the whole pipeline: front ends, problem, solver, loss weights, outputs.

``DemoConfig`` groups the settings of every stage; each field can be set from
a JSON or TOML file (sections ``frontends``, ``problem``, ``solve``,
``weights``, ``output``) and from the command line (``--set section.key=value``,
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
from dataclasses import dataclass, field
from pathlib import Path

from .frontends.pipeline import FrontEndConfig
from .losses import LossWeights
from .problem import ProblemConfig
from .solve import SolveConfig


@dataclass(frozen=True)
class OutputConfig:
    overlay: bool = True  # overlay.mp4
    overlay_side: int = 960  # long side of overlay.mp4 (never above the video's)
    glb: bool = True  # scene.glb
    glb_every: int = 15  # a body mesh every this many frames in scene.glb
    rerun: bool = False  # recording.rrd (needs rerun-sdk: pip install -e '.[viz]')


@dataclass(frozen=True)
class DemoConfig:
    frontends: FrontEndConfig = field(default_factory=FrontEndConfig)
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    solve: SolveConfig = field(default_factory=SolveConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return {"frontends": dataclasses.asdict(self.frontends), "problem": dataclasses.asdict(self.problem),
                "solve": dataclasses.asdict(self.solve), "weights": dict(self.weights._asdict()),
                "output": dataclasses.asdict(self.output)}


class ConfigError(ValueError):
    """A config file or override names an unknown setting or a bad value."""


REFERENCE_NAMES = {
    "optimize_smpl": "solve.optimize_smpl", "optimize_focal": "solve.optimize_focal",
    "init_focal": "problem.init_focal", "optimize_depth": "solve.optimize_depth",
    "scale_loss_weight": "weights.scale", "prior_loss_weight": "weights.prior",
    "static_loss_weight": "weights.static", "smooth_loss_weight": "weights.smooth",
    "opt_interval": "frontends.opt_interval", "conf_thres": "problem.conf_thres",
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
    sections = {s: getattr(cfg, s) for s in ("frontends", "problem", "solve", "weights", "output")}
    for raw_key, value in updates.items():
        key = REFERENCE_NAMES.get(raw_key, raw_key)
        if raw_key == "scene_graph":
            key, value = "frontends.pair_window", str(value).split("-")[-1]
        if raw_key == "max_frames":
            n = int(value)
            key, value = "frontends.window", (n - 1) * sections["frontends"].opt_interval + 1
        if "." not in key:
            raise ConfigError(f"unknown setting {raw_key!r}; use section.key (sections: {', '.join(sections)}) "
                              f"or a reference name ({', '.join(sorted(REFERENCE_NAMES))}, scene_graph, max_frames)")
        sec, name = key.split(".", 1)
        if sec not in sections:
            raise ConfigError(f"unknown section {sec!r} in {raw_key!r}; sections: {', '.join(sections)}")
        obj = sections[sec]
        names = _field_types(obj)
        if name not in names:
            raise ConfigError(f"unknown setting {name!r} in section {sec!r}; known: {', '.join(names)}")
        cur = getattr(obj, name)
        val = _coerce(value, cur, raw_key)
        if isinstance(cur, float) and isinstance(val, int) and not isinstance(val, bool):
            val = float(val)
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = (isinstance(val, bool) if isinstance(cur, bool) else number(val) if number(cur)
              else isinstance(val, str) if isinstance(cur, str) else val is None or number(val) or isinstance(val, str))
        if not ok:
            raise ConfigError(f"{raw_key}: expected a {type(cur).__name__}, got {value!r}")
        try:
            sections[sec] = obj._replace(**{name: val}) if isinstance(obj, LossWeights) else dataclasses.replace(obj, **{name: val})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{raw_key}: {exc}") from None
    return DemoConfig(**sections)


def load(path: str | Path | None = None, overrides: list[str] | tuple = (), base: DemoConfig | None = None) -> DemoConfig:
    """Defaults <- a JSON/TOML file <- ``key=value`` overrides."""
    cfg = base or DemoConfig()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            if p.suffix.lower() == ".toml":
                import tomllib

                data = tomllib.loads(p.read_text())
            else:
                data = json.loads(p.read_text())
        except Exception as exc:  # noqa: BLE001 - any parse error is reported in one line
            raise ConfigError(f"config file {p} could not be parsed: {exc}") from None
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
    return apply(cfg, upd)
