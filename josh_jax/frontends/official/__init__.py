"""The official perception front ends as ONNX models: contracts, runners, bundle.

The reference's models (a person segmenter in place of SAM3, TRAM's VIMO,
DECO, Pi3X, MASt3R), exported by ``scripts/export_*.py`` from the user's
checkpoints, run with onnxruntime and write the same front-end bundle as the
embedded defaults (:mod:`josh_jax.bundle`). See docs/frontends.md.
"""

from .contracts import CONTRACTS, REQUIRED
from .models import OfficialModels, missing_models, require_models
from .pipeline import run_official

__all__ = ["CONTRACTS", "REQUIRED", "OfficialModels", "missing_models", "require_models", "run_official"]
