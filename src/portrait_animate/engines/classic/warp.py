"""The classic renderer's dense backward field: piecewise-affine inside the face, a smooth
extension that falls off to zero outside it.

For every output pixel p the field gives the source position to sample. Inside the convex
hull of the target landmarks it is the barycentric map of a Delaunay triangulation of the
target points onto the same points in the source, which is continuous however the points
move. Outside, the displacement is extended by normalised Gaussian convolution and decays with
the distance from the face, reaching exactly zero at the edge of the region of interest, so the
rest of the frame is untouched and there is no seam. The field is computed on a coarse grid and
upsampled, then one ``cv2.remap`` renders the region at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay

__all__ = ["WarpField", "warp_field", "apply_field"]

#: Coarse grid cells across the face.
GRID_PER_FACE = 48
#: Margin of the region of interest around both landmark sets, in face sizes.
ROI_MARGIN = 2.5
#: Width of the band inside the face where the exact map hands over to the extension.
BLEND_BAND = 0.03
#: Reach of the extension outside the face (Gaussian falloff), in face sizes.
FALLOFF = 0.45
#: Smoothing radius of the extension, in face sizes.
EXTENSION_SIGMA = 0.06
#: Width of the ramp that brings the field to zero at the region's edge, in face sizes.
TAPER = 0.625


@dataclass
class WarpField:
    """Absolute source coordinates for every pixel of a region of interest.

    Attributes:
        roi: (x0, y0, x1, y1) of the region in the frame, exclusive ends.
        map_x, map_y: (y1 - y0, x1 - x0) float32 source coordinates.
    """

    roi: tuple[int, int, int, int]
    map_x: np.ndarray
    map_y: np.ndarray


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _roi(points: np.ndarray, size: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    lo = np.floor(points.min(0) - ROI_MARGIN * size).astype(int)
    hi = np.ceil(points.max(0) + ROI_MARGIN * size).astype(int)
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)


def _inside_map(grid: np.ndarray, source: np.ndarray,
                target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric source positions of grid points inside the target hull, and the mask."""
    tri = Delaunay(target)
    simplex = tri.find_simplex(grid)
    inside = simplex >= 0
    transform = tri.transform[simplex[inside]]
    b = np.einsum("nij,nj->ni", transform[:, :2], grid[inside] - transform[:, 2])
    bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], axis=1)
    verts = tri.simplices[simplex[inside]]
    mapped = np.einsum("nk,nkd->nd", bary, source[verts])
    return mapped, inside


def _upsample(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(ny, nx, 2) corner-aligned grid values -> (h, w, 2)."""
    t = torch.from_numpy(np.ascontiguousarray(field.transpose(2, 0, 1)))[None]
    up = F.interpolate(t, size=size, mode="bilinear", align_corners=True)
    return up[0].numpy().transpose(1, 2, 0)


def warp_field(source: np.ndarray, target: np.ndarray, frame_shape: tuple[int, int]) -> WarpField:
    """The backward field moving ``source`` (N, 2) frame pixels to ``target`` (N, 2).

    Args:
        source: landmark positions in the source frame.
        target: where they must appear in the output.
        frame_shape: (H, W) of the frame.
    """
    size = float(np.ptp(np.concatenate([source, target]), axis=0).max())
    x0, y0, x1, y1 = _roi(np.concatenate([source, target]), size, frame_shape)
    step = max(size / GRID_PER_FACE, 1.0)
    nx = int(np.ceil((x1 - 1 - x0) / step)) + 1
    ny = int(np.ceil((y1 - 1 - y0) / step)) + 1
    sx = (x1 - 1 - x0) / max(nx - 1, 1)
    sy = (y1 - 1 - y0) / max(ny - 1, 1)
    gx, gy = np.meshgrid(x0 + sx * np.arange(nx), y0 + sy * np.arange(ny))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)

    mapped, inside = _inside_map(grid, source, target)
    exact = np.zeros_like(grid)
    exact[inside] = mapped - grid[inside]
    exact = exact.reshape(ny, nx, 2).astype(np.float32)
    mask = inside.reshape(ny, nx).astype(np.float32)

    sigma = EXTENSION_SIGMA * size / step
    num = cv2.GaussianBlur(exact * mask[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(mask, (0, 0), sigma)
    extension = num / np.maximum(den, 1e-6)[..., None]

    outside_px = cv2.distanceTransform((1 - mask).astype(np.uint8), cv2.DIST_L2, 5) * step
    inside_px = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) * step
    falloff = np.exp(-((outside_px / (FALLOFF * size)) ** 2))
    edge_px = np.minimum.reduce([gx - x0, x1 - 1 - gx, gy - y0, y1 - 1 - gy])
    taper = _smoothstep(edge_px / (TAPER * size))
    alpha = _smoothstep(inside_px / (BLEND_BAND * size))[..., None]
    field = alpha * exact + (1 - alpha) * extension * (falloff * taper)[..., None]

    full = _upsample(field.astype(np.float32), (y1 - y0, x1 - x0))
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    return WarpField((x0, y0, x1, y1), xs + full[..., 0], ys + full[..., 1])


def apply_field(frame: np.ndarray, field: WarpField) -> np.ndarray:
    """A copy of ``frame`` with the region resampled through ``field``."""
    out = frame.copy()
    x0, y0, x1, y1 = field.roi
    out[y0:y1, x0:x1] = cv2.remap(frame, field.map_x, field.map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out
