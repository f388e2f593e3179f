"""README pictures from a demo output folder: ``python scripts/make_readme_pictures.py DEMO_OUT``.

Writes docs/demo_overlay.jpg (the three overlay stills side by side, 240 px high) and
docs/demo_trajectory.png (a copy of trajectory.png). Make DEMO_OUT with
``python -m josh_jax.demo --out DEMO_OUT`` (the bundled example clip).
"""

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(out: Path) -> None:
    stills = sorted((out / "overlay_frames").glob("frame_*.png"))
    if not stills:
        raise SystemExit(f"error: no stills in {out}/overlay_frames; run the demo without --no-overlay")
    imgs = [cv2.imread(str(p)) for p in stills]
    imgs = [cv2.resize(im, (round(im.shape[1] * 240 / im.shape[0]), 240), interpolation=cv2.INTER_AREA) for im in imgs]
    cv2.imwrite(str(DOCS / "demo_overlay.jpg"), np.concatenate(imgs, 1), [cv2.IMWRITE_JPEG_QUALITY, 88])
    shutil.copy(out / "trajectory.png", DOCS / "demo_trajectory.png")
    print(f"wrote {DOCS / 'demo_overlay.jpg'} ({', '.join(p.stem for p in stills)}) and {DOCS / 'demo_trajectory.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
