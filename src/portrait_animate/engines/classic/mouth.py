"""The mouth interior of an opening mouth: transferred from the driving frame, or painted
(cavity, upper teeth, tongue) when there is no driving frame, both in the source's colours.
Without it the warp would show the lips stretched across the opening."""

from __future__ import annotations

import cv2
import numpy as np

from .anatomy import INNER_LIPS, OUTER_LIPS

__all__ = ["opening_area", "LipColour", "lip_colour", "paint_mouth"]

#: Feather of the interior's edge, in mouth widths.
FEATHER = 0.03
#: The inner lip contours from corner 78 to corner 308: along the upper lip, along the lower.
UPPER_EDGE = INNER_LIPS[:11]
LOWER_EDGE = INNER_LIPS[:9:-1] + INNER_LIPS[:1]
#: Rec. 601 luma weights.
LUMA = np.array([0.299, 0.587, 0.114])
#: Teeth keep this power of the skin's tint (0 grey, 1 the skin's hue and saturation).
TEETH_TINT = 0.35
#: The hue of the inside of a mouth, which the lips' own hue shifts halfway towards.
FLESH = np.array([1.0, 0.6, 0.58])
#: The darkest cavity (deep in the mouth) and the tongue, as fractions of that flesh colour at
#: the lips' brightness.
CAVITY = 0.3
TONGUE = 0.7
#: Height of the upper teeth band when the mouth is wide open, in inner mouth widths.
TEETH_HEIGHT = 0.12
#: Gaps between the upper teeth (centrals, laterals, canines), in half widths.
TEETH_GAPS = np.array([0.0, 0.3, 0.52])
#: A mouth that the output closes to under ``SEAL_START`` of the source's opening (by area) is
#: sealed, fully under ``SEAL_FULL``: the squeezed opening, a dark jagged seam between the
#: lips, is filled from the lips around it.
SEAL_START, SEAL_FULL = 0.4, 0.1
#: How far beyond the closed opening the seal reaches, in mouth widths.
SEAL_PAD = 0.04


def _signed_area(points: np.ndarray) -> float:
    """Signed area of the polygon of (N, 2) vertices in order."""
    x, y = points[:, 0], points[:, 1]
    return float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2


def opening_area(points: np.ndarray) -> float:
    """Area of the mouth's opening in square pixels, from a face's (N, 2) landmarks: the inner
    lips' polygon, or nothing when the lips cross (an edit closing a closed mouth further): the
    polygon then turns the other way round from the outer lips'."""
    inner = _signed_area(points[list(INNER_LIPS)])
    return max(inner * float(np.sign(_signed_area(points[list(OUTER_LIPS)]))), 0.0)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class LipColour:
    """The colours around a face's mouth.

    Attributes:
        lips: (3,) mean RGB of the lips' ring (outer minus inner contour).
        skin: (3,) median RGB of the skin around the lips.
    """

    def __init__(self, lips: np.ndarray, skin: np.ndarray) -> None:
        self.lips, self.skin = lips.astype(np.float32), skin.astype(np.float32)

    @property
    def teeth(self) -> np.ndarray:
        """(3,) RGB of teeth in the face's light: brighter than its skin, nearly grey."""
        top = max(float(self.skin.max()), 1.0)
        level = 0.8 * top + 0.2 * 235
        return (level * (self.skin / top) ** TEETH_TINT).astype(np.float32)


def _local_box(polygon: np.ndarray, pad: float, shape: tuple[int, int]) -> tuple[int, ...]:
    h, w = shape
    lo = np.floor(polygon.min(0) - pad).astype(int)
    hi = np.ceil(polygon.max(0) + pad).astype(int) + 1
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)


