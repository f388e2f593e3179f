"""A tiny ONNX model with ``josh3r.onnx``'s contract (random weights), for the JOSH3R runner tests.

Like :mod:`tests.tiny_official`, built to make the plumbing checkable, not to be accurate: random
conv features of both images and the boxes give a small relative motion (rotation 6D near the
identity, translation a few centimetres), the point maps are a fronto-parallel plane at 2-2.2 m seen
by a pinhole of focal 0.8 x width, and the scales are near 1. H and W are dynamic.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS = ["rel_trans", "rel_rot", "trans1", "trans2", "X11", "X21", "scale1", "scale2"]


def build(path: Path, seed: int = 0, rename: dict | None = None) -> Path:
    """Write the tiny model to ``path``; ``rename`` {contract name: exported name} makes a mismatch."""
    import torch
    from tiny_official import _export
    from torch import nn

    torch.manual_seed(seed)

    class TinyJosh3r(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Linear(8 + 8 + 8, 17)

        def _plane(self, img, depth):
            ones = torch.ones_like(img[:, 0])  # (1, H, W)
            xs = ones.cumsum(-1) - 1 - (ones.sum(-1, keepdim=True) - 1) / 2
            ys = ones.cumsum(-2) - 1 - (ones.sum(-2, keepdim=True) - 1) / 2
            f = 0.8 * ones.sum(-1, keepdim=True)
            z = depth * ones
            return torch.stack([xs / f * z, ys / f * z, z], -1).reshape(1, -1, 3)

        def forward(self, imgs, bbox):
            a, b = imgs[:, 0], imgs[:, 1]
            fa, fb = self.conv(a).mean((2, 3)), self.conv(b).mean((2, 3))
            h = self.head(torch.cat([fa, fb, bbox.reshape(1, 8) / 512.0], 1))
            eye6 = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
            return (
                0.05 * torch.tanh(h[:, 0:3]),
                eye6 + 0.05 * torch.tanh(h[:, 3:9]),
                h[:, 9:12] + torch.tensor([[0.0, 0.0, 3.0]]),
                h[:, 12:15] + torch.tensor([[0.0, 0.0, 3.0]]),
                self._plane(a, 2.0 + 0.2 * torch.sigmoid(h[:, 15:16, None])),
                self._plane(b, 2.0 + 0.2 * torch.sigmoid(h[:, 16:17, None])),
                torch.exp(0.05 * torch.tanh(h[:, 15:16])),
                torch.exp(0.05 * torch.tanh(h[:, 16:17])),
            )

    names = [(rename or {}).get(n, n) for n in OUTPUTS]
    H, W = 64, 96
    inputs = {"imgs": torch.zeros(1, 2, 3, H, W), "bbox": torch.tensor([[[10.0, 10.0, 50.0, 60.0]] * 2])}
    dynamic = {"imgs": {3: "H", 4: "W"}, names[4]: {1: "HW"}, names[5]: {1: "HW"}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _export(TinyJosh3r(), inputs, path, names, dynamic)
    return path
