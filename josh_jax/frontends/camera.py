"""Camera motion chosen by the data: static, rotation-only (pan / tilt / zoom) or full 6-DoF SfM.

Background features (SIFT, person pixels masked) are matched between keyframes
``k, k+1`` and ``k, k+2`` (and a few long pairs, which carry the most
parallax); each pair keeps the matches a fundamental matrix explains
(RANSAC, so parallax is kept, outliers dropped). On those matches:

* **static**: the median displacement of the matches is below ``static_px``
  on every pair;
* **rotation-only**: one rotation per keyframe and one focal per keyframe (or
  one shared focal when zoom does not lower the residual) explain every pair
  by ``x_j ~ K_j R_j^T R_i K_i^-1 x_i`` (a homography of the plane at
  infinity). Fitted robustly (Huber IRLS Levenberg-Marquardt, per-match 4x8 Jacobians) from homography
  initialisations at a few focal guesses; residuals in working pixels. The
  clip is rotation-only when the 90th percentile residual is below
  ``rotation_px``: what remains above it is parallax, i.e. translation that
  structure from motion can measure;
* otherwise **sfm**.

Conventions: rotations are world-from-camera (OpenCV axes), world = the
first keyframe's camera; the principal point is the image centre; focal in
working pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

MODES = ("auto", "sfm", "rotation", "static")


@dataclass(frozen=True)
class CameraMotion:
    """The camera of a clip on K keyframes.

    mode: "static" | "rotation" | "sfm" (the model the evidence supports);
    rotations (K, 3, 3) world-from-camera of the rotation-only fit (identity for static);
    focals (K,) working px of that fit; evidence: the numbers behind the choice (JSON-ready).
    """

    mode: str
    rotations: np.ndarray
    focals: np.ndarray
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MotionConfig:
    static_px: float = 0.35  # median match displacement (working px) below which a pair is static
    rotation_px: float = 1.2  # 90th-percentile rotation-model residual below which the clip is rotation-only
    zoom_gain: float = 0.9  # per-keyframe focals are kept when they lower the median residual by this factor
    min_matches: int = 30
    max_features: int = 3000


def _features(images, masks, max_features):
    sift = cv2.SIFT_create(nfeatures=max_features)
    out = []
    for k, im in enumerate(images):
        gray = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
        m = None if masks is None else (~masks[k]).astype(np.uint8) * 255
        kp, des = sift.detectAndCompute(gray, m)
        xy = np.array([p.pt for p in kp], np.float64).reshape(-1, 2)
        out.append((xy, des))
    return out


def _match(fa, fb, min_matches: int):
    """Ratio-test SIFT matches, kept when a fundamental matrix (RANSAC, 1 px) explains them."""
    (xa, da), (xb, db) = fa, fb
    if da is None or db is None or len(xa) < min_matches or len(xb) < min_matches:
        return None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
    if len(good) < min_matches:
        return None
    pa = xa[[m.queryIdx for m in good]]
    pb = xb[[m.trainIdx for m in good]]
    _, inl = cv2.findFundamentalMat(pa, pb, cv2.FM_RANSAC, 1.0, 0.999)
    if inl is None:
        return None
    keep = inl.ravel().astype(bool)
    if keep.sum() < min_matches:
        return None
    return pa[keep], pb[keep]


def _pairs(K: int) -> list[tuple[int, int]]:
    pairs = [(k, k + d) for d in (1, 2) for k in range(K - d)]
    for d in (K // 3, K // 2, K - 1):
        if d > 2:
            pairs += [(k, k + d) for k in range(0, K - d, max(1, d // 2))]
    return sorted(set(pairs))


def _project(R_i, R_j, f_i, f_j, c, x):
    """Pixels x (n, 2) in i -> pixels in j under a pure rotation (numpy)."""
    ray = np.concatenate([(x - c) / f_i, np.ones((len(x), 1))], 1)
    p = ray @ (R_j.T @ R_i).T
    z = np.where(np.abs(p[:, 2:]) < 1e-9, 1e-9, p[:, 2:])
    return f_j * p[:, :2] / z + c


def _flat(matches: dict, max_per_pair: int | None):
    ii, jj, aa, bb = [], [], [], []
    for (i, j), (a, b) in matches.items():
        step = max(1, len(a) // max_per_pair) if max_per_pair else 1
        a, b = a[::step], b[::step]
        ii.append(np.full(len(a), i))
        jj.append(np.full(len(a), j))
        aa.append(a)
        bb.append(b)
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(aa), np.concatenate(bb)


_PAD = 512  # matches are padded to a multiple of this (zero weight), so a new clip seldom compiles again


def _keyframe_params(x, K: int, shared_focal: bool):
    """x = (rotation vectors of keyframes 1..K-1, log focal(s)) -> (rotation vectors (K, 3), the first
    one zero; log focals (K,))."""
    rv = jnp.concatenate([jnp.zeros(3, x.dtype), x[: 3 * (K - 1)]]).reshape(K, 3)
    lf = x[3 * (K - 1) :]
    return rv, jnp.broadcast_to(lf, (K,)) if shared_focal else lf


def _unpack(x, K: int, shared_focal: bool):
    """x -> (rotations (K, 3, 3), focals (K,)) (see :func:`_keyframe_params`)."""
    from ..geometry import axis_angle_to_matrix

    rv, lf = _keyframe_params(x, K, shared_focal)
    return axis_angle_to_matrix(rv), jnp.exp(lf)


def _huber(n, delta, valid):
    """Huber cost of the absolute residuals ``n`` (n, 4), rows weighted by ``valid`` (n,)."""
    return jnp.sum(jnp.where(n <= delta, 0.5 * n * n, delta * (n - 0.5 * delta)) * valid[:, None])


def _match_residual(p, a, b, c):
    """One match's symmetric transfer residual (4,) px, of its local parameters ``p`` (8,) =
    (rotation vector i, rotation vector j, log focal i, log focal j): a pixel ``a`` of keyframe i
    maps into j by ``K_j R_j^T R_i K_i^-1`` (and ``b`` of j back into i)."""
    from ..geometry import axis_angle_to_matrix

    Ri, Rj = axis_angle_to_matrix(p[0:3]), axis_angle_to_matrix(p[3:6])
    fi, fj = jnp.exp(p[6]), jnp.exp(p[7])

    def transfer(Rs, Rt, fs, ft, u):
        q = (Rt.T @ Rs) @ jnp.concatenate([(u - c) / fs, jnp.ones(1, u.dtype)])
        z = jnp.where(jnp.abs(q[2]) < 1e-6, 1e-6, q[2])
        return ft * q[:2] / z + c

    return jnp.concatenate([transfer(Ri, Rj, fi, fj, a) - b, transfer(Rj, Ri, fj, fi, b) - a])


def _local(x, i, j, K: int, shared_focal: bool):
    """Each match's local parameters (n, 8) and their places in ``x`` (n, 8); a place ``len(x)``
    stands for the first keyframe's rotation, which is held at the identity."""
    P = x.shape[0]
    rv, lf = _keyframe_params(x, K, shared_focal)
    p = jnp.concatenate([rv[i], rv[j], lf[i][:, None], lf[j][:, None]], 1)
    rot = jnp.where(jnp.arange(K)[:, None] > 0, 3 * (jnp.arange(K)[:, None] - 1) + jnp.arange(3), P)  # (K, 3)
    foc = jnp.full((K,), 3 * (K - 1)) if shared_focal else 3 * (K - 1) + jnp.arange(K)
    idx = jnp.concatenate([rot[i], rot[j], foc[i][:, None], foc[j][:, None]], 1)
    return p, idx


