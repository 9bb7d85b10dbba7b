"""Index sets of the MediaPipe 478-point mesh used by cropping and the open ratios
(SPEC 3.5 maps the reference's 203-point indices onto these)."""

from __future__ import annotations

__all__ = ["EYE_0", "EYE_1", "LIP", "MOUTH_CORNERS", "CROP_POINTS"]

#: (upper lid, lower lid, corner, corner) of the image-left eye (the subject's right).
EYE_0 = (159, 145, 33, 133)
#: The same for the other eye.
EYE_1 = (386, 374, 362, 263)
#: (upper inner-lip midpoint, lower inner-lip midpoint, mouth corner, mouth corner).
LIP = (13, 14, 61, 291)
MOUTH_CORNERS = (61, 291)

_JAW = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365,
        397, 288, 361, 323, 454, 356)
_BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282,
          283, 276)
_EYES = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, 362, 382,
         381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
_NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 129, 358)
_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39,
         40, 185, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13,
         82, 81, 80, 191)

#: Points standing in for the reference's 106-point set when sizing the crop: jaw line from
#: ear to ear, brows, eyes, nose and lips; no forehead, which the 106 points do not reach.
CROP_POINTS = _JAW + _BROWS + _EYES + _NOSE + _LIPS
