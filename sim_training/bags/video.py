"""MP4 video through the ffmpeg binary that `imageio-ffmpeg` ships: frames (H, W, 3) uint8 RGB in, one
stream per file at a fixed frame rate, so frame i sits at i / fps (what LeRobot's decoder looks up)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np


class VideoWriter:
    def __init__(self, path: Path, width: int, height: int, fps: int, codec: str = "libx264", crf: int = 18,
                 gop: int = 2):
        """`gop`: frames between key frames; small keeps random access cheap (LeRobot writes 2)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.frames = path, 0
        self._gen = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=fps, codec=codec, quality=None, macro_block_size=2,
            pix_fmt_out="yuv420p", output_params=["-crf", str(crf), "-g", str(gop)], ffmpeg_log_level="error")
        self._gen.send(None)

    def write(self, frames: np.ndarray) -> None:
        for frame in frames:
            self._gen.send(np.ascontiguousarray(frame, np.uint8))
        self.frames += len(frames)

    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0

    def close(self) -> None:
        self._gen.close()


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of a video as (H, W, 3) uint8 RGB."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    for frame in reader:
        yield np.frombuffer(frame, np.uint8).reshape(height, width, 3)
