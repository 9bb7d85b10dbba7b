"""The web app: Animation, Image retargeting/editing and Video retargeting (SPEC 6)."""

from .backend import AppBackend
from .layout import build_app
from .server import serve
from .uploads import AppLimits

__all__ = ["AppBackend", "AppLimits", "build_app", "serve"]
