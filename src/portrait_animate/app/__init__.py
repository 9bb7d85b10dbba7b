"""The web app: Animation, Image retargeting/editing and Video retargeting (SPEC 6).

Its names are imported when first used, so that :mod:`.limits` (what the command line needs
for its options) comes without Gradio, which fixes its temporary folder when imported.
"""

from __future__ import annotations

from ..lazy import lazy_names
from .limits import AppLimits

__all__ = ["AppBackend", "AppLimits", "build_app", "serve"]

__getattr__, __dir__ = lazy_names(__name__, {"AppBackend": ".backend", "build_app": ".layout",
                                             "serve": ".server"})
