"""scripts/export_josh3r.py: its one-line argument errors, and the whole path (offline build, SMPL stand-in,
export, onnxruntime check, manifest entry, checkpoint loading) on a stand-in JOSH checkout the test writes.

The stand-in has the official import paths and class names (``josh.josh3r.model.JOSH3R`` importing
``mast3r.model.AsymmetricMASt3R`` from ``third_party/mast3r`` and ``smplx.SMPLLayer``) with tiny layers;
the script itself was run on the official code with random weights (docs/frontends.md, "Export checks").
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_MAST3R = '''
import torch, torch.nn as nn


class AsymmetricMASt3R(nn.Module):
    """Stand-in: MASt3R's three methods JOSH3R calls, 8 channels, patch 16; no network."""

    def __init__(self, **config):
        super().__init__()
        self.config = config
        self.patch = nn.Conv2d(3, 8, 16, stride=16)
        self.dec = nn.Linear(16, 8)
        self.pts = nn.Linear(8, 16 * 16 * 3)

    @classmethod
    def from_pretrained(cls, name, **kw):
        raise RuntimeError("the stand-in has no network: from_pretrained must not be called")

    def _encode_image_pairs(self, img1, img2, true_shape1, true_shape2):
        f = self.patch(torch.cat([img1, img2])).flatten(2).transpose(1, 2)
        H, W = img1.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(H // 16), torch.arange(W // 16), indexing="ij")
        pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], -1)[None].expand(img1.shape[0], -1, -1)
        return f[: img1.shape[0]], f[img1.shape[0]:], pos, pos

    def _decoder(self, f1, p1, f2, p2):
        d1 = self.dec(torch.cat([f1, f2], -1))
        d2 = self.dec(torch.cat([f2, f1], -1))
        return [f1, d1], [f2, d2]

    def _downstream_head(self, i, toks, shape):
        H, W = (int(v) for v in shape[0])
        x = self.pts(toks[-1]).reshape(-1, H // 16, W // 16, 16, 16, 3)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, 3)
        return {"pts3d": x * torch.expm1(x.norm(dim=-1, keepdim=True)), "conf": x[..., 0].exp()}
'''

FAKE_JOSH3R = '''
import sys

sys.path.append("./third_party/mast3r")
import torch, torch.nn as nn, torch.nn.functional as F
from mast3r.model import AsymmetricMASt3R
from smplx import SMPLLayer


def head(cin, cout, zero_init=False):
    last = nn.Linear(8, cout, bias=not zero_init)
    if zero_init:
        nn.init.constant_(last.weight, 0)
    m = nn.Module()
    m.head_layers = nn.Sequential(nn.Linear(cin, 8), nn.BatchNorm1d(8), nn.ReLU(), last)
    m.forward = lambda x: m.head_layers(x)
    return m


class JOSH3R(nn.Module):
    """Stand-in with JOSH3R's constructor calls and forward signature (batch dict -> 8 outputs)."""

    def __init__(self):
        super().__init__()
        self.mast3r = AsymmetricMASt3R.from_pretrained("naver/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric")
        self.roi = nn.Linear(8 * 49, 8)
        self.human_head_1, self.human_head_2 = head(8, 3), head(8, 3)
        self.rel_trans_head = head(32, 3, zero_init=True)
        self.rel_rot_head = head(32, 6)
        self.scene_head_1, self.scene_head_2 = head(8, 1, zero_init=True), head(8, 1, zero_init=True)
        self.smpl = SMPLLayer(model_path="data/smpl", gender="neutral")  # no such files in the stand-in
        for p in self.smpl.parameters():
            p.requires_grad = False
        self.smpl.eval()

    def forward(self, batch):
        b, _, c, h, w = batch["imgs"].shape
        shape = batch["img_shapes"][:, 1]
        f1, f2, p1, p2 = self.mast3r._encode_image_pairs(batch["imgs"][:, 0], batch["imgs"][:, 1], shape, shape)
        d1, d2 = self.mast3r._decoder(f1, p1, f2, p2)
        X11 = self.mast3r._downstream_head(1, d1, shape)["pts3d"].reshape(b, -1, 3)
        X21 = self.mast3r._downstream_head(2, d2, shape)["pts3d"].reshape(b, -1, 3)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        tok = []
        for i, d in enumerate((d1[-1], d2[-1])):
            box = batch["bbox"][:, i] / scale * 2 - 1
            x1, y1, x2, y2 = box[0]
            gy, gx = torch.meshgrid(torch.linspace(y1, y2, 7), torch.linspace(x1, x2, 7), indexing="ij")
            fmap = d.permute(0, 2, 1).reshape(b, -1, h // 16, w // 16)
            roi = F.grid_sample(fmap, torch.stack([gx, gy], -1)[None], align_corners=False, padding_mode="border")
            tok += [self.roi(roi.flatten(1)), d.amax(1)]
        h1, s1, h2, s2 = tok
        all_tokens = torch.cat([h1, h2, s1, s2], -1)
        return (self.rel_trans_head(all_tokens), self.rel_rot_head(all_tokens), self.human_head_1(h1),
                self.human_head_2(h2), X11, X21, torch.exp(self.scene_head_1(s1)), torch.exp(self.scene_head_2(s2)))
'''


def write_stand_in(root: Path) -> Path:
    (root / "josh" / "josh3r").mkdir(parents=True)
    (root / "josh" / "josh3r" / "model.py").write_text(FAKE_JOSH3R)
    (root / "third_party" / "mast3r" / "mast3r").mkdir(parents=True)
    (root / "third_party" / "mast3r" / "mast3r" / "model.py").write_text(FAKE_MAST3R)
    return root


MODULES = ("export_josh3r", "export_mast3r", "_onnx_export", "josh", "josh.josh3r", "josh.josh3r.model")


@pytest.fixture()
def script(monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import export_josh3r

    yield export_josh3r
    for name in MODULES + ("mast3r", "mast3r.model"):
        sys.modules.pop(name, None)


def test_argument_errors_are_one_line(script, tmp_path, capsys):
    repo = write_stand_in(tmp_path / "JOSH")
    out = tmp_path / "models"
    with pytest.raises(SystemExit):
        script.main(["--random-init", "--out", str(out)])
    assert "--repo" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--checkpoint PATH"):
        script.main(["--repo", str(repo), "--out", str(out)])
    with pytest.raises(SystemExit, match="not both"):
        script.main(["--repo", str(repo), "--random-init", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(out)])
    with pytest.raises(SystemExit, match="multiples of 16"):
        script.main(["--repo", str(repo), "--random-init", "--size", "500x288", "--out", str(out)])
    with pytest.raises(SystemExit, match="WxH"):
        script.main(["--repo", str(repo), "--random-init", "--size", "wide", "--out", str(out)])
    with pytest.raises(SystemExit, match="not a folder"):
        script.main(["--repo", str(tmp_path / "nope"), "--random-init", "--out", str(out)])
    with pytest.raises(SystemExit, match="not a JOSH checkout"):
        script.main(["--repo", str(tmp_path), "--random-init", "--out", str(out)])
    with pytest.raises(SystemExit, match="checkpoint .* not found"):
        script.main(["--repo", str(tmp_path / "JOSH"), "--checkpoint", str(tmp_path / "c.pt"), "--out", str(out)])
    model_py = repo / "third_party" / "mast3r" / "mast3r" / "model.py"
    model_py.write_text("import a_requirement_not_installed\n" + FAKE_MAST3R)
    with pytest.raises(SystemExit, match="needs a_requirement_not_installed"):
        script.main(["--repo", str(repo), "--random-init", "--out", str(out)])
    model_py.unlink()
    with pytest.raises(SystemExit, match="submodule update"):
        script.main(["--repo", str(repo), "--random-init", "--out", str(out)])
    out.mkdir(exist_ok=True)
    (out / "josh3r.onnx").write_bytes(b"keep me")
    with pytest.raises(SystemExit, match="--overwrite"):
        script.main(["--repo", str(repo), "--random-init", "--out", str(out)])
    assert (out / "josh3r.onnx").read_bytes() == b"keep me"


@pytest.mark.slow
def test_export_on_a_stand_in_repository(script, tmp_path, capsys):
    import torch

    from josh_jax.frontends.official.contracts import CONTRACTS
    from josh_jax.frontends.onnx_models import check_contract, open_session

    repo = write_stand_in(tmp_path / "JOSH")
    out = tmp_path / "models"
    script.main(["--repo", str(repo), "--random-init", "--size", "64x32", "--out", str(out)])
    text = capsys.readouterr().out
    assert text.count("max|onnx - torch|") == 8
    entry = json.loads((out / "manifest.json").read_text())["models"]["josh3r"]
    assert entry["made_from"]["checkpoint"] == "random initialisation"
    assert set(entry["made_from"]["check"]) == set(CONTRACTS["josh3r"]["outputs"])
    assert max(entry["made_from"]["check"].values()) < 1e-4
    assert entry["sha256"] == hashlib.sha256((out / "josh3r.onnx").read_bytes()).hexdigest()
    assert entry["inputs"]["imgs"]["shape"] == [1, 2, 3, 32, 64]
    assert entry["outputs"]["X11"]["shape"] == [1, 32 * 64, 3]
    sess = open_session(out / "josh3r.onnx", "cpu")
    check_contract(sess, entry, "josh3r")

    # the boxes are live inputs (not constants of the trace), and the zero-initialised heads were re-drawn
    rng = np.random.default_rng(0)
    imgs = rng.uniform(-1, 1, (1, 2, 3, 32, 64)).astype(np.float32)
    a = dict(
        zip(script.OUTPUTS, sess.run(None, {"imgs": imgs, "bbox": np.float32([[[2, 2, 30, 30], [10, 0, 60, 31]]])}))
    )
    b = dict(
        zip(script.OUTPUTS, sess.run(None, {"imgs": imgs, "bbox": np.float32([[[30, 5, 60, 25], [0, 0, 20, 20]]])}))
    )
    assert np.abs(a["rel_trans"] - b["rel_trans"]).max() > 1e-4
    assert np.abs(a["rel_trans"]).max() > 0 and np.abs(a["scale1"] - 1).max() > 0
    np.testing.assert_array_equal(a["X11"], b["X11"])  # the point maps do not depend on the boxes

    # an existing file is replaced only with --overwrite; a checkpoint (with the SMPL buffers the reference
    # saves) is loaded strictly into the same skeleton and the file then gives that model's outputs
    model = script.build(repo.resolve(), None, seed=5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["smpl.v_template"] = torch.zeros(6890, 3)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "josh3r.ckpt")
    with pytest.raises(SystemExit, match="--overwrite"):
        script.main(["--repo", str(repo), "--checkpoint", str(tmp_path / "josh3r.ckpt"), "--out", str(out)])
    script.main(
        ["--repo", str(repo), "--checkpoint", str(tmp_path / "josh3r.ckpt"), "--size", "64x32", "--out", str(out)]
        + ["--overwrite"]
    )
    assert "1 SMPL buffers skipped" in capsys.readouterr().out
    entry = json.loads((out / "manifest.json").read_text())["models"]["josh3r"]
    assert entry["made_from"]["checkpoint"] == str(tmp_path / "josh3r.ckpt")
    sess = open_session(out / "josh3r.onnx", "cpu")
    bbox = np.float32([[[2, 2, 30, 30], [10, 0, 60, 31]]])
    got = sess.run(None, {"imgs": imgs, "bbox": bbox})
    with torch.no_grad():
        ref = model(
            {
                "imgs": torch.from_numpy(imgs),
                "img_shapes": torch.tensor([[[32, 64]] * 2]),
                "bbox": torch.from_numpy(bbox),
            }
        )
    for name, g, r in zip(script.OUTPUTS, got, ref):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, err_msg=name)

    # a checkpoint of another model is refused in one line
    del state["roi.weight"]
    torch.save(state, tmp_path / "other.ckpt")
    with pytest.raises(SystemExit, match="does not fit JOSH3R"):
        script.main(["--repo", str(repo), "--checkpoint", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "m2")])


@pytest.mark.slow
def test_timing_script_on_the_stand_in(script, tmp_path):
    """benchmarks/josh3r_timing.py times both runtimes; the PyTorch side builds the export's random weights."""
    from benchmarks import josh3r_timing

    repo = write_stand_in(tmp_path / "JOSH")
    script.main(["--repo", str(repo), "--random-init", "--size", "64x32", "--out", str(tmp_path / "m")])
    out = tmp_path / "timing.json"
    josh3r_timing.main(
        ["--model", str(tmp_path / "m" / "josh3r.onnx"), "--repo", str(repo), "--pairs", "2"] + ["--out", str(out)]
    )
    row = json.loads(out.read_text())["sizes"]["64x32"]
    assert row["onnxruntime"]["seconds_per_pair"] >= 0 and row["pytorch"]["seconds_per_pair"] >= 0
    assert row["pytorch"]["max_abs_diff_to_onnx"] < 1e-4
    with pytest.raises(SystemExit, match="export_josh3r.py"):
        josh3r_timing.main(["--model", str(tmp_path / "missing.onnx")])
