"""The web app: Animation, Image retargeting/editing and Video retargeting (SPEC 6).

Its names are imported when first used, so that :mod:`.limits` (what the command line needs
for its options) comes without Gradio, which fixes its temporary folder when imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from .limits import AppLimits

__all__ = ["AppBackend", "AppLimits", "build_app", "serve"]

_MODULES = {"AppBackend": ".backend", "build_app": ".layout", "serve": ".server"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name], __name__), name)
