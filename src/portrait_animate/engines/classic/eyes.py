"""Eyes over the warp: lids that close with their own skin, irises that follow the gaze.

The dense warp only moves points. Between the lid points lies what a closing lid must hide
(iris, lashes, the shadowed lid margin) and what a gaze moves (the iris inside the white):
warping squeezes the first into a dark smudge and smears the second. So the warp leaves the
irises out (``WARP_POINTS``) and :func:`paint_eyes` draws each eye again over it, from the
ring of points above it to the ring below, sampling the source frame:

- the upper lid, down to its moved margin, is the source's lid skin stretched down and ends
  in the source's lash line at its own thickness: a closed eye is skin with a thin dark edge,
  and a nearly closed one a dark slit;
- the opening shows the source's eyeball where it was, the lids sliding over it rather than
  squeezing it, with the iris moved rigidly to the driven iris centre (limited to the
  opening): what lies ahead of it slides under the lids, the white it leaves stretches;
- the lower lid is the source's, stretched between its margin and the ring below.

Each eye is drawn on a grid in its "eye frame" (x along the line from its first corner to the
second, y across, pointing down the face, in target pixels), where the lid lines are functions
of x alone; the grid's source positions are then laid onto the frame's pixels with one affine
resampling, so the source is sampled once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import (
    ABOVE_LIDS,
    BELOW_LIDS,
    EYE_CORNERS,
    IRISES,
    LOWER_LIDS,
    NUM_POINTS,
    UPPER_LIDS,
)

__all__ = ["WARP_POINTS", "separate_lids", "paint_eyes"]

#: The points the dense warp moves: all but the irises, which :func:`paint_eyes` draws.
WARP_POINTS = tuple(i for i in range(NUM_POINTS) if i not in set(IRISES))
#: Smallest lid gap kept in the output, in pixels: lids that touch would make duplicate
#: points, which the triangulation drops.
MIN_LID_GAP = 1.0
#: A lid opening grows at most this many times the source's (for the eye's width).
MAX_OPENING_GROWTH = 1.3
#: The upper lid's lash line covers openings narrower than this, in eye widths (at least 1.5
#: pixels), and part of those up to twice as wide: a closing eye ends in a dark slit, not in a
#: line of white.
LID_COVERS_BELOW = 0.06
#: Bounds of the lash line's share of the source's lid skin (ring above to margin).
LASH_SHARE = (0.12, 0.6)
#: A source eye opening less than this (lid gap over eye width) has no iris to move.
GAZE_MIN_OPENING = 0.12
#: How close the iris centre may come to an eye corner, in iris radii.
IRIS_REACH = 0.85
#: How far the iris may move up or down, in iris radii: the lids follow a vertical gaze.
IRIS_RISE = 0.35
#: Width of the blend into the warp at the corners and at the rings above and below, in eye
#: widths.
FEATHER = 0.06

_IRIS_POINTS = (IRISES[:5], IRISES[5:])  # centre first, then the four edge points
#: Per eye: the ring above, the upper lid, the lower lid (corner to corner), the ring below.
_CURVES = tuple((above, (corners[0], *upper, corners[1]), (corners[0], *lower, corners[1]), below)
                for above, corners, upper, lower, below
                in zip(ABOVE_LIDS, EYE_CORNERS, UPPER_LIDS, LOWER_LIDS, BELOW_LIDS, strict=True))
#: Per eye: the curves' points, then the iris points.
_EYE_POINTS = tuple(list(sum(curves, ())) + list(iris)
                    for curves, iris in zip(_CURVES, _IRIS_POINTS, strict=True))
_SPAN_17, _SPAN_33, _SPAN_65 = (np.linspace(0.0, 1.0, n) for n in (17, 33, 65))
#: Where the lash line is looked for: columns across the middle of the eye (in eye widths),
#: samples from the ring above to the margin.
_LASH_COLUMNS = np.linspace(0.3, 0.7, 7)
_LASH_SAMPLES = np.linspace(0.0, 1.0, 24)


@dataclass(frozen=True)
class _EyeFrame:
    """Pixels <-> eye-frame coordinates of one eye."""

    origin: np.ndarray  # (2,) the first corner
    along: np.ndarray  # (2,) unit vector to the second corner
    normal: np.ndarray  # (2,) unit vector across, down the face
    width: float

    @classmethod
    def of(cls, points: np.ndarray, corners: tuple[int, int]) -> _EyeFrame:
        a, b = points[corners[0]], points[corners[1]]
        width = float(np.linalg.norm(b - a))
        along = (b - a) / max(width, 1e-9)
        return cls(a, along, np.array([-along[1], along[0]]), width)

    def local(self, p: np.ndarray) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) eye-frame coordinates."""
        d = p - self.origin
        return np.stack([d @ self.along, d @ self.normal], axis=-1)

    def pixels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Eye-frame coordinates (two arrays that broadcast together) -> (..., 2) float32
        pixels."""
        shape = np.broadcast_shapes(np.shape(x), np.shape(y))
        p = np.empty((*shape, 2), np.float32)
        for c in range(2):
            p[..., c] = self.origin[c] + x * self.along[c] + y * self.normal[c]
        return p


Curve = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Eye:
    """One eye's landmarks in its eye frame: curves as x-sorted (x, y) knots."""

    frame: _EyeFrame
    above: Curve  # the ring above the upper lid
    upper: Curve  # the upper lid margin, corner to corner
    lower: Curve  # the lower lid margin, corner to corner
    below: Curve  # the ring below the lower lid
    iris: np.ndarray  # (2,) iris centre
    radius: float  # iris radius

    @classmethod
    def of(cls, points: np.ndarray, eye: int) -> _Eye:
        frame = _EyeFrame.of(points, EYE_CORNERS[eye])
        xy = frame.local(points[_EYE_POINTS[eye]])
        curves = []
        for part in np.split(xy[:-5], np.cumsum([len(c) for c in _CURVES[eye]])[:-1]):
            order = np.argsort(part[:, 0])
            curves.append((part[order, 0], part[order, 1]))
        iris = xy[-5:]
        return cls(frame, *curves, iris[0],
                   float(np.sqrt(((iris[1:] - iris[0]) ** 2).sum(1)).mean()))

    @staticmethod
    def at(curve: Curve, x: np.ndarray) -> np.ndarray:
        return np.interp(x, *curve)

    def lid_skin(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The upper lid's top (the ring above, kept a pixel above the margin) and margin."""
        margin = self.at(self.upper, x)
        return np.minimum(self.at(self.above, x), margin - 1.0), margin

    def lower_skin(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lower lid's margin and bottom (the ring below, kept a pixel below the margin)."""
        margin = self.at(self.lower, x)
        return margin, np.maximum(self.at(self.below, x), margin + 1.0)

    def opening(self) -> float:
        """Widest lid gap over eye width."""
        x = _SPAN_17 * self.frame.width
        return float((self.at(self.lower, x) - self.at(self.upper, x)).max() / self.frame.width)

    def row_extent(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left and right ends (x) of the opening on the rows ``y``."""
        x = _SPAN_65 * self.frame.width
        top, bottom = self.at(self.upper, x), self.at(self.lower, x)
        levels = top.min() + _SPAN_33 * (bottom.max() - top.min())
        inside = (top <= levels[:, None]) & (levels[:, None] <= bottom)
        found = inside.any(axis=1)
        left = np.where(found, x[np.argmax(inside, axis=1)], 0.0)
        right = np.where(found, x[::-1][np.argmax(inside[:, ::-1], axis=1)], self.frame.width)
        return np.interp(y, levels, left), np.interp(y, levels, right)


def _clamp(a: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """``np.clip`` without its per-call overhead (which counts here, on small arrays)."""
    return np.minimum(np.maximum(a, lo), hi)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = _clamp(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _lid_gaps(points: np.ndarray, corners: tuple[int, int], upper: tuple[int, ...],
              lower: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """An eye's facing lid gaps (len(upper),) in pixels, its (2,) normal (down the face) and
    its width in pixels, from (478, 2) landmarks."""
    a, b = points[corners[0]], points[corners[1]]
    width = max(float(np.linalg.norm(b - a)), 1e-9)
    along = (b - a) / width
    normal = np.array([-along[1], along[0]])
    return (points[list(lower)] - points[list(upper)]) @ normal, normal, width


def separate_lids(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A copy of the (478, 2) target landmarks whose facing lid points keep MIN_LID_GAP (an
    upper lid that comes down onto, or past, the lower lid rests just above it) and open at
    most :data:`MAX_OPENING_GROWTH` times as wide as in the (478, 2) ``source``, for the
    width of the eye: the opening shows the source's eyeball, and past that its iris would
    be stretched into a slit. An opening held back keeps its middle line."""
    out = target.copy()
    for corners, upper, lower in zip(EYE_CORNERS, UPPER_LIDS, LOWER_LIDS, strict=True):
        gap, normal, width = _lid_gaps(target, corners, upper, lower)
        gap_s, _, width_s = _lid_gaps(source, corners, upper, lower)
        widest = MAX_OPENING_GROWTH * np.maximum(gap_s, 0.0) * width / width_s + MIN_LID_GAP
        closer = np.maximum(gap - widest, 0.0)[:, None] / 2 * normal  # each lid, towards
        out[list(upper)] += closer                                   # the middle line
        out[list(lower)] -= closer
        shut = gap < MIN_LID_GAP
        out[np.array(upper)[shut]] = target[np.array(lower)[shut]] - MIN_LID_GAP * normal
    return out


def paint_eyes(out: np.ndarray, frame: np.ndarray, source: np.ndarray,
               target: np.ndarray) -> None:
    """Draw both eyes of the rendered ``out`` again, in place, from the source ``frame``.

    Args:
        out: (H, W, 3) uint8, the warped frame.
        frame: (H, W, 3) uint8, the source frame it was warped from.
        source: (478, 2) landmark pixels in ``frame``.
        target: (478, 2) landmark pixels in ``out`` (lids kept apart by :func:`separate_lids`).
    """
    for eye in range(len(EYE_CORNERS)):
        _paint_eye(out, frame, _Eye.of(source, eye), _Eye.of(target, eye))


def _paint_eye(out: np.ndarray, frame: np.ndarray, src: _Eye, tgt: _Eye) -> None:
    """Draw one eye, from the ring above it to the ring below, blended into the warp."""
    w = tgt.frame.width
    if w < 4 or src.frame.width < 4:
        return
    feather = FEATHER * w
    # The grid: columns x (nx,) from corner to corner widened by the feather, rows y (ny, 1)
    # from the ring above to the ring below.
    x = np.arange(np.floor(-feather) - 1, np.ceil(w + feather) + 2)
    above, top = tgt.lid_skin(x)
    bottom, below = tgt.lower_skin(x)
    y = np.arange(np.floor(above.min()) - 1, np.ceil(below.max()) + 2)[:, None]
    alpha = (_smoothstep((x + feather) / (2 * feather))
             * _smoothstep((w + feather - x) / (2 * feather))
             * _smoothstep((y - above) / feather) * _smoothstep((below - y) / feather))
    # The upper lid covers down to its margin, and the whole of an opening too thin to show
    # anything; the lower lid from its margin down.
    thin = max(LID_COVERS_BELOW * w, 1.5)
    gap = bottom - top
    cover = _clamp(top + 0.5 + np.maximum(np.minimum(gap, 2 * thin - gap), 0) - y, 0, 1)
    under = _clamp(y - bottom + 0.5, 0, 1) * (1 - cover)
    k = src.frame.width / w
    # Each layer on the rows where it shows, with two rows of zero weight around.
    rows = [y[:, 0] <= (top + thin).max() + 2,
            (y[:, 0] >= top.min() - 2) & (y[:, 0] <= bottom.max() + 2),
            y[:, 0] >= bottom.min() - 2]
    maps = (lambda ys: _lid_map(src, tgt, x, ys, k, _lash_share(frame, src)),
            lambda ys: _opening_map(src, tgt, x, ys, k),
            lambda ys: _lower_lid_map(src, tgt, x, ys, k))
    weights = (alpha * cover, alpha * (1 - cover - under), alpha * under)
    layers = [(y[r][0, 0], draw(y[r]), weight[r])
              for r, draw, weight in zip(rows, maps, weights, strict=True) if r.any()]
    _composite(out, frame, tgt.frame, (x[0], y[0, 0], x[-1], y[-1, 0]), layers)


def _composite(out: np.ndarray, frame: np.ndarray, eye_frame: _EyeFrame,
               grid: tuple[float, float, float, float],
               layers: list[tuple[float, np.ndarray, np.ndarray]]) -> None:
    """Blend layers drawn on an eye-frame grid into ``out``, in place.

    Args:
        grid: eye-frame (left, top, right, bottom) of the grid's cells, one pixel apart.
        layers: per layer, the eye-frame y of its first row, the (rows, nx, 2) source pixels
            to sample in ``frame`` and the (rows, nx) weight of the layer (the weights add up
            to at most 1, and are 0 on the layer's first and last rows).
    """
    x0, y0, x1, y1 = grid
    corners = eye_frame.pixels(np.array([x0, x1]), np.array([[y0], [y1]])).reshape(-1, 2)
    h, w = out.shape[:2]
    left, top = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    right, bottom = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
    if right <= left or bottom <= top:
        return
    region = out[top:bottom, left:right]
    painted = np.zeros(region.shape, np.float32)
    total = np.zeros(region.shape[:2] + (1,), np.float32)
    d = np.array([left, top]) - eye_frame.origin
    for first_row, xy, weight in layers:
        # Region pixel (column, row) -> the layer's (column, row).
        to_layer = np.array([[*eye_frame.along, d @ eye_frame.along - x0],
                             [*eye_frame.normal, d @ eye_frame.normal - first_row]])
        cells = np.empty(weight.shape + (3,), np.float32)
        cells[..., :2], cells[..., 2] = xy, weight
        field = cv2.warpAffine(cells, to_layer, (right - left, bottom - top),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT)
        colour = cv2.remap(frame, field[..., 0], field[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        painted += field[..., 2:] * colour
        total += field[..., 2:]
    region[:] = _clamp(region * (1 - total) + painted + 0.5, 0, 255).astype(np.uint8)


def _lash_share(frame: np.ndarray, src: _Eye) -> float:
    """Share of the source's lid skin (ring above to margin) that its lash line takes: the
    run of dark samples up from the margin, median over the middle of the eye."""
    x, t = _LASH_COLUMNS * src.frame.width, _LASH_SAMPLES
    above, margin = src.lid_skin(x)
    xy = src.frame.pixels(x[:, None], above[:, None] + t * (margin - above)[:, None])
    lum = cv2.remap(frame, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE).mean(-1)
    skin = np.sort(lum[:, : len(t) // 3], axis=1)[:, -2]  # the lid's skin, not its crease
    dark = lum.min(axis=1)
    below = lum < ((skin + dark) / 2)[:, None]
    run = np.where(below.all(axis=1), len(t), np.argmin(below[:, ::-1], axis=1))
    run = np.where(skin - dark > 12, run, 0)  # no contrast: no lash line to keep
    return float(_clamp(np.sort(run)[len(run) // 2] / (len(t) - 1), *LASH_SHARE))


def _lid_map(src: _Eye, tgt: _Eye, x: np.ndarray, y: np.ndarray, k: float,
             share: float) -> np.ndarray:
    """(ny, nx, 2) source pixels of the upper lid at the target's eye-frame grid (x (nx,),
    y (ny, 1)): the lid skin between the ring above and the lash line stretched over the
    lid's new height, the lash line kept at its source thickness (scaled with the lid when
    the lid gets shorter)."""
    above_t, top_t = tgt.lid_skin(x)
    u = x * k
    above_s, top_s = src.lid_skin(u)
    band_s, band_t = top_s - above_s, top_t - above_t
    lash_s = share * band_s
    lash_t = np.minimum(lash_s / k, share * band_t)
    d = np.maximum(top_t - y, 0.0)  # height above the margin
    ys = np.where(d < lash_t, top_s - d / np.maximum(lash_t, 1e-6) * lash_s,
                  top_s - lash_s - (d - lash_t) / np.maximum(band_t - lash_t, 1e-6)
                  * (band_s - lash_s))
    return src.frame.pixels(u, ys)


def _lower_lid_map(src: _Eye, tgt: _Eye, x: np.ndarray, y: np.ndarray,
                   k: float) -> np.ndarray:
    """(ny, nx, 2) source pixels of the lower lid at the target's eye-frame grid: the skin
    between the margin and the ring below, stretched across the lid's new height."""
    margin_t, bottom_t = tgt.lower_skin(x)
    u = x * k
    margin_s, bottom_s = src.lower_skin(u)
    v = margin_s + (y - margin_t) * (bottom_s - margin_s) / (bottom_t - margin_t)
    return src.frame.pixels(u, v)


def _opening_map(src: _Eye, tgt: _Eye, x: np.ndarray, y: np.ndarray, k: float) -> np.ndarray:
    """(ny, nx, 2) source pixels of the eyeball seen at the target's eye-frame grid.

    Across the eye, the target opening maps onto the part of the source opening it overlaps
    (the same place when the lids close over it), stretched only where it reaches past it;
    then the iris moves to the driven centre."""
    u = x * k
    top, bottom = tgt.at(tgt.upper, x) * k, tgt.at(tgt.lower, x) * k
    top_s, bottom_s = src.at(src.upper, u), src.at(src.lower, u)
    lo, hi = _clamp(top, top_s, bottom_s), _clamp(bottom, top_s, bottom_s)
    v = lo + (y * k - top) * (hi - lo) / np.maximum(bottom - top, 1e-6)
    shift = _gaze_shift(src, tgt, k)
    if shift.any():
        u, v = _move_iris(src, u, v, shift)
    v = _clamp(v, src.at(src.upper, u), src.at(src.lower, u))
    return src.frame.pixels(u, v)


def _gaze_shift(src: _Eye, tgt: _Eye, k: float) -> np.ndarray:
    """(2,) move of the source iris in its eye frame towards the target's iris centre,
    limited to the opening; zero for a source eye too closed to show its iris."""
    if src.opening() < GAZE_MIN_OPENING:
        return np.zeros(2)
    centre = tgt.iris * k
    reach = IRIS_REACH * src.radius
    lo, hi = min(reach, src.iris[0]), max(src.frame.width - reach, src.iris[0])
    rise = IRIS_RISE * src.radius
    return np.array([_clamp(centre[0], lo, hi) - src.iris[0],
                     _clamp(centre[1] - src.iris[1], -rise, rise)])


def _move_iris(src: _Eye, x: np.ndarray, y: np.ndarray,
               shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source eye-frame points to sample for points (x (nx,), y (ny, nx)) of the source
    eyeball with its iris moved by ``shift``: along every row and every column of the
    opening the iris chord slides (see :func:`_slide`). A vertical move fades towards the
    corners."""
    centre = src.iris + shift
    r = src.radius
    half_row = np.sqrt(np.maximum(r**2 - (y - centre[1]) ** 2, 0.0))
    left, right = src.row_extent(y)
    xs = _slide(x, left, right, centre[0] - half_row, centre[0] + half_row, shift[0])
    half_column = np.sqrt(np.maximum(r**2 - (x - centre[0]) ** 2, 0.0))
    top, bottom = src.at(src.upper, x), src.at(src.lower, x)
    side = np.where(x < centre[0], centre[0] - r, src.frame.width - centre[0] - r)
    fade = _clamp(1 - (np.abs(x - centre[0]) - r) / np.maximum(side, 1e-6), 0.0, 1.0)
    ys = _slide(y, top, bottom, centre[1] - half_column, centre[1] + half_column,
                shift[1] * fade)
    return xs, ys


def _slide(t: np.ndarray, lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray,
           shift: np.ndarray | float) -> np.ndarray:
    """Where to sample along a line, for points ``t`` of its segment [lo, hi] in which the
    part [a, b] has moved by ``shift``: that part and what lies ahead of it slide rigidly (as
    far as the move keeps the samples inside [lo, hi]; the end ahead hides what passes it),
    what it leaves behind stretches between it and the end behind; points beyond the ends
    move with them."""
    a_t, b_t = _clamp(a, lo, hi), _clamp(b, lo, hi)
    a_s, b_s = _clamp(a_t - shift, lo, hi), _clamp(b_t - shift, lo, hi)
    inner = _clamp(t, lo, hi)
    eps = 1e-6
    rigid = _clamp(inner - shift, lo, hi)
    before = np.where(shift > 0, lo + (inner - lo) * (a_s - lo) / np.maximum(a_t - lo, eps),
                      rigid)
    middle = a_s + (inner - a_t) * np.where(b_t - a_t > eps,
                                            (b_s - a_s) / np.maximum(b_t - a_t, eps), 1.0)
    after = np.where(shift < 0, hi - (hi - inner) * (hi - b_s) / np.maximum(hi - b_t, eps),
                     rigid)
    return np.where(inner < a_t, before, np.where(inner > b_t, after, middle)) + (t - inner)
