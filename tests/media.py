"""Helpers that make and inspect real media files with the bundled ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def clip(src: Path, dst: Path, seconds: float, start: float = 0.0) -> Path:
    """``seconds`` of ``src`` from ``start`` on, video and audio re-encoded."""
    subprocess.run([FFMPEG, "-v", "error", "-y", "-ss", str(start), "-i", str(src),
                    "-t", str(seconds),
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


def face_tile(image: np.ndarray, side: int, mesh, context: float = 2.5) -> np.ndarray:
    """A ``side`` x ``side`` tile of an RGB image centred on its largest face, which spans
    1/``context`` of it (``mesh``: a FaceMesh)."""
    import cv2

    points = mesh.landmarks(image)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    s = side / (context * np.ptp(points, axis=0).max())
    M = np.array([[s, 0, side / 2 - s * centre[0]], [0, s, side / 2 - s * centre[1]]])
    return cv2.warpAffine(image, M, (side, side), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def group_canvas(tiles: list[tuple[np.ndarray, int, int]], size: tuple[int, int],
                 grey: int = 200) -> np.ndarray:
    """(H, W) = ``size`` grey canvas with each (tile, x, y) pasted at x, y: a group photo."""
    canvas = np.full((*size, 3), grey, np.uint8)
    for tile, x, y in tiles:
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return canvas


def rgb_profile(name: str, red: tuple[float, float, float], green: tuple[float, float, float],
                blue: tuple[float, float, float], gamma: float) -> bytes:
    """A version 2 ICC profile of an RGB display (a matrix of the D50-adapted primaries'
    XYZ and one gamma curve), such as Adobe RGB (1998), which a camera or an editor embeds."""
    import struct

    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = name.encode() + b"\0"
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78)),
            (b"cprt", b"text" + bytes(4) + b"none\0"), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(*red)), (b"gXYZ", xyz(*green)), (b"bXYZ", xyz(*blue)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for signature, tag in tags:
        table += signature + struct.pack(">II", offset + len(data), len(tag))
        data += tag + bytes(-len(tag) % 4)
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr"
              + b"RGB XYZ " + bytes(12) + b"acspAPPL" + bytes(24)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"lcms" + bytes(44))
    return header + body


#: Adobe RGB (1998): wider than sRGB, so sRGB's colours are stored less saturated.
ADOBE_RGB = rgb_profile("Adobe RGB (1998)", (0.6097, 0.3111, 0.0195),
                        (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446), 563 / 256)
