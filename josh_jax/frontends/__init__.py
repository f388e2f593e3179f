"""Perception front ends: video -> front-end bundle (see :mod:`josh_jax.bundle`).

The embedded default front ends need nothing beyond PyPI: BlazePose (ONNX,
shipped in ``models_onnx/``) for people, pycolmap structure from motion for
the scene, a JAX body fit and a stance heuristic for contacts. Run them with
``python -m josh_jax.frontends VIDEO --out BUNDLE_DIR``.
"""

from josh_jax.video import VideoError, VideoInfo, iter_frames, probe

from .onnx_models import FrontEndError, default_models_dir
from .pipeline import FrontEndConfig, FrontEndOutput, TrackFit, clip_keyframes, run_frontends

__all__ = [
    "FrontEndConfig",
    "FrontEndError",
    "FrontEndOutput",
    "TrackFit",
    "VideoError",
    "VideoInfo",
    "clip_keyframes",
    "default_models_dir",
    "iter_frames",
    "probe",
    "run_frontends",
    "save_tracks",
    "load_tracks",
    "write_bundle",
]


def write_bundle(bundle_dir, out, body_model: str, frontends: str):
    """A front end's output (``out``: :class:`FrontEndOutput`) as a bundle folder: bundle.json with its
    :class:`josh_jax.bundle.BundleMeta` (the body model, the writer, the seconds per stage), the
    windows, and ``tracks.npz``. Returns the folder."""
    import dataclasses

    from ..bundle import save

    meta = dataclasses.replace(
        out.meta, body_model=str(body_model), source=f"josh_jax.frontends ({frontends})", seconds=dict(out.seconds)
    )
    return save(bundle_dir, out.windows, meta, extras={"tracks.npz": save_tracks(out.tracks)})


def save_tracks(tracks: dict[int, TrackFit]) -> dict:
    """Per-frame track fits -> flat arrays for ``tracks.npz`` (keys ``t{id}_{field}``, fields that are set)."""
    import numpy as np

    out = {"track_ids": np.asarray(sorted(tracks), np.int64)}
    for tid, f in tracks.items():
        for k, v in f.arrays().items():
            out[f"t{tid}_{k}"] = np.asarray(v)
    return out


def load_tracks(path) -> dict[int, TrackFit]:
    """``tracks.npz`` -> {id: TrackFit} (landmarks / boxes None where the front end gave none)."""
    import numpy as np

    from josh_jax.npz import read_npz

    z = read_npz(path, what="tracks.npz")
    if "track_ids" not in z:
        raise FrontEndError(f"{path} is not a tracks.npz (no track_ids); run the front ends again")
    fields = set(TrackFit._fields)
    out = {}
    for tid in (int(i) for i in np.asarray(z["track_ids"]).reshape(-1)):
        d = {k.split("_", 1)[1]: v for k, v in z.items() if k.startswith(f"t{tid}_")}
        out[tid] = TrackFit(**{k: v for k, v in d.items() if k in fields})
    return out
