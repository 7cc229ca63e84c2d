"""``mgold vacuum``: tidy a warehouse's files without ever losing a spectrum.

What it does, on the writer's connection (the caller holds the write lock):

1. orphaned Parquet files (under ``<files>/spectra/``, registered nowhere) are deleted; opening the
   warehouse for writing already does this (``warehouse.open_warehouse``), the CLI reports them;
2. temporary tables a killed build left behind (``<model>__tmp_<run>``) are dropped, and runs a
   killed process left 'running' are marked 'aborted';
3. with ``forget_missing``: registered spectra parts that are missing or rewritten are unregistered,
   with the header rows and ``meta.ingested_files`` rows of the spectra only they held, so that
   ingesting the original files again lands those spectra (``mgold doctor`` prints the command);
4. small spectra parts (many small ingests) are compacted into parts of about
   ``ingest.spectra_per_file`` spectra, row groups of ``ingest.spectra_per_row_group``, with the
   ingest's schema and Parquet options.

Compaction is atomic: the new parts are written under new names (unregistered, so invisible); then
ONE transaction registers them in ``meta.data_files``, unregisters the old ones and redefines
``landing.lamost_spectra`` over the registered parts; only then are the old files deleted. A kill
before the commit leaves the new parts as orphans, after it the old ones; either way the view lists
every spectrum exactly once, and the next writer deletes the orphans. The landing fingerprint the
runner keys staleness on (the ingested files' sha256 and the row count) does not change, so no
model becomes stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .config import Config
from .datafiles import (SPECTRA_KIND, refresh_spectra_view, register_data_file, remove_orphans, sha256_of,
                        spectra_dir_of, warehouse_path)
from .doctor import data_file_changes, lost_spectra
from .ingest.lamost import SPECTRA_SCHEMA, PartWriter
from .runner import Project
from .runner.materialise import drop_relation, tmp_name
from .warehouse import abort_stale_runs, finish_run, new_run_id, start_run, transaction


@dataclass
class VacuumReport:
    orphans: list[str] = field(default_factory=list)          # files removed by this call
    dropped: list[str] = field(default_factory=list)          # temporary relations of killed builds
    runs_aborted: int = 0
    forgotten_parts: list[str] = field(default_factory=list)  # missing / rewritten parts unregistered
    forgotten_spectra: int = 0
    compacted: list[str] = field(default_factory=list)        # old parts replaced
    written: list[str] = field(default_factory=list)          # the new parts
    spectra_moved: int = 0
    skipped: list[str] = field(default_factory=list)          # 'part: why' for parts left as they are


def vacuum(con: duckdb.DuckDBPyConnection, cfg: Config, project: Project | None = None,
           forget_missing: bool = False, on_step: Callable[[str], None] | None = None) -> VacuumReport:
    """Every step of the module docstring, recorded as a run in ``meta.runs`` ('vacuum');
    ``on_step(what)`` is told each step of the compaction as it completes."""
    step = on_step or (lambda _what: None)
    report = VacuumReport()
    root = warehouse_path(con).parent
    report.orphans = [p.relative_to(root).as_posix() for p in remove_orphans(con)]
    report.runs_aborted = abort_stale_runs(con)
    run_id = new_run_id()
    start_run(con, cfg, run_id, "vacuum")
    try:
        report.dropped = drop_leftovers(con, project or Project.load())
        if forget_missing:
            report.forgotten_parts, report.forgotten_spectra = forget_missing_parts(con)
            report.orphans += [p.relative_to(root).as_posix() for p in remove_orphans(con)]
        compact_spectra(con, cfg, run_id, report, step)
    except BaseException:
        finish_run(con, run_id, "failed")
        raise
    finish_run(con, run_id, "ok")
    con.execute("checkpoint")
    return report


def drop_leftovers(con: duckdb.DuckDBPyConnection, project: Project) -> list[str]:
    """Drop the temporary relations (``tmp_name``) a killed build left in ``main``."""
    prefixes = tuple(tmp_name(m, "") for m in project.models.values())
    names = [r[0] for r in con.execute("select table_name from duckdb_tables() where database_name = "
                                       "current_database() and schema_name = 'main' order by 1").fetchall()
             if r[0].startswith(prefixes)]
    for name in names:
        drop_relation(con, name)
    return names


def forget_missing_parts(con: duckdb.DuckDBPyConnection) -> tuple[list[str], int]:
    """Unregister the missing or rewritten spectra parts and, in the same transaction, the header rows
    and ingested-file rows of the spectra only they held (a re-ingest then lands them again). The
    rewritten files, now unregistered, are left for ``remove_orphans``. Returns (parts, spectra)."""
    kinds = dict(con.execute("select path, kind from meta.data_files").fetchall())
    lost_parts = [p for p, _ in data_file_changes(con) if kinds.get(p) == SPECTRA_KIND]
    if not lost_parts:
        return [], 0
    lost = lost_spectra(con, lost_parts)
    with transaction(con):
        if lost:
            con.execute("delete from meta.ingested_files where kind = 'lamost' and list_contains(?, file_sha256)",
                        [sorted({sha for _, _, sha in lost if sha})])
            con.execute("delete from landing.lamost_headers where list_contains(?, obsid)", [[o for o, _, _ in lost]])
        con.execute("delete from meta.data_files where list_contains(?, path)", [lost_parts])
        refresh_spectra_view(con)
    return lost_parts, len(lost)


def _small_parts(con: duckdb.DuckDBPyConnection, per_file: int, report: VacuumReport) -> list[tuple[str, int]]:
    """Registered spectra parts below ``per_file`` rows that are intact and in the ingest's schema."""
    root = warehouse_path(con).parent
    changed = {p for p, _ in data_file_changes(con)}
    out = []
    for path, n_rows in con.execute("select path, n_rows from meta.data_files where kind = ? and n_rows < ? "
                                    "order by path", [SPECTRA_KIND, per_file]).fetchall():
        if path in changed:
            report.skipped.append(f"{path}: missing or rewritten (mgold doctor)")
        elif not pq.read_schema(root / path).equals(SPECTRA_SCHEMA):
            report.skipped.append(f"{path}: not in the ingest's spectra schema")
        else:
            out.append((path, n_rows))
    return out


