"""Render a body model posed and at rest to a PNG (matplotlib, no GL needed).

python scripts/render_body_png.py --out docs/open_body.png [--model open]
"""

import argparse

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

import josh_jax.body as jb  # noqa: E402


def draw(ax, verts, faces, title):
    tri = verts[faces][:, :, [0, 2, 1]]  # show y up
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    shade = 0.35 + 0.65 * np.clip(n @ np.array([0.3, -0.8, 0.5]) / np.linalg.norm([0.3, -0.8, 0.5]), 0, 1)
    col = np.clip(np.array([0.85, 0.62, 0.5])[None] * shade[:, None], 0, 1)
    ax.add_collection3d(Poly3DCollection(tri, facecolors=col, edgecolors="none"))
    c, r = verts.mean(0), 1.0
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[2] - r, c[2] + r)
    ax.set_zlim(c[1] - r, c[1] + r)
    ax.view_init(elev=10, azim=-70)
    ax.set_axis_off()
    ax.set_title(title)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="open")
    ap.add_argument("--out", default="docs/open_body.png")
    args = ap.parse_args()
    m = jb.load(args.model)
    faces = np.asarray(m.faces)
    rest = jb.forward(m, jnp.zeros(10), jnp.tile(jnp.eye(3), (24, 1, 1)))
    aa = np.zeros((24, 3), np.float32)
    aa[1] = [-0.6, 0, 0.1]
    aa[4] = [1.0, 0, 0]
    aa[2] = [0.4, 0, -0.1]
    aa[5] = [0.3, 0, 0]
    aa[16] = [0, 0, -1.1]
    aa[17] = [0, 0, 1.1]
    aa[18] = [0, -1.2, 0]
    aa[19] = [0, 0.3, 0]
    aa[15] = [0.2, 0.3, 0]
    aa[3] = [0.15, 0, 0]
    posed = jb.forward(m, jnp.array([1.0, 1.5] + [0.0] * 8), jb.rotmats_from_axis_angle(aa))
    fig = plt.figure(figsize=(10, 5.5), dpi=110)
    draw(
        fig.add_subplot(1, 2, 1, projection="3d"), np.asarray(rest.vertices), faces, f"{m.name}: rest (T-pose), betas 0"
    )
    draw(fig.add_subplot(1, 2, 2, projection="3d"), np.asarray(posed.vertices), faces, "posed, betas [1, 1.5, 0...]")
    fig.tight_layout()
    fig.savefig(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
