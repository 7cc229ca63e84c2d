"""`mgold doctor | vacuum | migrate | catalog`: keeping a warehouse healthy and knowing what is in it."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError
from ._common import DEFAULT_WAREHOUSE, Sets, Wait, Warehouse, config, fail, reading, writing


def doctor(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    no_checksums: Annotated[bool, typer.Option("--no-checksums", help="Compare file sizes only, not the sha256 "
                                                                       "of every registered Parquet file.")] = False,
) -> None:
    """Check a warehouse: the ledger against the tables (every model it says built exists with the rows
    it recorded; relations nothing explains), every registered Parquet file present with its size and
    sha256, no orphaned files, no run left 'running' by a killed process, the schema version, and the
    data tests and audits. Prints each problem in one line with the command that fixes it; exits 1
    when anything is wrong, 0 and 'healthy' otherwise.

    Example: mgold doctor -w demo/warehouse.duckdb
    """
    from ..doctor import diagnose
    from ..runner import Project

    project = Project.load()
    with reading(warehouse) as con:
        problems = diagnose(con, project, warehouse, checksums=not no_checksums)
        n_files = None if problems else con.execute("select count(*) from meta.data_files").fetchone()[0]
    for p in problems:
        typer.echo(p.line())
    if problems:
        fail(f"{warehouse}: {len(problems)} problem(s), each above with its fix")
    typer.echo(f"{warehouse}: healthy ({len(project.models)} models checked against the ledger, "
               f"{n_files} data file(s){'' if no_checksums else ' with their sha256'}, tests and audits pass)")


def vacuum(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    forget_missing: Annotated[bool, typer.Option(
        "--forget-missing", help="Unregister missing or rewritten spectra parts and the header rows of the "
                                 "spectra only they held, so that ingesting the original files lands them "
                                 "again (mgold doctor prints the command).")] = False,
    set_: Sets = None,
    wait: Wait = False,
) -> None:
    """Remove orphaned Parquet files, drop the temporary tables of killed builds, mark runs a killed
    process left 'running' as aborted, and compact small spectra part files into parts of about
    ingest.spectra_per_file spectra, atomically (new parts registered and old ones unregistered in one
    transaction, old files deleted after it: a kill at any moment loses nothing).

    Example: mgold vacuum -w demo/warehouse.duckdb
    """
    from ..datafiles import files_dir
    from ..vacuum import vacuum as run_vacuum

    cfg = config(set_)
    spectra = files_dir(warehouse) / "spectra"
    before = sorted(p for p in spectra.rglob("*") if p.is_file()) if spectra.is_dir() else []
    with writing(warehouse, wait) as con:            # opening for writing removes the orphans
        at_open = [p for p in before if not p.exists()]
        rep = run_vacuum(con, cfg, forget_missing=forget_missing,
                         on_step=lambda what: typer.echo(f"  {what}", err=True))
    typer.echo(f"orphaned files removed: {len(at_open) + len(rep.orphans)}")
    if rep.dropped:
        typer.echo(f"temporary tables of killed builds dropped: {', '.join(rep.dropped)}")
    if rep.runs_aborted:
        typer.echo(f"runs left 'running' by a killed process, marked aborted: {rep.runs_aborted}")
    if forget_missing:
        typer.echo(f"missing or rewritten parts forgotten: {len(rep.forgotten_parts)} "
                   f"({rep.forgotten_spectra:,} spectra to ingest again)")
    for why in rep.skipped:
        typer.echo(f"left as it is: {why}")
    if rep.written:
        typer.echo(f"compacted {len(rep.compacted)} part(s) into {len(rep.written)} ({rep.spectra_moved:,} spectra)")
    else:
        typer.echo("spectra parts: nothing to compact")


def migrate(
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    check: Annotated[bool, typer.Option("--check", help="Only say whether a migration is pending (exit 1 "
                                                        "when one is); apply nothing.")] = False,
    wait: Wait = False,
) -> None:
    """Apply the pending schema migrations of a warehouse written by an older mgold and report its
    schema version (meta.schema_version). A warehouse newer than this mgold is refused. Every writing
    command migrates on opening; this one says what it did.

    Example: mgold migrate -w old.duckdb --check
    """
    from ..migrate import MIGRATIONS, SCHEMA_VERSION, current_version

    with reading(warehouse) as con:                 # refuses a newer warehouse in one line
        before = current_version(con)
    pending = list(range((before or 0) + 1, SCHEMA_VERSION + 1))
    shown = "none (before versioning)" if before is None else str(before)
    if not pending:
        typer.echo(f"{warehouse}: schema version {before}, up to date")
        return
    if check:
        typer.echo(f"{warehouse}: schema version {shown}, this mgold writes {SCHEMA_VERSION}: "
                   f"{len(pending)} migration(s) pending ({', '.join(map(str, pending))})")
        fail(f"migration pending: mgold migrate -w {warehouse}")
    with writing(warehouse, wait) as con:           # opening for writing applies them
        after = current_version(con)
    for v in pending:
        # a step is SQL, or a function whose docstring's first sentence says what it does
        steps = [s if isinstance(s, str) else " ".join((s.__doc__ or s.__name__).split()).split(". ")[0]
                 for s in MIGRATIONS[v]]
        typer.echo(f"  {v}: " + ("; ".join(steps) or "recorded"))
    typer.echo(f"{warehouse}: schema version {shown} -> {after}")


def catalog(
    names: Annotated[list[str] | None, typer.Argument(help="Models to show (default: every mart).")] = None,
    warehouse: Warehouse = DEFAULT_WAREHOUSE,
    all_: Annotated[bool, typer.Option("--all", help="Every model, not only the marts.")] = False,
) -> None:
    """List the marts (with --all every model) with their table and column comments as the warehouse
    holds them (duckdb_tables() / duckdb_columns()): what a BI tool shows for each.

    Example: mgold catalog -w warehouse.duckdb.example
    """
    from ..relations import documented_relations
    from ..runner import Project

    project = Project.load()
    unknown = sorted(set(names or ()) - set(project.models))
    if unknown:
        raise UsageError(f"no model {', '.join(unknown)} (mgold catalog --all -w W lists them)")
    with reading(warehouse) as con:
        rels = documented_relations(con, project, None if all_ else ("marts",), names)
    for i, r in enumerate(rels):
        if i:
            typer.echo("")
        if r.kind is None:
            typer.echo(f"{r.name}: not built (mgold sql run --select {r.name} -w {warehouse})")
            continue
        rows = f", {r.rows:,} rows" if r.rows is not None else ""
        typer.echo(f"{r.name} ({r.layer} {r.kind}{rows}): {r.comment or '(no comment)'}")
        width = max((len(c) for c, _, _ in r.columns), default=0)
        types = max((len(t) for _, t, _ in r.columns), default=0)
        for col, dtype, comment in r.columns:
            typer.echo(f"  {col:<{width}}  {dtype:<{types}}  {comment or ''}".rstrip())
