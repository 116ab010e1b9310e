"""Rich progress bars (with ETA) that stay quiet when asked to or when nobody is watching.

Example:
    >>> with progress_bar("work", total=3, enabled=False) as advance:
    ...     for _ in range(3):
    ...         advance(1)
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


@contextlib.contextmanager
def progress_bar(description: str, *, total: int | None, unit: str = "",
                 enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` function driving a progress bar on stderr.

    The bar is drawn only when ``enabled`` and stderr is a terminal; otherwise
    ``advance`` does nothing, so logs and pipes stay clean.
    """
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda n: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)
