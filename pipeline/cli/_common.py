"""Options shared by several sub-commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

Warehouse = Annotated[
    Path,
    typer.Option("--warehouse", "-w", help="DuckDB warehouse file (env MGOLD_WAREHOUSE).",
                 envvar="MGOLD_WAREHOUSE"),
]
DEFAULT_WAREHOUSE = Path(os.environ.get("MGOLD_WAREHOUSE", "warehouse.duckdb"))

Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: --set section.key=value (repeatable)."),
]


def fail(message: str, code: int = 1) -> None:
    """Print one clear line on stderr and exit non-zero."""
    typer.echo(f"mgold: error: {message}", err=True)
    raise typer.Exit(code)
