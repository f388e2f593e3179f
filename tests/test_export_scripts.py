"""The official export scripts' shared plumbing, on a stand-in repository (the official code is not here).

The scripts themselves were run on the official architectures (docs/frontends.md); this checks that the
export, the onnxruntime comparison and the manifest entry work on a fresh install.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_DECO = '''
import torch.nn as nn, torch

class DECO(nn.Module):
    """Stand-in with DECO's constructor and outputs: (contact over 6890 vertices, sem mask, part mask)."""
    def __init__(self, encoder, context, device):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8)
        self.lin = nn.Linear(8, 6890)

    def forward(self, img):
        f = self.conv(img).mean((2, 3))
        return torch.sigmoid(self.lin(f)), f, f
'''


@pytest.fixture()
def scripts(monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    yield
    for name in ("export_deco", "_onnx_export", "models", "models.deco"):
        sys.modules.pop(name, None)


@pytest.mark.slow
def test_export_deco_on_a_stand_in_repository(scripts, tmp_path, capsys):
    import export_deco

    repo = tmp_path / "deco"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "deco.py").write_text(FAKE_DECO)
    out = tmp_path / "models"
    export_deco.main(["--repo", str(repo), "--random-init", "--out", str(out)])
    text = capsys.readouterr().out
    assert "max|onnx - torch|" in text
    entry = json.loads((out / "manifest.json").read_text())["models"]["deco"]
    assert entry["made_from"]["checkpoint"] == "random initialisation"
    assert entry["made_from"]["check"]["contact"] < 1e-5
    import hashlib

    assert entry["sha256"] == hashlib.sha256((out / "deco.onnx").read_bytes()).hexdigest()
    # the runner's contract check accepts what the script wrote
    from josh_jax.frontends.onnx_models import check_contract, open_session

    sess = open_session(out / "deco.onnx", "cpu")
    check_contract(sess, entry, "deco")
    y = sess.run(None, {"img": np.zeros((5, 3, 256, 256), np.float32)})[0]
    assert y.shape == (5, 6890)


def test_export_arguments_fail_with_one_line(scripts, tmp_path):
    import _onnx_export as ox

    with pytest.raises(SystemExit, match="multiples of 14"):
        ox.parse_size("500x300", 14)
    assert ox.parse_size("672x378", 14) == (672, 378)
    with pytest.raises(SystemExit, match="WxH"):
        ox.parse_size("big", 16)
    import export_deco

    with pytest.raises(SystemExit, match="--checkpoint"):
        export_deco.main(["--repo", str(tmp_path), "--out", str(tmp_path / "m")])
    with pytest.raises(SystemExit, match="not a folder"):
        export_deco.main(["--repo", str(tmp_path / "nope"), "--random-init"])
