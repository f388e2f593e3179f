"""Finding, checking and running the official ONNX models of a models folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..onnx_models import FrontEndError, check_contract, default_models_dir, load_manifest, open_session
from .contracts import CONTRACTS, REQUIRED


def missing_models(models_dir: Path) -> list[str]:
    """One line per model file of :data:`REQUIRED` absent from ``models_dir``: file and how to make it."""
    d = Path(models_dir)
    return [
        f"{CONTRACTS[n]['file']} ({CONTRACTS[n]['export']})"
        for n in REQUIRED
        if not (d / CONTRACTS[n]["file"]).is_file()
    ]


def require_models(models_dir: Path | None = None) -> Path:
    """The models folder (``models_dir``, else the default one) when it has every file of :data:`REQUIRED`;
    otherwise FrontEndError with one line listing each missing file and the script that makes it."""
    d = Path(models_dir) if models_dir else default_models_dir()
    gone = missing_models(d)
    if gone:
        raise FrontEndError(
            f"--frontends official needs these models in {d}, missing: "
            + "; ".join(gone)
            + " (docs/frontends.md says how to export them; or use --frontends default)"
        )
    return d


class OfficialModels:
    """The sessions of the official front ends, each checked against its contract.

    The folder's ``manifest.json`` entry is used when there is one (it pins the
    export-time sizes); otherwise the packaged contract.
    """

    def __init__(self, models_dir: Path | None, device: str = "auto", threads: int | None = None):
        self.dir = require_models(models_dir)
        manifest = load_manifest(self.dir)
        self.sessions = {}
        for name in REQUIRED:
            entry = manifest.get(name, CONTRACTS[name])
            sess = open_session(
                self.dir / CONTRACTS[name]["file"],
                device,
                threads,
                remake=entry.get("export", CONTRACTS[name].get("export", "its export script")),
            )
            check_contract(sess, entry, name)
            self.sessions[name] = sess

    def fixed_size(self, name: str, input_name: str) -> tuple[int, int] | None:
        """(W, H) a model was exported for, or None when its last two input axes are dynamic."""
        inp = {i.name: i for i in self.sessions[name].get_inputs()}[input_name]
        h, w = inp.shape[-2:]
        return (w, h) if isinstance(h, int) and isinstance(w, int) else None

    def run(self, name: str, **feeds) -> dict[str, np.ndarray]:
        sess = self.sessions[name]
        outs = sess.run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})
        return {o.name: v for o, v in zip(sess.get_outputs(), outs)}

    @property
    def providers(self) -> list[str]:
        return self.sessions[REQUIRED[0]].get_providers()
