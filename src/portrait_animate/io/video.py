"""Streaming video input and output with the ffmpeg binary that imageio-ffmpeg ships.

Frames are decoded and encoded one at a time; outputs are written under a temporary name
and renamed when complete. ffmpeg is always run with an argument list, never a shell.
"""

from __future__ import annotations

import functools
import logging
import numbers
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageSequence

from ..errors import InputError
from .files import FileStamp, commit, discard, file_stamp, temp_sibling
from .images import ANIMATED_EXTENSIONS, PILLOW_ERRORS, check_rgb, over_white

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "probe_video", "iter_frames", "VideoWriter",
           "ffmpeg_exe"]

#: What ffmpeg reads and people have: phones' (.mp4, .mov, .m4v, .3gp), camcorders' MPEG
#: transport streams (.mts, .m2ts), the web's (.webm, .ogv, .flv) and older containers. ".gif":
#: an animated GIF (a still one is an image, see pipeline.inputs.classify_input); an animated
#: WebP or PNG (ANIMATED_EXTENSIONS) is read as a video too.
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".3gp", ".avi", ".webm", ".mkv", ".mts", ".m2ts",
                    ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".gif")
#: The highest frame rate a video is written at.
MAX_FPS = 1000
#: Frames a video may lack against its container's duration without a warning: an audio track
#: often outlasts the video by a few frames.
SHORT_VIDEO_TOLERANCE_S = 0.2
#: An animated image's frame shown this many milliseconds or less (no delay, or one
#: centisecond) is shown for DEFAULT_FRAME_MS by browsers, the timing its maker saw; ffmpeg
#: played a one-centisecond GIF at 100 fps, ten times too fast.
SHORTEST_FRAME_MS = 10
DEFAULT_FRAME_MS = 100
#: What the written videos' colours are, told to players (untagged, a player of a video of HD
#: size takes BT.709's matrix, and its colours shift): sRGB frames (BT.709's primaries, sRGB's
#: transfer) turned into limited-range YUV by BT.601's matrix, as :meth:`VideoWriter.write`
#: and ffmpeg's scaler turn them.
COLOUR_TAGS = "setparams=range=tv:colorspace=smpte170m:color_primaries=bt709:color_trc=iec61966-2-1"
#: Frames of a video's packets that may fail to decode before :func:`iter_frames` warns: each
#: one lost plays every later frame a frame early.
LOST_FRAMES = 2
#: What ffmpeg's framecrc shows for a packet without a presentation time (AV_NOPTS_VALUE).
_NO_PTS = -(2**63)
#: ffmpeg's decoders of animated images (GIF, WebP, APNG), whose timing Pillow reads.
_ANIMATION_CODECS = ("gif", "webp", "apng")


