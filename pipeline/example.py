"""``warehouse.duckdb.example``: a small, committed, ready-to-query copy of a built warehouse.

It is the ``tiny`` preset built end to end, copied into one self-contained DuckDB
file: every table and view of the source (catalogues, models, ``meta.*``,
``truth.*``), with no Parquet beside it. Spectra are what makes a warehouse big,
so relations with spectrum arrays (``landing.lamost_spectra``, which is a view over
Parquet in a real warehouse, ``spc_*`` grids, ``landing.model_sed_grid``) keep only
their first ``keep_spectra`` rows, enough to try the UDFs on; ``meta.example``
lists what was cut, so nobody mistakes the example for a full build.

Regenerate with ``make example`` after a model changes (a test fails when a model
is missing from the committed file).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import duckdb

from .warehouse import quote_ident

KEEP_SPECTRA = 25        # rows kept in relations that carry spectrum arrays
LONG_ARRAY = 100         # an array column longer than this is a spectrum
BLOCK_SIZE = 16384       # bytes; DuckDB's default 256 KiB blocks would make the file ~4x larger


def _relations(con) -> list[tuple[str, str, str | None]]:
    """(schema, name, view SQL or None for a table) of the attached source ``src``, user relations only."""
    tables = con.execute("select schema_name, table_name, null from duckdb_tables() "
                         "where database_name = 'src' and not internal").fetchall()
    views = con.execute("select schema_name, view_name, sql from duckdb_views() "
                        "where database_name = 'src' and not internal").fetchall()
    return sorted(tables) + sorted(views)


def _columns(con, schema: str, name: str) -> list[tuple[str, str]]:
    return con.execute("select column_name, data_type from duckdb_columns() "
                       "where database_name = 'src' and schema_name = ? and table_name = ?",
                       [schema, name]).fetchall()


def _has_spectra(con, schema: str, name: str) -> bool:
    """True when a column holds long arrays (checked on the first row: fixed or variable lists)."""
    arrays = [c for c, t in _columns(con, schema, name) if t.endswith("]")]
    if not arrays:
        return False
    rel = f"src.{quote_ident(schema)}.{quote_ident(name)}"
    lens = con.execute(f"select {', '.join(f'len({quote_ident(c)})' for c in arrays)} from {rel} limit 1").fetchone()
    return lens is not None and any((n or 0) > LONG_ARRAY for n in lens)


def write_example(src: Path, dst: Path, keep_spectra: int = KEEP_SPECTRA) -> dict[str, tuple[int, int]]:
    """Copy warehouse ``src`` into the single file ``dst`` (atomically); return {relation: (kept, full)}."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    cut: dict[str, tuple[int, int]] = {}
    views: dict[tuple[str, str], str] = {}
    con = duckdb.connect()
    try:
        # small blocks: the example has ~50 small tables, each at least one block
        con.execute(f"attach '{tmp.as_posix()}' as ex (block_size {BLOCK_SIZE})")
        con.execute("use ex")
        # the source's Parquet views resolve relative to its folder (see warehouse.connect)
        con.execute(f"set file_search_path = '{src.resolve().parent.as_posix()}'")
        con.execute(f"attach '{src.as_posix()}' as src (read_only)")
        relations = _relations(con)
        for schema in sorted({s for s, _, _ in relations}):
            con.execute(f"create schema if not exists {quote_ident(schema)}")
        for schema, name, view_sql in relations:
            spectra = _has_spectra(con, schema, name)
            if view_sql is not None and not spectra:
                views[(schema, name)] = view_sql      # recreated as a view, over the copied tables
                continue
            rel = f"{quote_ident(schema)}.{quote_ident(name)}"
            sql = f"select * from src.{rel}"
            full = con.execute(f"select count(*) from src.{rel}").fetchone()[0]
            if spectra and full > keep_spectra:
                has_obsid = "obsid" in {c for c, _ in _columns(con, schema, name)}
                sql += f" order by {'obsid' if has_obsid else 'all'} limit {int(keep_spectra)}"
                cut[f"{schema}.{name}"] = (keep_spectra, full)
            con.execute(f"create table {rel} as {sql}")
            for stmt in _comments(con, schema, name, "table"):
                con.execute(stmt)
        con.execute("create table meta.example (relation varchar, rows_kept bigint, rows_in_build bigint, "
                    "note varchar)")
        for rel, (kept, full) in cut.items():
            con.execute("insert into meta.example values (?, ?, ?, ?)",
                        [rel, kept, full, "spectrum arrays: first rows only (example file, not a full build)"])
        view_comments = [stmt for schema, name in views for stmt in _comments(con, schema, name, "view")]
        con.execute("detach src")
        _recreate_views(con, views)
        for stmt in view_comments:
            con.execute(stmt)
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, dst)
    return cut


def _comments(con, schema: str, name: str, kind: str) -> list[str]:
    """The COMMENT ON TABLE / VIEW / COLUMN statements that give the copy of a source relation its
    comments (what the runner wrote from the model's description and columns: header): a BI tool
    reads them from the example too."""
    listing = "duckdb_tables() where table_name" if kind == "table" else "duckdb_views() where view_name"
    rel = f"{quote_ident(schema)}.{quote_ident(name)}"
    row = con.execute(f"select comment from {listing} = ? and database_name = 'src' and schema_name = ?",
                      [name, schema]).fetchone()
    out = [f"comment on {kind} {rel} is {_literal(row[0])}"] if row and row[0] else []
    return out + [f"comment on column {rel}.{quote_ident(col)} is {_literal(text)}" for col, text in con.execute(
        "select column_name, comment from duckdb_columns() where database_name = 'src' and schema_name = ? "
        "and table_name = ? and coalesce(comment, '') <> ''", [schema, name]).fetchall()]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _recreate_views(con, sqls: dict[tuple[str, str], str]) -> None:
    """Create the source's views over the copied relations, in an order that resolves."""
    pending = dict(sqls)
    while pending:
        progressed = False
        for (schema, name), sql in list(pending.items()):
            try:
                con.execute(f"set schema = {quote_ident(schema)}")
                con.execute(sql)
            except duckdb.CatalogException:
                continue                               # reads a view not created yet
            finally:
                con.execute("set schema = 'main'")
            del pending[(schema, name)]
            progressed = True
        if not progressed:
            raise RuntimeError(f"cannot recreate view(s) {sorted(pending)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write warehouse.duckdb.example from a built warehouse.")
    p.add_argument("src", type=Path, help="a built warehouse (e.g. of the tiny preset)")
    p.add_argument("dst", type=Path, nargs="?", default=Path("warehouse.duckdb.example"))
    p.add_argument("--keep-spectra", type=int, default=KEEP_SPECTRA)
    a = p.parse_args(argv)
    cut = write_example(a.src, a.dst, a.keep_spectra)
    size = a.dst.stat().st_size / 2**20
    print(f"wrote {a.dst} ({size:.1f} MiB); spectra relations cut to {a.keep_spectra} rows: "
          + ", ".join(f"{r} ({k}/{n})" for r, (k, n) in sorted(cut.items())))


if __name__ == "__main__":
    main()
