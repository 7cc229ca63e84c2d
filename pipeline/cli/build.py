"""`mgold build`: every stage in order (placeholder until the build orchestrator lands)."""

import typer


def build() -> None:
    """Run every stage."""
    typer.echo("not yet")
