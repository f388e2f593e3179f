"""Export TRAM's VIMO (human mesh recovery) to ONNX: ``vimo_backbone.onnx`` + ``vimo_temporal.onnx``.

    git clone https://github.com/yufu-wang/tram /path/tram   # + its requirements, data/smpl as TRAM asks
    python scripts/export_vimo.py --repo /path/tram --checkpoint /path/tram/data/checkpoints/vimo_checkpoint.pth.tar

The module is the reference's ``get_hmr_vimo`` model (``HMR_VIMO`` with the
repository's ``config_vimo.yaml``, ``checkpoint['model']`` loaded as TRAM
does). It is cut in two so that the ViT-H backbone runs once per frame
instead of once per frame per 16-frame window (TRAM slides its window by one
frame, so its own inference runs the backbone 16 times on each crop):

* ``vimo_backbone``: crop (B, 3, 256, 192) -> feature (B, 1280, 16, 12)
* ``vimo_temporal``: 16-frame windows of features + box/camera info ->
  SMPL rotations (24, 3, 3), betas (10) and camera-frame translation, i.e. the
  CLIFF box features, space-time module, SMPL transformer head, motion module,
  6D -> matrix and ``get_trans`` of ``HMR_VIMO.forward``.

The check runs ``HMR_VIMO.forward`` itself (with the SMPL layer replaced by a
stand-in: its joints feed only the 2D reprojection, which is not exported)
and compares its rotations, betas and translations with the two ONNX files.
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import _onnx_export as ox
import numpy as np


def _build(args):
    import torch

    # lib.pipeline.tools pulls segment_anything/pycocotools (TRAM's tracking); VIMO only names parse_chunks
    sys.modules.setdefault("lib.pipeline.tools", types.SimpleNamespace(parse_chunks=None))
    import lib.models.hmr_vimo as hv
    from lib.models import get_default_config

    class NoSMPL(torch.nn.Module):
        """Stand-in for TRAM's SMPL layer (needs the licensed files; not part of the export)."""

        def query(self, out):
            return types.SimpleNamespace(joints=torch.zeros(len(out["pred_cam"]), 44, 3))

    hv.SMPL = NoSMPL
    cfg = get_default_config()
    mean = Path("data/smpl/smpl_mean_params.npz")
    if mean.is_file():
        return hv.HMR_VIMO(cfg)
    # no TRAM data folder (random-weight check): a neutral mean (identity 6D, zero betas, cam 0.9, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / mean.parent).mkdir(parents=True)
        np.savez(
            Path(tmp) / mean, pose=np.tile([1.0, 0, 0, 0, 1, 0], 24), shape=np.zeros(10), cam=np.array([0.9, 0, 0])
        )
        import os

        here = os.getcwd()
        os.chdir(tmp)
        try:
            return hv.HMR_VIMO(cfg)
        finally:
            os.chdir(here)


