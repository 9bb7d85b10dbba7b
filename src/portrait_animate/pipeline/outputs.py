"""The files ``animate`` writes (SPEC 4.10): result and concat as .jpg or .mp4, optional
lossless PNG frames, audio from the source or the driver, and any file attached (the motion
template). Nothing appears under a final name before all of them are complete."""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from ..io.files import commit, discard, fitted_name, temp_sibling
from ..io.images import write_image_rgb
from ..io.video import VideoWriter

__all__ = ["OutputNames", "OutputWriter", "concat_panels"]

PANEL_SIZE = 512
#: Frame pairs that may wait for the output thread.
QUEUED = 4


def concat_panels(panels: list[np.ndarray], keep_aspect: bool = False,
                  sars: Sequence[Fraction] | None = None) -> np.ndarray:
    """Panels resized to 512x512, or with ``keep_aspect`` to a height of 512 and an even
    width in proportion (whole group frames), and placed side by side. ``sars``: each
    panel's pixel aspect ratio (a video's non-square pixels), which widens or narrows it as
    players show it; square pixels without."""
    resized = []
    for p, sar in zip(panels, sars or [Fraction(1)] * len(panels), strict=True):
        h, w = p.shape[:2]
        width = 2 * round(PANEL_SIZE * (w / h if keep_aspect else 1) * sar / 2)
        shrink = keep_aspect and h > PANEL_SIZE
        resized.append(p if (h, w) == (PANEL_SIZE, width) else
                       cv2.resize(p, (width, PANEL_SIZE), interpolation=cv2.INTER_AREA
                                  if shrink else cv2.INTER_LINEAR))
    return np.concatenate(resized, axis=1)


class OutputNames:
    """``{stem}.jpg|.mp4``, ``{stem}_concat.jpg|.mp4`` and ``{stem}_frames/``; ``animate``'s
    stem is ``{src}--{drv}``. A stem too long for the folder's names is shortened
    (:func:`~portrait_animate.io.files.fitted_name`)."""

    def __init__(self, output_dir: str | Path, stem: str, image: bool) -> None:
        self.dir = Path(output_dir)
        ext = ".jpg" if image else ".mp4"
        stem = fitted_name(stem, f"_concat{ext}", self.dir)
        self.result = self.dir / f"{stem}{ext}"
        self.concat = self.dir / f"{stem}_concat{ext}"
        self.frames = self.dir / f"{stem}_frames"


class OutputWriter:
    """Receives (result, concat) frame pairs one at a time and writes them out.

    Composing the pair (optionally), PNG frames and video encoding run in a background
    thread, so they overlap the rendering of the next frames; at most :data:`QUEUED` frames
    wait for it. A failure there is raised by the next :meth:`add` or at the end of the
    ``with`` block, and nothing is kept.

    At the end of the ``with`` block every output is finished under a temporary name, and
    only then are all of them renamed to their final names.

    Args:
        names: output paths.
        fps: frame rate of video outputs.
        save_frames: also write every result frame as ``%06d.png``.
        image: write the single pair as .jpg instead of video.
        fast_video: encode for a real-time pipeline (see :class:`VideoWriter`).
        compose: makes the (result, concat) pair of what :meth:`add` receives, in the
            background thread; without it :meth:`add` receives the pair.
        sar: sample aspect ratio of the result video's pixels (the source's).
        audio: a file whose audio both videos take, fitted to their length.
    """

    def __init__(self, names: OutputNames, fps: float, save_frames: bool, image: bool,
                 fast_video: bool = False,
                 compose: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None,
                 sar: Fraction = Fraction(1), audio: Path | None = None) -> None:
        self.names, self.fps, self.save_frames, self.image = names, fps, save_frames, image
        self.fast_video = fast_video
        self.count = 0
        self._compose = compose
        self._sar, self._audio = sar, audio
        self._videos: list[VideoWriter] = []
        self._frames_tmp: Path | None = None
        #: (temporary, final) files finished, renamed at the end.
        self._finished: list[tuple[Path, Path]] = []
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._queue: queue.Queue[tuple[int, tuple[Any, ...]] | None] = queue.Queue(QUEUED)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._work, name="output-writer", daemon=True)

    def __enter__(self) -> OutputWriter:
        self.names.dir.mkdir(parents=True, exist_ok=True)
        if not self.image:
            self._videos = [
                VideoWriter(self.names.result, self.fps, self.fast_video, self._sar,
                            self._audio).__enter__(),
                VideoWriter(self.names.concat, self.fps, self.fast_video,
                            audio=self._audio).__enter__()]
        if self.save_frames:
            self._frames_tmp = Path(tempfile.mkdtemp(prefix=f".{self.names.frames.name}-",
                                                     dir=self.names.dir))
        self._worker.start()
        return self

    def add(self, *frame: Any) -> None:
        """Queue one frame: the (result, concat) pair, or the arguments of ``compose``. The
        arrays must not change afterwards."""
        if self._error is not None:
            raise self._error
        self._queue.put((self.count, frame))
        self.count += 1

    def attach(self, final: Path, write: Callable[[Path], object]) -> None:
        """One more output: ``write`` makes it now at the temporary path it is given, and it
        appears under ``final`` with the others, or not at all."""
        tmp = temp_sibling(final)
        self._finished.append((tmp, final))
        write(tmp)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after a failure, only drain the queue
                try:
                    index, frame = item
                    self._write(index, *(self._compose(*frame) if self._compose else frame))
                except BaseException as exc:  # raised in the adding thread
                    self._error = exc

    def _write(self, index: int, result: np.ndarray, concat: np.ndarray) -> None:
        if self.image:
            self._last = (result, concat)
        if self._frames_tmp is not None:
            png = self._frames_tmp / f"{index:06d}.png"
            cv2.imwrite(str(png), cv2.cvtColor(result, cv2.COLOR_RGB2BGR))
        if not self.image:
            self._videos[0].write(result)
            self._videos[1].write(concat)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._queue.put(None)
        self._worker.join()
        try:
            if exc_type is None and self._error is None and self.count > 0:
                self._finish()
                for tmp, final in self._finished:
                    commit(tmp, final)
                self._finished.clear()
                if self._frames_tmp is not None:
                    self._replace_dir(self._frames_tmp, self.names.frames)
        finally:
            for video in self._videos:
                video.discard()
            for tmp, _ in self._finished:
                discard(tmp)
            if self._frames_tmp is not None:
                shutil.rmtree(self._frames_tmp, ignore_errors=True)
        if exc_type is None and self._error is not None:
            raise self._error

    def _finish(self) -> None:
        """Every output complete under its temporary name."""
        for video in self._videos:
            self._finished.append((video.finish(), video.path))
        if self.image:
            self.attach(self.names.concat, lambda tmp: write_image_rgb(tmp, self._last[1]))
            self.attach(self.names.result, lambda tmp: write_image_rgb(tmp, self._last[0]))

    @staticmethod
    def _replace_dir(tmp: Path, final: Path) -> None:
        if final.exists():
            old = temp_sibling(final)
            old.unlink()
            final.rename(old)
            commit(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            commit(tmp, final)
