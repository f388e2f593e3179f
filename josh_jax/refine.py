"""Per-frame refinement after the window solve (``josh+``'s ``refine`` switch).

The window solve optimises keyframes only; :func:`josh_jax.results.build_results`
interpolates every other frame (slerp / linear), so each keyframe's residual
depth and pose error shows up as a kink in the paths (jitter) and as a planted
foot that glides between two keyframes (foot sliding). This stage takes the
per-frame :class:`~josh_jax.results.Results` of one window, holds the cameras
(and the scene) fixed, and optimises a correction on every frame of every
track: a world translation (3), a world root rotation (3, axis-angle) and the
23 local body rotations (23 x 3, axis-angle, right-multiplied) of that frame.

Objective (per track, means over its visible frames; metres):

    w_contact * mean ||v(t+1) - v(t)||^2          planted vertices stay put
  + w_accel   * mean ||J(t+1) - 2 J(t) + J(t-1)||^2   world joints, every joint
  + w_prior   * mean ||J(t) - J_interp(t)||^2        stay near the window solve
  + w_pose    * mean (|d_root|^2 + |d_body|^2)        small rotation corrections

``v`` runs over the stance entries: a vertex labelled in contact on two
consecutive keyframes of the track (``Window.track_contact``) is planted on
every frame between them (at most ``max_vertices`` per keyframe pair, evenly
spread over the shared labels). Shapes are padded (frames, vertices, entries
to :func:`josh_jax.problem.bucket` sizes), so windows of one bucket share one
compiled program; the weights are traced.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .body import BodyModel
from .body.model import forward
from .geometry.rotations import axis_angle_to_matrix
from .problem import bucket


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """Settings of the per-frame refinement. Weights are traced (no recompile); ``iters`` and
    ``max_vertices`` change the program (static)."""

    iters: int = 150  # L-BFGS iterations
    max_vertices: int = 16  # planted vertices per keyframe pair (evenly spread over the shared labels)
    w_contact: float = 1.0e3  # 1 / m^2 per frame of planted-vertex motion
    w_accel: float = 1.0e2  # 1 / m^2 of world-joint acceleration per frame^2
    w_prior: float = 1.0  # 1 / m^2 of joint distance to the window solve's interpolation
    w_pose: float = 1.0e-2  # 1 / rad^2 of rotation correction

    def __post_init__(self):
        if not isinstance(self.iters, int) or self.iters < 1:
            raise ValueError(f"refine iters must be a whole number >= 1, got {self.iters!r}")
        if not isinstance(self.max_vertices, int) or self.max_vertices < 1:
            raise ValueError(f"refine max_vertices must be a whole number >= 1, got {self.max_vertices!r}")
        for name in ("w_contact", "w_accel", "w_prior", "w_pose"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"refine {name} must be a finite number >= 0, got {v!r}")


class RefineWeights(NamedTuple):
    contact: jax.Array
    accel: jax.Array
    prior: jax.Array
    pose: jax.Array


class StanceEntries(NamedTuple):
    """Planted-vertex entries of one window: vertex ``vert`` of track ``track`` does not move
    from frame ``frame`` to ``frame + 1`` (frame = index into the Results' frames)."""

    track: np.ndarray  # (N,) int
    frame: np.ndarray  # (N,) int
    vertex: np.ndarray  # (N,) body-model vertex id


def stance_entries(
    track_valid: np.ndarray,
    track_contact: np.ndarray,
    kf_frames: np.ndarray,
    frames: np.ndarray,
    max_vertices: int = 16,
) -> StanceEntries:
    """Stance entries from keyframe contact labels.

    track_valid (P, K) bool, track_contact (P, K, V) bool, kf_frames (K,) frame numbers of the
    keyframes, frames (F,) the Results' frame numbers. A vertex labelled on keyframes k and k + 1
    of a track (both valid) is planted on every frame from kf_frames[k] to kf_frames[k + 1].
    """
    rows = []
    pos = {int(f): i for i, f in enumerate(frames)}
    P, K = track_valid.shape
    for p in range(P):
        for k in range(K - 1):
            if not (track_valid[p, k] and track_valid[p, k + 1]):
                continue
            shared = np.where(track_contact[p, k] & track_contact[p, k + 1])[0]
            if not len(shared):
                continue
            if len(shared) > max_vertices:
                shared = shared[np.round(np.linspace(0, len(shared) - 1, max_vertices)).astype(int)]
            a, b = int(kf_frames[k]), int(kf_frames[k + 1])
            for f in range(a, b):
                if f in pos and f + 1 in pos:
                    rows += [(p, pos[f], int(v)) for v in shared]
    r = np.array(rows, np.int64).reshape(-1, 3)
    return StanceEntries(track=r[:, 0], frame=r[:, 1], vertex=r[:, 2])


class RefineProblem(NamedTuple):
    """Padded inputs of :func:`refine_program` (P tracks, F frames padded, U vertices, N entries)."""

    visible: jax.Array  # (P, F) bool
    global_orient: jax.Array  # (P, F, 3, 3) world root rotation of the window solve
    body_pose: jax.Array  # (P, F, 23, 3, 3)
    transl: jax.Array  # (P, F, 3) world
    betas: jax.Array  # (P, B)
    entry_track: jax.Array  # (N,)
    entry_frame: jax.Array  # (N,)
    entry_vert: jax.Array  # (N,) row of the vertex table
    entry_w: jax.Array  # (N,) 1 or 0 (padding)


class RefineParams(NamedTuple):
    d_transl: jax.Array  # (P, F, 3) metres, world
    d_root: jax.Array  # (P, F, 3) axis-angle, world (left-multiplied)
    d_body: jax.Array  # (P, F, 23, 3) axis-angle, local (right-multiplied)


def _pose(params: RefineParams, pr: RefineProblem, body: BodyModel):
    go = axis_angle_to_matrix(params.d_root) @ pr.global_orient
    bp = pr.body_pose @ axis_angle_to_matrix(params.d_body)
    rot = jnp.concatenate([go[:, :, None], bp], 2)
    out = forward(body, pr.betas[:, None, :], rot, pr.transl + params.d_transl)
    return out.joints, out.vertices, go, bp


class RefineTerms(NamedTuple):
    total: jax.Array
    contact: jax.Array
    accel: jax.Array
    prior: jax.Array
    pose: jax.Array


def _mean(x, w):
    s = jnp.sum(w)
    return jnp.where(s > 0, jnp.sum(x * w) / jnp.where(s > 0, s, 1.0), 0.0)


def refine_loss(
    params: RefineParams, pr: RefineProblem, body: BodyModel, joints0: jax.Array, w: RefineWeights
) -> RefineTerms:
    """The refinement objective (module docstring); ``joints0`` (P, F, 24, 3) the uncorrected joints."""
    J, V, _, _ = _pose(params, pr, body)
    vis = pr.visible.astype(J.dtype)
    a = pr.entry_track
    dv = V[a, pr.entry_frame + 1, pr.entry_vert] - V[a, pr.entry_frame, pr.entry_vert]
    contact = _mean(jnp.sum(dv * dv, -1), pr.entry_w)
    acc = J[:, 2:] - 2 * J[:, 1:-1] + J[:, :-2]
    w3 = vis[:, 2:] * vis[:, 1:-1] * vis[:, :-2]
    accel = _mean(jnp.mean(jnp.sum(acc * acc, -1), -1), w3)
    d = J - joints0
    prior = _mean(jnp.mean(jnp.sum(d * d, -1), -1), vis)
    pose = _mean(jnp.sum(params.d_root**2, -1) + jnp.sum(params.d_body**2, (-1, -2)), vis)
    total = w.contact * contact + w.accel * accel + w.prior * prior + w.pose * pose
    return RefineTerms(total=total, contact=contact, accel=accel, prior=prior, pose=pose)


@functools.partial(jax.jit, static_argnames=("iters",))
def refine_program(pr: RefineProblem, body: BodyModel, w: RefineWeights, iters: int):
    """L-BFGS on the corrections from zero; returns (params, joints, table vertices, root, body pose,
    terms at the start, terms at the end). A step whose loss is not finite is not taken."""
    P, F = pr.visible.shape
    zeros = RefineParams(d_transl=jnp.zeros((P, F, 3)), d_root=jnp.zeros((P, F, 3)), d_body=jnp.zeros((P, F, 23, 3)))
    joints0 = jax.lax.stop_gradient(_pose(zeros, pr, body)[0])
    fn = lambda q: refine_loss(q, pr, body, joints0, w).total  # noqa: E731
    # a backtracking line search compiles several times faster than optax's default zoom search
    opt = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=20, store_grad=True))
    vg = optax.value_and_grad_from_state(fn)

    def step(carry, _):
        q, state = carry
        value, grad = vg(q, state=state)
        upd, new_state = opt.update(grad, state, q, value=value, grad=grad, value_fn=fn)
        new_q = optax.apply_updates(q, upd)
        ok = jnp.isfinite(optax.tree_utils.tree_get(new_state, "value"))  # the line search's value at new_q
        q = jax.tree_util.tree_map(lambda x, y: jnp.where(ok, x, y), new_q, q)
        state = jax.tree_util.tree_map(lambda x, y: jnp.where(ok, x, y), new_state, state)
        return (q, state), None

    (q, _), _ = jax.lax.scan(step, (zeros, opt.init(zeros)), None, length=iters)
    J, V, go, bp = _pose(q, pr, body)
    return (q, J, V, go, bp, refine_loss(zeros, pr, body, joints0, w), refine_loss(q, pr, body, joints0, w))


