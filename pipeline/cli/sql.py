"""`mgold sql`: run, status, test, show and query the versioned SQL models."""

import typer

app = typer.Typer(help="Versioned SQL models: run, status, test, show, query.", no_args_is_help=True)
