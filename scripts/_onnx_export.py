"""What every official export script shares: arguments, export, check against PyTorch, manifest entry.

Each ``scripts/export_*.py`` builds the official PyTorch module from the
user's checkout of the official repository (``--repo``) and checkpoint
(``--checkpoint``; ``--random-init`` builds the same architecture with random
weights, which is how these scripts were verified here), wraps it to the
contract of :mod:`josh_jax.frontends.official.contracts`, exports it with
``torch.onnx.export`` (TorchScript exporter, opset 17), runs the ONNX file with
onnxruntime on a sample input and prints the largest absolute difference to
the PyTorch output, then writes the entry (contract + sha256 + provenance)
into ``OUT/manifest.json``. Needs the ``[export]`` extra (torch, onnx) plus
the official repository's own requirements.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from josh_jax.frontends.official.contracts import contract_entry  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, required=True, help="checkout of the official repository")
    ap.add_argument("--checkpoint", type=Path, help="official checkpoint (see docs/frontends.md)")
    ap.add_argument(
        "--random-init", action="store_true", help="no checkpoint: random weights (verifies the export path only)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "models_onnx", help="models folder (default: models_onnx/)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def check_args(args) -> None:
    if not args.repo.is_dir():
        sys.exit(f"error: --repo {args.repo} is not a folder (clone the official repository there)")
    if args.checkpoint is None and not args.random_init:
        sys.exit("error: give --checkpoint PATH (or --random-init to check the export path with random weights)")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        sys.exit(f"error: checkpoint {args.checkpoint} not found")
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)


def parse_size(text: str, multiple: int) -> tuple[int, int]:
    """``--size WxH`` -> (W, H), both multiples of ``multiple`` (the model's patch size)."""
    try:
        W, H = (int(v) for v in text.lower().split("x"))
    except ValueError:
        sys.exit(f"error: --size {text}: give it as WxH, e.g. 512x288")
    if W % multiple or H % multiple:
        sys.exit(f"error: --size {text}: both sides must be multiples of {multiple}")
    return W, H


@contextmanager
def official_code(repo: Path, *extra: str):
    """Import the official code as its own scripts do: repository root (and ``extra``) on sys.path, cwd there."""
    old_cwd, old_path = os.getcwd(), list(sys.path)
    sys.path[:0] = [str(repo)] + [str(repo / e) for e in extra]
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def export(module, inputs: dict, path: Path, output_names: list[str], dynamic_axes: dict, opset: int) -> float:
    """Export ``module(**inputs)`` to ``path`` (weights in ``path.data`` when over 2 GB); seconds taken."""
    import onnx
    import torch

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        import torch.utils.checkpoint as ckpt

        real, real_ckpt = torch.cartesian_prod, ckpt.checkpoint
        # CroCo's and Pi3's patch position getters call torch.cartesian_prod, which has no ONNX
        # export; the same grid from meshgrid + stack exports (and equals it exactly). Activation
        # checkpointing (Pi3's heads) only saves training memory, and the tracer loses the batch size
        # through it: call the layers directly.
        torch.cartesian_prod = _cartesian_prod
        ckpt.checkpoint = lambda fn, *a, use_reentrant=None, **kw: fn(*a, **kw)
        try:
            with torch.no_grad():
                torch.onnx.export(
                    module,
                    tuple(inputs.values()),
                    str(raw),
                    input_names=list(inputs),
                    output_names=output_names,
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                    dynamo=False,
                    do_constant_folding=True,
                )
        finally:
            torch.cartesian_prod, ckpt.checkpoint = real, real_ckpt
        model = onnx.load(str(raw), load_external_data=True)
        for f in (path, path.with_name(path.name + ".data")):
            f.unlink(missing_ok=True)
        weights = sum(t.ByteSize() for t in model.graph.initializer)
        big = weights > 1_800_000_000  # protobuf's 2 GB limit
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=big,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=1024,
        )
        for f in (path, path.with_name(path.name + ".data")):
            if f.exists():
                f.chmod(0o644)  # onnx writes the weights file owner-only
    return time.perf_counter() - t0


def _cartesian_prod(*xs):
    import torch

    grids = torch.meshgrid(*xs, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def compare(path: Path, feeds: dict, reference: dict) -> dict:
    """Run ``path`` on ``feeds`` with onnxruntime (CPU); max |onnx - torch| per output, printed."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    got = dict(
        zip(
            [o.name for o in sess.get_outputs()],
            sess.run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}),
        )
    )
    diffs = {}
    for name, ref in reference.items():
        ref = np.asarray(ref, np.float32)
        if got[name].shape != ref.shape:
            sys.exit(f"error: {path.name} output {name} has shape {got[name].shape}, PyTorch gives {ref.shape}")
        diffs[name] = float(np.abs(got[name] - ref).max())
        scale = float(np.abs(ref).max())
        print(f"  {name:14s} shape {tuple(ref.shape)}  max|onnx - torch| = {diffs[name]:.3g}  (max|torch| {scale:.3g})")
    return diffs


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_entry(out: Path, name: str, args, fixed: dict | None = None, check: dict | None = None) -> None:
    """Add ``name``'s contract to ``out/manifest.json`` with the export's sha256 and provenance.

    ``fixed`` replaces the export-time axes (e.g. {"H": 288, "W": 512}) in the shapes.
    """
    entry = contract_entry(name, fixed)
    path = out / entry["file"]
    entry["sha256"] = sha256(path)
    entry["made_from"] = dict(
        checkpoint=str(args.checkpoint) if args.checkpoint else "random initialisation",
        repo=str(args.repo),
        opset=args.opset,
        check=check or {},
    )
    mpath = out / "manifest.json"
    manifest = (
        json.loads(mpath.read_text())
        if mpath.is_file()
        else {"format": "josh-onnx-manifest", "version": 1, "models": {}}
    )
    manifest["models"][name] = entry
    tmp = mpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(mpath)
    size = path.stat().st_size + (
        path.with_name(path.name + ".data").stat().st_size if path.with_name(path.name + ".data").exists() else 0
    )
    print(f"wrote {path} ({size / 1e6:.1f} MB) and its entry in {mpath}")


def load_state(module, checkpoint: Path, key: str | None, strict: bool = True) -> None:
    """Load ``checkpoint[key]`` (or the whole file) into ``module``; report what did not match."""
    import torch

    state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    if key:
        state = state[key]
    missing, unexpected = module.load_state_dict(state, strict=strict)
    if missing or unexpected:
        print(
            f"  checkpoint: {len(missing)} missing, {len(unexpected)} unexpected keys "
            f"(first: {(missing or unexpected)[:3]})"
        )
