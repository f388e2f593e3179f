"""People tracking by global assignment: every person a track, a track never two people.

Per frame, the pipeline gathers person **observations**: BlazePose landmarks
run at each track's region predicted from its previous landmarks; for a
track lost (occluded) or whose region slid onto somebody else, at its region
moved by its velocity on the frame with the people already seen painted out;
and at the boxes of two detectors for people no track covers yet (the
SSDLite person detector of :mod:`.person_detector`, which needs no face, and
BlazePose's own face-keyed detector). Observations that describe the same person (landmark boxes
overlapping by IoU > ``same_iou`` and landmarks that coincide; see
:func:`same_person`) are merged, keeping the most confident.
Then one global assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``)
matches tracks to observations with the similarity

    s = w_iou * IoU(predicted box, box) + w_lm * landmark similarity + w_app * appearance similarity

(landmark similarity: OKS-like mean of exp(-d^2 / 2(k * size)^2) over landmarks
both see, against the track's last landmarks moved by its velocity;
appearance: Bhattacharyya coefficient of hue/saturation histograms of the
torso and the legs). A pair is allowed only when it passes the gates
(appearance >= ``min_app``, and box IoU >= ``min_iou`` or, for a track
unseen for a few frames, a centre within ``reid_radius`` person sizes per
missed frame). Unmatched observations with presence >= ``birth_score`` start tracks
(at most ``max_people`` live at once, :func:`track_people` tracking a few spare people and keeping
the most prominent; a new track is followed back through
the last ``backfill`` frames, so a person found late is not cut short), tracks unmatched for more than ``max_gap`` frames end;
a track matched again after a short occlusion keeps its id (re-identification), and
its gaps of up to ``fill_gap`` frames are bridged by interpolating the landmarks,
boxes and world landmarks between the frames either side (:func:`fill_gaps`; those
frames carry score 0 and half the lower visibility of the two ends, so they count
as guesses).

:class:`Tracker` holds only boxes, landmarks and histograms (no models), so
the association is unit-tested on synthetic box sequences; :func:`track_people`
runs it on video with the models.
Pixel coordinates are (x right, y down) in the frame given to BlazePose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geometry.boxes import box_iou
from . import blazepose as bp

HIST_BINS = (12, 4)  # hue, saturation


class Observation(NamedTuple):
    """One person seen on one frame.

    box (4,) pixels [xmin, ymin, xmax, ymax]; score in [0, 1]; landmarks (33, 2)
    pixels or None; visibility (33,) or None; hist (appearance histogram, sums
    to 1 per part) or None; payload: whatever the caller attaches (landmark
    results) and gets back with the assignment.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    visibility: np.ndarray | None = None
    hist: np.ndarray | None = None
    payload: object = None


@dataclass(frozen=True)
class TrackerConfig:
    max_people: int = 4  # live tracks at once
    max_gap: int = 15  # frames a track may go unmatched and still be re-identified
    same_iou: float = 0.5  # observations overlapping more are one person
    min_iou: float = 0.1  # gate for a track seen on the previous frame
    min_app: float = 0.55  # gate: appearance similarity (Bhattacharyya) of a match
    reid_radius: float = 0.35  # gate for a track missed for g frames: centre within (1 + g) * this * size
    w_iou: float = 1.0
    w_lm: float = 1.0
    w_app: float = 1.0
    lm_k: float = 0.08  # landmark similarity scale, fraction of the person's size
    hist_rate: float = 0.1  # running update of a track's appearance
    birth_score: float = 0.9  # an observation starts a track only this sure (BlazePose presence)
    backfill: int = 15  # a new track is followed back over up to this many earlier frames
    fill_gap: int = 10  # a re-identified track's gaps up to this many frames are interpolated (score 0)


