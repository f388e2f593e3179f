"""RunSpec: one video's run, typed and JSON-serialisable (what the demo's command line says).

The demo builds one from its arguments (:meth:`RunSpec.from_args`); the batch CLI builds one per
video (:meth:`RunSpec.for_video`) and hands its dict to the Ray tasks (:meth:`RunSpec.from_dict`),
with no command line in between. The work folder keeps it as ``run.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from josh_jax.errors import JoshError

#: the bundled example clip (CC0, license beside it): the demo's video when none is given
EXAMPLE_CLIP = Path(__file__).parents[1] / "data" / "example" / "walk.mp4"

#: version of :meth:`RunSpec.to_dict`'s layout (``run.json``); bump when a field changes meaning
SPEC_VERSION = 1

FRONT_ENDS = ("default", "official")
DEVICES = ("auto", "cpu", "gpu")
CAMERAS = ("auto", "sfm", "rotation", "static")
OBJECTIVES = ("josh", "josh+")
PATHS = ("video", "out", "models", "config")  # the fields that are paths


class RunSpecError(JoshError, ValueError):
    """A run specification (``run.json``, a batch task's) that is not one josh_jax wrote."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything one video's run is told: the input, the output, the front ends, the method, the
    settings (``config`` file and ``overrides``), and the output switches. Paths stay as given
    (relative to the working folder). ``video`` None is the bundled example clip."""

    video: Path | None = None
    out: Path = Path("josh_demo_out")
    frontends: str = "default"  # default (embedded) | official (ONNX models in models)
    method: str = "josh"  # a name of josh_jax.run.methods.METHODS
    models: Path | None = None  # ONNX model folder (default: the config's, else models_onnx/)
    body_model: str = "open"  # 'open' or a path to SMPL_NEUTRAL.pkl / a SMPL folder
    device: str = "auto"  # auto | cpu | gpu
    compile_cache: str | None = None  # folder, 'off', or None ($JOSH_JAX_CACHE_DIR, else ~/.cache/josh_jax/jax)
    config: Path | None = None  # JSON / TOML settings file
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, in order
    objective: str | None = None  # josh | josh+ (None: the config's)
    no_overlay: bool = False
    baseline: bool = False  # also the front-ends-only solve (init.npz)
    rerun: bool = False  # also recording.rrd
    fresh: bool = False  # discard the finished windows of an interrupted run
    overwrite: bool = False  # replace an existing output folder
    # the front-end flags
    start: int = 0  # first frame of the clip
    frames: int | None = None  # number of frames (None: to the end)
    camera: str = "auto"  # auto | sfm | rotation | static
    static_camera: bool = False  # alias of camera="static"
    focal: float | None = None  # original-video pixels
    intrinsics: str | None = None  # FX,FY,CX,CY or a calibration file
    free_intrinsics: bool = False
    max_people: int | None = None  # None: the config's (frontends.max_people)

    def __post_init__(self):
        for name in PATHS:  # paths given as strings (argparse without type=Path) are kept as Paths
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, Path(v))
        if isinstance(self.overrides, list):
            object.__setattr__(self, "overrides", tuple(self.overrides))
        for name, allowed in (
            ("frontends", FRONT_ENDS),
            ("device", DEVICES),
            ("camera", CAMERAS),
            ("objective", OBJECTIVES + (None,)),
        ):
            if getattr(self, name) not in allowed:
                raise RunSpecError(f"run spec: {name} {getattr(self, name)!r} is not one of {allowed}")
        from .methods import method as _method

        _method(self.method)  # an unknown method: one line naming the known ones
        if self.start < 0 or (self.frames is not None and self.frames < 1) or (self.max_people or 1) < 1:
            raise RunSpecError("run spec: start >= 0, frames >= 1 and max_people >= 1 are needed")
        if self.focal is not None and not self.focal > 0:
            raise RunSpecError(f"run spec: focal {self.focal!r} must be a positive number of pixels")

    @property
    def work(self) -> Path:
        """``OUT.work``: where the run keeps its finished stages until the outputs move into ``out``."""
        return self.out.with_name(self.out.name + ".work")

    @classmethod
    def from_args(cls, args) -> RunSpec:
        """From parsed demo (or batch) arguments: every field the namespace has, the defaults for the rest."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        if "overrides" in values:
            values["overrides"] = tuple(values["overrides"] or ())
        if values.get("video") is None:
            values.pop("video", None)
        return cls(**values)

    def for_video(self, video: Path, out: Path) -> RunSpec:
        """The same run for another video and output folder (one batch video)."""
        return dataclasses.replace(self, video=Path(video), out=Path(out))

    def to_dict(self) -> dict:
        """JSON-ready: paths as strings, ``overrides`` a list, and ``version``."""
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        return {"version": SPEC_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        """The inverse of :meth:`to_dict`; a field of the wrong type or an unknown one is a
        :class:`RunSpecError` (never silently dropped)."""
        if not isinstance(d, dict):
            raise RunSpecError("run spec: not a JSON object")
        d = dict(d)
        version = d.pop("version", None)
        if version != SPEC_VERSION:
            raise RunSpecError(f"run spec: version {version!r}, this josh_jax reads version {SPEC_VERSION}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise RunSpecError(f"run spec: unknown field(s) {unknown}")
        defaults = cls()
        values = {}
        for name, v in d.items():
            default = getattr(defaults, name)
            if name in PATHS:
                values[name] = None if v is None and name != "out" else Path(_typed(name, v, str))
                continue
            if name == "overrides":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise RunSpecError("run spec: overrides must be a list of KEY=VALUE strings")
                values[name] = tuple(v)
                continue
            kind = (
                type(default)
                if default is not None
                else {"focal": float, "frames": int, "max_people": int}.get(name, str)
            )
            if v is None and default is None:
                values[name] = None
            elif kind is float and isinstance(v, int) and not isinstance(v, bool):
                values[name] = float(v)
            else:
                values[name] = _typed(name, v, kind)
        return cls(**values)


def _typed(name: str, v, kind):
    if type(v) is not kind:
        raise RunSpecError(f"run spec: {name} must be a {kind.__name__}, got {type(v).__name__}")
    return v
