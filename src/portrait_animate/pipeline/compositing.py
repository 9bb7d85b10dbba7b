"""From an engine's render to what is shown: the result in the source frame and the
512x512 crop view, whichever of the two the engine renders."""

from __future__ import annotations

import cv2
import numpy as np

from ..engines.base import Engine
from ..face.pasteback import PasteBack
from .faces import CROP_SIZE

__all__ = ["Compositor", "crop_view"]


def crop_view(frame: np.ndarray, M_c2o: np.ndarray | None) -> np.ndarray:
    """The 512x512 crop of a whole rendered frame (the resized frame without cropping)."""
    if M_c2o is None:
        return cv2.resize(frame, (CROP_SIZE, CROP_SIZE))
    return cv2.warpAffine(frame, np.linalg.inv(M_c2o)[:2], (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR)


class Compositor:
    """Turns renders into (result, crop view) pairs.

    Args:
        engine: the engine whose renders come in.
        paste: the result is the whole source frame (paste-back), else the crop.
    """

    def __init__(self, engine: Engine, paste: bool) -> None:
        self.engine, self.paste = engine, paste
        self._paste_back: PasteBack | None = None
        self._M_c2o: np.ndarray | None = None

    def _paste_back_for(self, M_c2o: np.ndarray, frame: np.ndarray) -> PasteBack:
        # The paste-back mask is warped once per crop map: once for an image source.
        if self._paste_back is None or self._M_c2o is not M_c2o:
            self._paste_back = PasteBack(M_c2o, (frame.shape[1], frame.shape[0]))
            self._M_c2o = M_c2o
        return self._paste_back

    def __call__(self, rendered: np.ndarray, frame: np.ndarray,
                 M_c2o: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(result, crop view) of one render of ``frame``, whose crop map is ``M_c2o``."""
        if self.engine.renders_full_frame:
            view = crop_view(rendered, M_c2o)
            return (rendered if self.paste else view), view
        if self.paste and M_c2o is not None:
            return self._paste_back_for(M_c2o, frame)(rendered, frame), rendered
        return rendered, rendered
