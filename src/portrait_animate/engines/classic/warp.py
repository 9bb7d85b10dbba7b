"""The classic renderer's dense backward field: piecewise-affine inside the face, a smooth
extension that falls off to zero outside it.

For every output pixel p the field gives the source position to sample. Inside the face it
is the barycentric map of a Delaunay triangulation of the source points, drawn at the target
points like a mesh: a triangle that folds over in the target (the far side of a turning head
going out of sight) is dropped, and where two triangles overlap the nearer one wins (a
z-buffer on the landmarks' depth), so a turn hides the far cheek instead of tearing it into
copies. Outside, the displacement is continued from the nearest point of the face and decays
with the distance from it, reaching exactly zero at the edge of the region of interest, so the
rest of the frame is untouched and there is no seam. Below the chin the head's own motion (a
similarity fitted on points only the head moves) fades within the body's reach, so the neck
follows a turning head, while the expression's (a dropping jaw) fades within its own length,
so the collar stays. The field is computed on a coarse grid and upsampled, then one
``cv2.remap`` renders the region at full resolution.

A warp cannot draw one surface passing behind another: where a turn takes the far side of the
nose or the far jaw out of sight, or a nod takes the nose over the lip, the target mesh folds,
and the dropped triangles leave notches in the nose's wing and the jaw line. :func:`unfold`
therefore holds back, before the warp, just enough of each point's motion beyond the head's
own similarity (and a little of its neighbours') that every skin triangle keeps a sliver of
its area: the far side is squeezed into a thin band, as a real turn foreshortens it, and the
outline stays whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

__all__ = ["WarpField", "unfold", "warp_field", "merge_fields", "apply_field"]

CHIN, FOREHEAD = 152, 10

#: Coarse grid cells across the face.
GRID_PER_FACE = 96
#: Grid points along the region's longer side, at most: a small face in a large frame gets a
#: coarser grid (the region spans six face sizes, most of it the smooth falloff outside), so
#: that the cost follows the frame's size, not the face's smallness.
MAX_GRID_SIDE = 256
#: Margin of the region of interest around both landmark sets, in face sizes.
ROI_MARGIN = 2.5
#: Reach of the extension outside the face (Gaussian falloff), in face sizes: long above the
#: chin, so hair and ears move with the head, short below it, so neck and body stay put.
FALLOFF_HEAD = 0.55
FALLOFF_BODY = 0.35
#: Below the chin, the expression's share of the motion (what is left after the head's own
#: motion, fitted on the ``rigid`` points) fades faster, within a reach that follows its
#: length: a dropping jaw draws the neck in under the chin (a squeeze, which cannot fold) and
#: leaves the collar where it was; a rising jaw, which stretches the neck, takes a longer reach
#: (at most half as long again) so the stretch stays mild. Never below
#: :data:`EXPRESSION_REACH_MIN` face sizes nor above the body's reach.
SQUEEZE_REACH = 0.8
STRETCH_REACH = 2.6
EXPRESSION_REACH_MIN = 0.08
#: Smoothing radius of the extension, in face sizes.
EXTENSION_SIGMA = 0.06
#: Grid cells past the mesh over which its outer triangles' affine maps are continued
#: (:func:`_rim`), and how much they may change the copied displacement there, in times the
#: distance: a map that changes it more is not continued (the skin's stretch of a face grown
#: 1.5 times is 0.33; a sliver's map, 2.4 on s5's cheek, threw a dark blot of hair onto it
#: for three frames of ``preset:talk``).
RIM_CELLS = 2
RIM_STRETCH = 1.0
#: Reach (a Gaussian's sigma, in face sizes) outside the face over which the field keeps its
#: motion whatever the ramp to the region's edge (:data:`TAPER`) says.
OUTLINE_REACH = 0.075
#: By the frame's edge a pixel samples at most this share of its distance to the edge beyond
#: it (:func:`_hold_in_frame`).
EDGE_REACH = 0.5
#: Width of the ramp that brings the field to zero at the region's edge, in face sizes.
TAPER = 0.625
#: The least share of its source area a skin triangle keeps in :func:`unfold`'s output.
MIN_AREA_SHARE = 0.05
#: How far behind the face's centre, in face sizes, the head's centre is taken to be: a
#: triangle's surface faces away from it, which tells the triangles that the source shows
#: from behind (:func:`_edge_on`).
HEAD_DEPTH = 1.0
#: A triangle whose doubled area is under this share of its longest side squared is a
#: sliver (an equilateral one has 0.87).
SLIVER = 0.05
#: A triangle is seen from the front when the cosine between its surface's outward normal and
#: the direction to the camera is over this, and from behind when it is under minus this:
#: slivers on the sides of the portraits have 0.5 to 0.62 or -0.46 to -0.54, and one seen
#: side first 0.13.
FRONT_COSINE = 0.25
#: Reach (a Gaussian's sigma, in face sizes) over which :func:`unfold` shares a point's held
#: back motion with the points around it, so that the holding back has no edge of its own.
UNFOLD_SPREAD = 0.05
#: Rounds of :func:`unfold` at most; a triangle still folded after them is dropped as before.
UNFOLD_ROUNDS = 8


@dataclass
class WarpField:
    """Absolute source coordinates for every pixel of a region of interest.

    Attributes:
        roi: (x0, y0, x1, y1) of the region in the frame, exclusive ends.
        map: (y1 - y0, x1 - x0, 2) float32 source coordinates (x, y).
        weight: (y1 - y0, x1 - x0) float32 share of the face's own displacement in each
            pixel's (1 inside the face, falling to 0 at the region's edge), when asked for.
    """

    roi: tuple[int, int, int, int]
    map: np.ndarray
    weight: np.ndarray | None = None


def _per_axis(x: np.ndarray) -> np.ndarray:
    """(ny, nx) values as (ny, nx, 2), one per axis of a field: NumPy multiplies a field by
    this three times as fast as by the broadcast ``x[..., None]``, to the same bits."""
    return np.repeat(x[..., None], 2, axis=-1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _roi(points: np.ndarray, size: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    lo = np.floor(points.min(0) - ROI_MARGIN * size).astype(int)
    hi = np.ceil(points.max(0) + ROI_MARGIN * size).astype(int)
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)


def _up(target: np.ndarray) -> np.ndarray:
    """(2,) unit vector of the face's axis, chin to forehead."""
    axis = target[FOREHEAD] - target[CHIN]
    return axis / max(np.linalg.norm(axis), 1e-9)


