"""What the pipeline needs from an engine; both engines provide it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..motion.model import KeypointLayout, Motion

__all__ = ["Engine", "RenderItem"]


@dataclass(frozen=True)
class RenderItem:
    """One frame to render: see :meth:`Engine.render` for the fields."""

    appearance: Any
    x_s: torch.Tensor
    x_d: torch.Tensor
    driving_crop: np.ndarray | None = None
    driving_motion: Motion | None = None


class Engine(Protocol):
    """An animation engine on square face crops.

    Attributes:
        name: ``neural`` or ``classic``.
        layout: the keypoints its motion lives on.
        renders_full_frame: ``render`` returns the whole source frame (no paste-back needed)
            instead of a 512x512 crop.
        input_size: side of the square face crops it takes.
        uses_landmarks: its motion comes from the face mesh, so the pipeline hands over the
            landmarks it already found instead of the engine detecting them again.
        max_turn: the most, in degrees, the head may turn out of the picture's plane from
            the source's pose before what the engine draws breaks up (a warp shows only
            the side of the face the source shows); None where no such bound is known.

    An engine that ``renders_full_frame`` also has ``render_faces(items) -> np.ndarray``:
    the source frame the items share with every item's face moved at once, for a frame
    with several faces (an engine of crops renders each face's crop with
    :meth:`render_batch`, and the pipeline pastes them back).
    """

    name: str
    layout: KeypointLayout
    renders_full_frame: bool
    input_size: int
    uses_landmarks: bool
    max_turn: float | None

    def motion(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> Motion:
        """The motion of an (input_size, input_size, 3) uint8 RGB crop, with canonical
        keypoints; ``landmarks`` are the crop's (478, 3) face-mesh points in pixels, if known."""

    def motion_batch(self, crops: Sequence[np.ndarray],
                     landmarks: Sequence[np.ndarray | None]) -> list[Motion]:
        """:meth:`motion` of several crops in one go (one batch of M on the neural engine),
        in order; the same motions as taking them one by one."""

    def appearance(self, crop: np.ndarray, frame: np.ndarray, M_c2o: np.ndarray | None) -> Any:
        """Per-source-frame data the renderer needs: the 256x256 crop, the full frame and the
        crop -> frame map (None when the frame was resized whole)."""

    def appearance_batch(self, crops: Sequence[np.ndarray], frames: Sequence[np.ndarray],
                         maps: Sequence[np.ndarray | None]) -> list[Any]:
        """:meth:`appearance` of several source frames in one go (one batch of F on the
        neural engine), in order; the same data as taking them one by one."""

    def render(self, appearance: Any, x_s: torch.Tensor, x_d: torch.Tensor,
               driving_crop: np.ndarray | None = None,
               driving_motion: Motion | None = None) -> np.ndarray:
        """The source moved from keypoints x_s to x_d (1, K, 3), as uint8 RGB: a 512x512 crop,
        or the whole frame when ``renders_full_frame``. The driving crop and its motion, when
        there are driving pixels, may lend what the source lacks (a mouth interior)."""

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor: ...

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...

    def render_batch(self, items: Sequence[RenderItem]) -> list[np.ndarray]:
        """:meth:`render` of several frames in one go (one batch of W and G on the neural
        engine), in order; the same images as rendering them one by one."""

    def batch_size(self, requested: int = 0) -> int:
        """Frames :meth:`render_batch` and :meth:`motion_batch` take at a time: ``requested``
        when above 0, else the engine's own choice (1 where batching does not help)."""

    def close(self) -> None:
        """Release what the engine holds beyond Python's memory (the classic engine's face
        mesh and thread settings); the engine is not used after. Closing twice is harmless."""
