"""`mgold runs`: every build recorded in the warehouse, what it used, built and changed."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import DEFAULT_WAREHOUSE, Warehouse, reading
from .report import _table

app = typer.Typer(help="Runs recorded in meta.runs: parameters, model hashes, row counts, differences.",
                  no_args_is_help=True)

Ref = Annotated[str, typer.Argument(help="A run id, a unique prefix of one, 'latest' or 'previous'.")]


def _when(t) -> str:
    return "" if t is None else f"{t:%Y-%m-%d %H:%M:%S}"


def _short(sha: str | None) -> str:
    return "-" if sha is None else sha[:12]


def _rows(n) -> str:
    return "-" if n is None else f"{n:,}"


@app.command("list")
def list_cmd(warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """Every run, oldest first: id, command, start, seconds, status, git revision, models built and failed.

    Example: mgold runs list -w demo/warehouse.duckdb
    """
    from ..runs import list_runs

    with reading(warehouse) as con:
        runs = list_runs(con)
    if not runs:
        typer.echo("no runs recorded")
        return
    rows = [(r.run_id, r.command, _when(r.started_at),
             "" if r.finished_at is None or r.started_at is None
             else f"{(r.finished_at - r.started_at).total_seconds():.1f}",
             r.status, r.git_rev or "", r.n_built, r.n_failed) for r in runs]
    typer.echo(_table(("run_id", "command", "started", "seconds", "status", "git", "built", "failed"), rows))


@app.command("show")
def show_cmd(run: Ref, warehouse: Warehouse = DEFAULT_WAREHOUSE,
             all_parameters: Annotated[bool, typer.Option("--all-parameters",
                                                          help="Also the synth.* and ingest.* values.")] = False
             ) -> None:
    """One run: its config values, what it built or failed, the headline row counts and every model
    of the warehouse after it (SQL hash, rows, the run that built it).

    Example: mgold runs show latest -w demo/warehouse.duckdb
    """
    from ..runs import short_value, show

    with reading(warehouse) as con:
        d = show(con, run)
    r = d.run
    typer.echo(f"run {r.run_id}: {r.command}, {r.status}, started {_when(r.started_at)}, finished "
               f"{_when(r.finished_at) or '-'}, git {r.git_rev or '-'}")
    typer.echo("\nheadline rows after this run")
    typer.echo(_table(("model", "rows"), [(m, _rows(n)) for m, n in d.headline.items()]))
    params = {k: v for k, v in d.parameters.items()
              if all_parameters or not k.startswith(("synth.", "ingest."))}
    hidden = len(d.parameters) - len(params)
    typer.echo(f"\nparameters ({len(d.parameters)} recorded" + (f", {hidden} synth.*/ingest.* hidden: "
                                                                   "--all-parameters" if hidden else "") + ")")
    typer.echo(_table(("key", "value"), [(k, short_value(v, 90)) for k, v in params.items()]))
    if d.outcomes:
        typer.echo("\nmodels this run touched")
        typer.echo(_table(("model", "status", "error"), [(m, s, (e or "")[:100]) for m, s, e in d.outcomes]))
    typer.echo(f"\nmodels after this run ({len(d.models)})")
    typer.echo(_table(("model", "kind", "sql_sha256", "rows", "built by"),
                      [(m.model, m.kind, _short(m.sql_sha256), _rows(m.row_count),
                        "this run" if m.run_id == r.run_id else m.run_id) for m in d.models.values()]))


@app.command("diff")
def diff_cmd(run_a: Ref, run_b: Ref, warehouse: Warehouse = DEFAULT_WAREHOUSE) -> None:
    """What changed from RUN_A to RUN_B: config values that differ, and every model built again in
    between, with its SQL hash and row count before and after (why: sql / config changed, upstream
    rebuilt), plus the headline row counts of both.

    Example: mgold runs diff previous latest -w demo/warehouse.duckdb
    """
    from ..runs import diff, short_value

    with reading(warehouse) as con:
        d = diff(con, run_a, run_b)
    typer.echo(f"A = {d.a.run_id} ({d.a.command}, {_when(d.a.started_at)})")
    typer.echo(f"B = {d.b.run_id} ({d.b.command}, {_when(d.b.started_at)})")
    typer.echo("\nheadline rows")
    typer.echo(_table(("model", "A", "B"), [(m, _rows(x), _rows(y)) for m, (x, y) in d.headline.items()]))
    if d.parameters:
        typer.echo(f"\nparameters changed ({len(d.parameters)})")
        typer.echo(_table(("key", "A", "B"), [(k, short_value(x), short_value(y)) for k, x, y in d.parameters]))
    else:
        typer.echo("\nparameters: identical")
    if d.models:
        typer.echo(f"\nmodels changed ({len(d.models)})")
        typer.echo(_table(("model", "change", "sql A", "sql B", "rows A", "rows B"),
                          [(c.model, c.change, _short(c.sha_a), _short(c.sha_b), _rows(c.rows_a), _rows(c.rows_b))
                           for c in d.models]))
    else:
        typer.echo("\nmodels: identical")
