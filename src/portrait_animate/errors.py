"""Errors meant for the user: one line that names the problem and the fix."""

from __future__ import annotations

__all__ = ["PortraitAnimateError", "WeightsError", "InputError"]


class PortraitAnimateError(Exception):
    """A failure the user can fix; the CLI prints it as one line and exits with code 2.

    Args:
        message: the line for the command line; its fixes name command-line options.
        page: the same for the web app, whose fixes name the page's controls; when not
            given, the message has no fix that differs there.
    """

    def __init__(self, message: str, *, page: str | None = None) -> None:
        super().__init__(message)
        self.page = message if page is None else page


class WeightsError(PortraitAnimateError):
    """Weights are missing, unreadable or do not match the networks."""


class InputError(PortraitAnimateError):
    """An input file or option is missing, unreadable or inconsistent."""
