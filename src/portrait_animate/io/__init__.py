"""Image, video and file input/output."""
