"""Scene front end: structure from motion with pycolmap (COLMAP, CPU) on the keyframes.

SIFT features (person pixels masked out), sequential matching, incremental
mapping; the largest reconstruction is kept. What the bundle needs is then
derived from it (see :func:`scene_arrays`):

* cameras: one shared pinhole camera (focal, principal point), poses up to scale;
* depth: per keyframe, the depths of the 3D points it sees, interpolated over
  the image linearly in *inverse* depth on a Delaunay triangulation (exact for
  planes such as the ground) and nearest-filled outside their hull;
* conf: 1 near observed points, falling to 0 at ``conf_radius`` pixels, and 0
  on person pixels (the optimizer's contact terms look for the nearest scene
  pixel outside the person, as with a learned point map); pixels at or below
  ``conf_thres`` take the depth of the nearest valid pixel;
* correspondences: every 2D-2D pair of observations of one 3D point in two
  keyframes at most ``pair_window`` keyframes apart (the reference's
  "window-10" scene graph), both pair orders, confidence from the point's
  reprojection error; pair scores = shared points.

Errors a user can act on are :class:`~josh_jax.frontends.onnx_models.FrontEndError`
with one line (static camera, too few registered keyframes, no texture).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.interpolate
import scipy.ndimage
import scipy.spatial

from ..bundle import pair_fields
from .onnx_models import FrontEndError


@dataclass(frozen=True)
class SfmResult:
    """A reconstruction on K keyframes (pixels of the images given to :func:`run_sfm`).

    registered (K,) bool; cam_from_world (K, 3, 4) (identity rows for
    unregistered keyframes); focal float; principal (2,); points (N, 3);
    point_error (N,) mean reprojection error (px); obs: per keyframe a tuple
    (xy (n, 2) float, point (n,) int index into ``points``).
    """

    registered: np.ndarray
    cam_from_world: np.ndarray
    focal: float
    principal: np.ndarray
    points: np.ndarray
    point_error: np.ndarray
    obs: tuple


def run_sfm(
    images: list[np.ndarray],
    masks: list[np.ndarray] | None = None,
    focal_prior: float | None = None,
    overlap: int = 10,
    num_threads: int = -1,
    work_dir: Path | None = None,
    min_registered: float = 0.5,
    deterministic: bool = True,
    principal_prior=None,
    fixed_intrinsics: bool = False,
    init_min_tri_angle: float | None = None,
    refine_focal: bool = True,
    min_tri_angle: float | None = None,
    mapper: str = "incremental",
    keyframes=None,
) -> SfmResult:
    """Reconstruct keyframes (RGB uint8, all one size). ``masks``: True on pixels to ignore (people).

    ``focal_prior`` (px) seeds the shared camera (default 1.2 x the long side,
    COLMAP's own default, but flagged as a prior, which keeps low-resolution
    sequences from falling apart). Raises FrontEndError when fewer than
    ``min_registered`` of the keyframes register.

    ``deterministic``: every COLMAP step runs on one thread with fixed seeds
    (worker threads draw from their own random streams, multi-threaded bundle
    adjustment sums in varying order, and even multi-threaded extraction
    changed the result here), so that the same video always gives the same
    scene, e.g. when an interrupted demo resumes. Costs a few seconds on
    keyframe-sized problems; ``num_threads`` applies when False.

    Small baselines (docs/frontends.md, "SfM on small baselines"):
    ``init_min_tri_angle`` (degrees) relaxes the initial pair's triangulation
    angle (COLMAP: 16); ``min_tri_angle`` (degrees) lowers every other
    triangulation-angle threshold too (new points 1.5, filtering 1.5, local
    bundle adjustment 6; GLOMAP 1): at 2-5 cm of camera motion 3-7 m from
    the scene no point reaches 1 degree, so COLMAP's defaults discard every
    point; ``refine_focal`` False holds the focal at
    ``focal_prior`` (e.g. the rotation model's, measured from homographies)
    so that bundle adjustment has fewer unknowns; ``mapper`` "incremental"
    or "global" (GLOMAP); ``keyframes`` (indices into ``images``): only those
    images are returned (in that order) and count for ``min_registered``,
    the others only help the mapping (e.g. every frame between keyframes).
    """
    import pycolmap

    pycolmap.set_random_seed(0)
    pycolmap.logging.minloglevel = 3  # COLMAP logs would drown the progress output; failures are reported by us
    K = len(images)
    if K < 3:
        raise FrontEndError(f"structure from motion needs at least 3 keyframes, got {K}; use a longer clip")
    h, w = images[0].shape[:2]
    f0 = float(focal_prior or 1.2 * max(h, w))
    c0 = (w / 2, h / 2) if principal_prior is None else (principal_prior[0] + 0.5, principal_prior[1] + 0.5)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        img_dir, mask_dir = tmp / "images", tmp / "masks"
        img_dir.mkdir()
        mask_dir.mkdir()
        names = [f"{k:04d}.png" for k in range(K)]
        for k, name in enumerate(names):
            cv2.imwrite(str(img_dir / name), cv2.cvtColor(images[k], cv2.COLOR_RGB2BGR))
            if masks is not None:
                keep = (~masks[k]).astype(np.uint8) * 255  # COLMAP: 0 = ignore
                cv2.imwrite(str(mask_dir / f"{name}.png"), keep)
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_PINHOLE"
        reader.camera_params = f"{f0},{c0[0]},{c0[1]}"
        if masks is not None:
            reader.mask_path = str(mask_dir)
        ext = pycolmap.FeatureExtractionOptions()
        ext.num_threads = 1 if deterministic else num_threads
        ext.max_image_size = max(h, w)
        db = tmp / "db.db"
        pycolmap.extract_features(
            db,
            img_dir,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=ext,
            device=pycolmap.Device.cpu,
        )
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = overlap
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = 1 if deterministic else num_threads
        verify = pycolmap.TwoViewGeometryOptions()
        verify.ransac.random_seed = 0
        pycolmap.match_sequential(
            db,
            matching_options=matching,
            pairing_options=pairing,
            verification_options=verify,
            device=pycolmap.Device.cpu,
        )
        (tmp / "sparse").mkdir()
        threads = 1 if deterministic else num_threads
        if mapper == "global":
            gopts = pycolmap.GlobalPipelineOptions()
            gopts.num_threads = threads
            gopts.random_seed = 0
            gopts.min_model_size = 3
            gopts.mapper.num_threads = threads
            gopts.mapper.random_seed = 0
            ba = gopts.mapper.bundle_adjustment
            ba.refine_principal_point = False
            ba.refine_focal_length = refine_focal and not fixed_intrinsics
            ba.refine_extra_params = False
            if min_tri_angle is not None:
                gopts.mapper.min_tri_angle_deg = float(min_tri_angle)
                gopts.mapper.retriangulation.min_angle = float(min_tri_angle)
            recs = pycolmap.global_mapping(db, img_dir, tmp / "sparse", gopts)
        elif mapper == "incremental":
            opts = pycolmap.IncrementalPipelineOptions()
            opts.num_threads = threads
            opts.ba_refine_principal_point = False
            if fixed_intrinsics or not refine_focal:
                opts.ba_refine_focal_length = False
                opts.ba_refine_extra_params = False
                opts.mapper.abs_pose_refine_focal_length = False
                opts.mapper.abs_pose_refine_extra_params = False
            opts.min_model_size = 3
            opts.random_seed = 0
            if init_min_tri_angle is not None:
                opts.mapper.init_min_tri_angle = float(init_min_tri_angle)
            if min_tri_angle is not None:
                opts.mapper.filter_min_tri_angle = float(min_tri_angle)
                opts.mapper.ba_local_min_tri_angle = float(min_tri_angle)
                opts.triangulation.min_angle = float(min_tri_angle)
            recs = pycolmap.incremental_mapping(db, img_dir, tmp / "sparse", opts)
        else:
            raise ValueError(f"mapper must be 'incremental' or 'global', got {mapper!r}")
    if not recs:
        raise FrontEndError(
            f"structure from motion found no reconstruction from {len(names)} keyframes: " + _sfm_hint(len(names))
        )
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    if keyframes is not None:
        names = [names[int(k)] for k in keyframes]
    return _from_reconstruction(rec, names, len(names), min_registered)


def _sfm_hint(K: int) -> str:
    """What to do when structure from motion fails on ``K`` keyframes."""
    if K < 8:
        return (
            f"{K} keyframes are too few; use a longer clip (at least ~40 frames, or lower "
            "--set frontends.opt_interval), or --camera static if the camera does not move"
        )
    return (
        "the camera may barely move, only turn, or the scene lacks texture; rerun with --camera auto (the "
        "default: it falls back to a rotating or held camera), --camera rotation if the camera pans, tilts or "
        "zooms without moving, or --camera static if it does not move"
    )


def _from_reconstruction(rec, names: list[str], K: int, min_registered: float) -> SfmResult:
    cam = next(iter(rec.cameras.values()))
    focal = float(cam.params[0])
    # COLMAP puts pixel centres at +0.5; josh_jax at integers (docs/conventions.md)
    principal = np.asarray(cam.params[1:3], np.float64) - 0.5
    pid_list = sorted(rec.points3D.keys())
    index = {pid: i for i, pid in enumerate(pid_list)}
    points = np.array([rec.points3D[p].xyz for p in pid_list], np.float64).reshape(-1, 3)
    err = np.array([rec.points3D[p].error for p in pid_list], np.float64)
    registered = np.zeros(K, bool)
    T = np.tile(np.eye(4)[:3], (K, 1, 1))
    obs: list = [(np.zeros((0, 2)), np.zeros(0, np.int64)) for _ in range(K)]
    by_name = {im.name: im for im in rec.images.values()}
    invalid = np.uint64(2**64 - 1)
    for k, name in enumerate(names):
        im = by_name.get(name)
        if im is None or not im.has_pose:
            continue
        registered[k] = True
        T[k] = im.cam_from_world().matrix()
        xy, ids = [], []
        for p2 in im.points2D:
            pid = np.uint64(p2.point3D_id)
            if pid != invalid and int(pid) in index:
                xy.append(p2.xy)
                ids.append(index[int(pid)])
        obs[k] = (np.asarray(xy, np.float64).reshape(-1, 2) - 0.5, np.asarray(ids, np.int64))
    if registered.sum() < max(3, min_registered * K):
        raise FrontEndError(
            f"structure from motion registered only {registered.sum()} of {K} keyframes: " + _sfm_hint(K)
        )
    return SfmResult(registered, T, focal, principal, points, err, tuple(obs))


def static_scene(num_keyframes: int, image_size: tuple[int, int], focal: float) -> SfmResult:
    """The documented fallback for a static camera: identical identity poses, no points."""
    w, h = image_size
    K = num_keyframes
    return SfmResult(
        np.ones(K, bool),
        np.tile(np.eye(4)[:3], (K, 1, 1)),
        float(focal),
        np.array([w / 2, h / 2]),
        np.zeros((0, 3)),
        np.zeros(0),
        tuple((np.zeros((0, 2)), np.zeros(0, np.int64)) for _ in range(K)),
    )


# ------------------------------------------------------------------ bundle arrays


def dense_depth(xy: np.ndarray, z: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate sparse depths ``z`` at pixels ``xy`` (n, 2) over a W x H image.

    Linear in inverse depth inside the points' hull, nearest outside. Returns
    (depth (H, W), distance to the nearest point (H, W) in pixels).
    """
    w, h = size
    gy, gx = np.mgrid[0:h, 0:w]
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float64)
    tree = scipy.spatial.cKDTree(xy)
    dist, nn = tree.query(grid)
    inv = 1.0 / z
    out = inv[nn]
    if len(xy) >= 3:
        try:
            lin = scipy.interpolate.LinearNDInterpolator(xy, inv)(grid)
            ok = np.isfinite(lin)
            out[ok] = lin[ok]
        except scipy.spatial.QhullError:
            pass
    return (1.0 / out).reshape(h, w), dist.reshape(h, w)


