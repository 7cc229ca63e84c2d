"""`mgold report`: figures of a built warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import typer

from ._common import DEFAULT_WAREHOUSE, Warehouse, fail

app = typer.Typer(help="Reports on a built warehouse.", no_args_is_help=True)


def _table(columns, rows) -> str:
    cell = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


@app.command()
def labels(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """Labelled-sample counts per label source (like paper §2.2), the measured offsets to StarHorse
    per catalogue x class x parameter, and the CMD fits of the primary sample.

    Example: mgold report labels -w demo/warehouse.duckdb
    """
    from ..report import FIT_COLUMNS, OFFSET_COLUMNS, labels_report, sentence

    if not Path(warehouse).exists():
        fail(f"no warehouse at {warehouse}")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
        rep = labels_report(con)
    except duckdb.CatalogException as e:
        fail(f"{warehouse}: labels not built yet ({str(e).splitlines()[0]}); run `mgold sql run` first")
    typer.echo(sentence(rep))
    typer.echo("\nper class and source")
    typer.echo(_table(("class", "label_source", "n"), rep.by_class))
    typer.echo("\noffsets (catalogue - StarHorse), measured on this run")
    typer.echo(_table(OFFSET_COLUMNS, rep.offsets))
    typer.echo("\nCMD fits: M_G = c0 + c1 x + c2 x^2 + c3 x^3, x = (BP-RP)_0; box = fit +- width_mag")
    typer.echo(_table(FIT_COLUMNS, rep.cmd_fits))
