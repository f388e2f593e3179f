"""Reading videos with OpenCV: checked, resized on the fly, streamed (never all frames in memory)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# FFmpeg's own log lines ("moov atom not found") would come before our one-line message; silence them
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from josh_jax.errors import FrontEndError

MIN_SIDE, MAX_SIDE = 64, 8192


class VideoError(FrontEndError):
    """The video cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class VideoInfo:
    """A checked clip: frames ``start .. start + num_frames - 1`` of ``path``.

    width/height are of the original video (after rotation metadata, which
    OpenCV applies); ``fps`` frames per second.
    """

    path: Path
    width: int
    height: int
    fps: float
    start: int
    num_frames: int

    def size_at(self, long_side: int) -> tuple[int, int]:
        """(w, h) of a frame resized so that its long side is ``long_side`` (never enlarged)."""
        s = min(1.0, long_side / max(self.width, self.height))
        return max(1, round(self.width * s)), max(1, round(self.height * s))


def probe(path: str | Path, start: int = 0, frames: int | None = None) -> VideoInfo:
    """Open and check a video; count the frames that actually decode (a truncated file counts less)."""
    path = Path(path)
    if start < 0:
        raise VideoError(f"--start must be >= 0 (a frame of the video), got {start}")
    if frames is not None and frames < 1:
        raise VideoError(f"--frames must be >= 1, got {frames}")
    try:
        path.stat()
    except OSError as exc:
        if path.is_symlink():
            raise VideoError(
                f"video {path} is a symbolic link that cannot be followed ({exc.strerror}: a loop or a broken link)"
            ) from None
        if isinstance(exc, FileNotFoundError):
            raise VideoError(f"video {path} does not exist") from None
        raise VideoError(f"video {path} cannot be accessed: {exc.strerror}") from None
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoError(f"video {path} cannot be read (permission denied); check its permissions")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(
                f"{path} cannot be opened as a video (not a video, or corrupt/truncated); if it "
                f"plays elsewhere, convert it: ffmpeg -i {path.name} -c:v libx264 out.mp4"
            )
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: no frame could be decoded; the file is corrupt, truncated or not a video")
        h, w = frame.shape[:2]
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = float(fps) if fps and np.isfinite(fps) and 1 <= fps <= 1000 else 30.0
        n = 1
        last = None if frames is None else start + frames
        while last is None or n < last:
            if not cap.grab():
                break
            n += 1
    finally:
        cap.release()
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise VideoError(
            f"{path}: resolution {w}x{h} is outside what the front ends handle "
            f"({MIN_SIDE}..{MAX_SIDE} pixels a side); resize it first"
        )
    if start >= n:
        raise VideoError(f"{path}: --start {start} is past the end of the video ({n} decodable frames)")
    count = n - start if frames is None else min(frames, n - start)
    return VideoInfo(path, w, h, fps, start, count)


def iter_frames(info: VideoInfo, long_side: int | None = None, indices=None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (clip frame index, RGB uint8 frame) for every frame of the clip, or only ``indices``.

    Frames are resized so that the long side is at most ``long_side``.
    """
    want = None if indices is None else set(int(i) for i in indices)
    size = info.size_at(long_side) if long_side else (info.width, info.height)
    cap = cv2.VideoCapture(str(info.path))
    try:
        for _ in range(info.start):
            cap.grab()
        for i in range(info.num_frames):
            if want is not None and i not in want:
                if not cap.grab():
                    break
                continue
            ok, frame = cap.read()
            if not ok:
                break
            if frame.shape[1::-1] != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            yield i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if want is not None and i >= max(want):
                break
    finally:
        cap.release()
