"""Scene of the official front ends: Pi3X point maps -> focal, depth, confidence; MASt3R -> matches.

Pixels are (x, y); depth maps (K, H, W). Everything here is numpy on the
model outputs, reimplementing what the reference does with them:

- focal from local point maps: MoGe's ``recover_focal_shift`` as JOSH calls it
  (confident pixels, 64 x 64 nearest samples, a Levenberg-Marquardt solve for
  the z shift with the focal in closed form);
- matching: MASt3R's ``fast_reciprocal_NNs`` on the descriptors (dot
  product, brute force as the reference on CUDA) from an 8-pixel grid, and
  ``extract_correspondences``' merge of the two decoder orders.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..blazepose import sigmoid


def view_plane_uv(width: int, height: int) -> np.ndarray:
    """(H, W, 2) image coordinates normalised by the half diagonal (MoGe's ``normalized_view_plane_uv``)."""
    aspect = width / height
    sx, sy = aspect / np.hypot(1, aspect), 1 / np.hypot(1, aspect)
    u = np.linspace(-sx * (width - 1) / width, sx * (width - 1) / width, width, dtype=np.float32)
    v = np.linspace(-sy * (height - 1) / height, sy * (height - 1) / height, height, dtype=np.float32)
    return np.stack(np.meshgrid(u, v, indexing="xy"), -1)


def _nearest(a: np.ndarray, size: int = 64) -> np.ndarray:
    """``F.interpolate(mode='nearest')`` of the first two axes to size x size."""
    H, W = a.shape[:2]
    return a[(np.arange(size) * H // size)][:, (np.arange(size) * W // size)]


def focal_shift(points: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Normalised focal and z shift of one local point map (H, W, 3) from its pixels where ``mask``.

    Minimises |f * xy / (z + shift) - uv| over shift with f in closed form; (1, 0) when fewer than two
    pixels are valid (the reference's fallback).
    """
    from scipy.optimize import least_squares

    H, W = points.shape[:2]
    uv = _nearest(view_plane_uv(W, H))[_nearest(mask)]
    p = _nearest(points)[_nearest(mask)].astype(np.float64)
    if len(uv) < 2:
        return 1.0, 0.0
    xy, z, uv = p[:, :2], p[:, 2], uv.astype(np.float64)

    def resid(shift):
        proj = xy / (z + shift)[:, None]
        f = (proj * uv).sum() / np.square(proj).sum()
        return (f * proj - uv).ravel()

    shift = float(least_squares(resid, x0=0.0, ftol=1e-3, method="lm").x[0])
    proj = xy / (z + shift)[:, None]
    return float((proj * uv).sum() / np.square(proj).sum()), shift


def pi3x_scene(
    local_points: np.ndarray,
    conf_logits: np.ndarray,
    resized: tuple[int, int],
    work: tuple[int, int],
    conf_thres: float = 0.1,
):
    """Depth, confidence and focal of a window from Pi3X outputs.

    ``local_points`` (N, h, w, 3) and ``conf_logits`` (N, h, w[, 1]) at the Pi3X size; ``resized`` is the
    frame size before the centre crop to ``work``. Returns depth (N, H, W), conf (N, H, W) and the focal
    in working pixels (the mean over frames, as the reference).
    """
    from .images import centre_crop

    N, h, w = local_points.shape[:3]
    conf = sigmoid(conf_logits.reshape(N, h, w).astype(np.float64)).astype(np.float32)
    f_norm = np.mean([focal_shift(local_points[i], conf[i] > conf_thres)[0] for i in range(N)])
    focal = float(f_norm * np.hypot(h, w) / 2 * resized[0] / w)
    rs = lambda a: cv2.resize(a, resized, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    depth = np.stack([centre_crop(rs(local_points[i, :, :, 2].astype(np.float32)), work) for i in range(N)])
    conf_w = np.stack([centre_crop(rs(conf[i]), work) for i in range(N)])
    return depth, conf_w, focal


# ---------------------------------------------------------------- matching


def _argmax_dot_numpy(q: np.ndarray, db: np.ndarray, block: int = 128) -> np.ndarray:
    out = np.empty(len(q), np.int64)
    for s in range(0, len(q), block):
        out[s : s + block] = np.argmax(q[s : s + block] @ db.T, axis=1)
    return out


@functools.cache
def _argmax_dot_jax():
    import jax
    import jax.numpy as jnp

    @jax.jit
    def f(q, db):  # q (n * 256, D)
        return jax.lax.map(lambda qb: jnp.argmax(qb @ db.T, axis=1), q.reshape(-1, 256, q.shape[1])).reshape(-1)

    return f


def _use_gpu() -> bool:
    try:
        import jax

        return jax.default_backend() == "gpu"
    except Exception:  # pragma: no cover
        return False


def argmax_dot(q: np.ndarray, db) -> np.ndarray:
    """Row of ``db`` with the largest dot product, for each row of ``q``: brute force as the reference
    (on the GPU through JAX when JAX has one; numpy in blocks otherwise)."""
    if isinstance(db, np.ndarray):
        return _argmax_dot_numpy(q, db)
    n = len(q)
    pad = -n % 256 + (256 if n == 0 else 0)
    qp = np.concatenate([q, np.zeros((pad, q.shape[1]), q.dtype)])
    return np.asarray(_argmax_dot_jax()(qp, db))[:n]


def _searchable(flat: np.ndarray):
    """What :func:`argmax_dot` searches: the flat descriptors, on the GPU when JAX has one."""
    if _use_gpu():
        import jax.numpy as jnp

        return jnp.asarray(flat)
    return flat


def reciprocal_nns(A: np.ndarray, B: np.ndarray, subsample: int = 8, max_iter: int = 10, search=None):
    """MASt3R's ``fast_reciprocal_NNs`` with the dot product: flat pixel indices (idx_A, idx_B) of the
    grid points of ``A`` (H1, W1, D) whose nearest-neighbour walk A -> B -> A comes back within
    ``max_iter`` steps. ``search``: :func:`_searchable` of A and B, when the caller reuses them."""
    H1, W1, D = A.shape
    a, b = A.reshape(-1, D), B.reshape(-1, D)
    da, db = search or (_searchable(a), _searchable(b))
    y, x = np.mgrid[subsample // 2 : H1 : subsample, subsample // 2 : W1 : subsample].reshape(2, -1)
    xy1 = np.unique(x + W1 * y).astype(np.int64)
    xy2 = np.full_like(xy1, -1)
    old1, old2 = xy1.copy(), xy2.copy()
    notyet = np.ones(len(xy1), bool)
    for _ in range(max_iter):
        if not notyet.any():
            break
        xy2[notyet] = argmax_dot(a[xy1[notyet]], db)
        notyet &= old2 != xy2
        xy1[notyet] = argmax_dot(b[xy2[notyet]], da)
        notyet &= old1 != xy1
        old1[:], old2[:] = xy1, xy2
    keep = ~notyet
    return xy1[keep], xy2[keep]


def match_pair(
    desc: np.ndarray,
    desc_conf: np.ndarray,
    person1: np.ndarray | None = None,
    person2: np.ndarray | None = None,
    subsample: int = 8,
):
    """Correspondences of one image pair from MASt3R's symmetric outputs.

    ``desc`` (4, H, W, D) and ``desc_conf`` (4, H, W) in the order 11, 21, 22, 12 (image 1 seen from
    pair (1, 2), image 2 from (1, 2), image 2 from (2, 1), image 1 from (2, 1)). Person pixels get
    confidence 0. Returns pixels (C, 2) in image 1, (C, 2) in image 2 (x, y) and confidences (C,),
    sorted by the pixel of image 1, one per distinct pixel pair.
    """
    q = desc_conf.astype(np.float64).copy()
    for i, m in ((0, person1), (1, person2), (2, person2), (3, person1)):
        if m is not None:
            q[i][m] = 0.0
    H, W, D = desc.shape[1:4]
    d = desc.astype(np.float32)
    d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    idx1, idx2, c1, c2 = [], [], [], []
    for A, B, QA, QB in ((d[0], d[1], q[0], q[1]), (d[3], d[2], q[3], q[2])):
        sa, sb = _searchable(A.reshape(-1, D)), _searchable(B.reshape(-1, D))  # once per map (GPU upload)
        a1, b1 = reciprocal_nns(A, B, subsample, search=(sa, sb))
        b2, a2 = reciprocal_nns(B, A, subsample, search=(sb, sa))
        i1, i2 = np.r_[a1, a2], np.r_[b1, b2]
        idx1.append(i1)
        idx2.append(i2)
        c1.append(QA.ravel()[i1])
        c2.append(QB.ravel()[i2])
    i1, i2 = np.concatenate(idx1), np.concatenate(idx2)
    key = i1 * (H * W) + i2
    _, first = np.unique(key, return_index=True)
    i1, i2 = i1[first], i2[first]
    conf = np.sqrt(np.concatenate(c1)[first] * np.concatenate(c2)[first])
    xy1 = np.stack([i1 % W, i1 // W], 1)
    xy2 = np.stack([i2 % W, i2 // W], 1)
    return xy1.astype(np.float32), xy2.astype(np.float32), conf.astype(np.float32)


def window_pairs(num_keyframes: int, window: int = 10) -> list[tuple[int, int]]:
    """Unordered keyframe pairs (i, j), i < j <= i + ``window`` (the reference's ``window-10`` graph)."""
    return [(i, j) for i in range(num_keyframes) for j in range(i + 1, min(num_keyframes, i + window + 1))]
