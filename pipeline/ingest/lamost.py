"""LAMOST low-resolution spectra -> ``landing.lamost_headers`` + Parquet spectra.

Inputs: FITS files (``.fits``, ``.fits.gz``; every release layout, see
``lamost_fits``), folders (searched recursively) and globs; also Parquet "spectra
tables" (one row per spectrum: the header columns plus ``loglam0, dloglam, flux,
ivar, pixmask``) as written by the synthetic universe.

Outputs:

* ``landing.lamost_headers`` one row per obsid (columns: ``HEADERS_SCHEMA``).
* ``<stem>_files/spectra/lamost/part-<run_id>-<k>.parquet``: ``obsid BIGINT, loglam0
  DOUBLE, dloglam DOUBLE, flux FLOAT[], ivar FLOAT[], pixmask INT[]``, row groups of
  ``ingest.spectra_per_row_group``, at most ``ingest.spectra_per_file`` per part, each
  registered in ``meta.data_files`` with its size and sha256.
* view ``landing.lamost_spectra`` over exactly the registered parts (paths relative to
  the warehouse folder).
* ``meta.ingested_files`` (kind 'lamost') per landed file, ``meta.ingest_errors``
  per problem (severity 'error' = rejected, 'warning' = landed with a fix-up).

Flow and crash safety: worker processes read files (``imap`` in input order, so
"first kept" is deterministic) and return one ``Spectrum`` each; the parent streams
them into new part files and stages the header rows and file rows in
``.{headers,files}.<run_id>.tmp`` Parquet files, so memory stays bounded whatever the
batch size. Then ONE transaction (the caller's, when a build replaces a universe)
inserts the headers and ``meta.ingested_files``, registers the parts in
``meta.data_files`` and redefines the view over the registered parts. Until it commits
nobody reads the new parts; a crash before it leaves the warehouse as it was, and the
next writer deletes the unregistered files (``warehouse.remove_orphans``). Problems are written to
``meta.ingest_errors`` as they happen.

Duplicates: a file whose sha256 is already in ``meta.ingested_files`` (or earlier
in the same batch) is skipped silently (``files_skipped``); a spectrum whose obsid
is already landed (in the warehouse or earlier in the batch) is rejected and the
first one kept.
"""

from __future__ import annotations

import glob
import itertools
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import Config
from ..progress import progress
from ..datafiles import (SPECTRA_KIND, refresh_spectra_view, register_data_file, sha256_of, spectra_dir_of,
                         warehouse_path)
from ..warehouse import finish_run, new_run_id, record_ingest_error, refuse_mixing, start_run, transaction
from . import IngestReport
from .catalog import landing_ddl
from .catalog_maps import KINDS
from .lamost_fits import (BadSpectrum, HEADER_COLUMNS, Spectrum, check_length, clean_pixels,
                          fill_rv, init_worker, null_sentinels, read_many, read_one, unspill)

KIND = "lamost"
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")
TABLE_SUFFIXES = (".parquet",)

