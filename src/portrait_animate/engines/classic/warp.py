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
from scipy.spatial import Delaunay

__all__ = ["WarpField", "warp_field", "apply_field"]

CHIN, FOREHEAD = 152, 10

#: Coarse grid cells across the face.
GRID_PER_FACE = 96
#: Margin of the region of interest around both landmark sets, in face sizes.
ROI_MARGIN = 2.5
#: Reach of the extension outside the face (Gaussian falloff), in face sizes: long above the
#: chin, so hair and ears move with the head, short below it, so neck and body stay put.
FALLOFF_HEAD = 0.55
FALLOFF_BODY = 0.35
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


def _reach(grid: np.ndarray, target: np.ndarray, size: float) -> np.ndarray:
    """Per grid point falloff reach: head above the chin, body below (along the face's axis)."""
    chin, forehead = target[CHIN], target[FOREHEAD]
    up = (forehead - chin) / max(np.linalg.norm(forehead - chin), 1e-9)
    height = (grid - chin) @ up / size
    head = _smoothstep((height + 0.1) / 0.3)
    return FALLOFF_BODY + (FALLOFF_HEAD - FALLOFF_BODY) * head


def _extend(exact: np.ndarray, mask: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Continue the inside field outwards: the nearest inside value at the hull (so the two
    meet without a seam), smoothing in over the first cells; also the distance in cells."""
    outside = (mask == 0).astype(np.uint8)
    dist, labels = cv2.distanceTransformWithLabels(outside, cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    inside_index = np.flatnonzero(mask.ravel() > 0)
    nearest = exact.reshape(-1, 2)[inside_index[labels.ravel() - 1]].reshape(exact.shape)
    smooth = cv2.GaussianBlur(nearest, (0, 0), sigma)
    beta = _smoothstep(dist / max(2 * sigma, 1.0))[..., None]
    return (1 - beta) * nearest + beta * smooth, dist


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


def warp_field(source: np.ndarray, target: np.ndarray, frame_shape: tuple[int, int]) -> WarpField:
    """The backward field moving ``source`` (N, 2) frame pixels to ``target`` (N, 2).

    Args:
        source: landmark positions in the source frame.
        target: where they must appear in the output.
        frame_shape: (H, W) of the frame.
    """
    size = float(np.ptp(np.concatenate([source, target]), axis=0).max())
    x0, y0, x1, y1 = _roi(np.concatenate([source, target]), size, frame_shape)
    # Coarse samples sit at the centres of k x k cells, where cv2.resize's bilinear
    # upsampling puts them, so upsampling reproduces them exactly.
    k = max(int(round(size / GRID_PER_FACE)), 1)
    nx, ny = -(-(x1 - x0) // k), -(-(y1 - y0) // k)
    gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * k - 0.5,
                         y0 + (np.arange(ny) + 0.5) * k - 0.5)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)

    mapped, inside = _inside_map(grid, source, target)
    exact = np.zeros_like(grid)
    exact[inside] = mapped - grid[inside]
    exact = exact.reshape(ny, nx, 2).astype(np.float32)
    mask = inside.reshape(ny, nx).astype(np.float32)

    extension, outside_px = _extend(exact, mask, EXTENSION_SIGMA * size / k)
    outside_px = outside_px * k
    falloff = np.exp(-((outside_px / (_reach(grid, target, size).reshape(ny, nx) * size)) ** 2))
    edge_px = np.minimum.reduce([gx - x0, x1 - 1 - gx, gy - y0, y1 - 1 - gy])
    taper = _smoothstep(edge_px / (TAPER * size))
    weight = np.where(mask > 0, 1.0, falloff * taper)[..., None]
    field = np.where(mask[..., None] > 0, exact, extension) * weight

    full = cv2.resize(field.astype(np.float32), (nx * k, ny * k),
                      interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    return WarpField((x0, y0, x1, y1), xs + full[..., 0], ys + full[..., 1])


def apply_field(frame: np.ndarray, field: WarpField) -> np.ndarray:
    """A copy of ``frame`` with the region resampled through ``field``."""
    out = frame.copy()
    x0, y0, x1, y1 = field.roi
    out[y0:y1, x0:x1] = cv2.remap(frame, field.map_x, field.map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out