class _UprightNote(logging.Filter):
    """Drops imageio-ffmpeg's warning, on every rotated video (a phone's portrait clip), that
    the frames' size differs from the stream's: ffmpeg turns the frames upright, as players
    show them, and sizes them so; the note was printed once per read, even with --quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The frame size for reading")


logging.getLogger("imageio_ffmpeg").addFilter(_UprightNote())


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=4)
def _every_frame_once(exe: str) -> tuple[str, ...]:
    """ffmpeg's output option that passes each decoded frame once: by default a variable
    frame rate clip (a phone's) was filled out with repeats to its container's nominal rate,
    while its average rate, which the output is written at, timed them: the motion came out
    slow and behind its sound. ``-fps_mode`` since ffmpeg 5.1, ``-vsync`` before (``exe``
    keys the cache: the binary may be changed through IMAGEIO_FFMPEG_EXE)."""
    version = re.search(r"(\d+)\.(\d+)", imageio_ffmpeg.get_ffmpeg_version())
    new = version is None or (int(version[1]), int(version[2])) >= (5, 1)
    return ("-fps_mode" if new else "-vsync", "passthrough")


@dataclass(frozen=True)
class VideoInfo:
    """Attributes: fps (exact, as ffmpeg reports it), size (width, height), has_audio,
    duration in seconds (0 when the container does not say), sar: the sample (pixel) aspect
    ratio of the decoded frames, 1 for square pixels; frames: how many :func:`iter_frames`
    yields, counted without decoding (None when the container does not say; a damaged file
    may give fewer). A variable frame rate video's fps is the constant rate its frames are
    placed at by their times."""

    fps: float
    size: tuple[int, int]
    has_audio: bool
    duration: float = 0.0
    sar: Fraction = Fraction(1)
    frames: int | None = None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"video not found: {path}; check the path")
    if path.suffix.lower() not in VIDEO_EXTENSIONS + ANIMATED_EXTENSIONS:
        raise InputError(f"unsupported video extension {path.suffix!r} for {path}; use one of "
                         f"{' '.join(e for e in VIDEO_EXTENSIONS if e not in ANIMATED_EXTENSIONS)}"
                         ", or an animated picture "
                         f"({' '.join(ANIMATED_EXTENSIONS)})")


def _header(path: Path) -> str:
    """ffmpeg's description of the file (its streams, durations, metadata)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True, check=False).stderr


def _sample_aspect_ratio(header: str) -> Fraction:
    """The first video stream's sample aspect ratio, as its decoded (auto-rotated) frames
    have it: the container's (``, SAR x:y DAR``, the only one of a WebM's VP9 or a
    QuickTime's ProRes) over the codec's (``[SAR x:y DAR``), as ffmpeg takes them."""
    match = (re.search(r"Video:[^\n]*?, SAR (\d+):(\d+) DAR", header)
             or re.search(r"Video:[^\n]*?\[SAR (\d+):(\d+) DAR", header))
    if match is None or "0" in match.groups():
        return Fraction(1)
    sar = Fraction(int(match[1]), int(match[2]))
    return 1 / sar if re.search(r"rotation of -?(90|270)\.", header) else sar


def _unreadable(path: Path) -> InputError:
    """Tell an empty file and a container without video frames from a corrupt file, as
    ffmpeg sees them."""
    if path.stat().st_size == 0:
        return InputError(f"video {path} is empty (0 bytes); copy or download it again")
    probe = _header(path)
    if "Input #0" in probe and "Video:" not in probe:
        return InputError(f"video {path} has zero frames (no video stream); use a video with "
                          "at least one frame")
    return InputError(f"cannot decode video {path}: the file is corrupt or not a video; "
                      "re-encode it as H.264 .mp4")


def _open(path: Path) -> tuple[dict, Iterator[bytes]]:
    """ffmpeg's reading of ``path``: its header (``meta``, with ``channels``: 4 for an
    animated picture, which may be transparent, else 3) and an iterator of frames' bytes."""
    _check_file(path)
    channels = 4 if path.suffix.lower() in ANIMATED_EXTENSIONS else 3
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgba" if channels == 4 else "rgb24",
                                        bits_per_pixel=8 * channels,
                                        output_params=list(_every_frame_once(ffmpeg_exe())))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        reader.close()
        raise _unreadable(path) from exc
    if not meta.get("size") or not meta.get("fps"):
        reader.close()
        raise _unreadable(path)
    meta.update(_timing(path, str(meta.get("codec", "")).startswith(_ANIMATION_CODECS)),
                channels=channels)
    return meta, reader


@functools.lru_cache(maxsize=8)
def _animation_frames(path: Path, stamp: FileStamp) -> tuple[float, ...] | None:
    """Each frame's duration in milliseconds of an animated image as browsers play it
    (:data:`SHORTEST_FRAME_MS`), None when Pillow cannot read it (ffmpeg's timing then
    stands). Pillow reads every frame (half a second for 300 of 512x480).

    The cached readings of a file here are kept by its path and :func:`~.files.file_stamp`
    (``animate`` opens a file several times; one that changed is read again)."""
    durations = []
    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                frame.load()  # WebP sets a frame's "duration" only once it is decoded
                durations.append(float(frame.info.get("duration") or 0))
    except (Image.DecompressionBombError, *PILLOW_ERRORS):
        return None
    return tuple(ms if ms > SHORTEST_FRAME_MS else DEFAULT_FRAME_MS for ms in durations)


