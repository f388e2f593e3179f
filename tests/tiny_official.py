"""Tiny ONNX models with the official front ends' contracts (random weights), for the runner tests.

Each is a small torch module exported with ``torch.onnx.export``; names,
ranks and fixed axes follow :data:`josh_jax.frontends.official.CONTRACTS`.
They are built to make the plumbing checkable, not to be accurate:

- the segmenter finds one person as the box of "dark enough" pixels in the
  centre third of the frame, or a fixed box when none (score 0.9);
- VIMO: random conv features; rotations near identity from them; betas
  small; translation from TRAM's ``get_trans`` with cam (0.9, 0, 0), so the
  depth follows the box size as in the real model;
- DECO: random per-vertex probabilities from pooled crop colours;
- Pi3X: the point map of a fronto-parallel plane at depth 3 m seen by a
  pinhole of focal 0.6 x width (so the focal recovery has a known answer);
- MASt3R: per-pixel descriptors from a random 3x3 conv of the image (equal
  patches give equal descriptors), confidences from the image.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

PI3X_FOCAL_FRACTION = 0.6  # focal of the tiny Pi3X as a fraction of its input width
PI3X_DEPTH = 3.0


def _torch():
    import torch

    return torch


def _export(module, inputs: dict, path: Path, outputs: list[str], dynamic: dict) -> None:
    torch = _torch()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            buf,
            input_names=list(inputs),
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    path.write_bytes(buf.getvalue())


def build(
    folder: Path,
    pi3x_size=(672, 378),
    mast3r_size=(512, 288),
    seed: int = 0,
    backbone_channels: int = 1280,
    rename: dict | None = None,
    pi3x_frames: int | None = 3,
) -> Path:
    """Write the six tiny models (and a manifest with their contracts) into ``folder``.

    Pi3X takes ``pi3x_frames`` frames per call, fixed as in a real export (None: dynamic).

    ``backbone_channels`` and ``rename`` (output -> new name) make models that break the contract.
    """
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rn = lambda n: (rename or {}).get(n, n)  # noqa: E731

    class Segmenter(nn.Module):
        def forward(self, image):
            H, W = image.shape[2], image.shape[3]
            dark = (image.mean(1)[0] < 0.45).float()  # (H, W)
            cols = torch.arange(W, dtype=torch.float32)
            rows = torch.arange(H, dtype=torch.float32)
            centre = ((cols > W / 3) & (cols < 2 * W / 3)).float()
            m = dark * centre[None, :]
            any_ = m.sum() > 20
            xs = torch.where(m.sum(0) > 0, cols, torch.full_like(cols, 1e9))
            xe = torch.where(m.sum(0) > 0, cols, torch.full_like(cols, -1.0))
            ys = torch.where(m.sum(1) > 0, rows, torch.full_like(rows, 1e9))
            ye = torch.where(m.sum(1) > 0, rows, torch.full_like(rows, -1.0))
            fixed = torch.stack([W * 0.4, H * 0.2, W * 0.6, H * 0.95]).float()
            found = torch.stack([xs.min(), ys.min(), xe.max() + 1, ye.max() + 1])
            box = torch.where(any_, found, fixed)
            inside = (
                (cols[None, :] >= box[0])
                & (cols[None, :] < box[2])
                & (rows[:, None] >= box[1])
                & (rows[:, None] < box[3])
            ).float()
            return box[None], torch.full((1,), 0.9), inside[None]

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, backbone_channels, 16, stride=16)

        def forward(self, img):
            return self.conv(img)

    class Temporal(nn.Module):
        def __init__(self):
            super().__init__()
            self.pose = nn.Linear(1280, 144)
            self.shape = nn.Linear(1280, 10)
            for lin in (self.pose, self.shape):
                nn.init.normal_(lin.weight, std=1e-3)
                nn.init.zeros_(lin.bias)

        def forward(self, feature, center, scale, img_focal, img_center):
            f = feature.mean((2, 3))
            x = (self.pose(f) + torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(24)).reshape(-1, 2, 3)
            b1 = nn.functional.normalize(x[:, 0])
            b2 = nn.functional.normalize(x[:, 1] - (b1 * x[:, 1]).sum(-1, keepdim=True) * b1)
            b3 = torch.stack(
                [
                    b1[:, 1] * b2[:, 2] - b1[:, 2] * b2[:, 1],
                    b1[:, 2] * b2[:, 0] - b1[:, 0] * b2[:, 2],
                    b1[:, 0] * b2[:, 1] - b1[:, 1] * b2[:, 0],
                ],
                -1,
            )
            rot = torch.stack([b1, b2, b3], -1).reshape(-1, 24, 3, 3)
            bs = scale * 200 * 0.9
            t = torch.stack(
                [
                    2 * (center[:, 0] - img_center[:, 0]) / bs,
                    2 * (center[:, 1] - img_center[:, 1]) / bs,
                    2 * img_focal / bs,
                ],
                -1,
            )
            return rot, self.shape(f), t

    class Deco(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 6890)

        def forward(self, img):
            return torch.sigmoid(self.lin(img.mean((2, 3))) * 4)

    class Pi3x(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 1, 1)

        def forward(self, imgs):
            B, N, _, H, W = imgs.shape
            f = PI3X_FOCAL_FRACTION * W
            u = (torch.arange(W, dtype=torch.float32) + 0.5 - W / 2) / f
            v = (torch.arange(H, dtype=torch.float32) + 0.5 - H / 2) / f
            z = torch.full((B, N, H, W), PI3X_DEPTH)
            pts = torch.stack([u[None, None, None, :] * z, v[None, None, :, None] * z, z], -1)
            conf = 2.0 + 0.01 * self.conv(imgs.reshape(B * N, 3, H, W)).reshape(B, N, H, W, 1)
            return pts, conf

    class Mast3r(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 24, 3, padding=1, padding_mode="replicate")

        def forward(self, img1, img2):
            d = nn.functional.normalize(self.conv(torch.cat([img1, img2, img2, img1])), dim=1).permute(0, 2, 3, 1)
            c = 1.0 + (torch.cat([img1, img2, img2, img1]).mean(1) + 1)  # >= 1, as MASt3R's exp confidence
            return c, d, torch.ones_like(c) * 2.0

    pw, ph = pi3x_size
    mw, mh = mast3r_size
    specs = {
        "person_segmenter": (
            Segmenter(),
            {"image": torch.rand(1, 3, 96, 160)},
            ["boxes", "scores", "masks"],
            {"image": {2: "H", 3: "W"}, "boxes": {0: "N"}, "scores": {0: "N"}, "masks": {0: "N", 1: "H", 2: "W"}},
        ),
        "vimo_backbone": (
            Backbone(),
            {"img": torch.rand(2, 3, 256, 192)},
            [rn("feature")],
            {"img": {0: "B"}, rn("feature"): {0: "B"}},
        ),
        "vimo_temporal": (
            Temporal(),
            dict(
                feature=torch.rand(16, 1280, 16, 12),
                center=torch.rand(16, 2),
                scale=torch.rand(16) + 1,
                img_focal=torch.full((16,), 1000.0),
                img_center=torch.rand(16, 2),
            ),
            ["rotmat", "betas", "transl"],
            {
                k: {0: "B16"}
                for k in ("feature", "center", "scale", "img_focal", "img_center", "rotmat", "betas", "transl")
            },
        ),
        "deco": (Deco(), {"img": torch.rand(2, 3, 256, 256)}, ["contact"], {"img": {0: "B"}, "contact": {0: "B"}}),
        "pi3x": (
            Pi3x(),
            {"imgs": torch.rand(1, pi3x_frames or 2, 3, ph, pw)},
            ["local_points", "conf"],
            {} if pi3x_frames else {"imgs": {1: "N"}, "local_points": {1: "N"}, "conf": {1: "N"}},
        ),
        "mast3r": (
            Mast3r(),
            {"img1": torch.rand(1, 3, mh, mw), "img2": torch.rand(1, 3, mh, mw)},
            ["conf", "desc", "desc_conf"],
            {},
        ),
    }
    from josh_jax.frontends.official.contracts import CONTRACTS, contract_entry

    manifest = {"format": "josh-onnx-manifest", "version": 1, "models": {}}
    for name, (module, inputs, outputs, dynamic) in specs.items():
        _export(module, inputs, folder / CONTRACTS[name]["file"], outputs, dynamic)
        fixed = {
            "pi3x": {"H": ph, "W": pw, **({"N": pi3x_frames} if pi3x_frames else {})},
            "mast3r": {"H": mh, "W": mw},
        }.get(name, {})
        entry = contract_entry(name, fixed)
        manifest["models"][name] = entry
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1])))
