"""``animation.glb``: the result as an animated glTF 2.0 that Blender imports and plays.

Contents, in metres, y-up (josh_jax's OpenCV world turned 180 degrees about x,
the same frame as ``scene.glb``):

- per person, a skinned mesh (the body shaped by its betas, in the rest pose)
  and a 24-joint skeleton in SMPL order (nodes ``p<ID>_<joint name>``) with
  inverse bind matrices from the rest pose; one animation holds a rotation
  channel per joint and frame, the root's translation, and, where the person is
  not on every frame, a step scale channel that hides it (scale 0) there;
- the camera path as an animated perspective camera node (``camera``; vertical
  field of view from fy and the image height; glTF cameras have no principal
  point offset);
- the scene points (a point primitive with vertex colours).

Time t = (frame_index - frame_index[0]) / fps, so keyframe i of the animation is
row i of results.npz. Joint positions equal ``joints_world`` exactly (up to
float32); the mesh is linear-blend skinned with at most 4 joints per vertex (the
strongest, renormalised: what glTF viewers support), and SMPL's pose correctives
are not represented (the embedded open body has none).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from josh_jax._cli.atomic import write_text_atomic
from josh_jax.body import SMPL_JOINT_NAMES, SMPL_PARENTS
from josh_jax.export.motion import Motion

Y_UP = np.diag([1.0, -1.0, -1.0])  # OpenCV world -> y-up (as josh_jax.export.scene)
CV_TO_GL_CAM = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> glTF camera axes (looks down -z, y up)
PALETTE = np.array([[0.90, 0.35, 0.27], [0.27, 0.55, 0.90], [0.35, 0.75, 0.35], [0.86, 0.70, 0.24]])


def quat_xyzw(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (x, y, z, w), sign continuous along axis -3."""
    from scipy.spatial.transform import Rotation

    shp = R.shape[:-2]
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat().reshape(shp + (4,))
    if q.ndim >= 2 and q.shape[0] > 1:  # no hemisphere flips between consecutive frames (axis 0 = time)
        for i in range(1, q.shape[0]):
            q[i] = np.where((np.sum(q[i] * q[i - 1], -1) < 0)[..., None], -q[i], q[i])
    return q


def top4_weights(W: np.ndarray):
    """(V, 24) skinning weights -> joints (V, 4) uint16 and weights (V, 4) float32 summing to 1."""
    idx = np.argsort(-W, axis=1)[:, :4]
    w = np.take_along_axis(W, idx, 1).clip(0)
    w = w / w.sum(1, keepdims=True)
    w[w < 1e-6] = 0
    w = w / w.sum(1, keepdims=True)
    idx = np.where(w > 0, idx, 0)
    return idx.astype(np.uint16), w.astype(np.float32)


def nearest_visible(vis: np.ndarray) -> np.ndarray:
    """(F,) bool -> (F,) index of the nearest True frame (itself where True; arange if none)."""
    F = len(vis)
    on = np.where(vis)[0]
    if len(on) == 0:
        return np.arange(F)
    return on[np.abs(on[None, :] - np.arange(F)[:, None]).argmin(1)]


class _Blob:
    """Binary buffer, buffer views and accessors of one glTF (4-byte aligned)."""

    def __init__(self, gl):
        self.gl, self.data = gl, bytearray()

    def accessor(self, arr: np.ndarray, type_: str, target=None, normalized=False, minmax=False) -> int:
        import pygltflib as g

        comp = {
            np.dtype(np.float32): g.FLOAT,
            np.dtype(np.uint16): g.UNSIGNED_SHORT,
            np.dtype(np.uint32): g.UNSIGNED_INT,
            np.dtype(np.uint8): g.UNSIGNED_BYTE,
        }[arr.dtype]
        arr = np.ascontiguousarray(arr)
        while len(self.data) % 4:
            self.data.append(0)
        off = len(self.data)
        self.data += arr.tobytes()
        self.gl.bufferViews.append(g.BufferView(buffer=0, byteOffset=off, byteLength=arr.nbytes, target=target))
        n = arr.shape[0]
        flat = arr.reshape(n, -1)
        acc = g.Accessor(
            bufferView=len(self.gl.bufferViews) - 1,
            componentType=comp,
            count=n,
            type=type_,
            normalized=normalized or None,
        )
        if minmax:
            acc.min = [float(x) if arr.dtype == np.float32 else int(x) for x in flat.min(0)]
            acc.max = [float(x) if arr.dtype == np.float32 else int(x) for x in flat.max(0)]
        self.gl.accessors.append(acc)
        return len(self.gl.accessors) - 1