def _head_share(gx: np.ndarray, gy: np.ndarray, target: np.ndarray, size: float) -> np.ndarray:
    """(ny, nx) 1 above the chin, 0 below it (along the face's axis), smooth between."""
    chin, up = target[CHIN], _up(target)
    height = ((gx - chin[0]) * up[0] + (gy[:, None] - chin[1]) * up[1]) / size
    return _smoothstep((height + 0.1) / 0.3)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _largest_step(base: np.ndarray, move: np.ndarray, least: np.ndarray) -> np.ndarray:
    """For triangles (T, 3, 2) ``base`` moved by ``move`` (T, 3, 2): 1 where the whole move
    keeps their doubled signed area at ``least`` (T,) or above, else the share of the move, in
    [0, 1), that leaves a quarter more than ``least`` (a margin, so that the next round does
    not find the same triangle short again by rounding); ``base`` has more."""
    s1, s2 = base[:, 1] - base[:, 0], base[:, 2] - base[:, 0]
    d1, d2 = move[:, 1] - move[:, 0], move[:, 2] - move[:, 0]
    c0 = _cross(s1, s2)                  # area(share x) = c0 + c1 x + c2 x^2
    c1 = _cross(s1, d2) + _cross(d1, s2)
    c2 = _cross(d1, d2)
    step = np.ones(len(base))
    short = c0 + c1 + c2 < least  # the whole move ends under least: the first root in (0, 1)
    a, b, c = c2[short], c1[short], c0[short] - 1.25 * least[short]
    q = -0.5 * (b + np.copysign(np.sqrt(np.maximum(b * b - 4 * a * c, 0.0)), b))
    with np.errstate(divide="ignore", invalid="ignore"):
        roots = np.stack([q / a, c / q])
    roots = np.where((roots >= 0) & (roots <= 1), roots, np.inf)
    step[short] = np.clip(roots.min(0), 0.0, 1.0)
    return step


