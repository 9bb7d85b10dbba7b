"""The LivePortrait networks, one module per network, built from published hyper-parameters.

Networks compute; they do no I/O. Loading lives in :mod:`portrait_animate.engines.neural`.
"""

from .appearance_feature_extractor import AppearanceFeatureExtractor
from .motion_extractor import MotionExtractor, MotionExtractorOutput
from .spade_generator import SPADEDecoder
from .stitching_retargeting import STITCHING_RETARGETING_PARAMS, StitchingRetargetingNetwork
from .warping_network import WarpingNetwork, WarpingOutput

__all__ = [
    "AppearanceFeatureExtractor",
    "MotionExtractor",
    "MotionExtractorOutput",
    "SPADEDecoder",
    "STITCHING_RETARGETING_PARAMS",
    "StitchingRetargetingNetwork",
    "WarpingNetwork",
    "WarpingOutput",
]