def main(argv=None) -> None:
    ap = ox.parser(__doc__)
    ap.add_argument("--skip-backbone", action="store_true", help="keep an existing vimo_backbone.onnx in --out")
    args = ap.parse_args(argv)
    ox.check_args(args)
    import einops
    import torch

    with ox.official_code(args.repo):
        model = _build(args)
    if args.checkpoint:
        ox.load_state(model, args.checkpoint, "model", strict=False)  # TRAM loads non-strictly too
    model.eval()

    def rot6d_to_rotmat(x):
        """TRAM's ``rot6d_to_rotmat_hmr2`` with the cross product written out (the exporter has no
        ``torch.cross`` without ``dim``); the check below compares with the official function."""
        x = x.reshape(-1, 2, 3)
        b1 = torch.nn.functional.normalize(x[:, 0])
        a2 = x[:, 1]
        b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1)
        b3 = torch.stack(
            [
                b1[:, 1] * b2[:, 2] - b1[:, 2] * b2[:, 1],
                b1[:, 2] * b2[:, 0] - b1[:, 0] * b2[:, 2],
                b1[:, 0] * b2[:, 1] - b1[:, 1] * b2[:, 0],
            ],
            dim=-1,
        )
        return torch.stack((b1, b2, b3), dim=-1)

    class Backbone(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, img):
            return self.m.backbone(img)

    class Temporal(torch.nn.Module):
        """``HMR_VIMO.forward`` after the backbone, without the SMPL layer."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, feature, center, scale, img_focal, img_center):
            m = self.m
            info = m.bbox_est(center, scale, img_focal, img_center)
            x = torch.cat([feature, einops.repeat(info, "b c -> b c h w", h=16, w=12)], dim=1)
            x = einops.rearrange(x, "(b t) c h w -> (b h w) t c", t=16)
            x = einops.rearrange(m.st_module(x), "(b h w) t c -> (b t) c h w", h=16, w=12)
            pose, shape, cam = m.smpl_head(x)
            pose = torch.cat(
                [einops.rearrange(pose, "(b t) c -> b t c", t=16), einops.rearrange(info, "(b t) c -> b t c", t=16)],
                dim=2,
            )
            pose = einops.rearrange(m.motion_module(pose), "b t c -> (b t) c")
            rotmat = rot6d_to_rotmat(pose).reshape(-1, 24, 3, 3)
            return rotmat, shape, m.get_trans(cam, center, scale, img_focal, img_center)[:, 0]

    def sample(n, seed):
        g = torch.Generator().manual_seed(seed)
        img = torch.randn(n, 3, 256, 256, generator=g)
        center = torch.tensor([960.0, 540.0]) + 200 * torch.randn(n, 2, generator=g)
        scale = 2.0 + torch.rand(n, generator=g)
        focal = torch.full((n,), float(np.hypot(1920, 1080)))
        icenter = torch.tensor([[960.0, 540.0]]).repeat(n, 1)
        return dict(img=img, center=center, scale=scale, img_focal=focal, img_center=icenter)

    bb, tp = Backbone(model).eval(), Temporal(model).eval()
    s = sample(16, 1)
    with torch.no_grad():
        feat = bb(s["img"][:, :, :, 32:-32][:2])
    p1, p2 = args.out / "vimo_backbone.onnx", args.out / "vimo_temporal.onnx"
    if not (args.skip_backbone and p1.is_file()):
        secs = ox.export(
            bb, {"img": s["img"][:2, :, :, 32:-32]}, p1, ["feature"], {"img": {0: "B"}, "feature": {0: "B"}}, args.opset
        )
        print(f"backbone exported in {secs:.1f} s")
    with torch.no_grad():
        feat16 = bb(s["img"][:, :, :, 32:-32])
    tin = dict(
        feature=feat16, center=s["center"], scale=s["scale"], img_focal=s["img_focal"], img_center=s["img_center"]
    )
    secs = ox.export(
        tp,
        tin,
        p2,
        ["rotmat", "betas", "transl"],
        {k: {0: "B16"} for k in list(tin) + ["rotmat", "betas", "transl"]},
        args.opset,
    )
    print(f"temporal part exported in {secs:.1f} s")
    del feat

    # check: the official forward on two windows (32 crops) against the two ONNX files
    s = sample(32, 2)
    with torch.no_grad():
        out, _ = model.forward(dict(s))
        feats = bb(s["img"][:, :, :, 32:-32])
    print("checking the backbone (batch 3):")
    d1 = ox.compare(p1, {"img": s["img"][:3, :, :, 32:-32].numpy()}, {"feature": feats[:3].numpy()})
    print("checking backbone (torch) -> temporal (onnx) against HMR_VIMO.forward, 2 windows:")
    feeds = dict(
        feature=feats.numpy(),
        center=s["center"].numpy(),
        scale=s["scale"].numpy(),
        img_focal=s["img_focal"].numpy(),
        img_center=s["img_center"].numpy(),
    )
    d2 = ox.compare(
        p2,
        feeds,
        {
            "rotmat": out["pred_rotmat"].numpy(),
            "betas": out["pred_shape"].numpy(),
            "transl": out["trans_full"][:, 0].numpy(),
        },
    )
    ox.write_entry(args.out, "vimo_backbone", args, check=d1)
    ox.write_entry(args.out, "vimo_temporal", args, check=d2)


if __name__ == "__main__":
    main()
