"""Where live frames go besides a recording: a window and a virtual camera."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np

from ..errors import InputError

__all__ = ["Window", "VirtualCamera", "has_display", "NEUTRAL_KEY", "QUIT_KEYS"]

NEUTRAL_KEY = ord("n")
QUIT_KEYS = (ord("q"), 27)  # q, Esc
TITLE = "portrait-animate live (n: set neutral, q: quit)"


#: Opens and closes an OpenCV window, in a child process: where the display named cannot be
#: reached (a stale ``DISPLAY`` in tmux, X forwarding gone), Qt aborts the process that tries.
_WINDOW_PROBE = ("import cv2; cv2.namedWindow('probe', cv2.WINDOW_NORMAL); "
                 "cv2.destroyAllWindows()")
#: The longest the probe may take before the display counts as unreachable.
PROBE_SECONDS = 20.0


def has_display() -> bool:
    """Whether a window can be opened: always on macOS and Windows; on Linux, where X11 or
    Wayland is named and a window opens there (tried in a child process, :data:`_WINDOW_PROBE`)."""
    if sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", _WINDOW_PROBE], capture_output=True,
                               timeout=PROBE_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class Window:
    """An OpenCV window; :meth:`show` returns the key pressed, if any."""

    def show(self, frame: np.ndarray) -> int | None:
        cv2.imshow(TITLE, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        return None if key == 0xFF else key

    def close(self) -> None:
        cv2.destroyAllWindows()


INSTALL_VIRTUAL_CAMERA = (
    "on Linux load v4l2loopback (sudo apt install v4l2loopback-dkms; sudo modprobe "
    "v4l2loopback devices=1 exclusive_caps=1), on macOS and Windows install OBS Studio and "
    "start its virtual camera once")


class VirtualCamera:
    """A virtual camera (pyvirtualcam) that other programs see as a webcam.

    Raises:
        InputError: pyvirtualcam is not installed, or no virtual camera device exists.
    """

    def __init__(self, width: int, height: int, fps: float) -> None:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise InputError("--virtual_camera needs pyvirtualcam: pip install "
                             "'portrait-animate[live]'") from exc
        try:
            self._camera = pyvirtualcam.Camera(width=width, height=height, fps=fps)
        except (RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no device"
            raise InputError(f"--virtual_camera: no virtual camera device ({reason}); "
                             f"{INSTALL_VIRTUAL_CAMERA}") from exc
        self.device = self._camera.device

    def send(self, frame: np.ndarray) -> None:
        self._camera.send(frame)

    def close(self) -> None:
        self._camera.close()
