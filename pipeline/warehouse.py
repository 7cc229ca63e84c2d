"""Opening a warehouse: one DuckDB file plus a sibling folder of Parquet files.

Layout for ``path/to/w.duckdb``::

    path/to/w.duckdb          catalogues, labels, results, meta.*, truth.*
    path/to/w_files/spectra/  Parquet spectra (landing and processed)

Views over Parquet use paths relative to the warehouse folder; ``connect`` sets
DuckDB's ``file_search_path`` so they resolve wherever the process runs. From the
plain ``duckdb`` CLI, start in the warehouse folder.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import duckdb

SCHEMAS = ("meta", "landing", "truth")

META_DDL = [
    """create table if not exists meta.runs (
        run_id varchar primary key, command varchar, started_at timestamp,
        finished_at timestamp, status varchar, git_rev varchar, config_json varchar)""",
    """create table if not exists meta.run_parameters (
        run_id varchar, key varchar, value varchar)""",
    """create table if not exists meta.model_runs (
        model varchar, kind varchar, sql_sha256 varchar, upstream_hashes varchar,
        config_hash varchar, run_id varchar, started_at timestamp, finished_at timestamp,
        row_count bigint, status varchar, error varchar)""",
    """create table if not exists meta.ingest_errors (
        run_id varchar, file varchar, row bigint, reason varchar, severity varchar,
        "at" timestamp)""",
    """create table if not exists meta.ingested_files (
        file_sha256 varchar, file varchar, kind varchar, run_id varchar, n_rows bigint,
        "at" timestamp)""",
    # the synthetic universe the landing tables hold (sha256 of its manifest.json), if any
    """create table if not exists meta.universe (manifest_sha256 varchar, inputs varchar)""",
]


def files_dir(warehouse: str | Path) -> Path:
    """The sibling folder holding this warehouse's Parquet files."""
    p = Path(warehouse)
    return p.with_name(p.stem + "_files")


def connect(warehouse: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) a warehouse with its schemas and meta tables."""
    p = Path(warehouse)
    if read_only and not p.exists():
        raise FileNotFoundError(f"no warehouse at {p}")
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(p), read_only=read_only)
    con.execute(f"set file_search_path = '{p.resolve().parent.as_posix()}'")
    if not read_only:
        for s in SCHEMAS:
            con.execute(f"create schema if not exists {s}")
        for ddl in META_DDL:
            con.execute(ddl)
    return con


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def record_ingest_error(con: duckdb.DuckDBPyConnection, run_id: str, file: str | Path,
                        reason: str, severity: str = "error", row: int | None = None) -> None:
    """Log one rejected file/row in ``meta.ingest_errors`` and print one line on stderr."""
    where = f"{file}" + (f":{row}" if row is not None else "")
    print(f"mgold: {severity}: {where}: {reason}", file=sys.stderr)
    con.execute(
        "insert into meta.ingest_errors values (?, ?, ?, ?, ?, now())",
        [run_id, str(file), row, reason, severity],
    )
