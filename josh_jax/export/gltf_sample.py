"""Read an animated glTF back (with pygltflib) and evaluate it at a time: node world
transforms and skinned meshes, as a glTF viewer would.

A small, generic reader of what glTF 2.0 specifies (accessors, node TRS, LINEAR /
STEP samplers with quaternion slerp, linear-blend skinning with JOINTS_0 /
WEIGHTS_0); it knows nothing of how josh_jax wrote the file, so the tests use it
to check ``animation.glb`` independently, and the README frames are rendered from
it. Cubic-spline samplers and morph targets are not supported (josh_jax writes
neither).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_COMP = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


class GltfReader:
    def __init__(self, path: str | Path):
        import pygltflib

        self.gl = pygltflib.GLTF2().load(str(path))
        self.blob = self.gl.binary_blob()
        self.parent = {c: i for i, n in enumerate(self.gl.nodes) for c in (n.children or [])}
        self.names = {n.name: i for i, n in enumerate(self.gl.nodes)}

    def accessor(self, i: int) -> np.ndarray:
        a = self.gl.accessors[i]
        bv = self.gl.bufferViews[a.bufferView]
        dt = np.dtype(_COMP[a.componentType])
        n = _NCOMP[a.type]
        stride = bv.byteStride or dt.itemsize * n
        start = (bv.byteOffset or 0) + (a.byteOffset or 0)
        raw = np.frombuffer(self.blob, np.uint8, count=stride * (a.count - 1) + dt.itemsize * n, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (a.count, dt.itemsize * n), (stride, 1))
        out = np.ascontiguousarray(rows).view(dt).reshape(a.count, n)
        if a.normalized:
            out = out.astype(np.float64) / np.iinfo(dt).max
        return out

    def times(self, animation: int = 0) -> np.ndarray:
        """Sorted union of the sampler input times of an animation."""
        an = self.gl.animations[animation]
        return np.unique(np.concatenate([self.accessor(s.input)[:, 0] for s in an.samplers]))

    def local_trs(self, t: float | None, animation: int = 0):
        """Per node (translation (3,), rotation xyzw (4,), scale (3,)) at time t (None: the static TRS)."""
        trs = []
        for n in self.gl.nodes:
            trs.append(
                [
                    np.array(n.translation or [0, 0, 0], float),
                    np.array(n.rotation or [0, 0, 0, 1], float),
                    np.array(n.scale or [1, 1, 1], float),
                ]
            )
        if t is None or not self.gl.animations:
            return trs
        an = self.gl.animations[animation]
        for ch in an.channels:
            s = an.samplers[ch.sampler]
            x = self.accessor(s.input)[:, 0].astype(float)
            y = self.accessor(s.output).astype(float)
            k = int(np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 1))
            if s.interpolation == "STEP" or k == len(x) - 1 or t <= x[0]:
                v = y[k] if t >= x[0] else y[0]
            elif s.interpolation == "LINEAR":
                a = (t - x[k]) / (x[k + 1] - x[k])
                v = _slerp(y[k], y[k + 1], a) if ch.target.path == "rotation" else (1 - a) * y[k] + a * y[k + 1]
            else:
                raise ValueError(f"sampler interpolation {s.interpolation} not supported")
            trs[ch.target.node][{"translation": 0, "rotation": 1, "scale": 2}[ch.target.path]] = v
        return trs

    def world_matrices(self, t: float | None = None, animation: int = 0) -> np.ndarray:
        """(nodes, 4, 4) world transform of every node at time t."""
        trs = self.local_trs(t, animation)
        local = np.stack([_matrix(*x) for x in trs])
        out = np.full_like(local, np.nan)

        def world(i):
            if np.isnan(out[i, 0, 0]):
                out[i] = (world(self.parent[i]) @ local[i]) if i in self.parent else local[i]
            return out[i]

        for i in range(len(local)):
            world(i)
        return out

    def skinned_vertices(self, mesh_node: int, t: float | None = None, animation: int = 0):
        """World vertices (V, 3) and faces (T, 3) of a skinned mesh node's first primitive at time t."""
        node = self.gl.nodes[mesh_node]
        prim = self.gl.meshes[node.mesh].primitives[0]
        v = self.accessor(prim.attributes.POSITION).astype(float)
        faces = self.accessor(prim.indices).reshape(-1, 3).astype(np.int64)
        G = self.world_matrices(t, animation)
        if node.skin is None:
            M = G[mesh_node]
            return v @ M[:3, :3].T + M[:3, 3], faces
        skin = self.gl.skins[node.skin]
        ibm = self.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
        J = G[np.asarray(skin.joints)] @ ibm  # (J, 4, 4)
        ji = self.accessor(prim.attributes.JOINTS_0).astype(np.int64)
        w = self.accessor(prim.attributes.WEIGHTS_0).astype(float)
        M = np.einsum("vk,vkab->vab", w, J[ji])
        return np.einsum("vab,vb->va", M[:, :3, :3], v) + M[:, :3, 3], faces


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _matrix(t, q, s) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = _quat_matrix(q) * np.asarray(s, float)[None, :]
    M[:3, 3] = t
    return M


def _slerp(q0, q1, a):
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    d = float(q0 @ q1)
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)
