"""Export JOSH3R (feed-forward relative human motion + metric point maps of a frame pair) to ONNX: ``josh3r.onnx``.

    git clone --recursive https://github.com/genforce/JOSH /path/JOSH   # + its requirements
    python scripts/export_josh3r.py --repo /path/JOSH --checkpoint /path/josh3r.ckpt --size 512x288

The module is the reference's ``josh.josh3r.model.JOSH3R`` built from the
JOSH checkout (its MASt3R in ``third_party/mast3r``, with dust3r and croco
inside), loaded as ``josh/inference_josh3r.py`` loads it
(``ckpt["state_dict"]``, or the file itself when it has no such key). Two
things of the constructor are replaced so that no network and no SMPL files
are needed: ``AsymmetricMASt3R.from_pretrained("naver/MASt3R_...")`` builds
the published ViT-L / Base-decoder architecture instead of downloading it
(the JOSH3R checkpoint holds the MASt3R weights too), and the SMPL layer
(used only by the training loss, never by ``forward``) is a stand-in without
buffers; its keys in the checkpoint are skipped.

The ONNX file is ``JOSH3R.forward`` for one pair: inputs ``imgs`` [1, 2, 3, H, W]
(RGB in [-1, 1], already centre-cropped by the runner) and ``bbox`` [1, 2, 4],
outputs its eight returns (rel_trans, rel_rot, trans1, trans2, X11, X21,
scale1, scale2). ``--size WxH`` bakes the image size in (RoPE positions, the
token grid): the working size of your videos (long side 512, multiples of
16: 1920x1080 and 1280x720 give 512x288, 4:3 gives 512x384). The file is
checked against the PyTorch forward on another pair with other boxes.

``--random-init`` (no checkpoint) keeps MASt3R's and the heads' random
initialisation, except that the three zero-initialised final layers
(rel_trans_head, scene_head_1/2) get PyTorch's default initialisation so
that every output is non-trivial in the check.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import _onnx_export as ox
from export_mast3r import CONFIG as MAST3R_CONFIG

#: the pretrained MASt3R that JOSH3R's constructor asks for
MAST3R_NAME = "naver/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"
OUTPUTS = ["rel_trans", "rel_rot", "trans1", "trans2", "X11", "X21", "scale1", "scale2"]


def check_repo(repo: Path) -> None:
    """One-line errors for a folder that is not a JOSH checkout with its MASt3R submodule."""
    if not (repo / "josh" / "josh3r" / "model.py").is_file():
        sys.exit(f"error: --repo {repo} is not a JOSH checkout (no josh/josh3r/model.py); clone genforce/JOSH there")
    if not (repo / "third_party" / "mast3r" / "mast3r" / "model.py").is_file():
        sys.exit(f"error: {repo}/third_party/mast3r is empty; run `git submodule update --init --recursive` in {repo}")


def build(repo: Path, checkpoint: Path | None = None, seed: int = 0):
    """The official ``JOSH3R`` in eval mode (random weights unless ``checkpoint``), built offline."""
    import torch

    torch.manual_seed(seed)
    with ox.official_code(repo, "third_party/mast3r"):
        try:
            import smplx  # noqa: F401 - JOSH's model imports SMPLLayer from it
        except ImportError:  # the layer is replaced below anyway
            sys.modules["smplx"] = types.SimpleNamespace(SMPLLayer=None, SMPL=None)
        try:
            import mast3r.model as mm
        except ImportError as exc:
            sys.exit(f"error: the official code needs {exc.name}: install JOSH's and MASt3R's requirements ({exc})")

        def offline(cls, name, **kw):
            if str(name) != MAST3R_NAME:
                print(f"  note: JOSH3R asks for {name}; building the {MAST3R_NAME} architecture")
            return eval(MAST3R_CONFIG, {"AsymmetricMASt3R": mm.AsymmetricMASt3R, "inf": float("inf")})

        real = mm.AsymmetricMASt3R.__dict__.get("from_pretrained")
        mm.AsymmetricMASt3R.from_pretrained = classmethod(offline)
        try:
            try:
                import josh.josh3r.model as jm
            except ImportError as exc:
                sys.exit(f"error: the official code needs {exc.name}: install JOSH's requirements ({exc})")
            jm.SMPLLayer = _no_smpl
            model = jm.JOSH3R()
        finally:
            if real is None:
                del mm.AsymmetricMASt3R.from_pretrained
            else:
                mm.AsymmetricMASt3R.from_pretrained = real
    if checkpoint is not None:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        skipped = [k for k in state if k.startswith("smpl.")]
        state = {k: v for k, v in state.items() if not k.startswith("smpl.")}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1:2] or [str(exc)[:200]]
            sys.exit(f"error: {checkpoint} does not fit JOSH3R ({first[0].strip()[:200]}); is it a JOSH3R checkpoint?")
        print(f"  checkpoint: {len(state)} tensors loaded, {len(skipped)} SMPL buffers skipped")
    else:
        for head in (model.rel_trans_head, model.scene_head_1, model.scene_head_2):
            last = head.head_layers[-1]
            if isinstance(last, torch.nn.Linear) and not last.weight.any():
                last.reset_parameters()
    return model.eval()


def _no_smpl(*args, **kwargs):
    """Stand-in for ``smplx.SMPLLayer(...)``: JOSH3R keeps one for its training loss only."""
    import torch

    return torch.nn.Module()


def wrap(model, H: int, W: int):
    """``model`` to the contract: (imgs [1,2,3,H,W], bbox [1,2,4]) -> the eight outputs, H and W baked in."""
    import torch

    class Pair(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, imgs, bbox):
            shapes = torch.tensor([[[H, W], [H, W]]])
            return tuple(self.m({"imgs": imgs, "img_shapes": shapes, "bbox": bbox}))

    return Pair(model).eval()


def expm1_symbolic(opset: int) -> None:
    """Register ``aten::expm1`` (dust3r's depth ``xyz * expm1(|xyz|)``, the X11/X21 outputs) as Exp - 1:
    the TorchScript exporter has no expm1. Equal up to float32 rounding of exp (~1e-7 absolute)."""
    import torch
    from torch.onnx import register_custom_op_symbolic

    def expm1(g, x):
        return g.op("Sub", g.op("Exp", x), g.op("Constant", value_t=torch.tensor(1.0, dtype=torch.float32)))

    register_custom_op_symbolic("aten::expm1", expm1, opset)


def sample(H: int, W: int, seed: int, boxes):
    """A random pair in [-1, 1] and its boxes (x1, y1, x2, y2 per image, in pixels)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(1, 2, 3, H, W, generator=g) * 2 - 1
    bbox = torch.tensor([boxes], dtype=torch.float32)
    return imgs, bbox


def main(argv=None) -> None:
    ap = ox.parser(__doc__)
    ap.add_argument("--size", default="512x288", help="W x H of the images (multiples of 16; default 512x288)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing josh3r.onnx in --out")
    args = ap.parse_args(argv)
    if args.checkpoint is not None and args.random_init:
        sys.exit("error: give --checkpoint PATH or --random-init, not both")
    W, H = ox.parse_size(args.size, 16)
    path = args.out / "josh3r.onnx"
    existing = [f for f in (path, path.with_name(path.name + ".data")) if f.exists()]
    if existing and not args.overwrite:
        sys.exit(f"error: {existing[0]} exists; pass --overwrite to replace it (or choose another --out)")
    if args.repo.is_dir():  # (check_args says when it is not)
        args.repo = args.repo.resolve()  # official_code changes the working directory
        check_repo(args.repo)
    ox.check_args(args)
    import torch

    t0 = time.perf_counter()
    model = build(args.repo, args.checkpoint, args.seed)
    n = sum(p.numel() for p in model.parameters())
    print(f"built JOSH3R ({n / 1e6:.0f} M parameters) in {time.perf_counter() - t0:.1f} s")
    wrapped = wrap(model, H, W)
    # export sample: boxes inside the images; the check: another pair, boxes of other sizes, one
    # reaching past the image (the runner's crop transform can give that)
    imgs, bbox = sample(H, W, 1, [[0.3 * W, 0.2 * H, 0.55 * W, 0.9 * H], [0.35 * W, 0.15 * H, 0.6 * W, 0.95 * H]])
    expm1_symbolic(args.opset)
    secs = ox.export(wrapped, {"imgs": imgs, "bbox": bbox}, path, OUTPUTS, {}, args.opset)
    print(f"exported in {secs:.1f} s; checking against JOSH3R.forward on another pair with other boxes:")
    imgs, bbox = sample(H, W, 2, [[0.1 * W, 0.05 * H, 0.4 * W, 0.7 * H], [-0.2 * W, 0.3 * H, 0.25 * W, 1.1 * H]])
    batch = {"imgs": imgs, "img_shapes": torch.tensor([[[H, W], [H, W]]]).long(), "bbox": bbox}
    with torch.no_grad():
        ref = dict(zip(OUTPUTS, (t.numpy() for t in model(batch))))
    del model, wrapped
    diffs = ox.compare(path, {"imgs": imgs.numpy(), "bbox": bbox.numpy()}, ref)
    ox.write_entry(args.out, "josh3r", args, fixed={"H": H, "W": W, "HW": H * W}, check=diffs)


if __name__ == "__main__":
    main()
