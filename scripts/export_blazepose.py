"""Convert the BlazePose models of the mediapipe 0.10.21 wheel to ONNX.

The embedded default front end (``josh_jax.frontends``) runs two Google
BlazePose models with onnxruntime:

* ``pose_detection.tflite``     -> ``models_onnx/blazepose_detector.onnx``
* ``pose_landmark_full.tflite`` -> ``models_onnx/blazepose_landmark_full.onnx``

Both ship inside the ``mediapipe==0.10.21`` wheel under the Apache-2.0
license (newer wheels no longer carry them). This script is run once by the
maintainers; the ONNX files are committed, so users never need mediapipe,
TensorFlow or tf2onnx. To rerun it::

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnx onnxruntime
    /tmp/tfenv/bin/python scripts/export_blazepose.py --out models_onnx

It downloads the wheel with pip (or takes ``--wheel``), extracts the two
TFLite files, makes the detector convertible and converts both with tf2onnx,
then checks every ONNX output against the TFLite interpreter on random input
and prints the largest difference relative to each output's magnitude.

The detector stores most convolution weights sparse (TFLite DENSIFY ops),
which tf2onnx cannot read. The fix: run the TFLite interpreter once, read the
dense tensor each DENSIFY op produces, store it as a constant buffer and drop
the op. Nothing else in the graph changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "mediapipe==0.10.21"
MEMBERS = {
    "blazepose_detector": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "blazepose_landmark_full": "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
}


def _fetch_wheel(tmp: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux_2_28_x86_64",
            WHEEL,
            "-d",
            str(tmp),
        ],
        check=True,
    )
    return next(tmp.glob("mediapipe-0.10.21-*.whl"))


def _densify(src: Path, dst: Path) -> int:
    """Write a copy of ``src`` whose DENSIFY ops are replaced by constants."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    interp = tf.lite.Interpreter(
        model_path=str(src),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interp.invoke()

    model = fbu.read_model(str(src))
    from tensorflow.lite.python import schema_py_generated as schema

    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    densify_code = schema.BuiltinOperator.DENSIFY

    graph = model.subgraphs[0]
    kept, n = [], 0
    for op in graph.operators:
        if codes[op.opcodeIndex] != densify_code:
            kept.append(op)
            continue
        out = int(op.outputs[0])
        dense = np.ascontiguousarray(interp.get_tensor(out))
        buf = schema.BufferT()
        buf.data = np.frombuffer(dense.tobytes(), np.uint8)
        model.buffers.append(buf)
        graph.tensors[out].buffer = len(model.buffers) - 1
        # the sparse source tensor is now unused; give it the dense data too so
        # that converters which parse every constant can read it
        src_t = graph.tensors[int(op.inputs[0])]
        src_t.buffer = len(model.buffers) - 1
        src_t.sparsity = None
        n += 1
    graph.operators = kept
    fbu.write_model(model, str(dst))
    return n


def _convert(tflite: Path, onnx_path: Path, opset: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--tflite",
            str(tflite),
            "--output",
            str(onnx_path),
            "--opset",
            str(opset),
        ],
        check=True,
    )


def _store_half(onnx_path: Path) -> int:
    """Store float32 weights that are exact float16 values (TFLite dequantized them from
    float16) as float16 initializers followed by a Cast; onnxruntime folds the casts
    when it loads the model, so inference is unchanged and the file half as big."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    g = model.graph
    n = 0
    for init in list(g.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if w.size < 1024 or not np.array_equal(w.astype(np.float16).astype(np.float32), w):
            continue
        half = numpy_helper.from_array(w.astype(np.float16), init.name + "_f16")
        g.initializer.remove(init)
        g.initializer.append(half)
        g.node.insert(0, helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        n += 1
    onnx.save(model, str(onnx_path))
    return n


def _check(tflite: Path, onnx_path: Path) -> float:
    import onnxruntime as ort
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0, 1, inp["shape"]).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})
    by_name = {o.name: v for o, v in zip(sess.get_outputs(), got)}
    worst = 0.0  # largest difference relative to the output's largest magnitude
    for det in interp.get_output_details():
        ref = interp.get_tensor(det["index"])
        mine = by_name[det["name"]].reshape(ref.shape)
        worst = max(worst, float(np.abs(ref - mine).max() / max(np.abs(ref).max(), 1e-6)))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("models_onnx"))
    ap.add_argument("--wheel", type=Path, help="a local mediapipe-0.10.21 wheel (else pip downloads it)")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        wheel = args.wheel or _fetch_wheel(tmp)
        report = {}
        with zipfile.ZipFile(wheel) as zf:
            for name, member in MEMBERS.items():
                src = tmp / Path(member).name
                src.write_bytes(zf.read(member))
                conv_src = src
                if name == "blazepose_detector":
                    conv_src = tmp / "pose_detection_dense.tflite"
                    print(f"densified {_densify(src, conv_src)} sparse weight tensors")
                dst = args.out / f"{name}.onnx"
                _convert(conv_src, dst, args.opset)
                print(f"{name}: {_store_half(dst)} weight tensors stored as float16")
                diff = _check(src, dst)
                sha = hashlib.sha256(dst.read_bytes()).hexdigest()
                report[name] = {
                    "source": f"{WHEEL}:{member}",
                    "max_rel_diff_vs_tflite": diff,
                    "sha256": sha,
                    "bytes": dst.stat().st_size,
                }
                print(f"{name}: max |onnx - tflite| / max |tflite| = {diff:.3g}, sha256 {sha[:16]}...")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
