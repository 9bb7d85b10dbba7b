"""The ranges of the numbers users give (options, edits, limits), and the one message that
says a number is out of its range.

Free of heavy imports, so that the command line builds its help from these ranges.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

__all__ = ["Range"]


class Range(NamedTuple):
    """The finite values a number may take, and why."""

    low: float
    high: float
    why: str
    low_open: bool = False  # the low bound itself is excluded

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return False
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"above {self.low:g}" if self.low_open else f"of at least {self.low:g}"
        if self.low_open:
            return f"above {self.low:g} and at most {self.high:g}"
        return f"from {self.low:g} to {self.high:g}"

    def problem(self, name: str, value: object, default: float | None = None) -> str | None:
        """Why ``value`` cannot be given to ``name``, as 'problem; fix', or None.

        The fix names ``default`` when one is given.
        """
        if value in self:
            return None
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        shown = f"{value:g}" if number else repr(value)
        example = "" if default is None else f", e.g. the default {default:g}"
        return (f"{name} {shown} is not a finite number {self} ({self.why}); pass one in that "
                f"range{example}")
