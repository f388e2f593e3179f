"""Export Pi3X (multi-view local point maps + confidence) to ONNX: ``pi3x.onnx``.

    git clone https://github.com/yyfz/Pi3 /path/Pi3   # + its requirements
    # weights: https://huggingface.co/yyfz233/Pi3X (model.safetensors)
    python scripts/export_pi3x.py --repo /path/Pi3 --checkpoint /path/model.safetensors --size 672x378

The module is the reference's ``pi3.models.pi3x.Pi3X`` (JOSH calls
``Pi3X.from_pretrained("yyfz233/Pi3X")`` and runs it on the images alone, no
depth/ray/pose conditions); the ONNX file returns ``local_points`` and the
``conf`` logits for N keyframes.

``--size WxH`` and ``--frames N`` fix the image size and the number of
frames (the tracer bakes both into Pi3X's heads and RoPE grids; the runner
runs other counts in groups of N). The reference's size rule is multiples
of 14 with W x H <= 255000 for the video's aspect, e.g. 672x378 for 16:9 and
574x434 for 4:3; the runner says which size to export when a video needs
another.
"""

from __future__ import annotations

import _onnx_export as ox


def main(argv=None) -> None:
    ap = ox.parser(__doc__)
    ap.add_argument("--size", default="672x378", help="W x H of the images (multiples of 14)")
    ap.add_argument(
        "--frames",
        type=int,
        default=21,
        help="keyframes per call, fixed by the tracer (default 21: a 101-frame window every 5 frames)",
    )
    args = ap.parse_args(argv)
    ox.check_args(args)
    W, H = ox.parse_size(args.size, 14)
    import torch

    with ox.official_code(args.repo):
        from pi3.models.pi3x import Pi3X

        model = Pi3X()
    if args.checkpoint:
        if args.checkpoint.suffix == ".safetensors":
            from safetensors.torch import load_file

            missing, unexpected = model.load_state_dict(load_file(str(args.checkpoint)), strict=True)
        else:
            ox.load_state(model, args.checkpoint, None)
    model.eval()

    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(1, args.frames, 3, H, W, generator=g)
    n = args.frames
    test = torch.rand(1, n, 3, H, W, generator=g)
    with torch.no_grad():
        out = model(test)  # the official forward, before anything below touches the model
    ref = {"local_points": out["local_points"].numpy(), "conf": out["conf"].numpy()}
    del out

    # DINOv2 resizes its position embedding with antialiased bicubic interpolation, which has no ONNX
    # export; for a fixed image size the result is a constant: compute it once (with the official
    # method) and let the tracer record that tensor
    for vit in (m for m in model.modules() if hasattr(m, "interpolate_pos_encoding")):

        def frozen(x, w, h, _orig=vit.interpolate_pos_encoding, _cache={}):
            key = (int(x.shape[1]), int(w), int(h))
            if key not in _cache:
                with torch.no_grad():
                    _cache[key] = _orig(x, w, h).detach()
            return _cache[key]

        vit.interpolate_pos_encoding = frozen

    class Points(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, imgs):
            out = self.m(imgs)
            return out["local_points"], out["conf"]

    path = args.out / "pi3x.onnx"
    axes = {}  # N, H and W are baked in by the tracer (Pi3X's heads and RoPE grids follow the sample)
    with torch.no_grad():
        Points(model).eval()(imgs)  # fills the position-embedding cache outside the tracer
    secs = ox.export(Points(model).eval(), {"imgs": imgs}, path, ["local_points", "conf"], axes, args.opset)
    print(f"exported in {secs:.1f} s; checking against Pi3X.forward on {n} other images:")
    diffs = ox.compare(path, {"imgs": test.numpy()}, ref)
    ox.write_entry(args.out, "pi3x", args, fixed={"H": H, "W": W, "N": args.frames}, check=diffs)


if __name__ == "__main__":
    main()
