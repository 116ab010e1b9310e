"""Rich progress bars (with ETA) that stay quiet when asked to or when nobody is watching.

Example:
    >>> with progress_bar("work", total=3, enabled=False) as advance:
    ...     for _ in range(3):
    ...         advance(1)
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class Bar:
    """What :func:`progress_bar` yields: ``bar(n)`` advances it; ``bar.describe(text)`` renames the task;
    ``bar.print(text)`` prints a line above the bar (through the bar's console, so lines never glue onto it)."""

    def __init__(self, prog: Progress | None = None, task: Any = None, console: Console | None = None) -> None:
        self._prog, self._task, self._console = prog, task, console

    def __call__(self, n: int) -> None:
        if self._prog is not None:
            self._prog.advance(self._task, n)

    def describe(self, text: str) -> None:
        if self._prog is not None:
            self._prog.update(self._task, description=text)

    def print(self, text: str) -> None:
        """A status line on stderr: above the bar while it is drawn, a plain line otherwise."""
        (self._prog.console if self._prog is not None else self._console or Console(stderr=True)).print(
            text, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, *, total: int | None, unit: str = "",
                 enabled: bool = True) -> Iterator[Bar]:
    """Yield a :class:`Bar`: call it as ``advance(n)`` to drive a progress bar on stderr.

    The bar is drawn only when ``enabled`` and stderr is a terminal; otherwise
    ``advance`` does nothing, so logs and pipes stay clean.
    """
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield Bar(console=console)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        yield Bar(prog, task)