def _pow2(n: int, minimum: int) -> int:
    """Next power of two >= n (and >= minimum): coarse buckets, so that windows share a program."""
    return max(minimum, 1 << max(int(n) - 1, 0).bit_length())


def refine_results(res, window, model: BodyModel, cfg: RefineConfig = RefineConfig()):
    """Refine one window's per-frame :class:`~josh_jax.results.Results` (cameras fixed).

    ``window`` is the bundle window the results were built from (keyframe frames, track
    validity, contact labels). Returns (new Results, info dict with the terms before / after).
    """
    frames = np.asarray(res.frame_index)
    P, F = res.visible.shape
    if P == 0 or F < 3:
        return res, {"entries": 0}
    st = stance_entries(
        np.asarray(window.track_valid),
        np.asarray(window.track_contact),
        np.asarray(window.frame_index),
        frames,
        cfg.max_vertices,
    )
    markers = model.vertex_set("foot_markers")
    vids, inv = np.unique(st.vertex, return_inverse=True)
    M = len(markers)
    table = np.zeros(_pow2(M + len(vids), 16), np.int64)  # the exported foot markers, then the planted vertices
    table[:M], table[M : M + len(vids)] = markers, vids
    N = _pow2(len(st.track), 64)
    Fb = bucket(F, 16)

    def padf(a, value=0):
        a = np.asarray(a)
        pad = [(0, 0), (0, Fb - F)] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, pad, mode="edge") if value is None else np.pad(a, pad, constant_values=value)

    pr = RefineProblem(
        visible=jnp.asarray(padf(res.visible, False)),
        global_orient=jnp.asarray(padf(res.global_orient, None), jnp.float32),
        body_pose=jnp.asarray(padf(res.body_pose, None), jnp.float32),
        transl=jnp.asarray(padf(res.transl, None), jnp.float32),
        betas=jnp.asarray(res.betas, jnp.float32),
        entry_track=jnp.asarray(np.pad(st.track, (0, N - len(st.track))), jnp.int32),
        entry_frame=jnp.asarray(np.pad(st.frame, (0, N - len(st.track))), jnp.int32),
        entry_vert=jnp.asarray(np.pad(inv.reshape(-1) + M, (0, N - len(st.track))), jnp.int32),
        entry_w=jnp.asarray(np.pad(np.ones(len(st.track)), (0, N - len(st.track))), jnp.float32),
    )
    w = RefineWeights(*(jnp.asarray(getattr(cfg, f"w_{n}"), jnp.float32) for n in RefineWeights._fields))
    body = model.subset(table)
    q, J, V, go, bp, t0, t1 = refine_program(pr, body, w, cfg.iters)
    V = np.asarray(V)[:, :, :M]  # the foot markers
    vis = np.asarray(res.visible)
    keep = vis[..., None, None]
    out = res.to_dict()
    out["joints_world"] = np.where(keep, np.asarray(J)[:, :F], res.joints_world).astype(np.float32)
    out["foot_vertices_world"] = np.where(keep, np.asarray(V)[:, :F], res.foot_vertices_world).astype(np.float32)
    out["global_orient"] = np.where(keep, np.asarray(go)[:, :F], res.global_orient).astype(np.float32)
    out["body_pose"] = np.where(vis[..., None, None, None], np.asarray(bp)[:, :F], res.body_pose).astype(np.float32)
    out["transl"] = np.where(vis[..., None], np.asarray(res.transl) + np.asarray(q.d_transl)[:, :F], res.transl).astype(
        np.float32
    )
    info = {
        "entries": int(len(st.track)),
        "before": {k: float(v) for k, v in t0._asdict().items()},
        "after": {k: float(v) for k, v in t1._asdict().items()},
    }
    return type(res)(**out), info
