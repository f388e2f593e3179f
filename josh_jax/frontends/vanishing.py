"""The focal length from the vanishing points of the background's straight lines (a Manhattan scene).

Where the camera cannot measure its own focal (a static camera, or one that only translates: the
images then fit every focal equally well, the depth axis simply stretches), man-made scenes still
tell it: the lines of three orthogonal directions meet in three vanishing points, and where the
camera is neither level nor square to the walls, two of them are finite and ``f^2 = -(v1 - c) .
(v2 - c)`` about the principal point ``c``.

Per keyframe (people masked):

1. **segments**: OpenCV's LSD (step edges) and a probabilistic Hough transform of the black-hat and
   top-hat images (thin dark and bright lines: grout, frames, cables; LSD breaks them up on busy
   texture), at least ``min_len`` / ``hough_len`` of the long side;
2. **the vertical vanishing point** from the segments within ``vertical_deg`` of the image's vertical
   (RANSAC on pairs; a segment supports a point when the line from its midpoint to the point is
   within ``angle_deg`` of the segment), refined by least squares on its supporters' lines;
3. **a grid search** over the focal (log grid) and the turn about the vertical: each pair defines a
   Manhattan frame whose three vanishing points are scored by the length of the segments that point
   at them (soft, Gaussian in the angle);
4. **refinement**: the best frame's rotation and focal by robust least squares on its supporters'
   endpoint distances, with the focal's standard deviation from the Jacobian.

A keyframe counts when its focal is *pinned*: the grid's best score beats every focal more than
``margin`` away by at least ``min_margin`` of line length (a focal that rests on one or two short
segments, or a level camera square to the walls, whose focal the lines do not determine, fails
this), its spread is below ``max_rel_spread`` and its three directions explain at least
``min_explained`` of the segments' length (lines along many unrelated directions, a cluttered
scene that is not Manhattan, explain 20-50 %; the rendered rooms 79-100 %). The clip's focal is the median of the counted
keyframes (weighted by those margins) that agree within ``agree`` of their median; nothing, with
the reason, when fewer than ``min_frames`` do. Measured on the rendered clips (docs/frontends.md):
within 2 % on walk_away, crossing, handheld and pan. Coordinates: working pixels, OpenCV camera axes
(x right, y down, z forward); the principal point is given (the image centre by default).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class VanishingConfig:
    min_len: float = 0.06  # shortest LSD segment kept (x the long side)
    hough_len: float = 0.1  # shortest thin-line (Hough) segment kept (x the long side)
    hough_percentile: float = 90.0  # thin-line pixels: above Otsu's threshold and this percentile
    angle_deg: float = 1.5  # a segment supports a vanishing point within this angle
    vertical_deg: float = 20.0  # segments this close to the image's vertical seed the vertical vanishing point
    yaw_step_deg: float = 1.0  # the hypothesis grid's step about the vertical
    min_support: int = 3  # segments a vanishing-point candidate needs
    iterations: int = 300  # RANSAC samples for the vertical vanishing point
    focal_range: tuple = (0.4, 3.0)  # focals searched (x the long side)
    grid: int = 96  # log-spaced focals of the hypothesis search
    max_rel_spread: float = 0.05  # a keyframe counts when its focal's standard deviation is below this
    margin: float = 0.1  # a keyframe's focal must be preferred over those this far from it ...
    min_margin: float = 0.03  # ... by this much line length (x the long side)
    min_explained: float = 0.6  # ... and its three directions explain this share of the segments' length
    max_segments: int = 400  # the longest kept per keyframe
    min_frames: int = 2
    agree: float = 0.15  # keyframes farther than this from the median focal are dropped
    max_frames: int = 8
    seed: int = 0


def _length(seg: np.ndarray) -> np.ndarray:
    """(N,) lengths of segments (N, 4) [x1, y1, x2, y2]."""
    return np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])


def _spread(n: int, k: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` items, spread evenly from the first to the last."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def segments(
    gray: np.ndarray,
    mask: np.ndarray | None,
    min_len_px: float,
    hough_len_px: float | None = None,
    percentile: float | None = 90.0,
) -> np.ndarray:
    """Line segments (N, 4) [x1, y1, x2, y2] working px of an 8-bit grayscale image (H, W): LSD's of at least
    ``min_len_px`` and the thin-line Hough's of at least ``hough_len_px`` (default the same) on the
    black-hat / top-hat pixels above their Otsu threshold and above ``percentile`` (busy texture, such as
    a foreshortened floor, would otherwise give streaks of short "lines"); those touching ``mask``
    (H, W) bool (people) are dropped."""
    hough_len_px = hough_len_px or min_len_px
    out = []
    lsd = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    lines = lsd.detect(gray)[0]
    if lines is not None:
        ls = lines.reshape(-1, 4)
        out.append(ls[_length(ls) >= min_len_px])
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    for op in (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT):
        img = cv2.morphologyEx(gray, op, k)
        t, bw = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        if percentile is not None:
            bw = ((img > max(t, np.percentile(img, percentile))) * 255).astype(np.uint8)
        hl = cv2.HoughLinesP(bw, 1, np.pi / 720, int(hough_len_px), minLineLength=hough_len_px, maxLineGap=4)
        if hl is not None:
            hs = hl.reshape(-1, 4)
            out.append(hs[_length(hs) >= hough_len_px])
    if not out:
        return np.zeros((0, 4))
    s = np.concatenate(out).astype(np.float64)
    if mask is not None and len(s):
        h, w = mask.shape
        keep = np.ones(len(s), bool)
        for t in np.linspace(0.0, 1.0, 9):
            x = np.clip(np.round(s[:, 0] + t * (s[:, 2] - s[:, 0])).astype(int), 0, w - 1)
            y = np.clip(np.round(s[:, 1] + t * (s[:, 3] - s[:, 1])).astype(int), 0, h - 1)
            keep &= ~mask[y, x]
        s = s[keep]
    return s


def _segments(gray, mask, cfg: VanishingConfig, long_side: int) -> np.ndarray:
    return segments(gray, mask, cfg.min_len * long_side, cfg.hough_len * long_side, cfg.hough_percentile)


class _Lines:
    """Segments in coordinates centred on the principal point and divided by the long side."""

    def __init__(self, seg: np.ndarray, principal, scale: float):
        p = (seg[:, :2] - principal) / scale
        q = (seg[:, 2:] - principal) / scale
        self.mid = (p + q) / 2
        d = q - p
        self.length = np.linalg.norm(d, axis=1)
        self.dir = d / self.length[:, None]
        ln = np.cross(np.c_[p, np.ones(len(p))], np.c_[q, np.ones(len(q))])
        self.line = ln / np.linalg.norm(ln, axis=1, keepdims=True)

    def signed_sin(self, v: np.ndarray, idx=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Signed sin of the angle between segments ``idx`` and the lines from their midpoints to the
        homogeneous point ``v`` (3,) (a point at infinity when v[2] = 0), and those lines' lengths."""
        d = v[:2][None] - self.mid[idx] * v[2]
        n = np.linalg.norm(d, axis=1)
        cr = d[:, 0] * self.dir[idx, 1] - d[:, 1] * self.dir[idx, 0]
        return cr / np.maximum(n, 1e-12), n

    def sin_to(self, v: np.ndarray) -> np.ndarray:
        """(N,) |sin| of :meth:`signed_sin` (1 for a segment whose midpoint is the point itself)."""
        s, n = self.signed_sin(v)
        return np.where(n > 1e-12, np.abs(s), 1.0)


