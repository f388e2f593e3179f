"""Finding and opening ONNX models with onnxruntime (CUDA when present, CPU otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from josh_jax.errors import FrontEndError  # noqa: F401  (re-exported: the front ends raise it)


def default_models_dir() -> Path:
    """``$JOSH_MODELS`` if set, else the repository's ``models_onnx/`` (editable installs)."""
    env = os.environ.get("JOSH_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models_onnx"


def providers(device: str = "auto") -> list[str]:
    """onnxruntime providers for ``device`` in {"auto", "cpu", "gpu"}."""
    import onnxruntime as ort

    avail = ort.get_available_providers()
    if device == "cpu" or "CUDAExecutionProvider" not in avail:
        if device == "gpu":
            raise FrontEndError(
                "--device gpu asked for, but onnxruntime has no CUDA provider; "
                "install the extra: pip install -e '.[gpu]'"
            )
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def open_session(
    path: Path, device: str = "auto", threads: int | None = None, remake: str = "scripts/export_blazepose.py"
):
    """An ``onnxruntime.InferenceSession`` for ``path``; a missing or unreadable file raises FrontEndError
    (``remake`` names what writes the file again)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FrontEndError(
            f"model file {path} is missing; the embedded BlazePose models ship in the repository's "
            "models_onnx/ (set JOSH_MODELS or --models to that folder), "
            "or rebuild them with scripts/export_blazepose.py"
        )
    so = ort.SessionOptions()
    so.log_severity_level = 3
    # spinning threads hurt on small CPU machines (see NOTES); one pass per call anyway
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    provs = providers(device)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=provs)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        kind = type(exc).__name__
        raise FrontEndError(
            f"model file {path} cannot be loaded by onnxruntime ({kind}: corrupt or truncated?); "
            f"write it again with {remake}"
        ) from None


def run(session, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run a one-input session; outputs by name."""
    name = session.get_inputs()[0].name
    outs = session.run(None, {name: np.ascontiguousarray(x, np.float32)})
    return {o.name: v for o, v in zip(session.get_outputs(), outs)}


def load_manifest(models_dir: Path) -> dict:
    """The ``manifest.json`` of a models folder ({} when there is none)."""
    import json

    p = Path(models_dir) / "manifest.json"
    return json.loads(p.read_text())["models"] if p.is_file() else {}


def check_contract(session, entry: dict, name: str) -> None:
    """Raise FrontEndError when a session's inputs/outputs differ from its manifest entry.

    Names, ranks and fixed dimensions must agree; dimensions the manifest gives
    as strings or null are dynamic.
    """
    for kind, got in (("input", session.get_inputs()), ("output", session.get_outputs())):
        want = entry.get(kind + "s", {})
        have = {x.name: x for x in got}
        for key, spec in want.items():
            if key not in have:
                raise FrontEndError(
                    f"model {name}: {kind} {key!r} missing (has {sorted(have)}); "
                    f"re-export it with {entry.get('export', 'its export script')}"
                )
            shape = list(have[key].shape)
            exp = spec.get("shape")
            if exp is not None and (
                len(shape) != len(exp)
                or any(isinstance(e, int) and isinstance(s, int) and e != s for e, s in zip(exp, shape))
            ):
                raise FrontEndError(f"model {name}: {kind} {key!r} has shape {shape}, the contract says {exp}")
            if spec.get("dtype") and have[key].type != spec["dtype"]:
                raise FrontEndError(
                    f"model {name}: {kind} {key!r} has type {have[key].type}, the contract says {spec['dtype']}"
                )