def _regrouped(batches, rows: int):
    """Tables of exactly ``rows`` rows (the last one shorter) from record batches of any size."""
    pending, n = [], 0
    for b in batches:
        pending.append(b)
        n += b.num_rows
        while n >= rows:
            table = pa.Table.from_batches(pending, SPECTRA_SCHEMA)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(pending, SPECTRA_SCHEMA)


def compact_spectra(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str, report: VacuumReport,
                    step: Callable[[str], None]) -> None:
    """Rewrite the small spectra parts into full ones, atomically (module docstring)."""
    per_file, per_group = cfg.ingest.spectra_per_file, cfg.ingest.spectra_per_row_group
    small = _small_parts(con, per_file, report)
    total = sum(n for _, n in small)
    if len(small) < 2 or -(-total // per_file) >= len(small):
        return                                  # nothing to gain: as many files after as before
    root = warehouse_path(con).parent
    out = PartWriter(spectra_dir_of(con), run_id, per_file, per_group)
    try:
        # row groups of per_group spectra across the old parts, whatever their row groups were
        batches = (b for path, _ in small for b in pq.ParquetFile(root / path).iter_batches(batch_size=per_group))
        for table in _regrouped(batches, per_group):
            for part in out.write(table):
                step(f"wrote {part.name}")
        for part in out.close():
            step(f"wrote {part.name}")
    except BaseException:
        out.discard()
        raise
    parts = out.part_rows
    step("written")
    old = [p for p, _ in small]
    with transaction(con):
        for part, n_rows in parts.items():
            register_data_file(con, part.relative_to(root).as_posix(), SPECTRA_KIND, n_rows, run_id,
                               sha256_of(part), part.stat().st_size)
        con.execute("delete from meta.data_files where list_contains(?, path)", [old])
        refresh_spectra_view(con)
        step("registered")
    step("committed")
    for path in old:
        (root / path).unlink(missing_ok=True)
        step(f"deleted {Path(path).name}")
    report.compacted = old
    report.written = [p.relative_to(root).as_posix() for p in parts]
    report.spectra_moved = total


__all__ = ["VacuumReport", "vacuum", "drop_leftovers", "forget_missing_parts", "compact_spectra"]