@partial(jax.jit, static_argnames=("K", "shared_focal", "delta"))
def _normal_equations(x, i, j, a, b, valid, c, K: int, shared_focal: bool, delta: float = 1.0):
    """Huber IRLS normal equations of the rotation-only fit from each match's 4x8 Jacobian
    (assembled by scatter-add; the dense 4n x P Jacobian is never formed): (cost, J^T W J, J^T W r)."""
    p, idx = _local(x, i, j, K, shared_focal)
    r = jax.vmap(_match_residual, in_axes=(0, 0, 0, None))(p, a, b, c)  # (n, 4)
    Jl = jax.vmap(jax.jacfwd(_match_residual), in_axes=(0, 0, 0, None))(p, a, b, c)  # (n, 4, 8)
    n = jnp.abs(r)
    w = jnp.where(n <= delta, 1.0, delta / jnp.maximum(n, 1e-12)) * valid[:, None]
    cost = _huber(n, delta, valid)
    B = jnp.einsum("nra,nr,nrb->nab", Jl, w, Jl)
    gl = jnp.einsum("nra,nr->na", Jl, w * r)
    P = x.shape[0]
    H = jnp.zeros((P + 1, P + 1), x.dtype).at[idx[:, :, None], idx[:, None, :]].add(B)
    g = jnp.zeros((P + 1,), x.dtype).at[idx].add(gl)
    return cost, H[:P, :P], g[:P]


