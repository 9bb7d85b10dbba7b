"""The motion model: a frame's motion is scale, rotation, translation and expression
offsets on implicit keypoints; every driving mode is an operation on it."""

from .transform import apply_stitching_delta, bins_to_degrees, rotation_matrix, transform_keypoints

__all__ = ["apply_stitching_delta", "bins_to_degrees", "rotation_matrix", "transform_keypoints"]
