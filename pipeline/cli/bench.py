"""`mgold bench`: named benchmarks, figures as JSON under bench/results/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import fail


def bench(
    names: Annotated[list[str] | None, typer.Argument(help="Benchmarks to run (default: all). "
                                                           "`mgold bench --list` names them.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the JSON results.")] = Path("bench/results"),
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
) -> None:
    """Run benchmarks and write their figures (with machine info and git revision) to JSON.
    Speeds are ratios against a baseline measured in the same process, plus throughputs.

    Example: mgold bench ingest dbscan
    """
    from ..bench import discover
    from ..bench.run import run_benchmarks

    if list_:
        for name, fn in sorted(discover().items()):
            typer.echo(f"{name:12s} {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}")
        return
    try:
        path = run_benchmarks(names, out, echo=typer.echo)
    except KeyError as exc:
        fail(str(exc.args[0]))
    typer.echo(f"results written to {path}")