@partial(jax.jit, static_argnames=("K", "shared_focal", "delta"))
def _cost(x, i, j, a, b, valid, c, K: int, shared_focal: bool, delta: float = 1.0):
    """The Huber cost of the rotation-only fit at x (as in :func:`_normal_equations`)."""
    p, _ = _local(x, i, j, K, shared_focal)
    return _huber(jnp.abs(jax.vmap(_match_residual, in_axes=(0, 0, 0, None))(p, a, b, c)), delta, valid)


def _levenberg_marquardt(normal, cost_of, x0, bounds, iters: int = 40):
    """Huber-robust Levenberg-Marquardt (IRLS normal equations, parameters clipped to ``bounds``);
    ``normal(x) -> (cost, A, g)`` and ``cost_of(x)`` take float32 vectors. Returns (x, robust cost)."""
    lo, hi = bounds
    x = np.clip(np.asarray(x0, np.float64), lo, hi)
    lam = 1e-3
    cost, A, g = (np.asarray(v, np.float64) for v in normal(jnp.asarray(x, jnp.float32)))
    for _ in range(iters):
        D = np.diag(np.diag(A)) + 1e-9 * np.eye(len(x))
        step = np.linalg.solve(A + lam * D, -g)
        x_new = np.clip(x + step, lo, hi)
        c_new = float(cost_of(jnp.asarray(x_new, jnp.float32)))
        if c_new < cost:
            done = cost - c_new < 1e-7 * cost
            x, lam = x_new, max(lam / 3, 1e-7)
            cost, A, g = (np.asarray(v, np.float64) for v in normal(jnp.asarray(x, jnp.float32)))
            if done:
                break
        else:
            lam *= 4
            if lam > 1e8:
                break
    return x, float(cost)


def _init_chain(K, matches, c, f0, zoom: bool):
    """Rotations and focals chained over consecutive keyframes from per-pair homographies at focal f0.

    With ``zoom`` each pair's focal ratio is read from the homography's scale
    (sqrt |det H[:2, :2]| / H[2, 2] in centred pixels, exact for small rotations)."""
    R, f = [np.eye(3)], [f0]
    C = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1.0]])
    for k in range(1, K):
        rel, fk = np.eye(3), f[-1]
        m = matches.get((k - 1, k))
        if m is not None:
            H, _ = cv2.findHomography(m[0], m[1], cv2.RANSAC, 2.0)
            if H is not None:
                Hc = C @ H @ np.linalg.inv(C)
                if zoom:
                    ratio = np.sqrt(abs(np.linalg.det(Hc[:2, :2]))) / Hc[2, 2]
                    if np.isfinite(ratio) and 0.5 < ratio < 2.0:
                        fk = f[-1] * ratio
                A = np.diag([1 / fk, 1 / fk, 1]) @ Hc @ np.diag([f[-1], f[-1], 1])  # ~ R_k^T R_{k-1}
                u, _, vt = np.linalg.svd(A)
                rel = u @ vt
                if np.linalg.det(rel) < 0:
                    rel = -rel
        R.append(R[-1] @ rel.T)
        f.append(fk)
    return np.stack(R), np.asarray(f)