@functools.lru_cache(maxsize=8)
def _packet_times(path: Path, stamp: FileStamp,
                  stream: str = "v") -> tuple[tuple[float, ...], float] | None:
    """The presentation times (seconds, sorted) of the first video stream's frames (``a``:
    the first audio stream's packets) and the time the last one ends, read from its packets
    without decoding them; None when the container gives no times, or not every packet's
    (a bare stream such as .h264, in no container, gives none; an AVI of B-frames not all):
    placed by such times, a bare stream's frames gave one frame, an AVI's endless ones."""
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", f"0:{stream}:0",
                          "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True,
                         check=False).stdout
    base = re.search(r"^#tb 0: (\d+)/(\d+)$", out, re.M)
    # stream, dts, pts, duration, size, checksum[, F=flags]; a discarded packet (flag 4, cut
    # by an edit list) is not shown
    rows = [(int(pts), int(duration)) for pts, duration, flags in re.findall(
        r"^0,\s*-?\d+,\s*(-?\d+),\s*(\d+),\s*\d+,\s*0x[0-9a-f]+(?:, F=0x([0-9A-F]+))?$",
        out, re.M) if not int(flags or "0", 16) & 4]
    if base is None or not rows or any(pts == _NO_PTS for pts, _ in rows):
        return None
    unit = Fraction(int(base[1]), int(base[2]))
    rows.sort()
    return tuple(float(pts * unit) for pts, _ in rows), float(sum(rows[-1]) * unit)


def _placement(starts: tuple[float, ...], end: float) -> dict | None:
    """How frames shown from ``starts`` (seconds, sorted) until ``end`` play at a constant
    rate: ``fps``, the rate of their usual interval; ``slots``, each frame's output frame, the
    one nearest its start (it is shown until the next frame's); ``frames``, the output
    frames. None when every frame is its own output frame (a constant frame rate)."""
    intervals = np.diff([*starts, end])
    intervals = intervals[intervals > 0]
    if intervals.size == 0:
        return None
    usual = float(np.median(intervals))
    near = intervals[abs(intervals - usual) <= usual / 4]
    if near.size == 0:
        # the median between two groups (delays alternating 100 and 500 ms, two intervals):
        # the shorter group's rate places every frame
        usual = float(intervals.min())
        near = intervals[intervals <= usual * 5 / 4]
    mean = float(near.mean())
    fps = min(float(Fraction(1 / mean).limit_denominator(1001)), MAX_FPS)  # 30, 30000/1001
    slots = np.round((np.asarray(starts) - starts[0]) * fps).astype(int)
    frames = max(round((end - starts[0]) * fps), int(slots[-1]) + 1)
    if frames == len(starts) and np.array_equal(slots, np.arange(len(starts))):
        return None
    return {"fps": fps, "slots": tuple(int(s) for s in slots), "frames": frames}


