"""Contracts of the official front-end models (the ONNX files a user exports).

One entry per model file: input/output names, shapes (strings are dynamic
axes, integers fixed; Pi3X's and MASt3R's ``"H"``/``"W"`` and Pi3X's ``"N"``
are fixed at export time by ``--size``/``--frames`` and read back from the
file), dtypes, value ranges, the pre-processing the
runner applies, the post-processing it does with the outputs, where the
weights come from and their license, and the script that makes the file.

These entries are written into ``models_onnx/manifest.json`` (and into the
manifest of any folder an export script writes to, with the file's sha256);
:func:`josh_jax.frontends.onnx_models.check_contract` checks each session
against its entry before use. Tests build tiny models with the same
contracts (``tests/tiny_official.py``).
"""

from __future__ import annotations

F32 = "tensor(float)"

CONTRACTS: dict[str, dict] = {
    "person_segmenter": {
        "file": "person_segmenter.onnx",
        "role": "person instance segmentation, one frame at a time (the runner links frames into tracks)",
        "inputs": {"image": {"shape": [1, 3, "H", "W"], "dtype": F32, "range": "[0, 1]"}},
        "outputs": {
            "boxes": {"shape": ["N", 4], "dtype": F32, "meaning": "x1, y1, x2, y2 in input pixels"},
            "scores": {"shape": ["N"], "dtype": F32, "range": "[0, 1]", "meaning": "person score"},
            "masks": {
                "shape": ["N", "H", "W"],
                "dtype": F32,
                "range": "[0, 1]",
                "meaning": "per-pixel person probability, input pixels",
            },
        },
        "preprocess": "RGB frame resized (aspect kept) to fit H x W, zero padded right/bottom, value/255, NCHW",
        "postprocess": "keep scores >= 0.7 (the reference's human_thres) and masks > 0.5; boxes and masks mapped "
        "back to the frame; detections linked into tracks by greedy IoU (>= 0.3) with the previous "
        "frame's boxes; tracks shorter than min_track_frames dropped",
        "source": "any person segmenter wrapped to this signature (the reference uses SAM3 with the text prompt "
        "'person', which has no ONNX export; a YOLO-seg or Mask R-CNN export after NMS and class filtering "
        "meets it)",
        "license": "that of the segmenter's weights",
        "export": "your segmenter's exporter, wrapped to these names (docs/frontends.md)",
    },
    "vimo_backbone": {
        "file": "vimo_backbone.onnx",
        "role": "human mesh recovery, image features (TRAM's VIMO: ViT-H of HMR2.0)",
        "inputs": {"img": {"shape": ["B", 3, 256, 192], "dtype": F32, "range": "ImageNet-normalised RGB"}},
        "outputs": {"feature": {"shape": ["B", 1280, 16, 12], "dtype": F32}},
        "preprocess": "TRAM crop: square box of side max(w, h) x 1.2 about the box centre, warped to 256 x 256, "
        "RGB/255, minus (0.485, 0.456, 0.406), over (0.229, 0.224, 0.225), NCHW; columns 32:224 "
        "(the 192 centre columns)",
        "postprocess": "features go to vimo_temporal in windows of 16 consecutive frames",
        "source": "TRAM (github.com/yufu-wang/tram), data/checkpoints/vimo_checkpoint.pth.tar",
        "license": "TRAM code: MIT; the checkpoint is trained on SMPL data (see the TRAM repository)",
        "export": "scripts/export_vimo.py",
    },
    "vimo_temporal": {
        "file": "vimo_temporal.onnx",
        "role": "human mesh recovery, temporal modules + SMPL head over windows of 16 frames",
        "inputs": {
            "feature": {"shape": ["B16", 1280, 16, 12], "dtype": F32},
            "center": {"shape": ["B16", 2], "dtype": F32, "meaning": "crop centre, original pixels"},
            "scale": {"shape": ["B16"], "dtype": F32, "meaning": "crop side / 200, original pixels"},
            "img_focal": {"shape": ["B16"], "dtype": F32, "meaning": "focal, original pixels (TRAM: diagonal)"},
            "img_center": {"shape": ["B16", 2], "dtype": F32, "meaning": "principal point, original pixels"},
        },
        "outputs": {
            "rotmat": {"shape": ["B16", 24, 3, 3], "dtype": F32, "meaning": "SMPL local rotations, root in camera"},
            "betas": {"shape": ["B16", 10], "dtype": F32},
            "transl": {"shape": ["B16", 3], "dtype": F32, "meaning": "camera-frame translation, metres"},
        },
        "preprocess": "B16 = 16 x windows; rows of a window are 16 consecutive frames of one track",
        "postprocess": "TRAM's sliding windows (stride 1): the first window gives frames 0-8, the last frames 8-15, "
        "others frame 8; track segments shorter than 16 frames are dropped (parse_chunks)",
        "source": "as vimo_backbone",
        "license": "as vimo_backbone",
        "export": "scripts/export_vimo.py",
    },
    "deco": {
        "file": "deco.onnx",
        "role": "per-vertex body-scene contact (DECO, HRNet-W32)",
        "inputs": {"img": {"shape": ["B", 3, 256, 256], "dtype": F32, "range": "BGR / 255"}},
        "outputs": {"contact": {"shape": ["B", 6890], "dtype": F32, "range": "[0, 1]"}},
        "preprocess": "square box of side max(w, h) x 1.2 about the box centre, clipped to the frame (so it "
        "may be cut), resized to 256 x 256 (bilinear: JOSH passes cv2.INTER_CUBIC in resize's dst "
        "position, so OpenCV's default applies), BGR/255, NCHW",
        "postprocess": "contact >= 0.5 on SMPL's 6890 vertices",
        "source": "DECO (github.com/sha2nkt/deco), deco_best.pth",
        "license": "DECO: data & software license for non-commercial scientific research (see its repository)",
        "export": "scripts/export_deco.py",
    },
    "pi3x": {
        "file": "pi3x.onnx",
        "role": "local point maps and confidence of the keyframes of a window (Pi3X)",
        "inputs": {"imgs": {"shape": [1, "N", 3, "H", "W"], "dtype": F32, "range": "RGB [0, 1]"}},
        "outputs": {
            "local_points": {"shape": [1, "N", "H", "W", 3], "dtype": F32, "meaning": "camera-frame points"},
            "conf": {"shape": [1, "N", "H", "W", 1], "dtype": F32, "meaning": "confidence logits"},
        },
        "preprocess": "N = the keyframes of a window (fixed at export, default 21 = a 101-frame window every 5 "
        "frames; other counts run in groups of N, the last padded with copies of its last frame); "
        "keyframes resized (area resampling; the reference: PIL Lanczos) to W x H, multiples of 14 "
        "with W x H <= 255000 for the video's aspect (the reference's load_images_as_tensor), "
        "value/255, NCHW per frame",
        "postprocess": "focal and shift by MoGe's recover_focal_shift on 64 x 64 nearest samples where "
        "sigmoid(conf) > 0.1, mean focal over frames, times half the diagonal; depth = z and "
        "confidence = sigmoid(conf), bilinear to the working size",
        "source": "Pi3 (github.com/yyfz/Pi3), Hugging Face yyfz233/Pi3X",
        "license": "Pi3: copyright the authors, all rights reserved (see the repository and the model card)",
        "export": "scripts/export_pi3x.py",
    },
    "mast3r": {
        "file": "mast3r.onnx",
        "role": "dense descriptors of an image pair, both orders (MASt3R ViT-L / Base decoder, catmlp+dpt)",
        "inputs": {
            "img1": {"shape": [1, 3, "H", "W"], "dtype": F32, "range": "RGB [-1, 1]"},
            "img2": {"shape": [1, 3, "H", "W"], "dtype": F32, "range": "RGB [-1, 1]"},
        },
        "outputs": {
            "conf": {"shape": [4, "H", "W"], "dtype": F32, "meaning": "point confidence of 11, 21, 22, 12"},
            "desc": {"shape": [4, "H", "W", 24], "dtype": F32, "meaning": "descriptors of 11, 21, 22, 12"},
            "desc_conf": {"shape": [4, "H", "W"], "dtype": F32, "meaning": "descriptor confidence"},
        },
        "preprocess": "keyframes at the working size: long side 512 (area resampling, the closest OpenCV has to "
        "PIL's antialiased Lanczos), centre-cropped to multiples of 16, "
        "value/127.5 - 1, NCHW",
        "postprocess": "sparse_ga symmetric inference: 11/21 from (img1, img2), 22/12 from (img2, img1); person "
        "pixels get desc_conf 0; reciprocal nearest neighbours of the descriptors (dot "
        "product) from an 8-px grid, both directions, merged; match confidence "
        "sqrt(desc_conf_i * desc_conf_j); pair score = matches with confidence > 0 (the reference's "
        "spanning-tree weight); conf is not used (JOSH's scene confidence comes from Pi3X)",
        "source": "MASt3R (github.com/naver/mast3r), MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth",
        "license": "CC BY-NC-SA 4.0 (non-commercial), see the MASt3R repository",
        "export": "scripts/export_mast3r.py",
    },
    "josh3r": {
        "file": "josh3r.onnx",
        "role": "feed-forward JOSH3R for one frame pair three frames apart: the human root's relative motion "
        "and both metric point maps (MASt3R ViT-L backbone + JOSH3R's human heads); only "
        "``--method josh3r`` / ``josh3r+joint`` use it",
        "inputs": {
            "imgs": {
                "shape": [1, 2, 3, "H", "W"],
                "dtype": F32,
                "range": "RGB [-1, 1]",
                "meaning": "the pair (head frame, tail frame), each centre-cropped to half its size and resized back",
            },
            "bbox": {
                "shape": [1, 2, 4],
                "dtype": F32,
                "meaning": "the person's x1, y1, x2, y2 in each cropped image's pixels (the crop's box transform)",
            },
        },
        "outputs": {
            "rel_trans": {
                "shape": [1, 3],
                "dtype": F32,
                "meaning": "root translation head -> tail, head's human frame, metres",
            },
            "rel_rot": {"shape": [1, 6], "dtype": F32, "meaning": "root rotation head -> tail, 6D (two rows)"},
            "trans1": {"shape": [1, 3], "dtype": F32, "meaning": "human translation in camera 1, metres"},
            "trans2": {"shape": [1, 3], "dtype": F32, "meaning": "human translation in camera 2, metres"},
            "X11": {"shape": [1, "HW", 3], "dtype": F32, "meaning": "image 1's points in camera 1 (H x W rows)"},
            "X21": {"shape": [1, "HW", 3], "dtype": F32, "meaning": "image 2's points in camera 1 (H x W rows)"},
            "scale1": {"shape": [1, 1], "dtype": F32, "meaning": "metric scale of X11 (already exp'd)"},
            "scale2": {"shape": [1, 1], "dtype": F32, "meaning": "metric scale of X21 (already exp'd)"},
        },
        "preprocess": "frames resized to long side 512, each side round(x * 512 / long) // 16 * 16 (the "
        "reference's preprocess_image; area resampling, the reference: PIL Lanczos), value/255, "
        "normalised with mean = std = 0.5; centre crop to int(W / 2) x int(H / 2) resized back to "
        "W x H (bilinear); the box (the human front end's, times the resize factor) clipped to the "
        "image, minus the crop's corner, over 0.5",
        "postprocess": "the reference's inference_josh3r: pairs (head, first tracked frame >= head + 3); "
        "rotations from 6D, relative motion turned into the world by the current root rotation and "
        "accumulated; SE(3) interpolation (linear translation, slerp) to every tracked frame; "
        "camera-to-world = smpl_to_world @ inv(smpl_to_camera) with smpl_to_camera from the human "
        "front end; the point cloud from X11 * scale1 on every 10th pair, into the world by that "
        "frame's camera",
        "source": "JOSH (github.com/genforce/JOSH) josh/josh3r/model.py, the JOSH3R checkpoint (--ckpt_path of "
        "josh/inference_josh3r.py)",
        "license": "JOSH code: see its repository; the backbone is MASt3R (CC BY-NC-SA 4.0, non-commercial)",
        "export": "scripts/export_josh3r.py",
    },
}