def fit_rotation_only(
    matches: dict,
    K: int,
    size: tuple[int, int],
    shared_focal: bool,
    focal_guess: float | None = None,
    max_per_pair: int = 60,
):
    """Robust least-squares rotation-only fit -> (rotations (K, 3, 3), focals (K,), per-match residuals px).

    Starts from homography chains at a few focal guesses (or ``focal_guess``); at most
    ``max_per_pair`` matches per pair enter the fit (evenly sampled); the returned
    residuals (each match's larger transfer error of the two directions) cover all matches.
    """
    w, h = size
    c = np.array([w / 2, h / 2], np.float32)
    diag = float(np.hypot(w, h))
    lo, hi = np.log(0.2 * diag), np.log(5.0 * diag)
    i, j, a, b = _flat(matches, max_per_pair)
    n = len(i)
    pad = -n % _PAD  # padded matches: keyframe 0 to itself, weight 0
    args = (
        jnp.asarray(np.r_[i, np.zeros(pad, i.dtype)], jnp.int32),
        jnp.asarray(np.r_[j, np.zeros(pad, j.dtype)], jnp.int32),
        jnp.asarray(np.r_[a, np.repeat(c[None], pad, 0)], jnp.float32),
        jnp.asarray(np.r_[b, np.repeat(c[None], pad, 0)], jnp.float32),
        jnp.asarray(np.r_[np.ones(n), np.zeros(pad)], jnp.float32),
        jnp.asarray(c),
    )
    static = dict(K=K, shared_focal=shared_focal)
    normal = lambda x: _normal_equations(x, *args, **static)  # noqa: E731
    cost_of = lambda x: _cost(x, *args, **static)  # noqa: E731
    guesses = [focal_guess] if focal_guess else [0.7 * max(w, h), 1.3 * max(w, h)]
    nrot = 3 * (K - 1)
    best = None
    for f0 in guesses:
        R0, fs = _init_chain(K, matches, c, f0, zoom=not shared_focal)
        lf = np.log(np.clip(fs, np.exp(lo) * 1.01, np.exp(hi) * 0.99))
        x0 = np.concatenate([Rotation.from_matrix(R0[1:]).as_rotvec().ravel(), [np.mean(lf)] if shared_focal else lf])
        bounds = (
            np.r_[np.full(nrot, -np.inf), np.full(len(x0) - nrot, lo)],
            np.r_[np.full(nrot, np.inf), np.full(len(x0) - nrot, hi)],
        )
        x, cost = _levenberg_marquardt(normal, cost_of, x0, bounds)
        if best is None or cost < best[1]:
            best = (x, cost)
    R, f = (np.asarray(v, np.float64) for v in _unpack(jnp.asarray(best[0], jnp.float32), K, shared_focal))
    R = np.stack([u @ vt for u, _, vt in (np.linalg.svd(r) for r in R)])
    ia, ja, aa, ba = _flat(matches, None)
    rel = np.einsum("nba,nbc->nac", R[ja], R[ia])
    ray = np.concatenate([(aa - c) / f[ia][:, None], np.ones((len(aa), 1))], 1)
    p = np.einsum("nab,nb->na", rel, ray)
    fwd = f[ja][:, None] * p[:, :2] / p[:, 2:] + c
    ray = np.concatenate([(ba - c) / f[ja][:, None], np.ones((len(ba), 1))], 1)
    p = np.einsum("nba,nb->na", rel, ray)
    bwd = f[ia][:, None] * p[:, :2] / p[:, 2:] + c
    r = np.maximum(np.linalg.norm(fwd - ba, axis=1), np.linalg.norm(bwd - aa, axis=1))
    return R, f, r