def _direction(v: np.ndarray, f: float) -> np.ndarray:
    """Back-projected unit direction of homogeneous image point ``v`` (long-side units) at focal ``f``."""
    d = np.array([v[0], v[1], v[2] * f])
    return d / np.linalg.norm(d)


def _vp(d: np.ndarray, f: float) -> np.ndarray:
    """Homogeneous image point (long-side units) of camera direction ``d`` at focal ``f``."""
    return np.array([d[0], d[1], d[2] / f])


def _support(lines: _Lines, R: np.ndarray, f: float, thr: float) -> tuple[float, np.ndarray]:
    """Segment length explained by the three vanishing points of rotation ``R`` (columns: directions) at
    focal ``f`` -> (length, label (N,) in {-1, 0, 1, 2})."""
    s = np.stack([lines.sin_to(_vp(R[:, k], f)) for k in range(3)])  # (3, N)
    lab = np.where(s.min(0) < thr, s.argmin(0), -1)
    return float(lines.length[lab >= 0].sum()), lab


def _refine(lines: _Lines, R: np.ndarray, f: float, idx: list, scale: float, bounds=None):
    """Least squares on the angles of the supporters ``idx`` (three index arrays, one per direction) over
    (rotation, log focal), the log focal within ``bounds`` (lo, hi) -> (R, f, std of log f from the
    Jacobian; inf where the supporters do not determine the focal)."""
    if not any(len(i) for i in idx):
        return R, f, float("inf")
    w = [lines.length[i] * scale for i in idx]  # sin x length: the endpoints' distance (px) from the line

    def res(x):
        Rk = Rotation.from_rotvec(x[:3]).as_matrix() @ R
        fk = np.exp(x[3])
        out = []
        for k in range(3):
            if len(idx[k]):
                out.append(w[k] * lines.signed_sin(_vp(Rk[:, k], fk), idx[k])[0])
        return np.concatenate(out)

    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    x0 = np.r_[np.zeros(3), np.clip(np.log(f), lo, hi)]
    sol = least_squares(
        res, x0, loss="soft_l1", f_scale=1.0, bounds=(np.r_[[-np.inf] * 3, lo], np.r_[[np.inf] * 3, hi])
    )
    JtJ = sol.jac.T @ sol.jac  # the Jacobian scipy returns is the robust loss's, as is its cost
    dof = max(len(sol.fun) - 4, 1)
    sigma2 = 2.0 * float(sol.cost) / dof
    sd = float("inf")
    if np.all(np.isfinite(JtJ)) and np.linalg.cond(JtJ) < 1e12:
        var = float(np.linalg.inv(JtJ)[3, 3]) * sigma2
        sd = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else float("inf")
    return Rotation.from_rotvec(sol.x[:3]).as_matrix() @ R, float(np.exp(sol.x[3])), sd