#: the files ``--frontends official`` needs, in the order the runners use them
REQUIRED = ("person_segmenter", "vimo_backbone", "vimo_temporal", "deco", "pi3x", "mast3r")

#: files that only some methods need (``--method josh3r``)
OPTIONAL = ("josh3r",)


def contract_entry(name: str, fixed: dict | None = None) -> dict:
    """A copy of ``name``'s contract with the export-time axes in ``fixed`` (e.g. {"H": 288, "W": 512})
    written as numbers, as the manifest of an exported file states them."""
    import copy

    entry = copy.deepcopy(CONTRACTS[name])
    for kind in ("inputs", "outputs"):
        for spec in entry[kind].values():
            spec["shape"] = [(fixed or {}).get(d, d) if isinstance(d, str) else d for d in spec["shape"]]
    return entry


def write_manifest(path) -> None:
    """Put the contracts (sha256 unknown: no official export is shipped) into a ``manifest.json``."""
    import json
    from pathlib import Path

    path = Path(path)
    manifest = (
        json.loads(path.read_text()) if path.is_file() else {"format": "josh-onnx-manifest", "version": 1, "models": {}}
    )
    for name, entry in CONTRACTS.items():
        manifest["models"][name] = {**entry, "sha256": manifest["models"].get(name, {}).get("sha256")}
    path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":  # python -m josh_jax.frontends.official.contracts models_onnx/manifest.json
    import sys

    write_manifest(sys.argv[1])
