"""Checks of a warehouse's health (``mgold doctor``, and the warnings of ``mgold sql status``).

Each check returns problems as one-line strings that say what is wrong and the command
that fixes it. Data files: every ``meta.data_files`` row must name a file that exists with
the recorded size (and, with ``checksums``, the recorded sha256).
"""

from __future__ import annotations

import duckdb

from .datafiles import sha256_of, warehouse_path
from .warehouse import relation_kind


def changed_data_files(con: duckdb.DuckDBPyConnection, checksums: bool = True) -> list[str]:
    """Registered Parquet files that are missing, resized or (``checksums``) rewritten."""
    if relation_kind(con, "data_files", "meta") is None or warehouse_path(con) is None:
        return []
    root = warehouse_path(con).parent
    problems = []
    for path, n_bytes, sha in con.execute("select path, bytes, sha256 from meta.data_files order by path").fetchall():
        f = root / path
        if not f.is_file():
            problems.append(f"{path}: registered data file is missing")
        elif f.stat().st_size != n_bytes:
            problems.append(f"{path}: {f.stat().st_size} bytes, ingest recorded {n_bytes}: the file was rewritten")
        elif checksums and sha256_of(f) != sha:
            problems.append(f"{path}: sha256 differs from what ingest recorded: the file was rewritten")
    return problems
