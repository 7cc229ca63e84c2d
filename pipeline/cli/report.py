"""`mgold report` (filled in by later stages)."""

import typer

app = typer.Typer(help="report commands.", no_args_is_help=True)
