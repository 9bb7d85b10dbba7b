"""Streaming video input and output with the ffmpeg binary that imageio-ffmpeg ships.

Frames are decoded and encoded one at a time; outputs are written under a temporary name
and renamed when complete. ffmpeg is always run with an argument list, never a shell.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import imageio_ffmpeg
import numpy as np

from ..errors import InputError
from .files import atomic_path, commit, discard, temp_sibling

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "probe_video", "iter_frames", "VideoWriter",
           "mux_audio", "ffmpeg_exe"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv")


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """Attributes: fps (exact, as ffmpeg reports it), size (width, height), has_audio,
    duration in seconds (0 when the container does not say)."""

    fps: float
    size: tuple[int, int]
    has_audio: bool
    duration: float = 0.0


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"video not found: {path}; check the path")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"unsupported video extension {path.suffix!r} for {path}; use one of "
                         + " ".join(VIDEO_EXTENSIONS))


def _unreadable(path: Path) -> InputError:
    """Tell a container without video frames from a corrupt file, as ffmpeg sees them."""
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True, check=False).stderr
    if "Input #0" in probe and "Video:" not in probe:
        return InputError(f"video {path} has zero frames (no video stream); use a video with "
                          "at least one frame")
    return InputError(f"cannot decode video {path}: the file is corrupt or not a video; "
                      "re-encode it as H.264 .mp4")


def _open(path: Path) -> tuple[dict, Iterator[bytes]]:
    _check_file(path)
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        reader.close()
        raise _unreadable(path) from exc
    if not meta.get("size") or not meta.get("fps"):
        reader.close()
        raise _unreadable(path)
    return meta, reader


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, size and whether there is an audio stream."""
    meta, reader = _open(Path(path))
    reader.close()
    return VideoInfo(fps=float(meta["fps"]), size=tuple(meta["size"]),
                     has_audio=bool(meta.get("audio_codec")),
                     duration=float(meta.get("duration") or 0.0))


def iter_frames(path: str | os.PathLike, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames one at a time, at most ``limit`` of them.

    Raises:
        InputError: the file is missing, unsupported, corrupt, or has no frame at all.
    """
    path = Path(path)
    meta, reader = _open(path)
    w, h = meta["size"]
    count = 0
    try:
        for buffer in reader:
            if limit is not None and count >= limit:
                break
            yield np.frombuffer(buffer, dtype=np.uint8).reshape(h, w, 3)
            count += 1
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot decode video {path} after {count} frames: {exc}; "
                         "re-encode it as H.264 .mp4") from exc
    finally:
        reader.close()
    if count == 0:
        raise InputError(f"video {path} has zero frames; use a video with at least one frame")


class VideoWriter:
    """H.264 (yuv420p, CRF 18) writer fed one RGB frame at a time; the file appears under its
    final name only when the ``with`` block completes without error.

    Args:
        path: output ``.mp4``.
        fps: frames per second (not truncated).
        fast: encode for a real-time pipeline: x264's ``veryfast`` preset, about 2.5 times
            cheaper per frame than the default ``medium`` (0.6 dB less PSNR at CRF 18, smaller
            files), on one thread, leaving the other cores to the rendering.
    """

    def __init__(self, path: str | os.PathLike, fps: float, fast: bool = False) -> None:
        self.path = Path(path)
        self.fps = fps
        self.fast = fast
        self.frames = 0
        self._tmp: Path | None = None
        self._encoder = None
        self._yuv = False

    def __enter__(self) -> VideoWriter:
        self._tmp = temp_sibling(self.path)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; every frame must have the first one's size.

        Even-sized frames go to ffmpeg as yuv420p, converted here (BT.601, limited range, as
        ffmpeg converts; a fraction of ffmpeg's cost, and half the bytes through the pipe);
        odd-sized ones as RGB, which ffmpeg scales to even sizes.
        """
        if self._encoder is None:
            h, w = frame.shape[:2]
            self._yuv = h % 2 == 0 and w % 2 == 0
            self._encoder = imageio_ffmpeg.write_frames(
                str(self._tmp), (w, h), fps=self.fps, codec="libx264", quality=None,
                pix_fmt_in="yuv420p" if self._yuv else "rgb24", pix_fmt_out="yuv420p",
                macro_block_size=2, ffmpeg_log_level="error",
                output_params=["-crf", "18", *(["-preset", "veryfast", "-threads", "1"]
                                               if self.fast else [])])
            self._encoder.send(None)
        if self._yuv:
            self._encoder.send(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420))
        else:
            self._encoder.send(np.ascontiguousarray(frame))
        self.frames += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._encoder is not None:
            self._encoder.close()
        if exc_type is None and self.frames:
            commit(self._tmp, self.path)
        else:
            discard(self._tmp)


def mux_audio(video: Path, audio_source: Path) -> None:
    """Replace ``video`` by a copy whose audio track comes from ``audio_source``."""
    with atomic_path(video) as tmp:
        cmd = [ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(audio_source),
               "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-shortest", "-f", "mp4",
               str(tmp)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise InputError(f"cannot add the audio of {audio_source} to {video}: {reason}")
