"""The demo's two pictures: ``trajectory.png`` (top-down paths) and ``loss_curve.png``.

- trajectory.png: the joint solve's cameras and people in metres, each person in
  the colour the overlay gives them (:data:`josh_jax.export.overlay.PALETTE`), with a
  legend entry per person; the axes are framed on the cameras and people (scene
  points outside are not drawn). The front-ends-only paths live at the scene
  front end's arbitrary scale, so they get their own panel with their own axes.
- loss_curve.png: both stages on one iteration axis per window, the stage
  boundary marked, and a caption saying why each stage starts with a rise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def person_color(person_id: int) -> np.ndarray:
    """RGB in [0, 1] of a person: the colour overlay.mp4 draws them in."""
    from josh_jax.export.overlay import PALETTE

    return PALETTE[int(person_id) % len(PALETTE)] / 255.0


def _frame(ax, xy: np.ndarray, margin: float = 0.15, minimum: float = 1.0) -> None:
    """Axis limits around the (N, 2) points, a margin of ``margin`` x the extent (at least ``minimum`` m)."""
    if len(xy) == 0:
        return
    lo, hi = xy.min(0), xy.max(0)
    pad = np.maximum((hi - lo) * margin, minimum)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])


def _paths(ax, r, style: str, suffix: str) -> np.ndarray:
    """Draw camera and person paths (x, z) of one :class:`josh_jax.results.Results`; returns their points."""
    c = r.cam_to_world[:, :3, 3]
    ax.plot(c[:, 0], c[:, 2], style, color="0.3", lw=1.5, label=f"camera{suffix}")
    ax.plot(c[:1, 0], c[:1, 2], "o", color="0.3", ms=4)
    pts = [c[:, [0, 2]]]
    for p, pid in enumerate(r.person_ids):
        j = r.joints_world[p][r.visible[p], 0]
        if len(j):
            ax.plot(j[:, 0], j[:, 2], style, color=person_color(pid), lw=1.8, label=f"person {int(pid)}{suffix}")
            pts.append(j[:, [0, 2]])
    return np.concatenate(pts)


def plot_trajectory(res, init, path: str | Path, gt: dict | None = None) -> Path:
    """Write ``path``: top-down view (x right, z forward) of ``res`` (a :class:`josh_jax.results.Results`,
    metres) and, in its own panel, ``init`` (Results of the front ends only, arbitrary scale, or None);
    ``gt`` (a ground-truth dict in the results layout) is drawn in black."""
    import matplotlib.pyplot as plt

    fig = trajectory_figure(res, init, gt)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def trajectory_figure(res, init, gt: dict | None = None):
    """The matplotlib figure of :func:`plot_trajectory`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 if init is not None else 1
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 6), dpi=100, squeeze=False)
    ax = axes[0, 0]
    framed = _paths(ax, res, "-", "")
    if gt is not None:
        c = gt["cam_to_world"][:, :3, 3]
        ax.plot(c[:, 0], c[:, 2], ":", lw=2.5, color="k", label="camera, ground truth")
        for p in range(len(gt["person_ids"])):
            j = gt["joints_world"][p][gt["visible"][p], 0]
            ax.plot(j[:, 0], j[:, 2], "--", lw=1.5, color="k", label="people, ground truth" if p == 0 else None)
            framed = np.concatenate([framed, j[:, [0, 2]]])
        framed = np.concatenate([framed, c[:, [0, 2]]])
    _frame(ax, framed)
    pts = res.points
    if len(pts):
        (x0, x1), (z0, z1) = ax.get_xlim(), ax.get_ylim()
        inside = (pts[:, 0] > x0) & (pts[:, 0] < x1) & (pts[:, 2] > z0) & (pts[:, 2] < z1)
        sel = np.where(inside)[0][:: max(1, int(inside.sum()) // 20000)]
        ax.scatter(pts[sel, 0], pts[sel, 2], s=0.3, c=res.point_colors[sel] / 255.0, alpha=0.35, zorder=0)
    ax.set_aspect("equal", "box")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m, forward)")
    ax.set_title("joint optimization (metres)\nworld = first keyframe camera; dot = start")
    ax.legend(fontsize=7, loc="best")
    if init is not None:
        ax2 = axes[0, 1]
        _frame(ax2, _paths(ax2, init, "--", ", front ends only"), minimum=1e-3)
        ax2.set_aspect("equal", "box")
        ax2.set_xlabel("x (scene front end's units)")
        ax2.set_ylabel("z (scene front end's units)")
        ax2.set_title("front ends only, own panel: arbitrary scale\n(structure from motion has no metric scale)")
        ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


LOSS_CAPTION = (
    "Each stage starts with a fresh Adam state at its largest learning rate; the first steps move the "
    "bodies away from the prior's minimum (the human front end's pose), so the prior term and the total "
    "rise ~10x before they fall. This is the reference's schedule, not divergence. Stage 2 optimizes a "
    "different (2D reprojection) loss, so its level is not comparable with stage 1's."
)


def plot_losses(histories: list[dict], path: str | Path) -> Path:
    """Write ``path``: total loss of every window, stage 1 then stage 2 on one axis, the boundary marked.

    ``histories``: per window {"s1_total": (n1,), "s2_total": (n2,), ...}."""
    import matplotlib.pyplot as plt

    fig = loss_figure(histories)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_figure(histories: list[dict]):
    """The matplotlib figure of :func:`plot_losses`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=100)
    n1 = 0
    for i, h in enumerate(histories):
        s1, s2 = np.asarray(h["s1_total"]), np.asarray(h["s2_total"])
        n1 = len(s1)
        (line,) = ax.semilogy(np.arange(n1), s1, lw=1.2, label=f"window {i + 1}")
        ax.semilogy(np.arange(n1, n1 + len(s2)), s2, lw=1.2, color=line.get_color())
    ax.axvline(n1, color="k", ls="--", lw=1)
    ymax = ax.get_ylim()[1]
    ax.text(n1 * 0.5, ymax, "stage 1: 3D matching", ha="center", va="top", fontsize=9)
    ax.text(n1 * 1.02, ymax, "stage 2: 2D reprojection", ha="left", va="top", fontsize=9)
    ax.set_xlabel("iteration (stage 1, then stage 2)")
    ax.set_ylabel("total loss")
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.9))
    fig.text(0.01, 0.01, LOSS_CAPTION, fontsize=7.5, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def pick_stills(res, n: int = 3) -> list[int]:
    """Video frames for ``n`` stills: the frames with the most people tracked (visible), spread over
    the clip (one per equal part of it, the earliest best frame in each part)."""
    frames = np.asarray(res.frame_index)
    if len(frames) == 0:
        return []
    count = np.asarray(res.visible).sum(0) if len(res.person_ids) else np.zeros(len(frames), int)
    n = min(n, len(frames))
    picks = []
    for part in np.array_split(np.arange(len(frames)), n):
        if len(part):
            picks.append(int(frames[part[np.argmax(count[part])]]))
    return sorted(set(picks))
