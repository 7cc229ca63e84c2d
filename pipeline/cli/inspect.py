"""`mgold inspect` (filled in by later stages)."""

import typer

app = typer.Typer(help="inspect commands.", no_args_is_help=True)
