"""The REST service (``portrait-animate serve``): a persistent job queue over HTTP, on the
batch's jobs, workers and executors."""

from .app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
