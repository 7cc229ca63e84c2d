"""Ad-hoc SQL that cannot write (``mgold sql query``).

Three locks: the warehouse is opened read-only (DuckDB refuses INSERT / CREATE / ...);
the query must be ONE statement that DuckDB's own parser classifies as SELECT or
EXPLAIN (so COPY ... TO, EXPORT, ATTACH, INSTALL / LOAD, SET, CALL, PRAGMA are refused:
those are the statements that write files, open other databases or change settings);
and a result written with ``--csv`` / ``--parquet`` is written by mgold itself, streamed,
never to a path inside the warehouse's files (nor the warehouse file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import UsageError
from .datafiles import files_dir, lock_path

ALLOWED = ("SELECT", "EXPLAIN")
# the header is written by hand: pyarrow quotes every column name, DuckDB and spreadsheets only odd ones
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def _csv_header(names: list[str]) -> bytes:
    plain = lambda n: n and not any(ch in n for ch in ',"\r\n') and n.strip() == n  # noqa: E731
    return (",".join(n if plain(n) else '"' + n.replace('"', '""') + '"' for n in names) + "\n").encode()


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one SELECT / EXPLAIN statement (UsageError, one line)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise UsageError(f"cannot parse the query: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UsageError(f"give one statement (got {len(statements)}); ad-hoc SQL runs one SELECT at a time")
    kind = statements[0].type.name
    if kind not in ALLOWED:
        raise UsageError(f"{kind} statements are refused: `mgold sql query` is read-only (SELECT and EXPLAIN "
                         "only; write results with --csv / --parquet)")


def output_path_allowed(target: Path, warehouse: Path) -> None:
    """A result file may not land inside the warehouse's files or on the warehouse itself."""
    t = Path(target).resolve()
    w = Path(warehouse).resolve()
    protected = [files_dir(w)]
    if t in (w, w.with_name(w.name + ".wal"), lock_path(w)) or any(t.is_relative_to(p) for p in protected):
        raise UsageError(f"{target}: refusing to write inside the warehouse ({w.name} and {files_dir(w).name}/ "
                         "belong to mgold); choose another path")


def write_result(rel: duckdb.DuckDBPyRelation, target: Path | str, fmt: str, batch_rows: int = 65536) -> int:
    """Stream ``rel`` into ``target`` (``-``: stdout, CSV only); returns the rows written.
    In CSV, nested values (lists, structs) are written as DuckDB prints them."""
    if fmt == "csv":
        nested = ("[]", "STRUCT", "MAP", "UNION", "[")
        exprs = [f'cast("{c}" as varchar) as "{c}"' if any(k in str(t) for k in nested) else f'"{c}"'
                 for c, t in zip(rel.columns, rel.types)]
        rel = rel.project(", ".join(exprs))
    reader = rel.to_arrow_reader(batch_rows)
    n = 0
    if str(target) == "-":
        if fmt != "csv":
            raise UsageError("only --csv can write to stdout (-)")
        sink = pa.PythonFile(sys.stdout.buffer, mode="w")
    elif fmt == "csv":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        sink = pa.OSFile(str(target), "wb")
    if fmt == "csv":
        sink.write(_csv_header(reader.schema.names))
        writer = pacsv.CSVWriter(sink, reader.schema, write_options=CSV_OPTIONS)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(str(target), reader.schema)
    try:
        for batch in reader:
            writer.write_batch(batch) if fmt == "csv" else writer.write_table(pa.Table.from_batches([batch]))
            n += batch.num_rows
    finally:
        writer.close()
        if fmt == "csv":
            sink.flush() if str(target) == "-" else sink.close()
    return n