def estimate_motion(
    images: list[np.ndarray],
    masks: list[np.ndarray] | None = None,
    cfg: MotionConfig = MotionConfig(),
    focal: float | None = None,
) -> CameraMotion:
    """Decide the camera model of a clip from its keyframes (RGB, one size; masks True on people)."""
    K = len(images)
    h, w = images[0].shape[:2]
    feats = _features(images, masks, cfg.max_features)
    matches = {}
    for i, j in _pairs(K):
        m = _match(feats[i], feats[j], cfg.min_matches)
        if m is not None:
            matches[(i, j)] = m
    consecutive = [(k, k + 1) for k in range(K - 1)]
    linked = all(p in matches or (p[0], p[0] + 2) in matches for p in consecutive[:-1]) and consecutive[-1] in matches
    ev = {
        "keyframes": K,
        "pairs_matched": len(matches),
        "pairs_tried": len(_pairs(K)),
        "matches_per_pair": int(np.median([len(a) for a, _ in matches.values()])) if matches else 0,
    }
    if not matches or not linked:
        ev["reason"] = "too few background matches between keyframes to measure the camera motion"
        return CameraMotion("sfm", np.tile(np.eye(3), (K, 1, 1)), np.full(K, float(focal or 1.2 * max(w, h))), ev)
    shift = [float(np.median(np.linalg.norm(b - a, axis=1))) for (i, j), (a, b) in matches.items() if j == i + 1]
    ev["median_shift_px"] = float(np.median(shift))
    ev["max_pair_shift_px"] = float(np.max(shift))
    if max(shift) < cfg.static_px:
        ev["reason"] = (
            f"the background does not move: median match shift <= {max(shift):.2f} px on every "
            f"keyframe pair (static below {cfg.static_px} px)"
        )
        return CameraMotion("static", np.tile(np.eye(3), (K, 1, 1)), np.full(K, float(focal or 1.2 * max(w, h))), ev)
    R1, f1, r1 = fit_rotation_only(matches, K, (w, h), True, focal)
    R, f, r = R1, f1, r1
    if focal is None:
        Rz, fz, rz = fit_rotation_only(matches, K, (w, h), False, float(np.exp(np.log(f1).mean())))
        ev["shared_focal_residual_median_px"] = float(np.median(r1))
        ev["per_keyframe_focal_residual_median_px"] = float(np.median(rz))
        if np.median(rz) < cfg.zoom_gain * np.median(r1) or np.ptp(np.log(fz)) > 0.05:
            R, f, r = Rz, fz, rz
    ev["rotation_residual_median_px"] = float(np.median(r))
    ev["rotation_residual_p90_px"] = float(np.percentile(r, 90))
    ev["rotation_span_deg"] = float(np.degrees(max(np.linalg.norm(Rotation.from_matrix(x).as_rotvec()) for x in R)))
    ev["focal_range_px"] = [float(f.min()), float(f.max())]
    ev["zoom"] = bool(np.ptp(np.log(f)) > 1e-3)  # focals spread by more than 0.1 % (float32 noise is not zoom)
    if ev["rotation_residual_p90_px"] < cfg.rotation_px:
        ev["reason"] = (
            f"a rotating camera explains the background: 90% of the matches within "
            f"{ev['rotation_residual_p90_px']:.2f} px (rotation-only below {cfg.rotation_px} px), "
            f"pan/tilt span {ev['rotation_span_deg']:.1f} deg, focal {f.min():.0f}-{f.max():.0f} px"
        )
        return CameraMotion("rotation", R, f, ev)
    ev["reason"] = (
        f"parallax: a rotating camera leaves 10% of the matches above "
        f"{ev['rotation_residual_p90_px']:.2f} px (rotation-only below {cfg.rotation_px} px), "
        "so the camera translates"
    )
    return CameraMotion("sfm", R, f, ev)