def build_gltf(m: Motion, model, max_points: int = 100_000):
    """A pygltflib.GLTF2 of the motion (see the module docstring)."""
    import pygltflib as g

    from josh_jax.body import rest_joints

    # glTF has no frame rate; asset.extras records the video's (keyframe i = results row i = video frame
    # first_video_frame + i, when every frame is a row)
    gl = g.GLTF2(
        asset=g.Asset(
            generator="josh_jax.export.anim",
            version="2.0",
            extras={"fps": float(m.fps), "first_video_frame": int(m.frame_index[0])},
        )
    )
    gl.scenes.append(g.Scene(nodes=[]))
    gl.scene = 0
    blob = _Blob(gl)
    roots = gl.scenes[0].nodes
    times = ((m.frame_index - m.frame_index[0]) / m.fps).astype(np.float32)
    t_acc = blob.accessor(times, "SCALAR", minmax=True)
    anim = g.Animation(name="josh", samplers=[], channels=[])

    def channel(node: int, path: str, values: np.ndarray, type_: str, interp="LINEAR", inp=t_acc):
        out = blob.accessor(values.astype(np.float32), type_)
        anim.samplers.append(g.AnimationSampler(input=inp, output=out, interpolation=interp))
        anim.channels.append(
            g.AnimationChannel(sampler=len(anim.samplers) - 1, target=g.AnimationChannelTarget(node=node, path=path))
        )

    faces = np.asarray(model.faces, np.uint32).reshape(-1)
    v_t, S = np.asarray(model.v_template, np.float64), np.asarray(model.shapedirs, np.float64)
    joints4, weights4 = top4_weights(np.asarray(model.weights, np.float64))
    j_acc = blob.accessor(joints4, "VEC4", target=g.ARRAY_BUFFER)
    w_acc = blob.accessor(weights4, "VEC4", target=g.ARRAY_BUFFER)
    i_acc = blob.accessor(faces, "SCALAR", target=g.ELEMENT_ARRAY_BUFFER, minmax=True)
    for p, pid in enumerate(m.person_ids):
        betas = np.asarray(m.betas[p], np.float64)
        nb = min(len(betas), S.shape[-1])
        J = np.asarray(rest_joints(model, m.betas[p][:nb]), np.float64)  # (24, 3) body frame (y up)
        verts = (v_t + S[..., :nb] @ betas[:nb]).astype(np.float32)
        vis = m.visible[p]
        # frames where the person is not placed hold the nearest placed frame (hidden by the scale channel)
        rows = nearest_visible(vis)
        rot = m.rotmats[p][rows].copy()  # (F, 24, 3, 3)
        rot[:, 0] = Y_UP @ rot[:, 0]
        root_t = (m.transl[p][rows] + J[0]) @ Y_UP.T  # root joint position, y-up world
        base = len(gl.nodes)
        for j, (name, parent) in enumerate(zip(SMPL_JOINT_NAMES, SMPL_PARENTS)):
            off = J[j] - (J[parent] if parent >= 0 else 0)
            gl.nodes.append(
                g.Node(name=f"p{int(pid)}_{name}", translation=[float(x) for x in off], rotation=[0.0, 0.0, 0.0, 1.0])
            )
        for j, parent in enumerate(SMPL_PARENTS):
            if parent >= 0:
                gl.nodes[base + parent].children.append(base + j)
        roots.append(base)
        ibm = np.tile(np.eye(4), (24, 1, 1))
        ibm[:, :3, 3] = -J  # rest pose: joint frames are pure translations to J (body frame)
        ibm_acc = blob.accessor(np.transpose(ibm, (0, 2, 1)).reshape(24, 16).astype(np.float32), "MAT4")
        gl.skins.append(
            g.Skin(
                name=f"person_{int(pid)}",
                joints=list(range(base, base + 24)),
                skeleton=base,
                inverseBindMatrices=ibm_acc,
            )
        )
        col = PALETTE[p % len(PALETTE)]
        pbr = g.PbrMetallicRoughness(
            baseColorFactor=[float(col[0]), float(col[1]), float(col[2]), 1.0], metallicFactor=0.0, roughnessFactor=0.8
        )
        gl.materials.append(g.Material(name=f"person_{int(pid)}", doubleSided=True, pbrMetallicRoughness=pbr))
        pos_acc = blob.accessor(verts, "VEC3", target=g.ARRAY_BUFFER, minmax=True)
        prim = g.Primitive(
            attributes=g.Attributes(POSITION=pos_acc, JOINTS_0=j_acc, WEIGHTS_0=w_acc),
            indices=i_acc,
            material=len(gl.materials) - 1,
        )
        gl.meshes.append(g.Mesh(name=f"person_{int(pid)}", primitives=[prim]))
        gl.nodes.append(g.Node(name=f"person_{int(pid)}_mesh", mesh=len(gl.meshes) - 1, skin=len(gl.skins) - 1))
        roots.append(len(gl.nodes) - 1)
        q = quat_xyzw(rot)  # (F, 24, 4)
        gl.nodes[base].translation = [float(x) for x in root_t[0]]
        gl.nodes[base].rotation = [float(x) for x in q[0, 0]]
        channel(base, "translation", root_t, "VEC3")
        for j in range(24):
            channel(base + j, "rotation", q[:, j], "VEC4")
        if not vis.all():
            channel(base, "scale", np.repeat(vis.astype(np.float32)[:, None], 3, 1), "VEC3", interp="STEP")

    # camera
    Wimg, Himg = (int(x) for x in m.image_size)
    fy = float(m.intrinsics[1, 1])
    gl.cameras.append(
        g.Camera(
            name="camera",
            type="perspective",
            perspective=g.Perspective(
                yfov=float(2 * np.arctan(Himg / (2 * fy))), aspectRatio=Wimg / Himg, znear=0.01, zfar=1000.0
            ),
        )
    )
    Rc = Y_UP @ m.cam_to_world[:, :3, :3] @ CV_TO_GL_CAM
    tc = m.cam_to_world[:, :3, 3] @ Y_UP.T
    qc = quat_xyzw(Rc)
    gl.nodes.append(
        g.Node(name="camera", camera=0, translation=[float(x) for x in tc[0]], rotation=[float(x) for x in qc[0]])
    )
    cam_node = len(gl.nodes) - 1
    roots.append(cam_node)
    channel(cam_node, "translation", tc, "VEC3")
    channel(cam_node, "rotation", qc, "VEC4")

    # scene points
    pts, cols = m.points, m.point_colors
    if len(pts) > max_points:
        keep = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
        pts, cols = pts[keep], cols[keep]
    if len(pts):
        rgba = np.concatenate([cols, np.full((len(cols), 1), 255, np.uint8)], 1)
        pa = blob.accessor(
            (pts.astype(np.float64) @ Y_UP.T).astype(np.float32), "VEC3", target=g.ARRAY_BUFFER, minmax=True
        )
        ca = blob.accessor(rgba, "VEC4", target=g.ARRAY_BUFFER, normalized=True)
        gl.materials.append(
            g.Material(
                name="points",
                pbrMetallicRoughness=g.PbrMetallicRoughness(
                    baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0
                ),
            )
        )
        gl.meshes.append(
            g.Mesh(
                name="scene_points",
                primitives=[
                    g.Primitive(
                        attributes=g.Attributes(POSITION=pa, COLOR_0=ca), mode=g.POINTS, material=len(gl.materials) - 1
                    )
                ],
            )
        )
        gl.nodes.append(g.Node(name="scene_points", mesh=len(gl.meshes) - 1))
        roots.append(len(gl.nodes) - 1)

    gl.animations.append(anim)
    while len(blob.data) % 4:
        blob.data.append(0)
    gl.buffers.append(g.Buffer(byteLength=len(blob.data)))
    gl.set_binary_blob(bytes(blob.data))
    return gl


def write_animation(m: Motion, model, path: str | Path) -> Path:
    """Write ``animation.glb`` atomically (temp file in the same folder, then rename)."""
    return write_text_atomic(path, b"".join(build_gltf(m, model).save_to_bytes()))


FORMATS = ("glb", "gltf-anim", "bvh")
OUTPUT_NAMES = {"glb": "scene.glb", "gltf-anim": "animation.glb", "bvh": "bvh/"}


def write_motion_exports(
    res, model, folder: str | Path, fps: float | None = None, formats=("gltf-anim", "bvh")
) -> list[str]:
    """The animated exports of a result into ``folder``: ``animation.glb`` and ``bvh/person_<ID>.bvh``.

    ``res``: a results dict (or anything :func:`josh_jax.export.motion.motion_of` reads).
    Returns the names written (relative to ``folder``), as listed in summary.json.
    """
    from josh_jax.export.bvh import write_bvh
    from josh_jax.export.motion import motion_of

    folder = Path(folder)
    m = motion_of(res, fps)
    names = []
    if "gltf-anim" in formats:
        write_animation(m, model, folder / "animation.glb")
        names.append("animation.glb")
    if "bvh" in formats:
        write_bvh(m, model, folder / "bvh")
        names.append("bvh/")
    return names
