"""Versioned migrations of the warehouse schema (``meta.schema_version``).

Each migration upgrades a warehouse from version N-1 to N with idempotent DDL. A
warehouse written by a newer mgold (version above ``SCHEMA_VERSION``) is refused with
one line rather than misread. ``connect`` runs ``migrate`` on every writable open, so
``mgold migrate`` only has to report.
"""

from __future__ import annotations

import datetime as dt
import os

import duckdb

from .datafiles import (SPECTRA_KIND, refresh_spectra_view, register_data_file, sha256_of, spectra_dir_of,
                        warehouse_path)
from .errors import WarehouseError


def _finish_interrupted_renames(con: duckdb.DuckDBPyConnection) -> None:
    """Finish the renames of committed spectra parts that a crash interrupted. Up to revision d549e82 an
    ingest wrote ``part-<hash>.parquet.<run_id>.tmp`` and renamed it into place after its commit, and
    the next ingest finished what a crash left; the registry would take them for orphans instead."""
    folder = spectra_dir_of(con) if warehouse_path(con) is not None else None
    if folder is None or not folder.is_dir():
        return
    committed = {r[0] for r in con.execute("select distinct run_id from meta.ingested_files where kind = 'lamost'"
                                           ).fetchall()}
    for tmp in sorted(folder.glob("part-*.parquet.*.tmp")):
        stem, _, rest = tmp.name.partition(".parquet.")
        if rest.removesuffix(".tmp") in committed and not tmp.with_name(stem + ".parquet").exists():
            os.replace(tmp, tmp.with_name(stem + ".parquet"))


def _register_unlisted_spectra(con: duckdb.DuckDBPyConnection) -> None:
    """Before version 2 the spectra view globbed its folder; now it lists registered parts."""
    import pyarrow.parquet as pq

    root = warehouse_path(con)
    if root is None or not spectra_dir_of(con).is_dir():
        return
    for part in sorted(spectra_dir_of(con).glob("part-*.parquet")):
        register_data_file(con, part.relative_to(root.parent).as_posix(), SPECTRA_KIND,
                           pq.ParquetFile(part).metadata.num_rows, "migrate-2", sha256_of(part),
                           part.stat().st_size)
    refresh_spectra_view(con)


# version -> steps (SQL or functions of the connection) bringing a warehouse of version-1 up to it
MIGRATIONS: dict[int, tuple] = {
    1: (),   # the first recorded version: meta.* as created by META_DDL
    2: ("alter table meta.runs add column if not exists pid integer",
        "alter table meta.runs add column if not exists host varchar",
        "alter table landing.inspection_decisions add column if not exists suggested boolean default false",
        _finish_interrupted_renames, _register_unlisted_spectra),
}
SCHEMA_VERSION = max(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int | None:
    try:
        row = con.execute("select max(version) from meta.schema_version").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def check_version(con: duckdb.DuckDBPyConnection) -> int | None:
    v = current_version(con)
    if v is not None and v > SCHEMA_VERSION:
        raise WarehouseError(f"this warehouse has schema version {v}, newer than this mgold "
                             f"understands ({SCHEMA_VERSION}); upgrade mgold to use it")
    return v


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the missing migrations; returns the versions applied (a warehouse that records no
    version yet was created before versioning and gets every migration, all idempotent)."""
    v = check_version(con) or 0
    applied = []
    for version in range(v + 1, SCHEMA_VERSION + 1):
        for step in MIGRATIONS[version]:
            step(con) if callable(step) else con.execute(step)
        con.execute("insert into meta.schema_version values (?, ?)", [version, dt.datetime.now()])
        applied.append(version)
    return applied