def box_size(box: np.ndarray) -> float:
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def hist_similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya coefficient averaged over histogram parts (1: same colours; 1.0 when one is unknown)."""
    if a is None or b is None:
        return 1.0
    a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a[None]
    b = b.reshape(-1, b.shape[-1]) if b.ndim > 1 else b[None]
    return float(np.mean(np.sqrt(a * b).sum(-1)))


# BlazePose landmark order with left and right swapped (a person seen from behind is often mirrored)
FLIP = np.array(
    [
        0,
        4,
        5,
        6,
        1,
        2,
        3,
        8,
        7,
        10,
        9,
        12,
        11,
        14,
        13,
        16,
        15,
        18,
        17,
        20,
        19,
        22,
        21,
        24,
        23,
        26,
        25,
        28,
        27,
        30,
        29,
        32,
        31,
    ]
)


def landmark_similarity(a: np.ndarray | None, va, b: np.ndarray | None, vb, size: float, k: float) -> float:
    """OKS-like similarity of two landmark sets (33, 2) given visibilities, the better of b and b
    mirrored (left/right swapped); 0.5 when unknown."""
    if a is None or b is None:
        return 0.5
    best = 0.0
    for perm in (slice(None), FLIP):
        bb = b[perm]
        w = np.ones(len(a)) if va is None or vb is None else np.minimum(va, np.asarray(vb)[perm])
        if w.sum() < 1e-6:
            return 0.5
        d2 = ((a - bb) ** 2).sum(-1)
        best = max(best, float((w * np.exp(-d2 / (2 * (k * size) ** 2))).sum() / w.sum()))
    return best


def same_person(a: Observation, b: Observation, same_iou: float, k: float = 0.15) -> bool:
    """Two observations of one person: boxes overlapping by IoU > ``same_iou`` and, when both have
    landmarks, landmarks that roughly coincide (similarity at scale ``k`` > 0.3, mirror-free), or
    landmarks that mostly coincide (> 0.6) whatever the boxes (a box stretched by a stray limb); two
    people side by side or one behind the other overlap in boxes but not in landmarks."""
    iou = box_iou(a.box, b.box)
    if a.landmarks is None or b.landmarks is None:
        return iou > same_iou
    size = max(box_size(a.box), box_size(b.box), 1.0)
    lm = landmark_similarity(a.landmarks, a.visibility, b.landmarks, b.visibility, size, k)
    return (iou > same_iou and lm > 0.3) or lm > 0.6  # or most landmarks on the same spots, whatever the boxes


def merge_same(obs: list[Observation], same_iou: float) -> list[Observation]:
    """Keep one observation per person (:func:`same_person`): greedy by score."""
    order = sorted(range(len(obs)), key=lambda i: -obs[i].score)
    kept: list[Observation] = []
    for i in order:
        if not any(same_person(obs[i], k, same_iou) for k in kept):
            kept.append(obs[i])
    return kept


@dataclass
class TrackState:
    track_id: int
    box: np.ndarray
    velocity: np.ndarray  # (4,) pixels per frame of the box corners
    landmarks: np.ndarray | None
    visibility: np.ndarray | None
    hist: np.ndarray | None
    last_frame: int
    hits: int = 1

    def predict(self, t: int) -> np.ndarray:
        return self.box + self.velocity * (t - self.last_frame)


@dataclass
class Tracker:
    """Global-assignment tracker over per-frame observations (see the module docstring)."""

    cfg: TrackerConfig = TrackerConfig()
    tracks: list[TrackState] = field(default_factory=list)
    next_id: int = 0

    def live(self, t: int) -> list[TrackState]:
        return [s for s in self.tracks if t - s.last_frame <= self.cfg.max_gap]

    def similarity(self, s: TrackState, o: Observation, t: int) -> float:
        """The assignment's similarity of track ``s`` and observation ``o`` on frame ``t``; -inf when gated out."""
        c = self.cfg
        gap = t - s.last_frame
        pred = s.predict(t)
        size = max(box_size(pred), 1.0)
        iou = float(box_iou(pred, o.box))
        app = hist_similarity(s.hist, o.hist)
        if app < c.min_app:
            return -np.inf
        if gap <= 1:
            if iou < c.min_iou:
                return -np.inf
        else:
            dc = np.hypot(*((pred[:2] + pred[2:]) / 2 - (o.box[:2] + o.box[2:]) / 2))
            if iou < c.min_iou and dc > (1 + gap) * c.reid_radius * size:
                return -np.inf
        lm_pred = None
        if s.landmarks is not None:
            shift = ((pred[:2] + pred[2:]) - (s.box[:2] + s.box[2:])) / 2
            lm_pred = s.landmarks + shift
        lm = landmark_similarity(lm_pred, s.visibility, o.landmarks, o.visibility, size, c.lm_k)
        return c.w_iou * iou + c.w_lm * lm + c.w_app * app

    def step(self, t: int, obs: list[Observation]) -> list[tuple[int, int]]:
        """Assign frame ``t``'s observations (already one per person) to tracks; returns (track_id, index) pairs,
        starting tracks for unmatched observations while fewer than ``max_people`` are live."""
        c = self.cfg
        live = self.live(t)
        pairs: list[tuple[int, int]] = []
        used = set()
        if live and obs:
            S = np.array([[self.similarity(s, o, t) for o in obs] for s in live])
            cost = np.where(np.isfinite(S), -S, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, k in zip(rows, cols):
                if np.isfinite(S[r, k]):
                    self._update(live[r], obs[k], t)
                    pairs.append((live[r].track_id, int(k)))
                    used.add(int(k))
        n_live = len([s for s in self.live(t)])
        for k in sorted(set(range(len(obs))) - used, key=lambda i: -obs[i].score):
            if n_live >= c.max_people:
                break
            if obs[k].score < c.birth_score:
                continue
            # never start a track on a person a live track already covers this frame
            if any(
                same_person(Observation(s.box, 1.0, s.landmarks, s.visibility), obs[k], c.same_iou)
                for s in self.tracks
                if s.last_frame == t
            ):
                continue
            o = obs[k]
            s = TrackState(self.next_id, np.asarray(o.box, float), np.zeros(4), o.landmarks, o.visibility, o.hist, t)
            self.tracks.append(s)
            self.next_id += 1
            n_live += 1
            pairs.append((s.track_id, k))
        return pairs

    def _update(self, s: TrackState, o: Observation, t: int) -> None:
        box = np.asarray(o.box, float)
        gap = max(t - s.last_frame, 1)
        v = (box - s.box) / gap
        s.velocity = v if s.hits == 1 else 0.5 * s.velocity + 0.5 * v
        s.box, s.last_frame, s.hits = box, t, s.hits + 1
        if o.landmarks is not None:
            s.landmarks, s.visibility = o.landmarks, o.visibility
        if o.hist is not None:
            s.hist = o.hist if s.hist is None else (1 - self.cfg.hist_rate) * s.hist + self.cfg.hist_rate * o.hist


# ------------------------------------------------------------------ appearance


def appearance(image_hsv: np.ndarray, landmarks: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray | None:
    """(2, 12 * 4) hue/saturation histograms of the torso (shoulders to hips) and the legs (hips to ankles),
    each summing to 1; None when the regions fall outside the frame. ``image_hsv``: OpenCV HSV (H in 0-179);
    ``valid`` (H, W) uint8: only pixels where it is non-zero count (e.g. not another person's)."""
    h, w = image_hsv.shape[:2]
    parts = (
        (bp.L_SHOULDER, bp.R_SHOULDER, bp.L_HIP, bp.R_HIP),
        (bp.L_HIP, bp.R_HIP, bp.L_KNEE, bp.R_KNEE, bp.L_ANKLE, bp.R_ANKLE),
    )
    out = []
    for idx in parts:
        p = landmarks[list(idx), :2]
        lo, hi = p.min(0), p.max(0)
        pad = 0.15 * (hi - lo)
        lo, hi = lo + pad, hi - pad
        if idx[0] == bp.L_HIP:  # legs: a band around the leg joints, at least a quarter of the height wide
            cx, half = (lo[0] + hi[0]) / 2, max((hi[0] - lo[0]) / 2, 0.12 * (hi[1] - lo[1]))
            lo[0], hi[0] = cx - half, cx + half
        x0, y0 = np.clip(np.floor(lo), 0, [w, h]).astype(int)
        x1, y1 = np.clip(np.ceil(hi), 0, [w, h]).astype(int)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        roi = np.ascontiguousarray(image_hsv[y0:y1, x0:x1])
        m = None if valid is None else np.ascontiguousarray(valid[y0:y1, x0:x1])
        hist = cv2.calcHist([roi], [0, 1], m, list(HIST_BINS), [0, 180, 0, 256]).ravel()
        if hist.sum() < 4:
            return None
        out.append(hist / max(hist.sum(), 1e-9))
    return np.stack(out)


# ------------------------------------------------------------------ on video


def box_roi(box: np.ndarray, enlarge: float = 1.25) -> bp.Roi:
    """An upright BlazePose region for a person box: centred on the box, side ``enlarge`` x its longer side."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return bp.Roi(float(cx), float(cy), float(enlarge * max(box[2] - box[0], box[3] - box[1])), 0.0)


def _landmark_box(img: np.ndarray, vis: np.ndarray) -> np.ndarray:
    xy = img[:33, :2]
    sel = vis[:33] > 0.3
    if sel.sum() < 4:
        sel = np.ones(33, bool)
    return np.concatenate([xy[sel].min(0), xy[sel].max(0)])


@dataclass
class _Run:
    track: bp.PoseTrack
    filt: bp.OneEuro
    next_roi: bp.Roi
    last: int


#: people tracked beyond ``max_people`` (each costs one landmark call per frame while seen), so that
#: nobody's track drifts onto a person without one; the most prominent ``max_people`` are kept
SPARE_TRACKS = 2


def track_people(
    pose: bp.BlazePose,
    detector,
    frames: Iterable[np.ndarray],
    fps: float,
    max_people: int = 4,
    min_frames: int = 10,
    mask_frames: set | None = None,
    mask_size=None,
    progress=None,
    cfg: TrackerConfig | None = None,
    min_presence: float = 0.5,
    det_score: float = 0.3,
    spare: int = SPARE_TRACKS,
):
    """Detect, track and landmark people over a frame sequence (RGB uint8 frames).

    ``detector``: a :class:`~.person_detector.PersonDetector` (or None: BlazePose's detector alone).
    Up to ``max_people + spare`` people are tracked at once, so that a person beyond ``max_people``
    has a track of their own and no track drifts onto them; then the ``max_people`` most prominent
    tracks are kept (:func:`prominence`: size, duration, centrality), not whoever came first.
    Returns (tracks: list[PoseTrack] with >= ``min_frames`` frames, ids from 0 in order of appearance;
    masks: {frame: (h, w) float32 union person probability} for frames in ``mask_frames``: every
    person seen, kept or not).
    """
    cfg = cfg or TrackerConfig(max_people=max_people + max(spare, 0))
    size = None
    tracker = Tracker(cfg)
    runs: dict[int, _Run] = {}
    masks: dict[int, np.ndarray] = {}
    recent: list[tuple] = []  # (frame, image, hsv, observations) of the last cfg.backfill frames
    for t, image in enumerate(frames):
        size = image.shape[1::-1]
        want = mask_frames is not None and t in mask_frames
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)

        def observe(roi: bp.Roi, refine: int = 0, proposal: np.ndarray | None = None, img=image, valid=None, hsv=hsv):
            r = pose.landmarks(img, roi, want_mask=refine == 0)
            for _ in range(refine):  # a box seed: re-centre on the landmarks' own region, then once more
                roi = bp.roi_from_points(r["image"][33, :2], r["image"][34, :2])
                r = pose.landmarks(img, roi, want_mask=True)
            if r["presence"] < min_presence:
                return None
            box = _landmark_box(r["image"], r["visibility"])
            if proposal is not None and box_iou(box, proposal) < 0.3:
                return None  # the landmarks found someone else (or nothing) in the box
            return Observation(
                box,
                float(r["presence"]),
                r["image"][:33, :2],
                r["visibility"][:33],
                appearance(hsv, r["image"], valid),
                r,
            )

        # 1. tracks seen on the previous frame: their landmarks predict the region
        live = tracker.live(t)
        obs: list[Observation] = []
        for s in live:
            run = runs.get(s.track_id)
            if run is not None and run.last == t - 1:
                o = observe(run.next_roi)
                if o is not None:
                    o.payload["from"] = s.track_id
                    obs.append(o)
        obs = merge_same(obs, cfg.same_iou)
        # 2. tracks lost (occluded?) or whose region slid onto somebody else: look where their motion
        # would have taken them, with the people already seen painted out
        seen = {o.payload.get("from") for o in obs}
        hidden = None
        for s in live:
            run = runs.get(s.track_id)
            if run is None or s.track_id in seen:
                continue
            if hidden is None:
                occ = np.zeros(image.shape[:2], bool)
                for o in obs:
                    occ |= o.payload["mask"] > 0.5
                hidden = image.copy()
                hidden[occ] = np.uint8(127)
                valid = (~occ).astype(np.uint8)
            shift = (s.velocity[:2] + s.velocity[2:]) / 2 * (t - 1 - run.last)
            r0 = run.next_roi
            o = observe(
                bp.Roi(r0.cx + shift[0], r0.cy + shift[1], r0.size, r0.angle), refine=1, img=hidden, valid=valid
            )
            if o is not None and not any(same_person(o, k, cfg.same_iou) for k in obs):
                obs.append(o)
        proposals = []
        if detector is not None:
            boxes, scores = detector.detect(image, min_score=det_score)
            proposals += [(s, b) for b, s in zip(boxes, scores) if (b[3] - b[1]) >= 0.8 * (b[2] - b[0])]
        proposals += [(d.score, d.box, d) for d in pose.detect(image)]
        for prop in sorted(proposals, key=lambda p: -p[0]):
            box = prop[1]
            if any(box_iou(o.box, box) > 0.6 for o in obs):
                continue  # somebody already seen there
            if len(prop) == 3:  # BlazePose detection: its own keypoints give the region
                o = observe(bp.roi_from_points(prop[2].keypoints[0], prop[2].keypoints[1]), refine=1)
            else:
                o = observe(box_roi(box), refine=2, proposal=box)
            if o is not None and not any(same_person(o, k, cfg.same_iou) for k in obs):
                obs.append(o)
        union = None
        born = []
        for tid, k in tracker.step(t, obs):
            r = obs[k].payload
            run = runs.get(tid)
            if run is None:
                born.append((tid, k))
            if run is None or run.last < t - 1:  # new, or back after an occlusion: restart the smoothing
                run = runs[tid] = _Run(run.track if run else bp.PoseTrack(tid), bp.OneEuro(), None, t)
            roi_size = max(box_size(obs[k].box), 1.0)
            img = r["image"].copy()
            img[:35] = run.filt(img[:35], t / fps, scale=roi_size)
            tr = run.track
            tr.frames.append(t)
            tr.image.append(img[:33])
            tr.visibility.append(r["visibility"][:33])
            tr.world.append(r["world"][:33])
            tr.score.append(r["presence"])
            tr.box.append(np.asarray(obs[k].box, np.float32))
            run.next_roi = bp.roi_from_points(img[33, :2], img[34, :2])
            run.last = t
        if want:  # every person seen, tracked or not (the scene must not match on people)
            for o in obs:
                m = o.payload["mask"]
                union = m if union is None else np.maximum(union, m)
            if union is not None and mask_size is not None:
                union = cv2.resize(union, tuple(mask_size), interpolation=cv2.INTER_LINEAR)
            if union is None:
                h, w = image.shape[:2] if mask_size is None else mask_size[::-1]
                union = np.zeros((h, w), np.float32)
            masks[t] = union
        for tid, k in born:  # a person found late: follow it back through the frames before
            _backfill(pose, runs[tid].track, obs[k], recent, cfg, min_presence, masks, mask_size)
        recent = (recent + [(t, image, hsv, obs)])[-cfg.backfill :] if cfg.backfill else []
        if progress is not None:
            progress(1)
    tracks = [t for r in runs.values() for t in split_identity_changes(r.track) if len(t.frames) >= min_frames]
    if size is not None:
        tracks = [t for t in drop_duplicates(tracks, size) if seen_whole_frames(t, size) >= min_frames]
    if len(tracks) > max_people:
        tracks = sorted(tracks, key=lambda tr: -prominence(tr, size))[:max_people]
    tracks = sorted(tracks, key=lambda tr: tr.frames[0])
    for i, tr in enumerate(tracks):
        tr.track_id = i
        fill_gaps(tr, cfg.fill_gap)
    return tracks, masks


#: BlazePose landmarks of the legs (hips, knees, ankles): a person seen whole shows them
LEG_LANDMARKS = (23, 24, 25, 26, 27, 28)
KNEES_ANKLES = LEG_LANDMARKS[2:]


def _boxes_in_image(track: bp.PoseTrack, image_size):
    """The track's boxes (n, 4), the same clipped to the image, and each box's share inside the image (n,)."""
    boxes = np.asarray(track.box, np.float64).reshape(-1, 4)
    w, h = (float(x) for x in image_size)
    clipped = np.clip(boxes, 0.0, [w, h, w, h])
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6) * np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return boxes, clipped, (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) / area


def prominence(track: bp.PoseTrack, image_size) -> float:
    """How much a track matters to a viewer, in pixels x frames: the sum over its frames of the box
    height inside the image times a centrality weight (1 at the image centre, 0.5 at a corner), the
    share of the box inside the image and the legs' mean landmark visibility. Larger, longer, more
    central people seen whole come first; a passer-by at the edge, a person cut by the frame or
    hidden below the waist (seated behind a table) last."""
    boxes, clipped, inside = _boxes_in_image(track, image_size)
    w, h = (float(x) for x in image_size)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    off = np.linalg.norm((centre - [w / 2, h / 2]) / [w / 2, h / 2], axis=1) / np.sqrt(2)
    central = 1.0 - 0.5 * np.clip(off, 0.0, 1.0)
    legs = 1.0
    if len(track.visibility) == len(boxes):
        legs = np.asarray(track.visibility, np.float64)[:, list(LEG_LANDMARKS)].mean(1)
    return float(np.sum((clipped[:, 3] - clipped[:, 1]) * central * inside * legs))


#: a frame shows a person whole when their knees and ankles are visible (mean BlazePose visibility above
#: this) and at least WHOLE_INSIDE of their box lies inside the image
WHOLE_VISIBILITY = 0.5
WHOLE_INSIDE = 0.6


def seen_whole_frames(track: bp.PoseTrack, image_size) -> int:
    """On how many frames the track shows its person whole (:data:`WHOLE_VISIBILITY`,
    :data:`WHOLE_INSIDE`). :func:`track_people` keeps a track only when that is at least ``min_frames``:
    the body fit needs the legs and the contacts need the feet, and a person seated behind a table or
    cut by the frame's edge for the whole clip gets a body that is not theirs (on a real cafe clip their
    bodies sat 5-10 % of their height off the video against 3.5 % for the walker). Tracks without
    visibility (unit tests) count every frame."""
    boxes, _, share = _boxes_in_image(track, image_size)
    inside = share >= WHOLE_INSIDE
    if len(track.visibility) != len(boxes):
        return int(inside.sum())
    legs = np.asarray(track.visibility, np.float64)[:, list(KNEES_ANKLES)].mean(1) > WHOLE_VISIBILITY
    return int((inside & legs).sum())


#: a track whose box height changes by more than this factor against its median over the previous
#: :data:`SPLIT_WINDOW` frames, on three observed frames running, changed person (split there)
SPLIT_RATIO = 1.8
SPLIT_WINDOW = 10


def split_identity_changes(
    track: bp.PoseTrack, ratio: float = SPLIT_RATIO, window: int = SPLIT_WINDOW, persist: int = 3
) -> list[bp.PoseTrack]:
    """Cut a track where it jumped to another person -> its pieces (the track itself when it did not).

    A person's image height cannot change by a factor ``ratio`` (1.8) within ``window`` frames (a third
    of a second: the distance would have to nearly halve); a track's box height that does, against its
    median over the previous ``window`` frames of the piece, on ``persist`` observed frames running (one
    flickering landmark box is not enough), has moved onto somebody else: a far passer-by's region slid
    onto a near person walking in front of it (measured on the reference's own demo video: a 40 px
    pedestrian's track became a 111-156 px couple within 10 frames). The pieces keep their frames;
    :func:`track_people` drops pieces shorter than ``min_frames`` and ranks the rest."""
    fr = np.asarray(track.frames, np.int64)
    h = np.array([float(b[3] - b[1]) for b in track.box])
    if len(fr) < persist + 1:
        return [track]
    cuts, start = [], 0
    for i in range(1, len(fr) - persist + 1):
        lo = max(start, int(np.searchsorted(fr, fr[i] - window)))
        if lo >= i:
            continue
        base = max(float(np.median(h[lo:i])), 1e-6)
        r = h[i : i + persist] / base
        if (r > ratio).all() or (r < 1.0 / ratio).all():
            cuts.append(i)
            start = i
    if not cuts:
        return [track]
    pieces = []
    for a, b in zip([0] + cuts, cuts + [len(fr)]):
        piece = bp.PoseTrack(track.track_id)
        for k in ("frames", "image", "visibility", "world", "score", "box"):
            setattr(piece, k, list(getattr(track, k))[a:b])
        pieces.append(piece)
    return pieces


#: two tracks whose boxes overlap by IoU above DUPLICATE_IOU on more than DUPLICATE_SHARE of their common
#: frames are on one place: at most one of them is a whole person
DUPLICATE_IOU = 0.5
DUPLICATE_SHARE = 0.5


def drop_duplicates(tracks: list, image_size, iou: float = DUPLICATE_IOU, share: float = DUPLICATE_SHARE) -> list:
    """Tracks without the less prominent of every pair that sits on one place for most of their common
    frames (box IoU above ``iou`` on more than ``share`` of them, at least 10 frames): such a pair is one
    person seen twice, or one person and a track whose landmarks mix them with somebody they hide (a
    couple walking side by side, one behind the other, on the reference's own demo video: its body is
    drawn across both). A person passing behind another overlaps only while passing (the rendered
    crossing: 8 of 48 frames) and keeps their track."""
    order = sorted(tracks, key=lambda t: -prominence(t, image_size))
    boxes = [{int(f): np.asarray(b, np.float64) for f, b in zip(t.frames, t.box)} for t in order]
    kept: list[int] = []
    for i in range(len(order)):
        dup = False
        for j in kept:
            common = sorted(set(boxes[i]) & set(boxes[j]))
            if len(common) < 10:
                continue
            over = np.mean([float(box_iou(boxes[i][f], boxes[j][f])) > iou for f in common])
            if over > share:
                dup = True
                break
        if not dup:
            kept.append(i)
    keep = {id(order[i]) for i in kept}
    return [t for t in tracks if id(t) in keep]


def fill_gaps(track: bp.PoseTrack, max_gap: int) -> int:
    """Bridge the track's gaps of 1..``max_gap`` missing frames in place by linear interpolation of its
    image landmarks, world landmarks and boxes between the observed frames either side (a person hidden
    for a moment keeps moving). Filled frames get score (presence) 0 and half the lower visibility of the
    two ends, per landmark. Frames must be increasing. Returns the number of frames added."""
    fr = list(map(int, track.frames))
    fields = ("image", "world", "box")
    out = {k: [] for k in ("frames", "visibility", "score", *fields)}
    for i, f in enumerate(fr):
        if i and 1 < f - fr[i - 1] <= max_gap + 1:
            a, n = fr[i - 1], f - fr[i - 1]
            ends = {k: (np.asarray(getattr(track, k)[i - 1]), np.asarray(getattr(track, k)[i])) for k in fields}
            v_lo, v_hi = np.asarray(track.visibility[i - 1]), np.asarray(track.visibility[i])
            vis = (0.5 * np.minimum(v_lo, v_hi)).astype(v_hi.dtype)
            for g in range(a + 1, f):
                w = (g - a) / n
                out["frames"].append(g)
                for k, (lo, hi) in ends.items():
                    out[k].append(((1 - w) * lo + w * hi).astype(lo.dtype))
                out["visibility"].append(vis)
                out["score"].append(0.0)
        out["frames"].append(f)
        for k in (*fields, "visibility", "score"):
            out[k].append(getattr(track, k)[i])
    for k, v in out.items():
        setattr(track, k, v)
    return len(out["frames"]) - len(fr)


def _backfill(
    pose: bp.BlazePose,
    track: bp.PoseTrack,
    first: Observation,
    recent: list,
    cfg: TrackerConfig,
    min_presence: float,
    masks: dict,
    mask_size,
) -> int:
    """Follow a newly born track backwards through ``recent`` frames (newest first) from its first
    observation, with the same checks as forward (presence, appearance gate, not a person another
    observation of that frame already covers); prepend what it finds. Returns the frames added."""
    r = first.payload
    roi = bp.roi_from_points(r["image"][33, :2], r["image"][34, :2])
    hist, prev = first.hist, first
    found = []
    for f, img, hsv, others in reversed(recent):
        r = pose.landmarks(img, roi, want_mask=True)
        roi2 = bp.roi_from_points(r["image"][33, :2], r["image"][34, :2])
        r = pose.landmarks(img, roi2, want_mask=True)
        if r["presence"] < min_presence:
            break
        box = _landmark_box(r["image"], r["visibility"])
        o = Observation(
            box, float(r["presence"]), r["image"][:33, :2], r["visibility"][:33], appearance(hsv, r["image"]), r
        )
        if hist_similarity(hist, o.hist) < cfg.min_app or box_iou(box, prev.box) < cfg.min_iou:
            break
        if any(same_person(o, q, cfg.same_iou) for q in others):
            break  # somebody tracked there already: not this person, or this person's older track
        found.append((f, o))
        prev, roi = o, bp.roi_from_points(r["image"][33, :2], r["image"][34, :2])
    if not found:
        return 0
    found.reverse()  # oldest first
    r_ = [o.payload for _, o in found]
    track.frames[:0] = [f for f, _ in found]
    track.image[:0] = [p["image"][:33] for p in r_]
    track.visibility[:0] = [p["visibility"][:33] for p in r_]
    track.world[:0] = [p["world"][:33] for p in r_]
    track.score[:0] = [p["presence"] for p in r_]
    track.box[:0] = [np.asarray(o.box, np.float32) for _, o in found]
    for f, o in found:
        if f in masks:
            m = o.payload["mask"]
            if mask_size is not None:
                m = cv2.resize(m, tuple(mask_size), interpolation=cv2.INTER_LINEAR)
            masks[f] = np.maximum(masks[f], m)
    return len(found)