def _edge_on(source: np.ndarray, relief: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(T,) True for the triangles (T, 3) of ``source`` (N, 2), each in the order that makes
    its area positive, that the source shows edge-on and not from the front, given the
    points' depth ``relief`` (N,) in pixels, towards the camera negative: slivers whose
    surface does not face the camera (:data:`FRONT_COSINE`), its outward side being the one
    away from the head's centre (:data:`HEAD_DEPTH` behind the face, along the normal of the
    plane that fits the points best).

    They lie on the side of a face seen edge-on, where the landmarks of the cheek's side can
    lie a pixel or two outside the outline behind them: their orientation there is noise, and
    a turn that brings the side round flips them the right way. None are where the source
    shows wider triangles from behind (a photograph's side folded over, its cheek's landmarks
    well past the silhouette, on the background): there a turn would bring the background
    into view, so the whole side stays held, slivers too, and its outline moves as one."""
    p = np.column_stack([source, relief])
    centre = p.mean(0)
    forward = np.linalg.svd(p - centre, full_matrices=False)[2][2]
    forward = -forward if forward[2] > 0 else forward                  # towards the camera
    head = centre - HEAD_DEPTH * float(np.ptp(source, axis=0).max()) * forward
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    normal = np.cross(b - a, c - a)  # away from the camera where the source shows the front
    outward = (a + b + c) / 3 - head
    cosine = -np.einsum("td,td->t", normal, outward) / np.maximum(
        np.linalg.norm(normal, axis=1) * np.linalg.norm(outward, axis=1), 1e-12)
    sides = source[tri] - source[np.roll(tri, 1, axis=1)]
    sliver = _signed_areas(source, tri) < SLIVER * (sides ** 2).sum(-1).max(1)
    if (~sliver & (cosine < -FRONT_COSINE)).any():
        return np.zeros(len(tri), bool)
    return sliver & (cosine < FRONT_COSINE)


@lru_cache(maxsize=4)
def _skin(points: bytes, free: tuple[int, ...], relief: bytes | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """The Delaunay triangles (T, 3) of (N, 2) float64 points given as bytes that touch none
    of the ``free`` points and, given the points' depth ``relief`` as float64 bytes, are not
    seen edge-on from behind (:func:`_edge_on`), each in the order that makes its area
    positive, and the least doubled area (T,) :func:`unfold` leaves each; computed once for
    points that repeat."""
    source = np.frombuffer(points).reshape(-1, 2)
    tri = _triangles(points)
    tri = tri[~np.isin(tri, np.asarray(free, dtype=np.intp)).any(1)]
    tri = np.where((_signed_areas(source, tri) < 0)[:, None], tri[:, ::-1], tri)
    if relief is not None:
        tri = tri[~_edge_on(source, np.frombuffer(relief), tri)]
    return tri, MIN_AREA_SHARE * _signed_areas(source, tri)


def unfold(source: np.ndarray, target: np.ndarray, rigid: Sequence[int],
           free: Sequence[int] = (), relief: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``target`` (N, 2) in which no triangle of the Delaunay triangulation of
    ``source`` (N, 2) folds over or keeps less than :data:`MIN_AREA_SHARE` of its area.

    Each point's motion is the head's similarity (fitted on the ``rigid`` points) plus the
    rest; the rest is held back, point by point, by just what the folding triangles need,
    and spread to the points around (:data:`UNFOLD_SPREAD`). The ``free`` points (what the
    expression moves as it means to, folds included: eyes, lips) and every triangle touching
    them are left as they are. So is every sliver that the source shows edge-on from behind,
    given the source points' depth ``relief`` (N,) in pixels, towards the camera negative
    (:func:`_edge_on`): held back, one would drag the near side's outline in by the turn's
    whole travel. A face that folds nowhere is returned unchanged.

    Raises:
        ValueError: ``source`` and ``target`` are not two (N, 2) arrays of one shape, or
            ``relief`` is not (N,).
    """
    if source.ndim != 2 or source.shape[1:] != (2,) or target.shape != source.shape:
        raise ValueError(f"source and target must be (N, 2) points of one shape, got "
                         f"{source.shape} and {target.shape}")
    if relief is not None and relief.shape != source.shape[:1]:
        raise ValueError(f"relief must be the ({len(source)},) depths of the source points, "
                         f"got {relief.shape}")
    tri, least = _skin(np.ascontiguousarray(source, dtype=np.float64).tobytes(), tuple(free),
                       None if relief is None
                       else np.ascontiguousarray(relief, dtype=np.float64).tobytes())
    a, b = _head_motion(source[list(rigid)], target[list(rigid)])
    moved = (source @ [1, 1j] - b) / a                    # the head's similarity alone
    head = np.stack([moved.real, moved.imag], axis=-1)
    rest = target - head
    held = np.zeros(len(source), bool)
    held[list(free)] = True
    reach = UNFOLD_SPREAD * float(np.ptp(source, axis=0).max())
    keep = np.ones(len(source))
    for _ in range(UNFOLD_ROUNDS):
        step = _largest_step(head[tri], keep[tri][..., None] * rest[tri], least)
        if step.min() >= 1:
            break
        cut = np.ones(len(source))
        np.minimum.at(cut, tri[step < 1].ravel(), np.repeat(step[step < 1], 3))
        reduced = np.flatnonzero(cut < 1)
        loss = 1 - keep * cut
        apart = source[reduced, None] - source[None]
        near = np.exp(-(apart[..., 0] ** 2 + apart[..., 1] ** 2) / reach ** 2)
        loss = np.maximum(loss, (loss[reduced, None] * near).max(0))
        keep = np.where(held, 1.0, 1 - loss)
    return target + (keep - 1)[:, None] * rest


