"""Table readers for catalogue ingest: FITS, CSV, Parquet, VOTable, whitespace `.dat`.

Every reader exposes the file's column ``names`` and ``batches(columns, batch_rows)``,
which yields ``pyarrow.Table`` slices holding only the requested columns, in order,
so memory stays bounded by the batch size. Values arrive as the file stores them
(text files as strings); casting, sentinels and rejection belong to ``catalog.py``.
Lines a text reader cannot split into fields are skipped and listed in ``rejected``;
such readers add a ``_row`` column so the other rows keep their true row numbers.
A file that cannot be read raises ``ReaderError`` with one line saying why.
"""

from __future__ import annotations

import csv
import gzip
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
VOTABLE_SUFFIXES = (".vot", ".votable", ".xml", ".vot.gz", ".xml.gz")
WHITESPACE_SUFFIXES = (".dat", ".dat.gz")
SUFFIXES = FITS_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES + VOTABLE_SUFFIXES + WHITESPACE_SUFFIXES


class ReaderError(Exception):
    """The file cannot be read as a table; the message is one line naming the cause."""


ROW_COLUMN = "_row"   # a reader that skips unreadable lines yields each row's true 0-based index


class TableReader(Protocol):
    names: list[str]
    rejected: list[tuple[int, str]]   # (row, reason) of lines the reader could not split; drained by the caller

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]: ...

    def close(self) -> None: ...


def open_reader(path: Path) -> TableReader:
    """A reader chosen by the file's suffix (case-insensitive)."""
    name = path.name.lower()
    for suffixes, cls in ((FITS_SUFFIXES, FitsReader), (CSV_SUFFIXES, CsvReader),
                          (PARQUET_SUFFIXES, ParquetReader), (VOTABLE_SUFFIXES, VOTableReader),
                          (WHITESPACE_SUFFIXES, WhitespaceReader)):
        if name.endswith(suffixes):
            return cls(path)
    raise ReaderError(f"unknown table format (suffix not one of {', '.join(SUFFIXES)})")