def _vertical(lines: _Lines, cfg: VanishingConfig, rng) -> np.ndarray | None:
    """The vertical vanishing point (3,) unit homogeneous, from the segments within ``cfg.vertical_deg`` of the
    image's vertical (RANSAC on pairs, then least squares on the supporters' lines), or None."""
    near = np.flatnonzero(np.abs(lines.dir[:, 0]) < np.sin(np.radians(cfg.vertical_deg)))
    if len(near) < cfg.min_support:
        return None
    thr = np.sin(np.radians(cfg.angle_deg))
    pairs = rng.choice(near, (cfg.iterations, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    v = np.cross(lines.line[pairs[:, 0]], lines.line[pairs[:, 1]])
    nv = np.linalg.norm(v, axis=1)
    v = v[nv > 1e-12] / nv[nv > 1e-12, None]
    if not len(v):
        return None
    scores = [lines.length[near][lines.sin_to(x)[near] < thr].sum() for x in v]
    best = v[int(np.argmax(scores))]
    for _ in range(2):
        sup = near[lines.sin_to(best)[near] < thr]
        if len(sup) < cfg.min_support:
            return None
        L = lines.line[sup] * lines.length[sup, None]
        best = np.linalg.eigh(L.T @ L)[1][:, 0]
    return best


def _soft_score(lines: _Lines, vps: np.ndarray, sigma: float, chunk: int = 8) -> np.ndarray:
    """Length-weighted soft support of sets of vanishing points: vps (G, ..., M, 3) -> (G, ...), in chunks
    of ``chunk`` along the first axis (the temporaries are G x ... x M x N)."""
    out = []
    for c in range(0, len(vps), chunk):
        v = vps[c : c + chunk]
        d = v[..., None, :2] - lines.mid * v[..., None, 2:3]  # (c, ..., M, N, 2)
        n = np.maximum(np.linalg.norm(d, axis=-1), 1e-12)
        sn = np.abs(d[..., 0] * lines.dir[:, 1] - d[..., 1] * lines.dir[:, 0]) / n  # (c, ..., M, N)
        out.append((lines.length * np.exp(-0.5 * (sn.min(-2) / sigma) ** 2)).sum(-1))
    return np.concatenate(out)


def frame_focal(seg: np.ndarray, size, principal, cfg: VanishingConfig = VanishingConfig(), rng=None) -> dict:
    """One keyframe's focal from its segments (N, 4) working px -> dict(focal_px, rel_spread, support,
    segments, direction_segments, vanishing_px) or dict(reason) when it gives none. ``size`` (w, h),
    ``principal`` (2,) working px."""
    rng = rng or np.random.default_rng(cfg.seed)
    scale = float(max(size))
    if len(seg) < 3 * cfg.min_support:
        return {"reason": f"{len(seg)} line segments"}
    n_seg = len(seg)
    if n_seg > cfg.max_segments:  # the longest carry the directions (and bound the search's memory)
        seg = seg[np.argsort(-_length(seg))[: cfg.max_segments]]
    lines = _Lines(seg, np.asarray(principal, np.float64), scale)
    vy = _vertical(lines, cfg, rng)
    if vy is None:
        return {"reason": "no vertical vanishing point"}
    fs = np.geomspace(*cfg.focal_range, cfg.grid)
    yaws = np.radians(np.arange(0.0, 90.0, cfg.yaw_step_deg))
    # the Manhattan frames that keep the vertical: d_y fixed per focal, d_x turning about it
    dy = np.stack([_direction(vy, f) for f in fs])  # (G, 3)
    ref = np.where(np.abs(dy[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 0, 1.0]]))
    a = np.cross(dy, ref)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.cross(dy, a)
    dx = np.cos(yaws)[None, :, None] * a[:, None] + np.sin(yaws)[None, :, None] * b[:, None]  # (G, Y, 3)
    dz = np.cross(np.broadcast_to(dy[:, None], dx.shape), dx)
    R_all = np.stack([dx, np.broadcast_to(dy[:, None], dx.shape), dz], -1)  # (G, Y, 3, 3) columns
    vps = np.stack(
        [np.concatenate([R_all[..., :2, k], R_all[..., 2:, k] / fs[:, None, None]], -1) for k in range(3)], -2
    )  # (G, Y, 3, 3)
    score = _soft_score(lines, vps, np.radians(cfg.angle_deg) / 2)
    g, y = np.unravel_index(int(np.argmax(score)), score.shape)
    # how much line length prefers this focal over any focal farther than ``cfg.margin`` from it
    profile = score.max(1)
    far = np.abs(np.log(fs / fs[g])) > np.log1p(cfg.margin)
    margin_px = float((profile[g] - profile[far].max()) * scale) if far.any() else 0.0
    R, f = R_all[g, y], float(fs[g])
    thr = np.sin(np.radians(cfg.angle_deg))
    _, lab = _support(lines, R, f, thr)
    # the refined focal stays within the margin the grid's profile was judged on
    band = (np.log(fs[g]) - np.log1p(cfg.margin), np.log(fs[g]) + np.log1p(cfg.margin))
    for _ in range(3):
        idx = [np.flatnonzero(lab == k) for k in range(3)]
        R, f, sd = _refine(lines, R, f, idx, scale, band)
        _, lab = _support(lines, R, f, thr)
    counts = [int((lab == k).sum()) for k in range(3)]
    vp = []
    for k in range(3):
        v = _vp(R[:, k], f)
        vp.append((np.asarray(principal) + scale * v[:2] / v[2]).round(1).tolist() if abs(v[2]) > 1e-6 else None)
    return {
        "focal_px": f * scale,
        "rel_spread": sd,
        "margin_px": margin_px,
        "support": float(lines.length[lab >= 0].sum() / lines.length.sum()),
        "segments": int(n_seg),
        "direction_segments": counts,
        "vanishing_px": vp,
    }


def _why_not(r: dict, cfg: VanishingConfig, long_side: int) -> str | None:
    """Why a keyframe's estimate does not count (None: it counts): not pinned (margin), not precise
    (spread) or not a Manhattan scene (the share of segment length its three directions explain)."""
    if "focal_px" not in r:
        return r.get("reason", "no estimate")
    if r["margin_px"] < cfg.min_margin * long_side:
        return "focal not pinned by the lines"
    if r["rel_spread"] > cfg.max_rel_spread:
        return f"focal spread {r['rel_spread']:.0%}"
    if r["support"] < cfg.min_explained:
        return f"lines not along three orthogonal directions ({r['support']:.0%} of their length)"
    return None


def background(
    images: np.ndarray, masks: np.ndarray | None, max_frames: int = 32
) -> tuple[np.ndarray, np.ndarray | None]:
    """A static camera's background: the per-pixel median of (at most ``max_frames`` of) the keyframes where
    no person covers the pixel -> (image (H, W, 3) uint8, mask (H, W) bool of the pixels a person covers on
    every one, grown by 3 px; they are filled with the median colour, so that their edge makes no line).
    The median also removes most of the video codec's noise."""
    pick = _spread(len(images), max_frames)
    images = images[pick]
    if masks is None:
        return np.median(images, 0).astype(np.uint8), None
    masks = masks[pick]
    x = np.where(masks[..., None], np.nan, images.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: covered on every keyframe
        med = np.nanmedian(x, 0)
    never = masks.all(0)
    if never.any():
        med[never] = np.nanmedian(med[~never], 0) if (~never).any() else 128.0
        never = cv2.dilate(never.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return np.nan_to_num(med, nan=128.0).round().astype(np.uint8), never if never.any() else None


def focal_from_lines(
    images: np.ndarray,
    masks: np.ndarray | None,
    principal=None,
    cfg: VanishingConfig = VanishingConfig(),
    static: bool = False,
) -> tuple[float | None, dict]:
    """The clip's focal (working px) from the vanishing points of its keyframes -> (focal or None, evidence).

    ``images`` (K, H, W, 3) RGB uint8, ``masks`` (K, H, W) bool person pixels (or None), ``principal`` (2,)
    working px (default: the centre). Uses at most ``cfg.max_frames`` keyframes spread over the clip; with
    ``static`` (a camera that does not move) one estimate on their :func:`background` instead."""
    K, H, W = images.shape[:3]
    L = max(W, H)
    principal = np.array([W / 2, H / 2] if principal is None else principal, np.float64)
    rng = np.random.default_rng(cfg.seed)
    if static:
        bg, never = background(images, masks)
        seg = _segments(cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY), never, cfg, L)
        r = frame_focal(seg, (W, H), principal, cfg, rng)
        ev = {"vanishing_keyframes": int(K), "vanishing_background": True}
        why = _why_not(r, cfg, L)
        if why is None:
            ev["vanishing_focal_px"] = float(r["focal_px"])
            ev["vanishing"] = (
                f"focal {r['focal_px']:.1f} px from vanishing points on the background of {K} keyframes "
                f"({sum(r['direction_segments'])} segments along 3 directions)"
            )
            return float(r["focal_px"]), ev
        ev["vanishing"] = f"no focal from vanishing points on the background of {K} keyframes ({why})"
        return None, ev
    pick = _spread(K, cfg.max_frames)
    per = []
    for k in pick:
        gray = cv2.cvtColor(images[k], cv2.COLOR_RGB2GRAY)
        seg = _segments(gray, None if masks is None else masks[k], cfg, L)
        r = frame_focal(seg, (W, H), principal, cfg, rng)
        r["keyframe"] = int(k)
        per.append(r)
    why = [_why_not(r, cfg, L) for r in per]
    kept = [r for r, y in zip(per, why) if y is None]
    ev = {
        "vanishing_keyframes": len(pick),
        "vanishing_keyframes_kept": len(kept),
        "vanishing_focals_px": [round(r["focal_px"], 1) for r in kept],
    }
    if len(kept) < cfg.min_frames:
        ev["vanishing"] = (
            f"no focal from vanishing points: {len(kept)} of {len(pick)} keyframes gave one "
            f"(need {cfg.min_frames}; {'; '.join(sorted({y for y in why if y}))[:240]})"
        )
        return None, ev
    f = np.array([r["focal_px"] for r in kept])
    agree = np.abs(np.log(f / np.median(f))) <= np.log1p(cfg.agree)  # one keyframe's wrong frame is dropped
    if agree.sum() < cfg.min_frames:
        ev["vanishing"] = (
            f"no focal from vanishing points: the keyframes disagree ({f.min():.0f}-{f.max():.0f} px, "
            f"{int(agree.sum())} within {cfg.agree:.0%} of their median)"
        )
        return None, ev
    fa = f[agree]
    w = np.array([r["margin_px"] for r in kept])[agree]  # the line length that prefers each keyframe's focal
    o = np.argsort(fa)
    focal = float(fa[o][np.searchsorted(np.cumsum(w[o]) / w.sum(), 0.5)])
    ev["vanishing_focal_px"] = focal
    ev["vanishing"] = (
        f"focal {focal:.1f} px from vanishing points on {int(agree.sum())} of {len(pick)} keyframes "
        f"(those within {cfg.agree:.0%} of the median: {fa.min():.0f}-{fa.max():.0f} px)"
    )
    return focal, ev
