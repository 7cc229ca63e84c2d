"""The ``mgold`` command: one typer sub-app per noun. Stages never import the CLI."""

from __future__ import annotations

import typer

from . import bench, build, export, ingest, inspect, laspm, maintenance, report, runs, sql, synth
from ._common import MgoldGroup

app = typer.Typer(
    cls=MgoldGroup,
    help="mgold: a golden sample of LAMOST M stars, built as a DuckDB warehouse.\n\n"
         "Example: mgold build --preset demo -w demo/warehouse.duckdb",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(synth.app, name="synth")
app.add_typer(ingest.app, name="ingest")
app.add_typer(sql.app, name="sql")
app.command(name="build")(build.build)
app.add_typer(inspect.app, name="inspect")
app.add_typer(laspm.app, name="laspm")
app.add_typer(export.app, name="export")
app.add_typer(report.app, name="report")
app.add_typer(runs.app, name="runs")
app.command(name="bench")(bench.bench)
app.command(name="doctor")(maintenance.doctor)
app.command(name="vacuum")(maintenance.vacuum)
app.command(name="migrate")(maintenance.migrate)
app.command(name="catalog")(maintenance.catalog)


def main() -> None:
    app()
