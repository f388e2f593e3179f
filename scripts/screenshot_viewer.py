"""Screenshot of ``python -m josh_jax.view`` on an output folder, in headless Chromium.

    python scripts/screenshot_viewer.py OUT_DIR --out docs/viewer.jpg [--frame 60] [--init]

Needs Debian's chromium (/usr/bin/chromium) and playwright (the [dev] extra).
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np


def main():
    from playwright.sync_api import sync_playwright

    from josh_jax.view import Viewer

    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/viewer.jpg"))
    ap.add_argument("--frame", type=int, default=None, help="default: the middle frame")
    ap.add_argument("--init", action="store_true", help="also show the front-ends-only result")
    ap.add_argument("--size", default="1400x700")
    ap.add_argument("--port", type=int, default=8097)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    v = Viewer(args.folder, port=args.port)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"],
            )
            page = b.new_page(viewport={"width": w, "height": h})
            page.goto(v.url)
            page.wait_for_selector("canvas", timeout=60_000)
            time.sleep(3)
            v.set_frame(v.F // 2 if args.frame is None else args.frame)
            if args.init and "init" in v.gui_show:
                v.gui_show["init"].value = True
                v.groups["init"].visible = True
            time.sleep(4)
            time.sleep(1)
            buf = page.screenshot()
            b.close()
    finally:
        v.stop()
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
