"""The app's limits on uploads, free of Gradio: the command line takes its defaults from
them before Gradio is imported (Gradio fixes its temporary folder, ``GRADIO_TEMP_DIR``, when
imported)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppLimits"]


@dataclass(frozen=True)
class AppLimits:
    """Attributes: max_upload_mb per file; max_video_seconds of an uploaded video."""

    max_upload_mb: float = 200.0
    max_video_seconds: float = 120.0
