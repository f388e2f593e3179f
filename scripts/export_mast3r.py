"""Export MASt3R (pairwise matching descriptors) to ONNX: ``mast3r.onnx``.

    git clone --recursive https://github.com/naver/mast3r /path/mast3r   # + its requirements
    python scripts/export_mast3r.py --repo /path/mast3r \\
        --checkpoint /path/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth --size 512x288

The module is the reference's ``AsymmetricMASt3R`` (built from the
checkpoint's own ``args`` string as ``mast3r.model.load_model`` does; with
``--random-init`` from the published ViT-L / Base-decoder configuration).
The ONNX file does what ``mast3r.cloud_opt.sparse_ga.symmetric_inference``
does for one image pair: encode both images once, decode (1, 2) and (2, 1),
and returns the confidence, descriptors and descriptor confidence of
11, 21, 22, 12 (JOSH uses these for matching; its scene comes from Pi3X).

``--size WxH`` fixes the image size (RoPE positions are baked in by the
exporter): the working size of your videos, i.e. long side 512 and both
sides multiples of 16 (1920x1080 and 1280x720 give 512x288; 4:3 gives
512x384). The runner says which size to export when a video needs another.
"""

from __future__ import annotations

import _onnx_export as ox
import numpy as np

# the published ViT-L encoder / ViT-B decoder configuration (the checkpoint's own args string is used when given)
CONFIG = (
    "AsymmetricMASt3R(enc_depth=24, dec_depth=12, enc_embed_dim=1024, dec_embed_dim=768, enc_num_heads=16, "
    "dec_num_heads=12, pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', img_size=(512, 512), "
    "head_type='catmlp+dpt', output_mode='pts3d+desc24', depth_mode=('exp', -inf, inf), "
    "conf_mode=('exp', 1, inf), landscape_only=False, two_confs=True, desc_conf_mode=('exp', 0, inf))"
)


def main(argv=None) -> None:
    ap = ox.parser(__doc__)
    ap.add_argument("--size", default="512x288", help="W x H of the images (multiples of 16)")
    args = ap.parse_args(argv)
    ox.check_args(args)
    W, H = ox.parse_size(args.size, 16)
    import torch

    with ox.official_code(args.repo):
        import mast3r.model as mm
        from mast3r.cloud_opt.sparse_ga import symmetric_inference

        if args.checkpoint:
            model = mm.load_model(str(args.checkpoint), "cpu")
        else:
            model = eval(CONFIG, {"AsymmetricMASt3R": mm.AsymmetricMASt3R, "inf": float("inf")})
    model.eval()

    class Pair(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, img1, img2):
            m = self.m
            shape = torch.tensor([[H, W]])
            f1, f2, p1, p2 = m._encode_image_pairs(img1, img2, shape, shape)
            res = []
            for fa, fb, pa, pb in ((f1, f2, p1, p2), (f2, f1, p2, p1)):
                da, db = m._decoder(fa, pa, fb, pb)
                res.append(m._downstream_head(1, [t.float() for t in da], shape))
                res.append(m._downstream_head(2, [t.float() for t in db], shape))
            return tuple(torch.cat([r[k] for r in res]) for k in ("conf", "desc", "desc_conf"))

    g = torch.Generator().manual_seed(1)
    img1, img2 = (torch.rand(1, 3, H, W, generator=g) * 2 - 1 for _ in range(2))
    path = args.out / "mast3r.onnx"
    secs = ox.export(
        Pair(model).eval(), {"img1": img1, "img2": img2}, path, ["conf", "desc", "desc_conf"], {}, args.opset
    )
    print(f"exported in {secs:.1f} s; checking against sparse_ga.symmetric_inference on another pair:")
    a, b = (torch.rand(1, 3, H, W, generator=g) * 2 - 1 for _ in range(2))
    views = [dict(img=x, true_shape=np.int32([[H, W]])) for x in (a, b)]
    with torch.no_grad():
        res = symmetric_inference(model, views[0], views[1], device="cpu")
    ref = {k: torch.cat([r[k] for r in res]).numpy() for k in ("conf", "desc", "desc_conf")}
    diffs = ox.compare(path, {"img1": a.numpy(), "img2": b.numpy()}, ref)
    ox.write_entry(args.out, "mast3r", args, fixed={"H": H, "W": W}, check=diffs)


if __name__ == "__main__":
    main()
