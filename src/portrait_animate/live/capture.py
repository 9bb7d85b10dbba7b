"""Camera capture that never queues: a thread reads frames as they come (a video file at its
own frame rate, in real time, like a camera) and keeps only the latest; the one taking them
gets the newest frame, and every frame it never took counts as dropped."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["Capture", "CapturedFrame", "DEFAULT_CAMERA_FPS"]

#: A camera (or stream) that does not say its frame rate is taken to run at this.
DEFAULT_CAMERA_FPS = 30.0
#: FFmpeg's AV_LOG_QUIET: OpenCV's FFmpeg backend prints FFmpeg's errors (a file that is not
#: a video, a broken stream) on stderr unless told this before its first capture; our
#: messages say what went wrong.
_FFMPEG_QUIET = "-8"


@dataclass(frozen=True)
class CapturedFrame:
    """Attributes: index (0, 1, ... in capture order), time (``time.monotonic()`` when read),
    image (H, W, 3) uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


def _open(camera: str) -> tuple[cv2.VideoCapture, bool]:
    """The capture, and whether it is a file (played at its own rate)."""
    is_file = Path(camera).is_file()
    source: int | str = int(camera) if camera.isdigit() else camera
    if not is_file and not camera.isdigit() and "://" not in camera:
        what = "a folder" if Path(camera).is_dir() else "no such file"
        raise InputError(f"--camera {camera}: {what}; give a device index (0), a video "
                         "file or a stream URL (rtsp://..., http://...)")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_QUIET)
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent: our message says what went wrong
    try:
        capture = cv2.VideoCapture(source)
    finally:
        cv2.setLogLevel(level)
    if not capture.isOpened():
        if is_file:
            raise InputError(f"--camera {camera}: not a video that can be read; give a video "
                             "file (.mp4, .mov, ...), a device index (0) or a stream URL")
        what = "camera" if camera.isdigit() else "stream"
        raise InputError(f"--camera {camera}: the {what} cannot be opened; check that it "
                         "exists and is not in use by another program")
    return capture, is_file


class Capture:
    """Reads ``camera`` in a background thread from :meth:`start` until :meth:`close` or
    the end of a file.

    Attributes:
        fps: the frame rate the frames come at.
        size: (width, height) of the frames.
        frames_in: frames read so far.

    Raises:
        InputError: the camera cannot be opened, or it is a file without a frame to read.
    """

    def __init__(self, camera: str) -> None:
        self._capture, self._is_file = _open(camera)
        # A file's first frame is read now, so that one without frames fails before any work;
        # it is delivered first once started.
        self._first: np.ndarray | None = None
        if self._is_file:
            ok, self._first = self._capture.read()
            if not ok:
                self._capture.release()
                raise InputError(f"--camera {camera}: the file has no video frame that can be "
                                 "read; give a video file (such as an .mp4) with frames")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else DEFAULT_CAMERA_FPS
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frames_in = 0
        self._latest: CapturedFrame | None = None
        self._ended = False
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="live-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        try:
            while not self._stop:
                if self._is_file:  # a file plays in real time: frame i at start + i / fps
                    delay = start + self.frames_in / self.fps - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                if self._first is not None:
                    ok, bgr, self._first = True, self._first, None
                else:
                    ok, bgr = self._capture.read()
                if not ok:
                    break
                frame = CapturedFrame(self.frames_in, time.monotonic(),
                                      cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                with self._changed:
                    self._latest = frame
                    self.frames_in += 1
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def latest(self, after: int, timeout: float | None = None) -> CapturedFrame | None:
        """The newest frame with an index above ``after``, waiting for one; None when the
        capture has ended (or ``timeout`` passed) without one."""
        def ready() -> bool:
            return self._ended or (self._latest is not None and self._latest.index > after)

        with self._changed:
            self._changed.wait_for(ready, timeout)
            if self._latest is not None and self._latest.index > after:
                return self._latest
            return None

    @property
    def ended(self) -> bool:
        return self._ended

    def close(self) -> None:
        """Stop reading and release the camera."""
        self._stop = True
        if self._thread.is_alive():
            self._thread.join()
        self._capture.release()