def _numpy_to_arrow(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """numpy column -> Arrow: native byte order, decoded stripped text, lists for vectors."""
    if values.dtype.kind == "S":
        values = np.char.rstrip(np.char.decode(values, "ascii", errors="replace"))
    elif values.dtype.kind == "U":
        values = np.char.rstrip(values)
    elif values.dtype.kind == "O":
        # FITS variable-length arrays / VOTable text: one Python object per row
        items = [None if v is None else (np.asarray(v).tolist() if not isinstance(v, str) else v)
                 for v in values]
        if mask is not None:
            items = [None if m else v for v, m in zip(items, mask)]
        return pa.array(items)
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    if values.ndim > 1:
        # fixed-length vector cells (e.g. model SED flux) -> list<item>
        n = int(np.prod(values.shape[1:]))
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        arr = pa.FixedSizeListArray.from_arrays(flat, n)
        out = arr.cast(pa.list_(flat.type))
        if mask is not None and mask.ndim == 1 and mask.any():
            out = pa.array(out.to_pylist(), type=out.type, mask=mask)
        return out
    if mask is not None and mask.ndim == values.ndim and mask.any():
        return pa.array(values, mask=mask)
    return pa.array(values)


def _gzip_is_truncated(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except EOFError:
        return True
    except (OSError, ValueError):
        return False
    return False


class FitsReader:
    """First table HDU of a FITS file (.fits.gz too); memory-mapped when uncompressed."""

    def __init__(self, path: Path):
        from astropy.io import fits

        self.path = path
        self.rejected: list[tuple[int, str]] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._hdul = fits.open(path, memmap=not path.name.lower().endswith(".gz"))
                self._hdu = next((h for h in self._hdul
                                  if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
            except (OSError, EOFError, ValueError, IndexError) as e:
                raise ReaderError(f"not a readable FITS file ({type(e).__name__}: {e})") from e
        for w in caught:
            if "truncated" in str(w.message).lower():
                self.close()
                raise ReaderError(f"truncated FITS file ({w.message})")
        if self._hdu is None:
            self.close()
            # astropy stops quietly at a cut gzip stream; name the real cause when it is that
            if path.name.lower().endswith(".gz") and _gzip_is_truncated(path):
                raise ReaderError("truncated gzip stream (no complete table HDU)")
            raise ReaderError("no table HDU found (truncated or not a catalogue FITS file)")
        self.names = list(self._hdu.columns.names)
        self._nulls = {c.name: c.null for c in self._hdu.columns if c.null not in (None, "")}

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        try:
            data = self._hdu.data
            n = 0 if data is None else len(data)
        except (OSError, EOFError, ValueError, IndexError, TypeError) as e:
            raise ReaderError(f"cannot read the table data ({type(e).__name__}: {e})") from e
        for start in range(0, n, batch_rows):
            stop = min(start + batch_rows, n)
            arrays = []
            try:
                for c in columns:
                    values = np.asarray(data.field(c)[start:stop])
                    mask = None
                    null = self._nulls.get(c)
                    if null is not None and values.dtype.kind in "iu":
                        # TNULL marks missing integers in FITS (there is no NaN for ints)
                        mask = values == int(null)
                    arrays.append(_numpy_to_arrow(values, mask))
            except (OSError, EOFError, ValueError, IndexError, TypeError) as e:
                raise ReaderError(f"cannot read rows {start}..{stop - 1} "
                                  f"({type(e).__name__}: {e})") from e
            yield pa.table(arrays, names=columns)

    def close(self) -> None:
        hdul = getattr(self, "_hdul", None)
        if hdul is not None:
            hdul.close()


UTF8_BOM = b"\xef\xbb\xbf"


class Utf8Lines:
    """Binary stream over ``raw`` that passes on valid UTF-8 only, checked a line at a time.

    pyarrow's CSV reader fails the whole file on one invalid byte (and cannot even show
    such a line to an invalid-row handler), so a line holding invalid UTF-8 is passed on
    with those bytes replaced by U+FFFD and reported to ``on_bad(line, reason)`` (1-based
    line number) before pyarrow sees it. A leading UTF-8 byte-order mark is dropped.
    Valid input costs one ``bytes.decode`` per chunk."""

    def __init__(self, raw, on_bad, chunk_bytes: int = 1 << 22):
        self.raw, self.on_bad, self.chunk_bytes = raw, on_bad, chunk_bytes
        self.closed = False
        self._out, self._at = b"", 0   # checked bytes not yet read, and how far they were read
        self._carry = b""
        self._line = 1          # number of the first line not yet passed on
        self._start, self._eof = True, False

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (everything left when ``n`` < 0); b"" at the end."""
        if n < 0:
            return b"".join(iter(lambda: self.read(1 << 30), b""))
        if self._at >= len(self._out):
            self._out, self._at = self._next_block(), 0
        if self._at == 0 and n >= len(self._out):
            out = self._out                      # the common case: a whole block, no copy
        else:
            out = self._out[self._at:self._at + n]
        self._at += len(out)
        return out

    def _next_block(self) -> bytes:
        """The next run of whole, checked lines; b"" at the end."""
        while not self._eof:
            data = self.raw.read(self.chunk_bytes)
            if self._start:                      # the mark may arrive over several reads
                while 0 < len(data) < len(UTF8_BOM) and (more := self.raw.read(self.chunk_bytes)):
                    data += more
                self._start = False
                if data.startswith(UTF8_BOM):
                    data = data[len(UTF8_BOM):] or self.raw.read(self.chunk_bytes)
            if not data:
                self._eof, block, self._carry = True, self._carry, b""
            else:
                buf = self._carry + data if self._carry else data
                cut = buf.rfind(b"\n") + 1          # whole lines only: no character is split
                block, self._carry = (buf, b"") if cut == len(buf) else (buf[:cut], buf[cut:])
            if block:
                return self._checked(block)
        return b""

    def _checked(self, block: bytes) -> bytes:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            lines = block.split(b"\n")
            for i, line in enumerate(lines):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    self.on_bad(self._line + i, f"invalid UTF-8 (byte 0x{line[e.start]:02x} at byte "
                                                f"{e.start + 1} of line {self._line + i})")
                    lines[i] = line.decode("utf-8", "replace").encode("utf-8")
            block = b"\n".join(lines)
        self._line += block.count(b"\n")
        return block

    def close(self) -> None:
        self.closed = True
        self.raw.close()


class CsvReader:
    """Comma (or tab for .tsv) separated text with a header row; every column read as text.

    A UTF-8 byte-order mark (Excel's "CSV UTF-8") is skipped; a line holding invalid UTF-8
    is rejected alone (``Utf8Lines``), the rest of the file lands. Row numbers assume one
    header line and no line breaks inside quoted values."""

    def __init__(self, path: Path):
        self.path = path
        self.rejected: list[tuple[int, str]] = []
        self._delim = "\t" if ".tsv" in path.name.lower() else ","
        try:
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rt", newline="", encoding="utf-8-sig", errors="replace") as fh:
                header = next(csv.reader(fh, delimiter=self._delim), None)
        except (OSError, EOFError, csv.Error) as e:
            raise ReaderError(f"cannot read the CSV header ({type(e).__name__}: {e})") from e
        if not header:
            raise ReaderError("empty CSV file (no header row)")
        self.names = [h.strip() for h in header]

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        import pyarrow.csv as pcsv

        skipped: list[int] = []   # 0-based data rows skipped by the parser, in order
        bad_text: set[int] = set()   # 0-based data rows with invalid UTF-8 (reported by Utf8Lines)

        def on_bad_text(line: int, reason: str) -> None:
            bad_text.add(line - 2)
            self.rejected.append((line - 2, reason))

        def on_invalid(row) -> str:
            index = (row.number - 2) if row.number is not None else -1
            skipped.append(index)
            if index not in bad_text:        # an invalid-UTF-8 line is reported once, as such
                self.rejected.append((index, f"CSV line cannot be split: {row.text[:60]!r} "
                                             f"({row.expected_columns} fields expected, "
                                             f"{row.actual_columns} found)"))
            return "skip"

        if not columns:
            columns = self.names[:1]  # pyarrow needs one column to count rows
        # text in, so the caster decides per row what cannot be read (no per-block inference)
        convert = pcsv.ConvertOptions(include_columns=columns,
                                      column_types={c: pa.string() for c in columns},
                                      strings_can_be_null=True)
        read = pcsv.ReadOptions(block_size=1 << 22, use_threads=False)
        parse = pcsv.ParseOptions(delimiter=self._delim, invalid_row_handler=on_invalid)
        next_row = 0

        def with_rows(table: pa.Table) -> pa.Table:
            nonlocal next_row
            n, gaps = table.num_rows, [i for i in skipped if i >= next_row]
            index = np.arange(next_row, next_row + n + len(gaps), dtype=np.int64)
            index = np.setdiff1d(index, gaps, assume_unique=True)[:n]
            next_row = int(index[-1]) + 1 if n else next_row
            table = table.append_column(ROW_COLUMN, pa.array(index))
            if bad_text and not bad_text.isdisjoint(index.tolist()):
                table = table.filter(pa.array(~np.isin(index, list(bad_text))))
            return table

        try:
            stream = Utf8Lines(pa.input_stream(str(self.path), compression="detect"), on_bad_text)
            reader = pcsv.open_csv(stream, read_options=read, parse_options=parse,
                                   convert_options=convert)
            pending: list[pa.RecordBatch] = []
            n_pending = 0
            for batch in reader:
                pending.append(batch)
                n_pending += batch.num_rows
                while n_pending >= batch_rows:
                    table = pa.Table.from_batches(pending)
                    yield with_rows(table.slice(0, batch_rows))
                    rest = table.slice(batch_rows)
                    pending, n_pending = rest.to_batches(), rest.num_rows
            if n_pending:
                yield with_rows(pa.Table.from_batches(pending))
        except (pa.ArrowInvalid, OSError, EOFError) as e:
            raise ReaderError(f"cannot parse the CSV ({type(e).__name__}: {str(e).splitlines()[0]})") from e

    def close(self) -> None:
        pass


class ParquetReader:
    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.rejected: list[tuple[int, str]] = []
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise ReaderError(f"not a readable Parquet file ({type(e).__name__}: {e})") from e
        self.names = list(self._file.schema_arrow.names)

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        try:
            for batch in self._file.iter_batches(batch_size=batch_rows, columns=columns):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, OSError) as e:
            raise ReaderError(f"cannot read Parquet rows ({type(e).__name__}: {e})") from e

    def close(self) -> None:
        self._file.close()


class VOTableReader:
    """First table of a VOTable; XML is parsed whole (VOTables are small by nature)."""

    def __init__(self, path: Path):
        from astropy.io.votable import parse_single_table

        self.rejected: list[tuple[int, str]] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._array = parse_single_table(str(path)).array
        except Exception as e:  # noqa: BLE001 - astropy raises many XML/IO error types
            raise ReaderError(f"not a readable VOTable ({type(e).__name__}: {e})") from e
        self.names = list(self._array.dtype.names or ())

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        n = len(self._array)
        for start in range(0, n, batch_rows):
            part = self._array[start:start + batch_rows]
            arrays = [_numpy_to_arrow(np.asarray(part[c].data), np.ma.getmaskarray(part[c]))
                      for c in columns]
            yield pa.table(arrays, names=columns)

    def close(self) -> None:
        pass


class WhitespaceReader:
    """Whitespace-separated text with a header line, '#' comments (PARSEC/CMD isochrones).

    The header is the first non-comment line when it is not numeric, else the last
    comment line before the data (newer CMD output writes ``# Zini MH logAge ...``).
    Repeated header lines (several isochrones in one file) are skipped; a line with
    the wrong number of fields is listed in ``rejected``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.rejected: list[tuple[int, str]] = []
        self.names, self._header_line = self._find_header()

    def _lines(self) -> Iterator[str]:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        try:
            with opener(self.path, "rt", encoding="utf-8", errors="replace") as fh:
                yield from fh
        except (OSError, EOFError) as e:
            raise ReaderError(f"cannot read the text table ({type(e).__name__}: {e})") from e

    def _find_header(self) -> tuple[list[str], str]:
        last_comment = None
        for line in self._lines():
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                last_comment = s.lstrip("#").strip()
                continue
            first = s.split()[0]
            try:
                float(first)
            except ValueError:
                return s.split(), s
            if last_comment:
                return last_comment.split(), last_comment
            break
        raise ReaderError("no header line found in the whitespace table")

    def batches(self, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
        idx = [self.names.index(c) for c in columns]
        n_fields = len(self.names)
        header_tokens = self._header_line.split()
        rows: list[list[str]] = []
        numbers: list[int] = []
        row = 0
        for line in self._lines():
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            tokens = s.split()
            if tokens == header_tokens:
                continue
            if len(tokens) == n_fields:
                rows.append(tokens)
                numbers.append(row)
            else:
                self.rejected.append((row, f"line has {len(tokens)} fields, header has {n_fields}"))
            row += 1
            if len(rows) >= batch_rows:
                yield self._table(rows, numbers, idx, columns)
                rows, numbers = [], []
        if rows:
            yield self._table(rows, numbers, idx, columns)

    @staticmethod
    def _table(rows, numbers, idx, columns) -> pa.Table:
        arrays = [pa.array([r[i] for r in rows], pa.string()) for i in idx]
        arrays.append(pa.array(numbers, pa.int64()))
        return pa.table(arrays, names=list(columns) + [ROW_COLUMN])

    def close(self) -> None:
        pass
