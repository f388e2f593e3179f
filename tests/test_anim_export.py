"""animation.glb and BVH: read back by independent readers, joints equal joints_world to 1 mm."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from josh_jax.body import SMPL_JOINT_NAMES, forward
from josh_jax.export.anim import Y_UP, build_gltf, write_animation
from josh_jax.export.bvh import write_bvh
from josh_jax.export.gltf_sample import GltfReader
from josh_jax.export.motion import motion_of
from josh_jax.export.scene import main as export_main
from josh_jax.synthetic.worlds import SynthConfig, make_world

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(open_model):
    _, gt = make_world(open_model, 0, SynthConfig(num_keyframes=4, width=96, height=72, focal=90.0, pair_window=2))
    gt = dict(gt)
    # hide the person on the last two frames: the export must keep frames aligned and hide it there
    gt["visible"] = gt["visible"].copy()
    gt["visible"][0, -2:] = False
    return gt


def _frames(F):
    return [0, F // 2, F - 3]


def test_gltf_joints_equal_results(world, open_model, tmp_path):
    m = motion_of(world, fps=25.0)
    path = write_animation(m, open_model, tmp_path / "animation.glb")
    r = GltfReader(path)
    times = r.times()
    F = len(m.frame_index)
    assert len(times) == F and np.allclose(times, np.arange(F) / 25.0, atol=1e-6)
    assert r.gl.asset.extras == {"fps": 25.0, "first_video_frame": int(m.frame_index[0])}
    pid = int(m.person_ids[0])
    idx = [r.names[f"p{pid}_{n}"] for n in SMPL_JOINT_NAMES]
    for f in _frames(F):
        G = r.world_matrices(float(times[f]))
        joints = G[idx, :3, 3] @ Y_UP  # y-up back to the OpenCV world (Y_UP is its own inverse)
        assert np.abs(joints - world["joints_world"][0, f]).max() < 1e-3
        # the camera node: glTF camera axes (looks down -z, y up) -> OpenCV
        Tc = G[r.names["camera"]]
        R = Y_UP @ Tc[:3, :3] @ np.diag([1.0, -1.0, -1.0])
        assert np.abs(R - world["cam_to_world"][f, :3, :3]).max() < 1e-4
        assert np.abs(Y_UP @ Tc[:3, 3] - world["cam_to_world"][f, :3, 3]).max() < 1e-4
    # the skinned mesh follows the body (top-4 weights): vertices near the model's own, mesh shown
    mesh = r.names[f"person_{pid}_mesh"]
    f = F // 2
    v, faces = r.skinned_vertices(mesh, float(times[f]))
    rot = np.concatenate([world["global_orient"][0, f][None], world["body_pose"][0, f]], 0)
    ref = np.asarray(forward(open_model, world["betas"][0], rot.astype(np.float32), world["transl"][0, f]).vertices)
    err = np.linalg.norm(v @ Y_UP - ref, axis=1)
    assert np.median(err) < 0.005 and err.max() < 0.05
    assert faces.shape == np.asarray(open_model.faces).shape
    # hidden on invisible frames (scale 0 step channel), shown otherwise
    v_last, _ = r.skinned_vertices(mesh, float(times[-1]))
    assert np.ptp(v_last, axis=0).max() < 1e-6 and np.ptp(v, axis=0).max() > 1.0


def test_gltf_structure_and_validator(world, open_model, tmp_path):
    gl = build_gltf(motion_of(world, 30.0), open_model)
    (skin,) = gl.skins
    assert len(skin.joints) == 24 and gl.accessors[skin.inverseBindMatrices].count == 24
    assert gl.accessors[skin.inverseBindMatrices].type == "MAT4"
    blob_len = len(gl.binary_blob())
    for a in gl.accessors:  # every accessor inside its view, every view inside the buffer
        bv = gl.bufferViews[a.bufferView]
        assert bv.byteOffset % 4 == 0 and bv.byteOffset + bv.byteLength <= blob_len
    (anim,) = gl.animations
    for ch in anim.channels:
        s = anim.samplers[ch.sampler]
        assert gl.accessors[s.input].count == gl.accessors[s.output].count
        assert gl.accessors[s.input].min is not None and gl.accessors[s.input].max is not None
    paths = {(ch.target.node, ch.target.path) for ch in anim.channels}
    assert sum(p == "rotation" for _, p in paths) == 24 + 1  # every joint and the camera
    assert (skin.skeleton, "translation") in paths and (skin.skeleton, "scale") in paths
    prim = gl.meshes[0].primitives[0]
    assert prim.attributes.JOINTS_0 is not None and prim.attributes.WEIGHTS_0 is not None
    # the Khronos validator, where installed (npm gltf-validator; .ci/run installs it)
    node_dir = os.environ.get("GLTF_VALIDATOR_DIR", str(REPO / ".ci" / "node"))
    if shutil.which("node") and (Path(node_dir) / "node_modules" / "gltf-validator").is_dir():
        path = write_animation(motion_of(world, 30.0), open_model, tmp_path / "animation.glb")
        script = (
            "const v=require('gltf-validator');"
            "const d=new Uint8Array(require('fs').readFileSync(process.argv[1]));"
            "v.validateBytes(d).then(r=>console.log(JSON.stringify(r.issues)))"
        )
        out = subprocess.run(
            ["node", "-e", script, str(path)], cwd=node_dir, capture_output=True, text=True, timeout=120, check=True
        )
        issues = json.loads(out.stdout)
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


def read_bvh(path):
    """A small BVH reader: joint names, parents, offsets, channels; frames (F, C); frame time."""
    tok = Path(path).read_text().split()
    names, parents, offsets, channels = [], [], [], []
    stack, i, end = [], 0, False
    while tok[i] != "MOTION":
        t = tok[i]
        if t in ("ROOT", "JOINT"):
            names.append(tok[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif t == "End":
            end = True
            i += 2
        elif t == "{":
            if not end:
                stack.append(len(names) - 1)
            i += 1
        elif t == "}":
            if end:
                end = False
            else:
                stack.pop()
            i += 1
        elif t == "OFFSET":
            if not end:
                offsets.append([float(x) for x in tok[i + 1 : i + 4]])
            i += 4
        elif t == "CHANNELS":
            n = int(tok[i + 1])
            channels.append(tok[i + 2 : i + 2 + n])
            i += 2 + n
        else:
            i += 1
    assert tok[i + 1] == "Frames:" and tok[i + 3 : i + 5] == ["Frame", "Time:"]
    F, dt = int(tok[i + 2]), float(tok[i + 5])
    data = np.array([float(x) for x in tok[i + 6 :]]).reshape(F, -1)
    return names, parents, np.array(offsets), channels, data, dt


def _axis(a, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {
        "X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[a]


def bvh_positions(names, parents, offsets, channels, row):
    """World joint positions of one frame (channels applied in their listed order, R = R1 R2 R3)."""
    R, P, k = {}, {}, 0
    for j, (par, off, ch) in enumerate(zip(parents, offsets, channels)):
        rot, pos = np.eye(3), np.array(off, float)
        for c in ch:
            v = row[k]
            k += 1
            if c.endswith("position"):
                pos = pos + v * np.eye(3)["XYZ".index(c[0])]
            else:
                rot = rot @ _axis(c[0], v)
        if par < 0:
            R[j], P[j] = rot, pos
        else:
            R[j], P[j] = R[par] @ rot, P[par] + R[par] @ pos
    return np.stack([P[j] for j in range(len(names))])


def test_bvh_joints_equal_results(world, open_model, tmp_path):
    m = motion_of(world, fps=24.0)
    (path,) = write_bvh(m, open_model, tmp_path / "bvh")
    assert path.name == f"person_{int(m.person_ids[0])}.bvh"
    names, parents, offsets, channels, data, dt = read_bvh(path)
    assert sorted(names) == sorted(SMPL_JOINT_NAMES) and abs(dt - 1 / 24) < 1e-7 and len(data) == len(m.frame_index)
    order = [names.index(n) for n in SMPL_JOINT_NAMES]
    for f in _frames(len(data)):
        pos = bvh_positions(names, parents, offsets, channels, data[f])[order] @ Y_UP
        assert np.abs(pos - world["joints_world"][0, f]).max() < 1e-3


def test_export_cli_formats(world, tmp_path, capsys):
    d = tmp_path / "out"
    d.mkdir()
    np.savez(d / "results.npz", **world)
    (d / "summary.json").write_text(json.dumps({"fps": 12.5}))
    assert export_main([str(d), "--formats", "glb,gltf-anim,bvh"]) == 0
    assert (d / "scene.glb").is_file() and (d / "animation.glb").is_file()
    assert (d / "bvh" / "person_0.bvh").is_file()
    assert abs(read_bvh(d / "bvh" / "person_0.bvh")[5] - 1 / 12.5) < 1e-7  # fps from summary.json
    capsys.readouterr()
    before = (d / "results.npz").read_bytes()
    for argv in (
        [str(d), "--formats", "gltf-anim,fbx"],
        [str(d), "--out", str(d / "results.npz")],
        [str(tmp_path / "missing")],
        [str(d), "--fps", "0"],
    ):
        assert export_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")
    assert (d / "results.npz").read_bytes() == before
    # outputs that exist (the demo's own init.npz, an earlier scene.glb) are replaced only with --overwrite
    (d / "init.npz").write_bytes(b"the demo's init")
    assert export_main([str(d), "--out", str(d / "init.npz")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (d / "init.npz").read_bytes() == b"the demo's init"
    assert export_main([str(d), "--formats", "glb,bvh"]) == 2
    assert "exists" in capsys.readouterr().err
    assert export_main([str(d), "--formats", "glb,bvh", "--overwrite"]) == 0