def _head_motion(source: np.ndarray, target: np.ndarray) -> tuple[complex, complex]:
    """a, b of p -> a * p + b (points as complex numbers), which takes an output pixel back to
    the source under the similarity that best moves ``source`` (N, 2) to ``target`` (N, 2), in
    the least-squares sense."""
    s, t = source @ [1, 1j], target @ [1, 1j]
    centred = s - s.mean()
    a = np.vdot(centred, t - t.mean()) / max(np.vdot(centred, centred).real, 1e-12)
    b = t.mean() - a * s.mean()
    return complex(1 / a), complex(-b / a)


def _below_chin_box(head_share: np.ndarray, weight: np.ndarray, mask: np.ndarray
                    ) -> tuple[slice, slice] | None:
    """The (rows, columns) of the grid where the field reaches below the chin (``head_share``
    under 1, ``weight`` not yet faded), with the face ``mask``'s rim beside them; None when
    nowhere."""
    rows, cols = np.nonzero((head_share < 1) & ((weight > 1e-4) & ~mask))
    if not rows.size:
        return None
    return (slice(max(rows.min() - 2, 0), rows.max() + 3),
            slice(max(cols.min() - 2, 0), cols.max() + 3))


def _expression_reach(residual: np.ndarray, mask: np.ndarray, below: np.ndarray,
                      up: np.ndarray, size: float) -> float:
    """The reach, in pixels, of the expression's motion below the chin, from its ``residual``
    (ny, nx, 2) on the rim of the face ``mask`` (ny, nx) where it is ``below`` the chin, ``up``
    (2,) the face's axis: :data:`SQUEEZE_REACH` times its length, or :data:`STRETCH_REACH`
    times its part that points away from the head (the rim rising, which stretches the neck)
    when that is longer."""
    inside = mask.astype(np.uint8)
    rim = residual[(inside > cv2.erode(inside, np.ones((3, 3), np.uint8))) & below]
    length = float(np.linalg.norm(rim, axis=-1).max(initial=0.0))
    outward = float(np.max(-rim @ up.astype(np.float32), initial=0.0))
    return float(np.clip(max(SQUEEZE_REACH * length, STRETCH_REACH * outward),
                         EXPRESSION_REACH_MIN * size, FALLOFF_BODY * size))