HEADERS_SCHEMA = pa.schema([
    ("obsid", pa.int64()), ("designation", pa.string()), ("ra_deg", pa.float64()),
    ("dec_deg", pa.float64()), ("class", pa.string()), ("subclass", pa.string()),
    ("z", pa.float64()), ("z_err", pa.float64()), ("rv_kms", pa.float64()),
    ("rv_source", pa.string()),
    *[(f"snr_{b}", pa.float64()) for b in "ugriz"],
    ("lmjd", pa.int32()), ("mjd", pa.int32()), ("planid", pa.string()), ("spid", pa.int32()),
    ("fiberid", pa.int32()), ("data_v", pa.string()), ("n_pixels", pa.int32()),
    ("wave_min_aa", pa.float64()), ("wave_max_aa", pa.float64()), ("is_star", pa.bool_()),
    ("layout", pa.string()), ("file", pa.string()), ("file_sha256", pa.string()),
    ("run_id", pa.string()),
])
SPECTRA_SCHEMA = pa.schema([
    ("obsid", pa.int64()), ("loglam0", pa.float64()), ("dloglam", pa.float64()),
    ("flux", pa.list_(pa.float32())), ("ivar", pa.list_(pa.float32())),
    ("pixmask", pa.list_(pa.int32())),
])
# Chosen by `mgold bench storage`: BYTE_STREAM_SPLIT on the float lists (named by leaf path: a
# bare "flux" is silently ignored) + zstd-1 takes real LAMOST spectra from 27.6 to 23.6 kB
# (-15%; synthetic -18%) at the same write and read speed; zstd-3/6 save 0.3/0.6% more on real
# spectra at ~1.3/~2x the write time (zstd-9: 0.65%, 2.8x). Dictionaries save nothing (obsid
# is unique; pixmask's zeros already compress to ~0). pixmask stays INT: Parquet stores
# INT(8)/INT(16) in INT32 pages, so a narrower type saves no bytes. Statistics only where a
# filter can use them.
PARQUET_OPTIONS = dict(use_dictionary=False, write_statistics=["obsid", "loglam0", "dloglam"],
                       compression="zstd", compression_level=1,
                       use_byte_stream_split=["flux.list.element", "ivar.list.element"])
FILES_SCHEMA = pa.schema([("file_sha256", pa.string()), ("file", pa.string()),
                          ("n_rows", pa.int64())])
assert tuple(HEADERS_SCHEMA.names[:-3]) == HEADER_COLUMNS

_DUCK_TYPES = {pa.int64(): "bigint", pa.int32(): "integer", pa.float64(): "double",
               pa.string(): "varchar", pa.bool_(): "boolean"}
HEADERS_DDL = ("create table if not exists landing.lamost_headers (\n    "
               + ",\n    ".join(f"{f.name} {_DUCK_TYPES[f.type]}"
                                + (" primary key" if f.name == "obsid" else "")
                                for f in HEADERS_SCHEMA)
               + ")")
# Parquet spectra-table columns: required ones, then optional header columns (NULL when absent)
TABLE_REQUIRED = ("obsid", "ra_deg", "dec_deg", "class", "loglam0", "dloglam", "flux", "ivar")
TABLE_HEADER_COLUMNS = tuple(c for c in HEADER_COLUMNS
                             if c not in ("n_pixels", "wave_min_aa", "wave_max_aa", "is_star"))


def ingest_lamost(con: duckdb.DuckDBPyConnection, paths: list[Path], cfg: Config,
                  workers: int | None = None, run_id: str | None = None,
                  universe: str | None = None) -> IngestReport:
    """Land LAMOST spectra files into the warehouse of ``con`` (see module docstring); never
    raises for bad input. ``run_id``: the caller's run (a build); else this call is its own run.
    ``universe``: the synthetic universe being ingested (by a build); without it, a warehouse
    holding a synthetic universe is refused (real and synthetic data are never mixed)."""
    refuse_mixing(con, universe)
    report = IngestReport()
    own_run = run_id is None
    run_id = run_id or new_run_id()
    con.execute(HEADERS_DDL)
    # the catalogue that completes headers (stg_lamost) may never be ingested: empty, it completes nothing
    con.execute(landing_ddl(KINDS["lamost_catalog"]))
    if own_run:
        start_run(con, cfg, run_id, "ingest lamost")
    out_dir = spectra_dir_of(con)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, missing = expand_paths(paths)
    for p, reason in missing:
        _reject(con, run_id, report, p, reason)
    report.files_seen = len(files)
    known_sha = {r[0] for r in con.execute(
        "select file_sha256 from meta.ingested_files where kind = ?", [KIND]).fetchall()}
    known_obsid = {r[0] for r in con.execute("select obsid from landing.lamost_headers").fetchall()}
    sink = _Sink(out_dir, run_id, cfg)
    try:
        fits_files = [f for f in files if not f.name.endswith(TABLE_SUFFIXES)]
        tables = [f for f in files if f.name.endswith(TABLE_SUFFIXES)]
        events = _read_fits_files(fits_files, known_sha, (cfg.ingest.loglinear_rtol, cfg.ingest.min_pixels),
                                  workers or cfg.ingest.workers, out_dir, cfg.ingest.pool_min_files)
        seen_sha = set(known_sha)
        for path, sha, outcome in progress(events, total=len(fits_files), desc="lamost", unit="files"):
            if outcome == "skipped" or sha in seen_sha:
                report.files_skipped += 1
                continue
            if isinstance(outcome, str):
                _reject(con, run_id, report, path, outcome)
                continue
            if _land(con, run_id, report, sink, known_obsid, path, sha, outcome, row=None):
                seen_sha.add(sha)
                sink.add_file(sha, path, 1)
                report.files_loaded += 1
        for path in tables:
            _ingest_table(con, run_id, report, sink, known_obsid, seen_sha, path, cfg)
        parts = sink.close()
        _commit(con, run_id, sink)
    except BaseException:
        sink.discard()
        if own_run:
            finish_run(con, run_id, "failed")
        raise
    if own_run:
        finish_run(con, run_id, "ok")
    report.outputs = ["landing.lamost_headers", "landing.lamost_spectra", *[str(p) for p in parts]]
    return report