def _timing(path: Path, animation: bool) -> dict:
    """What corrects ffmpeg's reading of ``path``'s timing: its ``frames`` (counted without
    decoding), an animated image's rate and duration as browsers play it; and, for a
    variable frame rate (a phone's clip, a GIF of several delays), the constant rate its
    frames are placed at by their times (:func:`_placement`), so that they stay in time with
    the sound."""
    if animation:
        durations = _animation_frames(path, file_stamp(path))
        if durations is None:
            return {}
        seconds = sum(durations) / 1000
        starts = tuple((np.cumsum((0.0, *durations[:-1])) / 1000).tolist())
        return {"fps": len(durations) / seconds, "duration": seconds,
                "frames": len(durations), **(_placement(starts, seconds) or {})}
    times = _packet_times(path, file_stamp(path))
    return {} if times is None else {"frames": len(times[0]), **(_placement(*times) or {})}


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, size, whether there is an audio stream, duration and pixel aspect ratio;
    read once for a file that has not changed (``animate`` probes a driver several times, and
    each reading starts ffmpeg twice)."""
    path = Path(path)
    _check_file(path)
    return _probe(path, file_stamp(path))


@functools.lru_cache(maxsize=8)
def _probe(path: Path, stamp: FileStamp) -> VideoInfo:
    meta, reader = _open(path)
    reader.close()
    return VideoInfo(fps=float(meta["fps"]), size=tuple(meta["size"]),
                     has_audio=bool(meta.get("audio_codec")),
                     duration=float(meta.get("duration") or 0.0),
                     sar=_sample_aspect_ratio(_header(path)), frames=meta.get("frames"))


def _truncation(path: Path, meta: dict, decoded: int) -> str | None:
    """A warning when decoding ``path`` to its end gave clearly fewer frames than its packets
    (a damaged file) or its container's duration announce (a truncated one); None
    otherwise."""
    fps, duration = float(meta["fps"]), float(meta.get("duration") or 0.0)
    announced = round(duration * fps)
    tolerance = max(2.0, SHORT_VIDEO_TOLERANCE_S * fps)
    packets = meta.get("frames")  # one packet a frame, where the duration agrees
    if packets and abs(packets - announced) <= tolerance and packets - decoded > LOST_FRAMES:
        return (f"warning: decoding {path} gave {decoded} of its {packets} frames: the others "
                "could not be decoded (the file is damaged), so the frames after them play "
                "early and its sound drifts behind them (re-download or re-encode it)")
    if announced - decoded <= tolerance:
        return None
    if meta.get("audio_codec"):  # a sound that outlasts the picture is the duration's
        audio = _packet_times(path, file_stamp(path), stream="a")
        if audio is not None and audio[1] >= duration - SHORT_VIDEO_TOLERANCE_S:
            return None
    return (f"warning: decoding {path} stopped after {decoded} frames, but its container "
            f"announces {announced} ({duration:.2f} s at {fps:g} fps); the file seems "
            "truncated: only the frames read are used (re-download or re-encode it)")


def iter_frames(path: str | os.PathLike, limit: int | None = None,
                warn: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames one at a time, at most ``limit`` of them.

    Args:
        warn: called with a one-line warning when the frames end clearly before the
            container's duration (a truncated file), once they are all read.

    Raises:
        ValueError: ``limit`` is not None or a whole number of frames, 1 or more.
        InputError: the file is missing, unsupported, corrupt, or has no frame at all.
    """
    if limit is not None and (not isinstance(limit, numbers.Integral)
                              or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a whole number of frames, 1 or more (or None for "
                         f"all), got {limit!r}")
    path = Path(path)
    meta, reader = _open(path)
    w, h, c = *meta["size"], meta["channels"]
    frames = (np.frombuffer(buffer, dtype=np.uint8).reshape(h, w, c) for buffer in reader)
    if c == 4:  # transparency over white, as for a still picture
        frames = (over_white(frame) for frame in frames)
    if "slots" in meta:
        frames = _placed(frames, meta["slots"], meta["frames"])
    count = 0
    try:
        for frame in frames:
            if limit is not None and count >= limit:
                break
            yield frame
            count += 1
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot decode video {path} after {count} frames: {exc}; "
                         "re-encode it as H.264 .mp4") from exc
    finally:
        reader.close()
    if count == 0:
        raise InputError(f"video {path} has zero frames; use a video with at least one frame")
    if warn is not None and (limit is None or count < limit) and \
            (warning := _truncation(path, meta, count)) is not None:
        warn(warning)


def _placed(frames: Iterator[np.ndarray], slots: tuple[int, ...],
            total: int) -> Iterator[np.ndarray]:
    """``total`` frames at a constant rate from decoded ``frames``: frame j is shown from
    output frame ``slots[j]`` until the next one's (one of the same slot replaces it), the
    last to the end; frames past ``slots`` (a count the packets did not tell) follow one per
    output frame."""
    shown, previous = 0, None
    for j, frame in enumerate(frames):
        slot = slots[j] if j < len(slots) else slots[-1] + j - len(slots) + 1
        while previous is not None and shown < slot:
            yield previous
            shown += 1
        previous = frame
    while previous is not None and shown < max(total, 1):
        yield previous
        shown += 1


