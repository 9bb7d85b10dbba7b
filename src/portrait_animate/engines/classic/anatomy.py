"""Index sets of the MediaPipe 478-point mesh that the classic engine animates."""

from __future__ import annotations

from ...motion.model import MESH_POINTS

__all__ = ["INNER_LIPS", "OUTER_LIPS", "LIPS", "INNER_PAIRS", "INSIDE_PAIRS", "MIDDLE_PAIRS",
           "OUTER_PAIRS", "LIP_RINGS", "LIP_CORNERS", "EYES", "IRISES", "BROWS", "JAW",
           "FACE_OVAL", "UPPER_LIDS", "LOWER_LIDS", "EYE_CORNERS", "IRIS_CENTERS", "UPPER_LIPS",
           "LOWER_LIPS", "MOUTH_CORNERS", "JAW_ANGLES", "CHIN", "NUM_POINTS", "ABOVE_LIDS",
           "BELOW_LIDS", "CHEEKS", "BELOW_MOUTH", "ABOVE_MOUTH", "NOSE_BASE"]

NUM_POINTS = MESH_POINTS

#: The mouth opening, in order around it.
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87,
              178, 88, 95)
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84,
              181, 91, 146)
#: Facing points (upper, lower) of the lips' four rings, left to right between the corners:
#: the inner lips, the two rings inside the lips (next to the inner lips, then next to the
#: outer), the outer lips. A lip moves as a whole: its rings take the same move, or the lip
#: folds over between them.
INNER_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402),
               (310, 318), (415, 324))
INSIDE_PAIRS = ((183, 96), (42, 89), (41, 179), (38, 86), (12, 15), (268, 316), (271, 403),
                (272, 319), (407, 325))
MIDDLE_PAIRS = ((184, 77), (74, 90), (73, 180), (72, 85), (11, 16), (302, 315), (303, 404),
                (304, 320), (408, 307))
OUTER_PAIRS = ((185, 146), (40, 91), (39, 181), (37, 84), (0, 17), (267, 314), (269, 405),
               (270, 321), (409, 375))
LIP_RINGS = (INNER_PAIRS, INSIDE_PAIRS, MIDDLE_PAIRS, OUTER_PAIRS)
UPPER_LIPS = tuple(upper for ring in LIP_RINGS for upper, _ in ring)
LOWER_LIPS = tuple(lower for ring in LIP_RINGS for _, lower in ring)
#: The corners of each ring, image-left first.
LIP_CORNERS = (78, 62, 76, 61, 308, 292, 306, 291)
LIPS = tuple(sorted(set(UPPER_LIPS) | set(LOWER_LIPS) | set(LIP_CORNERS)))
MOUTH_CORNERS = (61, 291, 78, 308)
#: (upper lid, lower lid) of the image-left eye, then the other eye, corner to corner.
UPPER_LIDS = ((246, 161, 160, 159, 158, 157, 173), (398, 384, 385, 386, 387, 388, 466))
LOWER_LIDS = ((7, 163, 144, 145, 153, 154, 155), (382, 381, 380, 374, 373, 390, 249))
EYE_CORNERS = ((33, 133), (362, 263))
IRISES = tuple(range(468, 478))
IRIS_CENTERS = (468, 473)
EYES = tuple(sorted({33, 133, 362, 263} | set(sum(UPPER_LIDS + LOWER_LIDS, ()))))
BROWS = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334,
         336)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
#: The jaw line from ear to ear: what stitching keeps attached to the neck.
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
       361, 323, 454)
#: The jaw's angles, where a dropping jaw's hinge keeps the skin still.
JAW_ANGLES = (136, 365)
CHIN = (152, 148, 176, 377, 400, 149, 378, 150, 379, 175, 171, 396, 199, 200, 18, 201, 421,
        208, 428, 32, 262)
#: The ring of points above each upper lid, below the brow, image-left eye first: where the lid
#: skin that a closing lid unfolds begins.
ABOVE_LIDS = ((113, 225, 224, 223, 222, 221, 189), (342, 445, 444, 443, 442, 441, 413))
#: The ring of points just below each lower lid, image-left eye first.
BELOW_LIDS = ((25, 110, 24, 23, 22, 26, 112), (255, 339, 254, 253, 252, 256, 341))
#: The cheeks and the skin beside the mouth corners, which a smile lifts with the corners:
#: image-left side, then its mirror images in the same order.
CHEEKS = (57, 43, 106, 202, 204, 212, 214, 210, 192, 135, 187, 207, 216, 186, 92, 165,
          206, 205, 50, 101, 36, 203, 142, 118, 123, 147, 213,
          287, 273, 335, 422, 424, 432, 434, 430, 416, 364, 411, 427, 436, 410, 322, 391,
          426, 425, 280, 330, 266, 423, 371, 347, 352, 376, 433)
#: The skin between the nose's base and the upper lip (the philtrum and beside it), which a
#: rising upper lip carries up; and the nose's base, which stays.
ABOVE_MOUTH = (167, 164, 393)
NOSE_BASE = 2
#: The skin between the lower lip, the chin and the jaw line, which an opening jaw carries down.
BELOW_MOUTH = (43, 202, 106, 182, 83, 194, 204, 210, 211, 169, 170, 140, 135, 214,
               273, 422, 335, 406, 313, 418, 424, 430, 431, 394, 395, 369, 364, 434)
