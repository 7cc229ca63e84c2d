"""One progress bar for every long loop (rich, on stderr; quiet when not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "",
             unit: str = "") -> Iterator[T]:
    """Yield ``items`` while drawing a bar on stderr when it is a terminal."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = Progress(TextColumn(f"[bold]{desc}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(),
                   transient=True, disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task(desc, total=total)
        for item in items:
            yield item
            bar.advance(task)
