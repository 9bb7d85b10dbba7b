"""Errors meant for the user: one line that names the problem and the fix."""

from __future__ import annotations

__all__ = ["PortraitAnimateError", "WeightsError", "InputError"]


class PortraitAnimateError(Exception):
    """A failure the user can fix; the CLI prints it as one line and exits with code 2."""


class WeightsError(PortraitAnimateError):
    """Weights are missing, unreadable or do not match the networks."""


class InputError(PortraitAnimateError):
    """An input file or option is missing, unreadable or inconsistent."""
