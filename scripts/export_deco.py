"""Export DECO (per-vertex contact, HRNet-W32 encoders) to ONNX: ``deco.onnx``.

    git clone https://github.com/sha2nkt/deco /path/deco   # + its requirements
    python scripts/export_deco.py --repo /path/deco --checkpoint /path/deco_best.pth

The module is the reference's ``DECO('hrnet', True, device)`` loaded with
``checkpoint['deco']`` (strict), as JOSH's ``preprocess/run_deco.py`` does;
the ONNX file returns its first output (contact probabilities on SMPL's 6890
vertices). Input: DECO crops, BGR/255, 256 x 256 (see the contract in
``josh_jax/frontends/official/contracts.py``). The HRNet ImageNet weights the
constructor looks for are not needed: the checkpoint holds every weight.
"""

from __future__ import annotations

import _onnx_export as ox


def main(argv=None) -> None:
    args = ox.parser(__doc__).parse_args(argv)
    ox.check_args(args)
    import torch

    with ox.official_code(args.repo):
        from models.deco import DECO

        model = DECO("hrnet", True, "cpu")
    if args.checkpoint:
        ox.load_state(model, args.checkpoint, "deco")
    model.eval()

    class Contact(torch.nn.Module):
        def __init__(self, deco):
            super().__init__()
            self.deco = deco

        def forward(self, img):
            return self.deco(img)[0]

    wrapped = Contact(model).eval()
    img = torch.rand(2, 3, 256, 256)
    path = args.out / "deco.onnx"
    secs = ox.export(wrapped, {"img": img}, path, ["contact"], {"img": {0: "B"}, "contact": {0: "B"}}, args.opset)
    print(f"exported in {secs:.1f} s; checking against PyTorch on another batch size:")
    test = torch.rand(3, 256, 256, 3).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        ref = wrapped(test)
    diffs = ox.compare(path, {"img": test.numpy()}, {"contact": ref.numpy()})
    ox.write_entry(args.out, "deco", args, check=diffs)


if __name__ == "__main__":
    main()