# --- inputs -----------------------------------------------------------------------------

def expand_paths(paths: Iterable[Path | str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (recursive) and globs -> (sorted unique files, [(path, problem)])."""
    found: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    suffixes = FITS_SUFFIXES + TABLE_SUFFIXES
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            matches = [q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(suffixes)]
            if not matches:
                problems.append((str(p), "folder holds no .fits, .fits.gz or .parquet files"))
        elif p.is_file():
            matches = [p]
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True)
                       if Path(m).is_file() and m.lower().endswith(suffixes)]
            if not matches:
                problems.append((str(p), "no such file, folder or glob match"))
        for m in matches:
            found.setdefault(os.path.normpath(m), m)
    return [found[k] for k in sorted(found)], problems


def _read_fits_files(files: list[Path], known_sha: set[str], limits: tuple[float, int],
                     workers: int, spill_dir: Path,
                     pool_min_files: int) -> Iterator[tuple[Path, str | None, Spectrum | str]]:
    """Read files in input order; with a pool, at most ``2*workers + 1`` chunks are in
    flight, so a parent slower than its workers never buffers more than a few MB. Pool
    workers hand the arrays over through spill files in ``spill_dir`` (see read_many).
    ``limits`` = (ingest.loglinear_rtol, ingest.min_pixels), as ``init_worker`` takes them."""
    if workers <= 1 or len(files) < max(pool_min_files, 2):
        init_worker(known_sha, *limits)
        yield from map(read_one, files)
        return
    # big chunks: per-message IPC overhead, not the payload, dominated the parent's CPU
    size = max(1, min(64, len(files) // (4 * workers)))
    chunks = iter([files[i:i + size] for i in range(0, len(files), size)])
    # forkserver: the parent holds a DuckDB connection (threads), so forking it is unsafe;
    # workers fork from a clean server that has preloaded lamost_fits (numpy only)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["mgold.pipeline.ingest.lamost_fits"])
    with ctx.Pool(workers, initializer=init_worker, initargs=(known_sha, *limits)) as pool:
        pending = deque(pool.apply_async(read_many, (c, spill_dir))
                        for c in itertools.islice(chunks, 2 * workers + 1))
        while pending:
            done = unspill(*pending.popleft().get())
            nxt = next(chunks, None)
            if nxt is not None:
                pending.append(pool.apply_async(read_many, (nxt, spill_dir)))
            yield from done


# --- landing ------------------------------------------------------------------------

def _reject(con, run_id: str, report: IngestReport, path, reason: str,
            row: int | None = None) -> None:
    record_ingest_error(con, run_id, path, reason, "error", row)
    report.rejected += 1


def _land(con, run_id: str, report: IngestReport, sink: "_Sink", known_obsid: set[int],
          path: Path, sha: str, spec: Spectrum, row: int | None) -> bool:
    obsid = spec.header["obsid"]
    if obsid in known_obsid:
        _reject(con, run_id, report, path, f"duplicate obsid {obsid}: already landed "
                "(first kept)", row)
        return False
    for w in spec.warnings:
        record_ingest_error(con, run_id, path, w, "warning", row)
    known_obsid.add(obsid)
    sink.add(spec, str(path), sha)
    report.rows_loaded += 1
    return True


def adoptable(pf: pq.ParquetFile) -> bool:
    """A spectra table whose spectra columns are already what ingest writes (SPECTRA_SCHEMA types and
    the PARQUET_OPTIONS codec and encodings, as the synthetic universe writes them): it can become a
    landing part as it is, stored once, instead of being copied."""
    schema = pf.schema_arrow
    if any(schema.field(f.name).type != f.type if f.name in schema.names else True for f in SPECTRA_SCHEMA):
        return False
    if pf.metadata.num_row_groups == 0:
        return False
    rg = pf.metadata.row_group(0)
    want = {"flux.list.element", "ivar.list.element"}
    for i in range(rg.num_columns):
        c = rg.column(i)
        if c.path_in_schema in want:
            if c.compression.lower() != str(PARQUET_OPTIONS["compression"]).lower() \
                    or "BYTE_STREAM_SPLIT" not in c.encodings:
                return False
            want.discard(c.path_in_schema)
    return not want


def _ingest_table(con, run_id: str, report: IngestReport, sink: "_Sink", known_obsid: set[int],
                  seen_sha: set[str], path: Path, cfg: Config) -> None:
    """One Parquet spectra table: rows validated like FITS spectra, bad rows rejected. A table already in
    the landing layout whose every row is clean, new and unaltered is adopted as a part (hard-linked,
    its spectra stored once); otherwise its good rows are copied into new parts."""
    landed = 0
    try:
        digest = sha256_of(path)
        if digest in seen_sha:
            report.files_skipped += 1
            return
        pf = pq.ParquetFile(path)
        absent = [c for c in TABLE_REQUIRED if c not in pf.schema_arrow.names]
        if absent:
            _reject(con, run_id, report, path, f"spectra table lacks column(s) {', '.join(absent)}")
            return
        if cfg.ingest.adopt_spectra_tables and adoptable(pf) and \
                _adopt(con, run_id, report, sink, known_obsid, path, digest, pf, cfg):
            seen_sha.add(digest)
            report.files_loaded += 1
            return
        batches = pf.iter_batches(batch_size=cfg.ingest.spectra_per_row_group)
        row0 = 0
        for batch in batches:
            for i, spec in enumerate(table_rows(batch, cfg.ingest.min_pixels)):
                if isinstance(spec, str):
                    _reject(con, run_id, report, path, spec, row0 + i)
                elif _land(con, run_id, report, sink, known_obsid, path, digest, spec, row0 + i):
                    landed += 1
            row0 += batch.num_rows
    except (OSError, pa.ArrowException, BadSpectrum) as exc:
        # rows of earlier batches already landed stay landed (recorded below)
        _reject(con, run_id, report, path, f"unreadable spectra table: {exc}")
    if landed:
        seen_sha.add(digest)
        sink.add_file(digest, path, landed)
        report.files_loaded += 1


def _adopt(con, run_id: str, report: IngestReport, sink: "_Sink", known_obsid: set[int], path: Path,
           digest: str, pf: pq.ParquetFile, cfg: Config) -> bool:
    """Validate every row of ``pf``; when none is rejected, a duplicate or altered by the pixel fix-ups,
    stage their headers (and header warnings), hard-link the file as a part and return True (nothing
    staged otherwise: the caller copies the good rows)."""
    specs: list[Spectrum] = []
    seen: set[int] = set()
    for batch in pf.iter_batches(batch_size=cfg.ingest.spectra_per_row_group):
        for spec in table_rows(batch, cfg.ingest.min_pixels):
            if isinstance(spec, str) or spec.pixels_fixed:
                return False
            obsid = spec.header["obsid"]
            if obsid in known_obsid or obsid in seen:
                return False
            seen.add(obsid)
            specs.append(Spectrum(spec.header, spec.loglam0, spec.dloglam, _NO_PIXELS, _NO_PIXELS, _NO_PIXELS,
                                  spec.warnings))     # the arrays stay in the file: only headers are kept
    if not specs or not sink.adopt(path, len(specs), digest):
        return False
    for row, spec in enumerate(specs):
        for w in spec.warnings:
            record_ingest_error(con, run_id, path, w, "warning", row)
        sink.headers.add({**spec.header, "file": str(path), "file_sha256": digest, "run_id": run_id})
        known_obsid.add(spec.header["obsid"])
    sink.add_file(digest, path, len(specs))
    report.rows_loaded += len(specs)
    return True


_NO_PIXELS = np.zeros(0, np.float32)


def table_rows(batch: pa.RecordBatch, min_pixels: int) -> Iterator[Spectrum | str]:
    """Spectrum per row of a spectra-table batch, or the rejection reason of that row.

    The grid is (loglam0, dloglam) by construction, so only its values are checked.
    A column of the wrong type rejects the whole file (BadSpectrum), a bad row only itself;
    rows are held to the FITS rules (``lamost_fits``: sentinels -> NULL with a warning,
    spectra shorter than ``min_pixels`` refused).
    """
    cols = {}
    for name in TABLE_HEADER_COLUMNS + ("loglam0", "dloglam"):
        target = SPECTRA_SCHEMA.field(name).type if name in ("loglam0", "dloglam") \
            else HEADERS_SCHEMA.field(name).type
        if name not in batch.schema.names:
            cols[name] = [None] * batch.num_rows
            continue
        try:
            cols[name] = pc.cast(batch.column(name), target).to_pylist()
        except pa.ArrowException as exc:
            raise BadSpectrum(f"column {name}: expected {target}: {exc}") from None
    arrays = {}
    for name, dtype in (("flux", np.float32), ("ivar", np.float32), ("pixmask", np.int32)):
        if name not in batch.schema.names:
            arrays[name] = None
            continue
        col = batch.column(name)
        if not pa.types.is_list(col.type) and not pa.types.is_large_list(col.type):
            raise BadSpectrum(f"column {name}: expected a list of numbers, got {col.type}")
        try:
            values = pc.cast(col.flatten(), pa.from_numpy_dtype(dtype))
        except pa.ArrowException as exc:
            raise BadSpectrum(f"column {name}: expected numbers: {exc}") from None
        arrays[name] = (values.to_numpy(zero_copy_only=False), np.asarray(col.offsets),
                        col.is_null().to_numpy(zero_copy_only=False))
    for i in range(batch.num_rows):
        row = {k: v[i] for k, v in cols.items()}
        try:
            yield _table_spectrum(row, arrays, i, min_pixels)
        except BadSpectrum as exc:
            yield str(exc)


def _table_spectrum(row: dict, arrays: dict, i: int, min_pixels: int) -> Spectrum:
    def get(name):
        if arrays[name] is None:
            return None
        values, offsets, nulls = arrays[name]
        return None if nulls[i] else values[offsets[i]:offsets[i + 1]]

    for key in ("obsid", "ra_deg", "dec_deg", "class", "loglam0", "dloglam"):
        if row[key] is None:
            raise BadSpectrum(f"NULL {key}")
    flux, ivar = get("flux"), get("ivar")
    if flux is None or ivar is None:
        raise BadSpectrum("NULL flux or ivar")
    if flux.size != ivar.size:
        raise BadSpectrum(f"flux has {flux.size} pixels but ivar has {ivar.size}")
    check_length(flux.size, min_pixels)
    pixmask = get("pixmask")
    if pixmask is None:
        pixmask = np.zeros(flux.size, np.int32)
    elif pixmask.size != flux.size:
        raise BadSpectrum(f"flux has {flux.size} pixels but pixmask has {pixmask.size}")
    loglam0, dloglam = row.pop("loglam0"), row.pop("dloglam")
    if not (np.isfinite(loglam0) and np.isfinite(dloglam) and dloglam > 0):
        raise BadSpectrum(f"bad grid: loglam0={loglam0}, dloglam={dloglam}")
    warnings: list[str] = []
    raw = (flux, ivar)
    flux, ivar = clean_pixels(flux, ivar, warnings)
    fixed = flux is not raw[0] or ivar is not raw[1]
    null_sentinels(row, {}, warnings)
    fill_rv(row, "table")
    n = int(flux.size)
    row.update(n_pixels=n, wave_min_aa=float(10 ** loglam0),
               wave_max_aa=float(10 ** (loglam0 + dloglam * (n - 1))),
               is_star=str(row["class"]).strip().upper() == "STAR",
               layout=row["layout"] or "spectra_table",
               data_v=row["data_v"] or "unknown")
    return Spectrum(row, float(loglam0), float(dloglam), flux, ivar, pixmask, warnings, fixed)


# --- writing --------------------------------------------------------------------------

class _Staged:
    """Rows buffered and streamed to one Parquet file (bounded memory)."""

    def __init__(self, path: Path, schema: pa.Schema, flush_rows: int):
        self.path, self.schema, self.flush_rows = path, schema, flush_rows
        self.rows: list[dict] = []
        self.writer: pq.ParquetWriter | None = None
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.rows, self.schema))
        self.count += len(self.rows)
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


class PartWriter:
    """Spectra tables (``SPECTRA_SCHEMA``) into rotating part files ``part-<run_id>-<k>.parquet`` of at
    most ``per_part`` rows, with ``PARQUET_OPTIONS``; each ``write`` adds row groups of at most
    ``per_group`` rows. Shared by ingest and ``mgold vacuum``'s compaction; the parts stay invisible
    until the caller registers them."""

    def __init__(self, out_dir: Path, run_id: str, per_part: int, per_group: int):
        self.out_dir, self.run_id, self.per_part, self.per_group = out_dir, run_id, per_part, per_group
        self.writer: pq.ParquetWriter | None = None
        self.part_rows: dict[Path, int] = {}   # part file -> spectra

    def write(self, table: pa.Table) -> list[Path]:
        """Append ``table``; returns the parts this call filled and closed."""
        closed = []
        while table.num_rows:
            if self.writer is None:
                part = self.out_dir / f"part-{self.run_id}-{len(self.part_rows):05d}.parquet"
                self.part_rows[part] = 0
                self.writer = pq.ParquetWriter(part, SPECTRA_SCHEMA, **PARQUET_OPTIONS)
            part = next(reversed(self.part_rows))
            take = min(table.num_rows, self.per_part - self.part_rows[part])
            self.writer.write_table(table.slice(0, take), row_group_size=self.per_group)
            table = table.slice(take)
            self.part_rows[part] += take
            if self.part_rows[part] >= self.per_part:
                self.writer.close()
                self.writer = None
                closed.append(part)
        return closed

    def close(self) -> list[Path]:
        """Close the last part; returns it when there was one open."""
        if self.writer is None:
            return []
        self.writer.close()
        self.writer = None
        return [next(reversed(self.part_rows))]

    def discard(self) -> None:
        """Close quietly and delete every part written."""
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:
            pass
        self.writer = None
        for p in self.part_rows:
            p.unlink(missing_ok=True)


class _Sink:
    """Streams spectra into rotating part files; stages header and file rows."""

    def __init__(self, out_dir: Path, run_id: str, cfg: Config):
        self.out_dir, self.run_id = out_dir, run_id
        self.per_group = cfg.ingest.spectra_per_row_group
        self.headers = _Staged(out_dir / f".headers.{run_id}.tmp", HEADERS_SCHEMA, self.per_group)
        self.files = _Staged(out_dir / f".files.{run_id}.tmp", FILES_SCHEMA, 10_000)
        self.buffer: list[Spectrum] = []
        self.parts = PartWriter(out_dir, run_id, cfg.ingest.spectra_per_file, self.per_group)

        self.adopted: dict[Path, tuple[int, str]] = {}   # hard links of input files -> (spectra, sha256)

    @property
    def part_rows(self) -> dict[Path, int]:
        """Part file -> spectra (written and adopted); invisible until _commit registers it."""
        return {**self.parts.part_rows, **{p: n for p, (n, _) in self.adopted.items()}}

    def add(self, spec: Spectrum, file: str, sha: str) -> None:
        self.headers.add({**spec.header, "file": file, "file_sha256": sha, "run_id": self.run_id})
        self.buffer.append(spec)
        if len(self.buffer) >= self.per_group:
            self._flush()

    def add_file(self, sha: str, path: Path, n_rows: int) -> None:
        self.files.add({"file_sha256": sha, "file": str(path), "n_rows": n_rows})

    def adopt(self, source: Path, n_rows: int, sha: str) -> bool:
        """Hard-link ``source`` as a new part (False when the file system refuses: the caller copies)."""
        part = self.out_dir / f"part-{self.run_id}-a{len(self.adopted):05d}.parquet"
        try:
            os.link(source, part)
        except OSError:
            return False
        self.adopted[part] = (n_rows, sha)
        return True

    def _flush(self) -> None:
        if self.buffer:
            self.parts.write(spectra_table(self.buffer))
            self.buffer = []

    def close(self) -> list[Path]:
        self._flush()
        self.parts.close()
        self.headers.close()
        self.files.close()
        return list(self.part_rows)

    def discard(self) -> None:
        self.parts.discard()
        for p in self.adopted:
            p.unlink(missing_ok=True)
        for w in (self.headers.writer, self.files.writer):
            try:
                if w is not None:
                    w.close()
            except Exception:
                pass
        for p in (self.headers.path, self.files.path):
            p.unlink(missing_ok=True)


def spectra_table(specs: list[Spectrum]) -> pa.Table:
    """Arrow table in SPECTRA_SCHEMA from spectra (list columns built from flat buffers)."""
    lengths = np.array([s.flux.size for s in specs], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))

    def lists(attr: str, dtype) -> pa.Array:
        flat = np.concatenate([np.asarray(getattr(s, attr), dtype=dtype) for s in specs])
        return pa.ListArray.from_arrays(offsets, pa.array(flat))

    return pa.Table.from_arrays([
        pa.array([s.header["obsid"] for s in specs], pa.int64()),
        pa.array([s.loglam0 for s in specs], pa.float64()),
        pa.array([s.dloglam for s in specs], pa.float64()),
        lists("flux", np.float32), lists("ivar", np.float32), lists("pixmask", np.int32),
    ], schema=SPECTRA_SCHEMA)


def _commit(con: duckdb.DuckDBPyConnection, run_id: str, sink: _Sink) -> None:
    """All DB writes of the call in one transaction (or the caller's): headers, file rows, the
    new parts in meta.data_files and the view over them. The parts were written under their
    final names, but the view lists only registered files, so until this commits nobody reads
    them; a crash before it leaves orphans that the next writer deletes
    (``warehouse.remove_orphans``)."""
    with transaction(con):
        if sink.headers.count:
            con.execute("insert into landing.lamost_headers by name "
                        "select * from read_parquet(?)", [str(sink.headers.path)])
        if sink.files.count:
            con.execute("insert into meta.ingested_files select file_sha256, file, ?, ?, n_rows, "
                        "now() from read_parquet(?)", [KIND, run_id, str(sink.files.path)])
        root = warehouse_path(con).parent
        for part, n_rows in sink.part_rows.items():
            register_data_file(con, part.relative_to(root).as_posix(), SPECTRA_KIND, n_rows, run_id,
                               sink.adopted[part][1] if part in sink.adopted else sha256_of(part),
                               part.stat().st_size)
        refresh_spectra_view(con)
    sink.headers.path.unlink(missing_ok=True)
    sink.files.path.unlink(missing_ok=True)