class VideoWriter:
    """H.264 (yuv420p, CRF 18) writer fed one RGB frame at a time; the file appears under its
    final name only when the ``with`` block completes without error (or :meth:`finish`'s
    temporary file is committed by the caller).

    Args:
        path: output ``.mp4``.
        fps: frames per second (not truncated).
        fast: encode for a real-time pipeline: x264's ``veryfast`` preset, about 2.5 times
            cheaper per frame than the default ``medium`` (0.6 dB less PSNR at CRF 18, smaller
            files), on one thread, leaving the other cores to the rendering.
        sar: sample (pixel) aspect ratio the frames are to be shown with.
        audio: a video whose first audio track is added, padded with silence or cut to the
            video's length (frames / fps); every frame written is kept.

    Raises:
        ValueError: ``fps`` is not a frame rate.
        InputError: ``audio`` is not a readable video, or has no audio track.
    """

    def __init__(self, path: str | os.PathLike, fps: float, fast: bool = False,
                 sar: Fraction = Fraction(1), audio: Path | None = None) -> None:
        if not isinstance(fps, numbers.Real) or isinstance(fps, bool) \
                or not 0 < fps <= MAX_FPS:
            raise ValueError(f"fps must be a number above 0 and at most {MAX_FPS}, got {fps!r}")
        if audio is not None and not probe_video(audio).has_audio:
            raise InputError(f"cannot add the audio of {audio}: it has no audio track; give a "
                             "video with sound, or no audio")
        self.path = Path(path)
        self.fps = fps
        self.fast = fast
        self.sar = sar
        self.audio = audio
        self.frames = 0
        self._tmp: Path | None = None
        self._encoder = None
        self._yuv = False
        self._size = (0, 0)

    def __enter__(self) -> VideoWriter:
        self._tmp = temp_sibling(self.path)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; every frame must have the first one's size.

        Even-sized frames go to ffmpeg as yuv420p, converted here (BT.601, limited range, as
        ffmpeg converts; a fraction of ffmpeg's cost, and half the bytes through the pipe);
        odd-sized ones as RGB, which ffmpeg scales to even sizes.
        """
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write outside its with block (or after finish); "
                               "write inside `with VideoWriter(...) as writer:`")
        check_rgb(frame, "frame")
        if self._encoder is None:
            h, w = frame.shape[:2]
            self._size = (h, w)
            self._yuv = h % 2 == 0 and w % 2 == 0
            # The display aspect ratio, which survives the scaling of odd sizes.
            aspect = [] if self.sar == 1 else ["-aspect", f"{w * self.sar.numerator}:"
                                                          f"{h * self.sar.denominator}"]
            even = "" if self._yuv else f"scale={w + w % 2}:{h + h % 2},"
            self._encoder = imageio_ffmpeg.write_frames(
                str(self._tmp), (w, h), fps=self.fps, codec="libx264", quality=None,
                pix_fmt_in="yuv420p" if self._yuv else "rgb24", pix_fmt_out="yuv420p",
                macro_block_size=1, ffmpeg_log_level="error",
                output_params=["-crf", "18", "-vf", even + COLOUR_TAGS, *aspect,
                               *(["-preset", "veryfast", "-threads", "1"] if self.fast else [])])
            self._encoder.send(None)
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, but "
                             f"the video's first frame is {self._size[1]}x{self._size[0]}; "
                             "every frame must have its size")
        if self._yuv:
            self._encoder.send(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420))
        else:
            self._encoder.send(np.ascontiguousarray(frame))
        self.frames += 1

    def _close_encoder(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    def finish(self) -> Path:
        """End the encoding and add the audio; the finished file, still under a temporary
        name, is the caller's to commit (or discard) from now on."""
        self._close_encoder()
        if self.audio is not None:
            muxed = temp_sibling(self.path)
            try:
                _mux_audio(self._tmp, self.audio, self.frames / self.fps, muxed)
            except BaseException:
                discard(muxed)
                raise
            discard(self._tmp)
            self._tmp = muxed
        finished, self._tmp = self._tmp, None
        return finished

    def discard(self) -> None:
        """Stop and remove what is not finished."""
        self._close_encoder()
        if self._tmp is not None:
            discard(self._tmp)
            self._tmp = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None and self.frames:
                finished = self.finish()
                try:
                    commit(finished, self.path)
                except BaseException:
                    discard(finished)
                    raise
        finally:
            self.discard()


def _picture_start(path: Path) -> float:
    """When the first frame of ``path``'s picture is shown, in seconds from the file's start
    (its sound may start earlier: a phone's clip, an edited one); 0 when the packets do not
    say."""
    times = _packet_times(path, file_stamp(path))
    return max(times[0][0], 0.0) if times is not None else 0.0


def _mux_audio(video: Path, audio_source: Path, duration: float, dst: Path) -> None:
    """``dst``: ``video``'s frames, all of them, with the first audio track of
    ``audio_source`` from where its picture starts (its frames are decoded from there, and
    its sound stays with them), padded with silence or cut to ``duration`` seconds."""
    start = _picture_start(audio_source)
    trim = f"atrim=start={start:.6f},asetpts=PTS-{start:.6f}/TB," if start > 0 else ""
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(audio_source),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
           "-af", f"{trim}apad,atrim=end={duration:.6f}", "-f", "mp4", str(dst)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise InputError(f"cannot add the audio of {audio_source}: {reason}")
