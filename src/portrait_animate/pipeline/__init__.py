"""The pipeline: orchestrates face analysis, motion composition, an engine and files."""
