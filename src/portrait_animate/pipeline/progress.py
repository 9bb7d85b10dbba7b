"""Progress bars for the long steps (rich), silent with ``--quiet``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["Reporter", "WARNING"]

T = TypeVar("T")


#: How a note that the result may be incomplete or doubtful starts (a truncated file, no face
#: in the anchor frame).
WARNING = "warning: "


class Reporter:
    """Shows a bar per step on stderr and one-line notes; prints nothing when quiet, but
    warnings (notes starting with :data:`WARNING`) with ``keep_warnings``."""

    def __init__(self, quiet: bool = False, keep_warnings: bool = False) -> None:
        self.quiet = quiet
        self.keep_warnings = keep_warnings
        self.console = Console(stderr=True)

    def note(self, message: str) -> None:
        if not self.quiet or (self.keep_warnings and message.startswith(WARNING)):
            self.console.print(message, highlight=False, soft_wrap=True)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Yields ``items`` under a bar of ``total`` steps (an estimate, such as a video's
        duration x fps): a bar that ran to the end shows the count there was."""
        if self.quiet:
            yield from items
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)
            progress.update(task, total=progress.tasks[task].completed)