def depth_and_conf(
    sfm: SfmResult,
    image_size: tuple[int, int],
    person_masks: np.ndarray | None,
    conf_radius: float = 48.0,
    conf_thres: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) depth and confidence of every keyframe (see the module docstring).

    Unregistered keyframes get the median depth of the others and zero confidence.
    """
    w, h = image_size
    K = len(sfm.registered)
    depth = np.ones((K, h, w), np.float32)
    conf = np.zeros((K, h, w), np.float32)
    Rt = sfm.cam_from_world
    z_all = []
    for k in range(K):
        xy, pid = sfm.obs[k]
        if not sfm.registered[k] or len(pid) < 3:
            continue
        Xc = sfm.points[pid] @ Rt[k, :, :3].T + Rt[k, :, 3]
        good = Xc[:, 2] > 1e-6
        d, dist = dense_depth(xy[good], Xc[good, 2], (w, h))
        depth[k] = d
        conf[k] = np.clip(1.0 - dist / conf_radius, 0.0, 1.0)
        z_all.append(np.median(Xc[good, 2]))
    if z_all:
        fill = float(np.median(z_all))
        for k in range(K):
            if not conf[k].any():
                depth[k] = fill
    if person_masks is not None:
        conf[person_masks] = 0.0
    # Invalid pixels (people, far from any point) take the depth of the nearest valid
    # pixel. A learned point map gives the person's own depth there, which the
    # optimizer compares with the nearby scene to accept a foot contact (depth
    # filter); SfM has no depth on people, so the contact labels are trusted.
    for k in range(K):
        bad = conf[k] <= conf_thres
        if bad.any() and not bad.all():
            _, (iy, ix) = scipy.ndimage.distance_transform_edt(bad, return_indices=True)
            depth[k] = depth[k][iy, ix]
    return depth, conf


def scene_arrays(
    sfm: SfmResult,
    image_size: tuple[int, int],
    person_masks: np.ndarray | None,
    conf_radius: float = 48.0,
    conf_thres: float = 0.1,
    min_shared: int = 12,
    max_corr_per_pair: int = 2000,
    pair_window: int = 10,
    seed: int = 0,
    depth_conf: tuple | None = None,
):
    """Turn a reconstruction into the bundle's scene fields (see :mod:`josh_jax.bundle`).

    ``person_masks`` (K, H, W) bool marks person pixels; ``depth_conf`` passes
    precomputed :func:`depth_and_conf` output. Returns a dict of bundle fields.
    """
    w, h = image_size
    K = len(sfm.registered)
    depth, conf = (
        depth_conf if depth_conf is not None else depth_and_conf(sfm, image_size, person_masks, conf_radius, conf_thres)
    )

    # correspondences: pairs of observations of one point
    rng = np.random.default_rng(seed)
    where = {}
    for k in range(K):
        xy, pid = sfm.obs[k]
        for x, p in zip(xy, pid):
            where.setdefault(int(p), []).append((k, x))
    pairs: dict = {}
    for p, lst in where.items():
        for a in range(len(lst)):
            for b in range(a + 1, len(lst)):
                (i, xi), (j, xj) = lst[a], lst[b]
                if i == j:
                    continue
                pairs.setdefault((i, j), []).append((xi, xj, p))
    matches = []
    for (i, j), lst in sorted(pairs.items()):
        if len(lst) < min_shared or abs(i - j) > pair_window:
            continue
        if len(lst) > max_corr_per_pair:
            lst = [lst[t] for t in rng.choice(len(lst), max_corr_per_pair, replace=False)]
        pe = sfm.point_error[[p for _, _, p in lst]]
        matches.append(
            (
                i,
                j,
                np.array([a for a, _, _ in lst]),
                np.array([b for _, b, _ in lst]),
                np.exp(-pe / 2.0).astype(np.float32),
            )
        )
    fields = pair_fields(matches)
    fields["corr_pix"][..., 0] = np.clip(fields["corr_pix"][..., 0], 0, w - 1)
    fields["corr_pix"][..., 1] = np.clip(fields["corr_pix"][..., 1], 0, h - 1)
    return dict(depth=depth, conf=conf, **fields)
