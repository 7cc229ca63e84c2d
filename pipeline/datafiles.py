"""The warehouse's files: where they live and the registry of the Parquet files it references.

Layout for ``path/to/w.duckdb``: ``path/to/w_files/`` holds the Parquet files, landing
spectra in ``spectra/lamost/part-<run_id>-<k>.parquet``. Every file the warehouse reads is
a row of ``meta.data_files`` (path relative to the warehouse folder, rows, bytes, sha256),
written in the same transaction as the data that refers to it; the view
``landing.lamost_spectra`` lists exactly the registered parts. So a file nobody registered
(an interrupted ingest, a replaced universe) is never read and can be removed safely, and a
registered file that changed on disk is detected (``mgold doctor``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from .errors import WarehouseError

SPECTRA_KIND = "lamost_spectra"     # meta.data_files kind of the landing spectra parts


def files_dir(warehouse: str | Path) -> Path:
    """The sibling folder holding this warehouse's Parquet files."""
    p = Path(warehouse)
    return p.with_name(p.stem + "_files")


def lock_path(warehouse: str | Path) -> Path:
    p = Path(warehouse)
    return p.with_name(p.name + ".lock")


def warehouse_path(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The file of the connection's database (None for an in-memory one)."""
    row = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()
    return Path(row[0]) if row and row[0] else None


def files_dir_of(con: duckdb.DuckDBPyConnection) -> Path:
    """``files_dir`` of the warehouse ``con`` is connected to."""
    path = warehouse_path(con)
    if path is None:
        raise WarehouseError("an in-memory database has no files folder; open a warehouse file")
    return files_dir(path)


def spectra_dir(warehouse: str | Path) -> Path:
    """Where the landing spectra parts of ``warehouse`` live."""
    return files_dir(warehouse) / "spectra" / "lamost"


def spectra_dir_of(con: duckdb.DuckDBPyConnection) -> Path:
    return files_dir_of(con) / "spectra" / "lamost"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def register_data_file(con: duckdb.DuckDBPyConnection, rel_path: str, kind: str, n_rows: int,
                       run_id: str, sha256: str, n_bytes: int) -> None:
    """Record a Parquet file the warehouse references (path relative to the warehouse folder)."""
    con.execute("insert or replace into meta.data_files values (?, ?, ?, ?, ?, ?, now())",
                [rel_path, kind, n_rows, n_bytes, sha256, run_id])


def refresh_spectra_view(con: duckdb.DuckDBPyConnection) -> None:
    """``landing.lamost_spectra`` over exactly the registered spectra parts (none: no view)."""
    parts = [r[0] for r in con.execute("select path from meta.data_files where kind = ? order by path",
                                       [SPECTRA_KIND]).fetchall()]
    if not parts:
        con.execute("drop view if exists landing.lamost_spectra")
        return
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
    # adopted synthetic files carry header columns too: the view is the landing layout, by name
    con.execute("create or replace view landing.lamost_spectra as select obsid, loglam0, dloglam, flux, ivar, "
                f"pixmask from read_parquet([{listed}], union_by_name = true)")


def orphan_files(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """The files under ``<files>/spectra/`` that no committed ``meta.data_files`` row references: what
    an interrupted ingest or vacuum wrote, or the spectra of a replaced universe (a warehouse without
    the registry yet, from before schema version 2, has none it could tell)."""
    wp = warehouse_path(con)
    spectra = files_dir(wp) / "spectra" if wp else None
    if spectra is None or not spectra.is_dir() or not con.execute(
            "select count(*) from information_schema.tables where table_catalog = current_database() "
            "and table_schema = 'meta' and table_name = 'data_files'").fetchone()[0]:
        return []
    known = {r[0] for r in con.execute("select path from meta.data_files").fetchall()}
    return [f for f in sorted(spectra.rglob("*")) if f.is_file() and f.relative_to(wp.parent).as_posix() not in known]


def remove_orphans(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Delete the ``orphan_files``. Only a writer (holding the lock) calls this, never inside a
    transaction."""
    removed = orphan_files(con)
    for f in removed:
        f.unlink()
    return removed