def _nearest_inside(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every cell of the grid, (ny, nx) each: its distance in cells to the ``mask``
    (ny, nx), and the flat index of the nearest cell of the mask (itself inside it)."""
    outside = (mask == 0).astype(np.uint8)
    dist, labels = cv2.distanceTransformWithLabels(outside, cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    return dist, np.take(np.flatnonzero(mask.ravel() > 0), labels - 1)


def _continue(nearest: np.ndarray, dist: np.ndarray, sigma: float) -> np.ndarray:
    """A field (ny, nx, 2) that holds the nearest inside value of each cell, continued
    outwards: that value at the hull (so inside and outside meet without a seam), smoothing in
    over the first cells."""
    smooth = cv2.GaussianBlur(nearest, (0, 0), sigma)
    beta = _per_axis(_smoothstep(dist / max(2 * sigma, 1.0)))
    return (1 - beta) * nearest + beta * smooth


def _rim(exact: np.ndarray, mask: np.ndarray, owner: np.ndarray, cells: np.ndarray,
         nearest: np.ndarray, grid: tuple[np.ndarray, np.ndarray], source: np.ndarray,
         target: np.ndarray) -> np.ndarray:
    """The displacement (ny, nx, 2) of each grid point's nearest covered point, continued
    just past the mesh by that point's triangle's affine map (within :data:`RIM_CELLS`,
    falling back to the copy over one cell more), so that the outline lands where the map
    puts it and not on the grid's cells: a copy alone moves it by up to a cell, a staircase
    along an outline that the motion stretches. A map that stretches more than
    :data:`RIM_STRETCH` (a sliver's) is not continued, and the correction is held within
    :data:`RIM_STRETCH` times the distance to the nearest point."""
    copied = np.take(exact.reshape(-1, 2), nearest, axis=0)
    near = ~mask & (cells < RIM_CELLS + 1)
    if not near.any():
        return copied
    rows, cols = np.nonzero(near)
    at = np.stack([grid[0][cols], grid[1][rows]], axis=1).astype(np.float64)
    flat = nearest[rows, cols]
    from_at = at - np.stack([grid[0][flat % mask.shape[1]], grid[1][flat // mask.shape[1]]],
                            axis=1)
    tri = owner.reshape(-1, 3)[flat]
    change = _extrapolated(tri, at, source, target) - copied[rows, cols]
    change[~(_stretch(source[tri], target[tri]) <= RIM_STRETCH)] = 0.0  # NaN: degenerate
    room = RIM_STRETCH * np.linalg.norm(from_at, axis=1, keepdims=True)
    change *= np.minimum(1.0, room / np.maximum(np.linalg.norm(change, axis=1,
                                                               keepdims=True), 1e-12))
    share = np.clip(RIM_CELLS + 1 - cells[rows, cols], 0.0, 1.0)[:, None]
    copied[rows, cols] += (share * change).astype(np.float32)
    return copied


def _stretch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(M,) the stretch of the affine maps of triangles ``target`` (M, 3, 2) to ``source``:
    the largest singular value of J - I, J the map's linear part, in closed form (a batched
    pseudo-inverse and SVD of the 2 x 2 matrices cost a few ms a frame where the outline has
    many cells); NaN or inf for a degenerate target triangle."""
    s0, s1 = source[:, 0] - source[:, 2], source[:, 1] - source[:, 2]
    t0, t1 = target[:, 0] - target[:, 2], target[:, 1] - target[:, 2]
    with np.errstate(all="ignore"):
        det = t0[:, 0] * t1[:, 1] - t1[:, 0] * t0[:, 1]
        # J = S T^-1 with the edges as columns; [[a, b], [c, d]] = J - I
        a = (s0[:, 0] * t1[:, 1] - s1[:, 0] * t0[:, 1]) / det - 1
        b = (s1[:, 0] * t0[:, 0] - s0[:, 0] * t1[:, 0]) / det
        c = (s0[:, 1] * t1[:, 1] - s1[:, 1] * t0[:, 1]) / det
        d = (s1[:, 1] * t0[:, 0] - s0[:, 1] * t1[:, 0]) / det - 1
        half = (a * a + b * b + c * c + d * d) / 2
        return np.sqrt(half + np.sqrt(np.maximum(half * half - (a * d - b * c) ** 2, 0.0)))


def _signed_areas(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


@lru_cache(maxsize=4)
def _triangles(points: bytes) -> np.ndarray:
    """The Delaunay triangles of (N, 2) float64 points given as bytes, computed once for
    points that repeat (an image source's, every frame)."""
    return Delaunay(np.frombuffer(points).reshape(-1, 2)).simplices


def _inside_map(origin: np.ndarray, k: int, shape: tuple[int, int], source: np.ndarray,
                target: np.ndarray, depth: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The displacement to the barycentric source position at every grid point the target
    mesh covers (zero elsewhere), the covered mask, and the triangle (T, 3) of point indices
    that covers each covered grid point (rows of zeros elsewhere); (ny, nx, 2), (ny, nx) and
    (ny, nx, 3).

    Grid point (i, j) sits at ``origin + k * (i, j)``. Each triangle of the Delaunay
    triangulation of ``source`` that keeps its orientation in ``target`` is rasterised over
    the grid points of its bounding box, so the cost follows the face's area, not the
    region's; a grid point covered twice takes the triangle of smaller ``depth``.
    """
    ny, nx = shape
    tri = _triangles(np.ascontiguousarray(source, dtype=np.float64).tobytes())
    tri = tri[np.sign(_signed_areas(target, tri)) == np.sign(_signed_areas(source, tri))]
    # Vertices in grid units, where grid points are the integers.
    v = (target[tri] - origin) / k                                     # (T, 3, 2)
    lo = np.maximum(np.ceil(v.min(1) - 1e-9), 0).astype(np.intp)
    hi = np.minimum(np.floor(v.max(1) + 1e-9), [nx - 1, ny - 1]).astype(np.intp)
    w, h = np.maximum(hi - lo + 1, 0).T
    counts = w * h
    # Every (triangle, grid point of its bounding box) pair.
    t = np.repeat(np.arange(len(tri)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ix = lo[t, 0] + offset % w[t]
    iy = lo[t, 1] + offset // w[t]
    # Barycentric coordinates with respect to the third vertex.
    e0, e1, v2 = v[:, 0] - v[:, 2], v[:, 1] - v[:, 2], v[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = 1.0 / (e0[:, 0] * e1[:, 1] - e1[:, 0] * e0[:, 1])
    dx, dy = ix - v2[t, 0], iy - v2[t, 1]
    b0 = (e1[t, 1] * dx - e1[t, 0] * dy) * inv_det[t]
    b1 = (e0[t, 0] * dy - e0[t, 1] * dx) * inv_det[t]
    b2 = 1 - b0 - b1
    eps = 100 * np.finfo(float).eps
    hit = (b0 >= -eps) & (b1 >= -eps) & (b2 >= -eps)
    t, ix, iy, b = t[hit], ix[hit], iy[hit], np.stack([b0[hit], b1[hit], b2[hit]], axis=1)
    # The nearest hit of every covered grid point.
    cell = iy * nx + ix
    z = np.einsum("nk,nk->n", b, depth[tri[t]])
    if z.size:  # one sort by cell, then depth (scaled into [0, 0.49])
        z = (z - z.min()) / (np.ptp(z) or 1.0)
    order = np.argsort(cell + 0.49 * z)
    nearest = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
    t, ix, iy, b = t[nearest], ix[nearest], iy[nearest], b[nearest]
    mapped = np.einsum("nk,nkd->nd", b, source[tri[t]])
    exact = np.zeros((ny, nx, 2))
    exact[iy, ix] = mapped - (origin + k * np.stack([ix, iy], axis=1))
    mask = np.zeros((ny, nx), bool)
    mask[iy, ix] = True
    owner = np.zeros((ny, nx, 3), np.intp)
    owner[iy, ix] = tri[t]
    return exact, mask, owner


def _extrapolated(owner: np.ndarray, at: np.ndarray, source: np.ndarray,
                  target: np.ndarray) -> np.ndarray:
    """The displacement (M, 2) at points ``at`` (M, 2) of the affine maps of the triangles
    ``owner`` (M, 3) (target to source), taken beyond the triangles' edges."""
    v, s = target[owner], source[owner]                                 # (M, 3, 2)
    e0, e1, d = v[:, 0] - v[:, 2], v[:, 1] - v[:, 2], at - v[:, 2]
    det = e0[:, 0] * e1[:, 1] - e1[:, 0] * e0[:, 1]
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    b0 = (e1[:, 1] * d[:, 0] - e1[:, 0] * d[:, 1]) / det
    b1 = (e0[:, 0] * d[:, 1] - e0[:, 1] * d[:, 0]) / det
    mapped = b0[:, None] * s[:, 0] + b1[:, None] * s[:, 1] + (1 - b0 - b1)[:, None] * s[:, 2]
    return mapped - at


def warp_field(source: np.ndarray, target: np.ndarray, depth: np.ndarray,
               frame_shape: tuple[int, int], weighted: bool = False,
               rigid: Sequence[int] = ()) -> WarpField:
    """The backward field moving ``source`` (N, 2) frame pixels to ``target`` (N, 2).

    Args:
        source: landmark positions in the source frame.
        target: where they must appear in the output.
        depth: (N,) depth of the target points, towards the camera negative (any unit).
        frame_shape: (H, W) of the frame.
        weighted: also give the field's weight (:func:`merge_fields` needs it).
        rigid: indices of points that only the head's motion moves. When given, the rest of
            the motion (the expression's) fades below the chin within a reach that follows
            its size (:data:`SQUEEZE_REACH`, :data:`STRETCH_REACH`) instead of the body's, so
            that a jaw moves the skin under it but not the neck and the collar.
    """
    size = float(np.ptp(np.concatenate([source, target]), axis=0).max())
    x0, y0, x1, y1 = _roi(np.concatenate([source, target]), size, frame_shape)
    # Coarse samples sit at the centres of k x k cells, where cv2.resize's bilinear
    # upsampling puts them, so upsampling reproduces them exactly.
    k = max(int(round(size / GRID_PER_FACE)), -(-max(x1 - x0, y1 - y0) // MAX_GRID_SIDE), 1)
    nx, ny = -(-(x1 - x0) // k), -(-(y1 - y0) // k)
    origin = np.array([x0 + 0.5 * k - 0.5, y0 + 0.5 * k - 0.5])
    gx = (origin[0] + np.arange(nx) * k).astype(np.float32)
    gy = (origin[1] + np.arange(ny) * k).astype(np.float32)

    exact, mask, owner = _inside_map(origin, k, (ny, nx), source, target, depth)
    exact = exact.astype(np.float32)

    sigma = EXTENSION_SIGMA * size / k
    cells, nearest = _nearest_inside(mask)
    extension = _continue(_rim(exact, mask, owner, cells, nearest, (gx, gy), source, target),
                          cells, sigma)
    outside_px = cells * k
    head_share = _head_share(gx, gy, target, size)
    reach = (FALLOFF_BODY + (FALLOFF_HEAD - FALLOFF_BODY) * head_share) * size
    falloff = np.exp(-((outside_px / reach) ** 2))
    edge_px = np.minimum(np.minimum(gx - x0, x1 - 1 - gx)[None, :],
                         np.minimum(gy - y0, y1 - 1 - gy)[:, None])
    # The ramp holds off within the face's rim, so that a face near the frame's edge, where
    # the ramp is low, keeps its outline's motion there (cut short, the skin cut into the
    # hair in blocks of the grid) and the ramp takes over beyond it.
    by_outline = np.exp(-((outside_px / (OUTLINE_REACH * size)) ** 2))
    taper = _smoothstep(edge_px / (TAPER * size))
    taper = taper + (1 - taper) * by_outline
    weight = _per_axis(np.where(mask, 1.0, falloff * taper))
    outside = extension * weight
    box = _below_chin_box(head_share, weight[..., 0], mask) if len(rigid) else None
    if box is not None:  # below the chin the head's own motion fades within the body's
        # reach, what the expression adds within its own
        a, b = _head_motion(source[list(rigid)], target[list(rigid)])
        at = gx[nearest[box] % nx] + 1j * gy[nearest[box] // nx]  # the nearest inside cells
        moved = (a - 1) * at + b
        head = _continue(np.stack([moved.real, moved.imag], -1).astype(np.float32),
                         cells[box], sigma)
        body = _expression_reach(exact[box] - head, mask[box], head_share[box] < 0.5,
                                 _up(target), size)
        expression_reach = body + (reach[box] - body) * head_share[box]
        short = _per_axis(np.exp(-((outside_px[box] / expression_reach) ** 2)) * taper[box])
        outside[box] = extension[box] * short + head * (weight[box] - short)
    field = outside
    field[mask] = exact[mask]  # inside the mesh, its exact map

    full = cv2.resize(field.astype(np.float32), (nx * k, ny * k),
                      interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    # bilinear upsampling never passes the coarse field's largest displacement
    _hold_in_frame(full, (x0, y0, x1, y1), frame_shape, float(np.abs(field).max(initial=0.0)))
    full += _pixel_grid((x0, y0, x1, y1))
    if not weighted:
        return WarpField((x0, y0, x1, y1), full)
    weight = cv2.resize(weight[..., 0].astype(np.float32), (nx * k, ny * k),
                        interpolation=cv2.INTER_LINEAR)[: y1 - y0, : x1 - x0]
    return WarpField((x0, y0, x1, y1), full, weight)


def _hold_in_frame(moved: np.ndarray, roi: tuple[int, int, int, int],
                   frame_shape: tuple[int, int], largest: float) -> None:
    """Limit in place the displacements (h, w, 2) of the region ``roi`` that reach out of the
    frame across an edge the region touches, to :data:`EDGE_REACH` of the distance to it:
    the strip by the edge stretches instead of repeating the edge's pixels (streaks). Only
    the strips that the ``largest`` displacement can reach out of are visited."""
    x0, y0, x1, y1 = roi
    h, w = frame_shape
    strip = int(np.ceil(largest / EDGE_REACH)) + 1
    for axis, (lo, hi, size) in enumerate(((x0, x1, w), (y0, y1, h))):
        near = min(strip, hi - lo)
        at = np.arange(near, dtype=np.float32)
        if lo == 0:  # the first ``near`` columns or rows, ``at`` pixels from the edge
            part = moved[:, :near, 0] if axis == 0 else moved[:near, :, 1]
            np.maximum(part, -EDGE_REACH * (at if axis == 0 else at[:, None]), out=part)
        if hi == size:  # the last ones, ``at`` pixels from the far edge, last first
            part = moved[:, hi - lo - near:, 0] if axis == 0 else moved[hi - lo - near:, :, 1]
            bound = EDGE_REACH * at[::-1]
            np.minimum(part, bound if axis == 0 else bound[:, None], out=part)


def merge_fields(fields: list[WarpField]) -> WarpField:
    """One field for several faces' weighted fields (:func:`warp_field` ``weighted``): their
    displacements summed, divided by their summed weight where it passes 1. A face keeps its
    own motion where the other faces' extensions have faded, and between close faces the
    motions blend continuously instead of tearing. One field is returned as it is."""
    if len(fields) == 1:
        return fields[0]
    x0 = min(f.roi[0] for f in fields)
    y0 = min(f.roi[1] for f in fields)
    x1 = max(f.roi[2] for f in fields)
    y1 = max(f.roi[3] for f in fields)
    moved = np.zeros((y1 - y0, x1 - x0, 2), np.float32)
    total = np.zeros((y1 - y0, x1 - x0), np.float32)
    for field in fields:
        if field.weight is None:
            raise ValueError("merge_fields needs weighted fields (warp_field(weighted=True))")
        fx0, fy0, fx1, fy1 = field.roi
        inside = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
        moved[inside] += field.map - _pixel_grid(field.roi)
        total[inside] += field.weight
    moved /= np.maximum(total, 1.0)[..., None]
    return WarpField((x0, y0, x1, y1), moved + _pixel_grid((x0, y0, x1, y1)), total)


@lru_cache(maxsize=2)
def _pixel_grid(roi: tuple[int, int, int, int]) -> np.ndarray:
    """(y1 - y0, x1 - x0, 2) float32 (x, y) of the region's pixels; read-only, kept while the
    region repeats (one clipped to the frame, every frame)."""
    x0, y0, x1, y1 = roi
    grid = np.empty((y1 - y0, x1 - x0, 2), np.float32)
    grid[..., 0] = np.arange(x0, x1, dtype=np.float32)
    grid[..., 1] = np.arange(y0, y1, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def apply_field(frame: np.ndarray, field: WarpField) -> np.ndarray:
    """A copy of ``frame`` with the region resampled through ``field``."""
    x0, y0, x1, y1 = field.roi
    region = cv2.remap(frame, field.map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if region.shape == frame.shape:
        return region
    out = frame.copy()
    out[y0:y1, x0:x1] = region
    return out