def _polygon_mask(shape: tuple[int, ...], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def lip_colour(image: np.ndarray, points: np.ndarray) -> LipColour:
    """Colours of the mouth of a face with (N, 2) pixel landmarks in ``image``."""
    outer = points[list(OUTER_LIPS)]
    centre = outer.mean(0)
    around = centre + 1.7 * (outer - centre)
    x0, y0, x1, y1 = _local_box(around, 1, image.shape[:2])
    image, offset = image[y0:y1, x0:x1], np.array([x0, y0])
    outer_mask = _polygon_mask(image.shape, outer - offset)
    lips = outer_mask & ~_polygon_mask(image.shape, points[list(INNER_LIPS)] - offset)
    ring = _polygon_mask(image.shape, around - offset) & ~outer_mask
    if lips.sum() < 8 or ring.sum() < 8:
        return LipColour(np.array([150.0, 80.0, 80.0]), np.array([190.0, 145.0, 125.0]))
    return LipColour(image[lips].mean(0), np.median(image[ring], axis=0))


def _opening(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Coordinates of the pixels of a (h, w) box across the mouth opening.

    Args:
        points: (N, 2) landmarks in box pixels.

    Returns:
        u: (h, w) position along the mouth, -1 and 1 at the inner corners.
        depth: (h, w) pixels below the upper lip's inner edge.
        height: (h, w) pixels between the inner edges of the lips.
        width: the distance between the inner corners, in pixels.
        middle: the height of the opening halfway between the corners, in pixels.
    """
    left, right = points[INNER_LIPS[0]], points[INNER_LIPS[10]]
    centre = (left + right) / 2
    width = max(float(np.linalg.norm(right - left)), 1.0)
    along = (right - left) / width
    across = np.array([-along[1], along[0]])  # downwards in the image
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    u = ((xs - centre[0]) * along[0] + (ys - centre[1]) * along[1]) / (width / 2)
    v = (xs - centre[0]) * across[0] + (ys - centre[1]) * across[1]

    def edge(chain: tuple[int, ...], at: np.ndarray) -> np.ndarray:
        rel = points[list(chain)] - centre
        cu, cv = rel @ along / (width / 2), rel @ across
        order = np.argsort(cu)
        return np.interp(at, cu[order], cv[order])

    top = edge(UPPER_EDGE, u)
    middle = float(edge(LOWER_EDGE, np.zeros(1))[0] - edge(UPPER_EDGE, np.zeros(1))[0])
    return u, v - top, np.maximum(edge(LOWER_EDGE, u) - top, 0), width, max(middle, 0.0)


def _seal(out: np.ndarray, area_s: float, area_t: float, inner_t: np.ndarray,
          width: float) -> None:
    """Fill in place the seam that an opening of ``area_s`` square pixels in the source leaves
    in ``out`` when the output's inner lips ``inner_t`` (N, 2), an opening of ``area_t``, close
    it: the warp squeezes the dark inside of the mouth into a jagged line between the lips,
    which is inpainted from the lips around it (``width`` the mouth's)."""
    if area_s < (0.02 * width) ** 2:  # the source's mouth was closed: nothing squeezed
        return
    gain = float(_smoothstep((SEAL_START - area_t / area_s) / (SEAL_START - SEAL_FULL)))
    pad = max(SEAL_PAD * width, 1.5)
    x0, y0, x1, y1 = _local_box(inner_t, 3 * pad, out.shape[:2])
    if gain <= 0 or x1 <= x0 or y1 <= y0:
        return
    seam = np.zeros((y1 - y0, x1 - x0), np.uint8)
    line = [np.round(inner_t - [x0, y0]).astype(np.int32)]
    cv2.fillPoly(seam, line, 1)
    cv2.polylines(seam, line, True, 1)  # a closed opening has no inside left to fill
    reach = int(np.ceil(pad))
    seam = cv2.dilate(seam, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                      (2 * reach + 1, 2 * reach + 1)))
    region = out[y0:y1, x0:x1]
    filled = cv2.inpaint(region, seam, reach, cv2.INPAINT_TELEA).astype(np.float32)
    soft = cv2.GaussianBlur(seam.astype(np.float32), (0, 0), pad / 2)[..., None] * gain
    blended = region + soft * (filled - region)
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)


def _interior(shape: tuple[int, int], points: np.ndarray, colours: LipColour) -> np.ndarray:
    """A painted (h, w, 3) mouth interior for the opening of (N, 2) box-pixel ``points``: a dark
    cavity, lighter towards the lips; a tongue rising from the lower lip; the upper teeth
    under the upper lip where the lips part enough."""
    u, depth, height, width, middle = _opening(points, shape)
    au = np.abs(u)
    soft = max(0.02 * width, 0.7)
    # Cavity: darkest deep in the middle, lighter towards the lips and the corners.
    across = np.clip(2 * depth / np.maximum(height, 1.0) - 1, -1, 1)
    from_edge = np.clip(np.minimum(np.minimum(depth, height - depth), (1 - au) * width / 2),
                        0, None)
    glow = np.exp(-from_edge / (0.07 * width))
    top = max(float(colours.lips.max()), 1.0)
    flesh = top * (FLESH + colours.lips / top) / 2
    out = (0.7 + 0.7 * np.clip(u**2 + across**2, 0, 1) + 0.6 * glow)[..., None] * \
        (CAVITY * flesh)
    # Tongue: a dome up from the lower lip, lit on top.
    rise = min(0.35 * middle, 0.16 * width) * np.sqrt(np.clip(1 - (u / 0.65) ** 2, 0, 1))
    inside = depth - (height - rise)
    alpha = _smoothstep(inside / soft + 0.5) * _smoothstep((middle / width - 0.12) / 0.15)
    lit = 0.7 + 0.35 * np.exp(-(((inside - 0.25 * rise) / (0.5 * rise + soft)) ** 2))
    tongue = (lit * (1 - 0.3 * au**2))[..., None] * (TONGUE * flesh)
    out += alpha[..., None] * (tongue - out)
    # Upper teeth: a band under the upper lip, receding into shade towards the corners.
    band = np.minimum(TEETH_HEIGHT * width, 0.25 * height) * (1 - 0.3 * u**2)
    alpha = _smoothstep((band - depth) / soft + 0.5) * _smoothstep((height / width - 0.03) / 0.06)
    shade = (1 - 0.65 * _smoothstep((au - 0.35) / 0.6)) * \
        (0.8 + 0.2 * _smoothstep(depth / np.maximum(0.4 * band, 1.0)))
    gap_width = max(0.012 * width, 0.5) / (width / 2)
    gaps = np.exp(-(((au[..., None] - TEETH_GAPS) / gap_width) ** 2)).sum(-1)
    shade *= 1 - 0.25 * min(width / 60, 1.0) * gaps
    out += alpha[..., None] * (shade[..., None] * colours.teeth - out)
    return out.astype(np.float32)


def _teeth_weight(rgb: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """How much (..., 3) pixels look like teeth beside lips of colour ``lips``: brighter and
    nearly grey."""
    brightness = rgb @ LUMA / max(float(lips @ LUMA), 1.0)
    top = rgb.max(-1)
    saturation = (top - rgb.min(-1)) / np.maximum(top, 1.0)
    return _smoothstep((brightness - 1.0) / 0.35) * _smoothstep((0.45 - saturation) / 0.2)


def _transferred(driving: np.ndarray, driving_points: np.ndarray, target_points: np.ndarray,
                 box: tuple[int, ...], source: LipColour) -> np.ndarray | None:
    """The driving frame's mouth, moved onto the target lips (the box's pixels) and recoloured:
    teeth take the source's teeth colour, everything else the source's lips' tone."""
    x0, y0, x1, y1 = box
    lips = list(INNER_LIPS) + list(OUTER_LIPS)
    M, _ = cv2.estimateAffine2D(driving_points[lips].astype(np.float32),
                                (target_points[lips] - [x0, y0]).astype(np.float32),
                                method=cv2.LMEDS)
    if M is None:
        return None
    theirs = lip_colour(driving, driving_points)
    # Shrinking a sharp driver would alias its teeth and lip lines into dots: blur it first.
    shrink = 1 / max(float(np.sqrt(abs(np.linalg.det(M[:, :2])))), 1e-6)
    if shrink > 1.2:
        lo = np.floor(driving_points[lips].min(0) - 4 * shrink).astype(int).clip(0)
        hi = np.ceil(driving_points[lips].max(0) + 4 * shrink).astype(int) + 1
        region = driving[lo[1]:hi[1], lo[0]:hi[0]]
        if region.size == 0:  # the driving lips lie outside its crop
            return None
        driving = cv2.GaussianBlur(region, (0, 0), 0.5 * (shrink - 1))
        M = M.copy()
        M[:, 2] += M[:, :2] @ lo
    patch = cv2.warpAffine(driving, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    teeth = _teeth_weight(patch, theirs.lips)
    inner = _polygon_mask(patch.shape, target_points[list(INNER_LIPS)] - [x0, y0])
    their_teeth = theirs.teeth
    if (teeth * inner).sum() > 4:
        their_teeth = (patch * (teeth * inner)[..., None]).sum((0, 1)) / (teeth * inner).sum()
    lip_gain = np.clip(source.lips / np.maximum(theirs.lips, 1.0), 0.4, 2.5)
    teeth_gain = np.clip(source.teeth / np.maximum(their_teeth, 1.0), 0.4, 2.5)
    return patch * (lip_gain + teeth[..., None] * (teeth_gain - lip_gain))


def paint_mouth(out: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
                source_lips: LipColour, driving: np.ndarray | None = None,
                driving_points: np.ndarray | None = None) -> None:
    """Fill the target mouth opening of ``out`` in place where the source had none.

    Args:
        out: the warped frame (H, W, 3) uint8.
        source_points, target_points: (N, 2) landmarks in the source and the output.
        source_lips: the source's mouth colours.
        driving: the driving crop, if any, with its (N, 2) pixel landmarks.
    """
    inner_t = target_points[list(INNER_LIPS)]
    area_t = opening_area(target_points)
    width = float(np.linalg.norm(target_points[61] - target_points[291]))
    area_s = opening_area(source_points)
    _seal(out, area_s, area_t, inner_t, width)
    if area_t < (0.02 * width) ** 2:
        return
    # An opening the source already shows is warped from real pixels while they are not
    # stretched much; a slit stretched into an opening is painted over.
    growth = 1 - area_s / area_t
    gain = float(_smoothstep((growth - 0.2) / 0.5))
    if gain <= 0:
        return
    feather = max(FEATHER * width, 0.8)
    box = _local_box(inner_t, 3 * feather, out.shape[:2])
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((inner_t - [x0, y0]) * 4).astype(np.int32)], 1.0, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), feather) * gain
    content = None
    if driving is not None and driving_points is not None:
        content = _transferred(driving, driving_points, target_points, box, source_lips)
    if content is None:
        content = _interior(mask.shape, target_points - [x0, y0], source_lips)
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + mask[..., None] * (content - region)
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
