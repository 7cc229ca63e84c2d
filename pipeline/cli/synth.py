"""`mgold synth`: make and validate the synthetic universe."""

import typer

app = typer.Typer(help="Synthetic LAMOST-DR11-like universe: make, validate.", no_args_is_help=True)
