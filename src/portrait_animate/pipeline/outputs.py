"""The files ``animate`` writes (SPEC 4.10): result and concat as .jpg or .mp4, optional
lossless PNG frames, audio from the source or the driver. Nothing appears under a final name
before it is complete."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from ..io.files import commit, temp_sibling
from ..io.images import write_image_rgb
from ..io.video import VideoWriter

__all__ = ["OutputNames", "OutputWriter", "concat_panels"]

PANEL_SIZE = 512


def concat_panels(panels: list[np.ndarray]) -> np.ndarray:
    """Panels resized to 512x512 and placed side by side."""
    resized = [p if p.shape[:2] == (PANEL_SIZE, PANEL_SIZE) else
               cv2.resize(p, (PANEL_SIZE, PANEL_SIZE)) for p in panels]
    return np.concatenate(resized, axis=1)


class OutputNames:
    """``{stem}.jpg|.mp4``, ``{stem}_concat.jpg|.mp4`` and ``{stem}_frames/``; ``animate``'s
    stem is ``{src}--{drv}``."""

    def __init__(self, output_dir: str | Path, stem: str, image: bool) -> None:
        self.dir = Path(output_dir)
        ext = ".jpg" if image else ".mp4"
        self.result = self.dir / f"{stem}{ext}"
        self.concat = self.dir / f"{stem}_concat{ext}"
        self.frames = self.dir / f"{stem}_frames"


class OutputWriter:
    """Receives (result, concat) frame pairs one at a time and writes them out.

    Args:
        names: output paths.
        fps: frame rate of video outputs.
        save_frames: also write every result frame as ``%06d.png``.
        image: write the single pair as .jpg instead of video.
    """

    def __init__(self, names: OutputNames, fps: float, save_frames: bool, image: bool) -> None:
        self.names, self.fps, self.save_frames, self.image = names, fps, save_frames, image
        self.count = 0
        self._videos: list[VideoWriter] = []
        self._frames_tmp: Path | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def __enter__(self) -> OutputWriter:
        self.names.dir.mkdir(parents=True, exist_ok=True)
        if not self.image:
            self._videos = [VideoWriter(self.names.result, self.fps).__enter__(),
                            VideoWriter(self.names.concat, self.fps).__enter__()]
        if self.save_frames:
            self._frames_tmp = Path(tempfile.mkdtemp(prefix=f".{self.names.frames.name}-",
                                                     dir=self.names.dir))
        return self

    def add(self, result: np.ndarray, concat: np.ndarray) -> None:
        if self._frames_tmp is not None:
            png = self._frames_tmp / f"{self.count:06d}.png"
            cv2.imwrite(str(png), cv2.cvtColor(result, cv2.COLOR_RGB2BGR))
        if self.image:
            self._last = (result, concat)
        else:
            self._videos[0].write(result)
            self._videos[1].write(concat)
        self.count += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ok = exc_type is None and self.count > 0
        for video in self._videos:
            video.__exit__(None if ok else RuntimeError, None, None)
        if ok and self.image:
            write_image_rgb(self.names.concat, self._last[1])
            write_image_rgb(self.names.result, self._last[0])
        if self._frames_tmp is not None:
            if ok:
                self._replace_dir(self._frames_tmp, self.names.frames)
            else:
                shutil.rmtree(self._frames_tmp, ignore_errors=True)

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
