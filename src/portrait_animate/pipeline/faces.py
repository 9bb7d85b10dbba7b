"""Face geometry of every frame of an input: crop boxes and open ratios, small per frame.

A frame where no face is found borrows the nearest earlier frame's geometry (the first
found, for leading frames), so frames are never dropped or shifted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..face.crop import Crop, CropBox, crop_axis_aligned, crop_rotated, face_box, mean_bbox
from ..face.mesh import FaceMesh
from ..face.ratios import eye_ratios, lip_ratio

__all__ = ["CropSettings", "FaceTrack", "track_faces", "crop_to_256", "source_crop",
           "driving_crop"]

CROP_SIZE = 512
MODEL_SIZE = 256


@dataclass(frozen=True)
class CropSettings:
    """Attributes: scale, vx_ratio, vy_ratio of the box; rotate it with the face or not."""

    scale: float
    vx_ratio: float
    vy_ratio: float
    rotate: bool = True

    def box(self, points: np.ndarray) -> CropBox:
        box = face_box(points, self.scale, self.vx_ratio, self.vy_ratio)
        if self.rotate:
            return box
        return CropBox(box.center, box.size, np.array([1.0, 0.0]), np.array([0.0, 1.0]))


@dataclass
class FaceTrack:
    """Attributes:
    boxes: per-frame crop box.
    eye_ratios: (N, 2) per-frame eye open ratios.
    lip_ratios: (N, 1) per-frame lip open ratios.
    found: (N,) whether the frame's own face was found.
    """

    boxes: list[CropBox]
    eye_ratios: np.ndarray
    lip_ratios: np.ndarray
    found: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    def mean_bbox(self) -> np.ndarray:
        """One axis-aligned box for the whole track, from the frames with a face."""
        return mean_bbox([b.bbox for b, f in zip(self.boxes, self.found, strict=True) if f])


def _nearest_found(found: list[bool]) -> list[int]:
    first = found.index(True)
    source, last = [], first
    for i, ok in enumerate(found):
        last = i if ok else last
        source.append(last if i >= first else first)
    return source


def track_faces(frames: Iterable[np.ndarray], mesh: FaceMesh,
                settings: CropSettings) -> FaceTrack | None:
    """Landmarks of every frame reduced to a crop box and ratios; None if no frame has a face."""
    boxes, eyes, lips, found = [], [], [], []
    for frame in frames:
        points = mesh.landmarks(frame)
        found.append(points is not None)
        boxes.append(None if points is None else settings.box(points))
        eyes.append((0.0, 0.0) if points is None else eye_ratios(points))
        lips.append((0.0,) if points is None else (lip_ratio(points),))
    if not any(found):
        return None
    take = _nearest_found(found)
    return FaceTrack(boxes=[boxes[j] for j in take],
                     eye_ratios=np.array([eyes[j] for j in take], dtype=np.float32),
                     lip_ratios=np.array([lips[j] for j in take], dtype=np.float32),
                     found=np.array(found))


def crop_to_256(crop512: np.ndarray) -> np.ndarray:
    return cv2.resize(crop512, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_AREA)


def source_crop(frame: np.ndarray, box: CropBox) -> tuple[np.ndarray, Crop]:
    """The 256x256 model input (area-resized from a 512 crop) and the 512 crop with its maps."""
    crop = crop_rotated(frame, box, CROP_SIZE)
    return crop_to_256(crop.image), crop


def driving_crop(frame: np.ndarray, bbox: np.ndarray | None) -> np.ndarray:
    """The 256x256 driving input: the averaged box cropped to 512 then resized, or the whole
    frame resized when the driver is not cropped."""
    if bbox is None:
        return cv2.resize(frame, (MODEL_SIZE, MODEL_SIZE))
    return cv2.resize(crop_axis_aligned(frame, bbox, CROP_SIZE).image, (MODEL_SIZE, MODEL_SIZE))
