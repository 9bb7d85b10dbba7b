"""Helpers that make and inspect real media files with the bundled ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def clip(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``src``, video and audio re-encoded."""
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(src), "-t", str(seconds),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)],
                   check=True)
    return dst


def loop_video(src: Path, dst: Path, frames: int) -> Path:
    """``src`` looped until it has ``frames`` frames (no audio)."""
    subprocess.run([FFMPEG, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-frames:v", str(frames), "-an", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return frames, float(meta["fps"])


def streams(path: Path) -> str:
    """ffmpeg's description of the file's streams."""
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True, check=False).stderr
    return "\n".join(line for line in out.splitlines() if "Stream #" in line)


def frame_count(path: Path) -> int:
    """Frames of the first video stream, all decoded."""
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null",
                          "-"], capture_output=True, text=True, check=True).stderr
    return int(re.findall(r"frame=\s*(\d+)", out)[-1])


def audio_seconds(path: Path, rate: int = 48000) -> float:
    """Duration of the first audio stream, as decoded (its samples at ``rate``)."""
    pcm = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", str(rate), "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    return len(pcm) / 2 / rate


def write_video(frames: list[np.ndarray], dst: Path, fps: float = 25.0) -> Path:
    """RGB frames, all of one size, as an H.264 video."""
    h, w = frames[0].shape[:2]
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(dst)],
                   input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    return dst
