"""Catalogue ingest: FITS / CSV / Parquet / VOTable / PARSEC files -> ``landing.<kind>``.

Each file goes through its kind's declarative column map (``catalog_maps.KINDS``):
aliases resolve case-insensitively (first alias wins, an exact-case match first);
a missing required column rejects the whole file, a missing optional one lands as
NULL. Values are cast to the declared DuckDB type in SQL; sentinels and NaN/+-inf
become NULL; a value that cannot be cast rejects only its row. Rows whose key is
NULL, repeats an earlier row of the file, or is already in the table are rejected
too (the first is kept). Every rejection is a row in ``meta.ingest_errors`` plus
one line on stderr; rows are numbered from 0, as in ``landing.<kind>._row``.

One transaction per file, batches of ``ingest.catalog_batch_rows`` rows, and a
file already ingested as the same kind (same sha256) is skipped.

Regenerate the column-map doc with ``python -m mgold.pipeline.ingest.catalog``.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from ..config import DEFAULT, Config
from ..progress import progress
from ..errors import UsageError
from ..datafiles import sha256_of
from ..warehouse import finish_run, new_run_id, record_ingest_error, refuse_mixing, start_run, transaction
from . import IngestReport
from .catalog_maps import KINDS, CatalogKind, Col
from .readers import ROW_COLUMN, SUFFIXES, ReaderError, TableReader, open_reader

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "catalog_maps.md"
FILE_NAME_COLUMN = "source_name"   # filled by source_name(path) when the file lacks it
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                 "USMALLINT", "UINTEGER", "UBIGINT"}
FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}
_RAW, _CAST, _KEYED = "_mgold_cat_raw", "_mgold_cat_cast", "_mgold_cat_keyed"


class MissingColumnError(Exception):
    """A required column has none of its aliases in the file."""


def resolve_columns(spec: CatalogKind, names: Sequence[str]) -> dict[str, str | None]:
    """Staging name -> source column (None for an absent optional column).

    Raises ``MissingColumnError`` naming the first required column not found and
    the aliases tried."""
    exact = set(names)
    folded: dict[str, str] = {}
    for n in names:
        folded.setdefault(n.lower(), n)
    out: dict[str, str | None] = {}
    for col in spec.columns:
        src = None
        for alias in col.aliases:
            src = alias if alias in exact else folded.get(alias.lower())
            if src is not None:
                break
        if src is None and col.required:
            raise MissingColumnError(f"missing required column {col.name} for kind {spec.kind} "
                                     f"(tried {', '.join(col.aliases)}; case-insensitive)")
        out[col.name] = src
    return out


def landing_ddl(spec: CatalogKind) -> str:
    cols = ", ".join(f'"{c.name}" {c.dtype}' for c in spec.columns)
    tag = ", catalog varchar" if spec.shared else ""
    return f'create table if not exists landing."{spec.table}" ({cols}{tag}, _file varchar, _row bigint)'


def _value_and_failure(i: int, col: Col) -> tuple[str, str]:
    """SQL for the cast value of raw column ``r{i}`` and for 'this row cannot be read'."""
    r, t = f"r{i}", col.dtype.upper()
    if t == "VARCHAR":
        return f"nullif(trim(cast({r} as varchar)), '')", "false"
    cast = f"try_cast({r} as {col.dtype})"
    if t not in INTEGER_TYPES | FLOAT_TYPES and not t.startswith("DECIMAL"):
        return cast, f"({r} is not null and {cast} is null)"
    d = f"try_cast({r} as double)"
    conds = [f"isnan({d})", f"isinf({d})"]
    if col.sentinels:
        conds.append(f"{d} in ({', '.join(repr(float(s)) for s in col.sentinels)})")
    missing = f"coalesce({' or '.join(conds)}, false)"
    # an integer column must not silently round 1.5 -> 2
    frac = f"coalesce({d} <> trunc({d}), false)" if t in INTEGER_TYPES else "false"
    value = f"case when {missing} or {frac} then null else {cast} end"
    fails = f"({r} is not null and not {missing} and ({cast} is null or {frac}))"
    return value, fails


def _cast_sql(spec: CatalogKind) -> str:
    parts = ["_row"]
    for i, col in enumerate(spec.columns):
        value, fails = _value_and_failure(i, col)
        parts += [f"r{i}", f'{value} as "{col.name}"', f"{fails} as _f{i}"]
    return f"create or replace temp table {_CAST} as select {', '.join(parts)} from {_RAW}"


def _keyed_sql(spec: CatalogKind) -> str:
    """Good rows of the batch with ``_dup`` = why a row is a duplicate (NULL: land it)."""
    where = " and ".join(f"not _f{i}" for i in range(len(spec.columns)))
    cols = ", ".join(["_row"] + [f'"{c.name}"' for c in spec.columns])
    good = f"select {cols} from {_CAST} where {where}"
    if not spec.key:
        return f"create or replace temp table {_KEYED} as select *, null::varchar as _dup from ({good})"
    keys = ", ".join(f'"{k}"' for k in spec.key)

    def on(a: str, b: str) -> str:
        return " and ".join(f'{a}."{k}" = {b}."{k}"' for k in spec.key)

    any_null = " or ".join(f'g."{k}" is null' for k in spec.key)
    # hash aggregates and joins, not window functions: a batch of 1e5 rows stays cheap, and
    # the landing table is only probed for the batch's keys
    return f"""
        create or replace temp table {_KEYED} as
        with good as ({good}),
        firsts as (select {keys}, min(_row) as _first from good group by {keys}),
        prev as (select {', '.join(f't."{k}"' for k in spec.key)}, min(t._file || ':' || t._row) as _prev
                 from landing."{spec.table}" t semi join firsts f on {on('t', 'f')}{_own_rows(spec, 't')}
                 group by {', '.join(f't."{k}"' for k in spec.key)})
        select g.*, case
            when {any_null} then 'NULL key'
            when f._first < g._row then 'duplicate of row ' || f._first || ' earlier in this file'
            when p._prev is not null then 'duplicate of ' || p._prev
            end as _dup
        from good g left join firsts f on {on('g', 'f')} left join prev p on {on('g', 'p')}"""


def _own_rows(spec: CatalogKind, alias: str = "") -> str:
    """In a shared landing table, the condition that keeps to this kind's rows."""
    return f" and {alias + '.' if alias else ''}catalog = '{spec.kind}'" if spec.shared else ""


def source_name(path: Path) -> str:
    """'folder/file': PARSEC sets reuse file names across folders (dr1_ vs evans_passbands)."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _raw_table(batch: pa.Table, spec: CatalogKind, mapping: dict[str, str | None],
               path: Path, first_row: int) -> pa.Table:
    n = batch.num_rows
    arrays, names = [], []
    for i, col in enumerate(spec.columns):
        src = mapping[col.name]
        if src is not None:
            arrays.append(batch.column(src))
        elif col.name == FILE_NAME_COLUMN:
            arrays.append(pa.array([source_name(path)] * n, pa.string()))
        else:
            arrays.append(pa.nulls(n, pa.string()))
        names.append(f"r{i}")
    rows = (batch.column(ROW_COLUMN) if ROW_COLUMN in batch.column_names
            else pa.array(range(first_row, first_row + n), pa.int64()))
    return pa.table(arrays + [rows], names=names + ["_row"])


def _land_batch(con: duckdb.DuckDBPyConnection, spec: CatalogKind, raw: pa.Table,
                mapping: dict[str, str | None], file: str) -> tuple[int, list[tuple[int, str, str]]]:
    """Cast, dedupe and append one batch; returns (rows landed, [(row, reason, severity)])."""
    con.register(_RAW, raw)
    try:
        con.execute(_cast_sql(spec))
    finally:
        con.unregister(_RAW)
    errors: list[tuple[int, str, str]] = []
    unions = [f"select _row, {i} as col, cast(r{i} as varchar) as raw from {_CAST} where _f{i}"
              for i in range(len(spec.columns))]
    for row, i, value in con.execute(" union all ".join(unions) + " order by 1, 2").fetchall():
        col = spec.columns[i]
        shown = value if len(value) <= 60 else value[:57] + "..."
        errors.append((row, f"column {col.name} (source {mapping[col.name]}): cannot read "
                            f"{shown!r} as {col.dtype}", "error"))
    con.execute(_keyed_sql(spec))
    key_cols = ", ".join(f'"{k}"' for k in spec.key) or "null"
    for row, why, *key in con.execute(
            f"select _row, _dup, {key_cols} from {_KEYED} where _dup is not null "
            "order by _row").fetchall():
        shown = ", ".join(f"{k}={v}" for k, v in zip(spec.key, key))
        errors.append((row, f"key ({shown}): {why}; first kept", "warning"))
    cols = ", ".join(f'"{c.name}"' for c in spec.columns)
    tag_col, tag = (", catalog", f", '{spec.kind}'") if spec.shared else ("", "")
    landed = con.execute(f'insert into landing."{spec.table}" ({cols}{tag_col}, _file, _row) '
                         f"select {cols}{tag}, ?, _row from {_KEYED} where _dup is null order by _row",
                         [file]).fetchone()[0]   # ordered: the landing table is the same, row for row, on every ingest
    return landed, errors


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files, folders (searched recursively for table suffixes) and globs -> files, in order.
    Paths that do not exist are kept so the caller reports them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(SUFFIXES))
        elif not p.exists() and any(ch in str(p) for ch in "*?["):
            out += sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
        else:
            out.append(p)
    return out


def _drain(reader: TableReader) -> list[tuple[int, str, str]]:
    """Lines the reader skipped, as row errors."""
    out = [(row, reason, "error") for row, reason in reader.rejected]
    reader.rejected.clear()
    return out


def _ingest_file(con: duckdb.DuckDBPyConnection, spec: CatalogKind, path: Path, run_id: str,
                 batch_rows: int, report: IngestReport) -> None:
    def reject(reason: str) -> None:
        record_ingest_error(con, run_id, path, reason)
        report.rejected += 1

    if not path.is_file():
        return reject("file not found")
    sha = sha256_of(path)
    if con.execute("select 1 from meta.ingested_files where file_sha256 = ? and kind = ?",
                   [sha, spec.kind]).fetchone():
        report.files_skipped += 1
        return
    try:
        reader = open_reader(path)
    except ReaderError as e:
        return reject(str(e))
    errors: list[tuple[int, str, str]] = []
    n_rows = n_landed = 0
    tx = transaction(con)
    try:
        mapping = resolve_columns(spec, reader.names)
        sources = list(dict.fromkeys(s for s in mapping.values() if s is not None))
        with tx:
            con.execute(landing_ddl(spec))
            try:
                for batch in reader.batches(sources, batch_rows):
                    landed, errs = _land_batch(con, spec, _raw_table(batch, spec, mapping, path, n_rows),
                                               mapping, str(path))
                    n_rows += batch.num_rows
                    n_landed += landed
                    errors += errs + _drain(reader)
            except Exception as e:
                if not tx.owner and not isinstance(e, duckdb.Error):
                    # inside the caller's transaction: take back this file's rows by hand
                    con.execute(f'delete from landing."{spec.table}" where _file = ?{_own_rows(spec)}',
                                [str(path)])
                raise
            errors += _drain(reader)
            con.execute("insert into meta.ingested_files values (?, ?, ?, ?, ?, now())",
                        [sha, str(path), spec.kind, run_id, n_landed])
    except Exception as e:  # noqa: BLE001 - one unreadable file must not stop the batch
        if not tx.owner and isinstance(e, duckdb.Error):
            raise                    # the caller's transaction is aborted: it must fail as a whole
        first = str(e).splitlines()[0] if str(e) else ""
        known = isinstance(e, (MissingColumnError, ReaderError, duckdb.Error))
        return reject(first if known else f"unreadable ({type(e).__name__}: {first})")
    finally:
        reader.close()
    for row, reason, severity in sorted(errors, key=lambda e: e[0]):
        record_ingest_error(con, run_id, path, reason, severity, row=row)
    report.rejected += len(errors)
    report.files_loaded += 1
    report.rows_loaded += n_landed


def ingest_catalog(con: duckdb.DuckDBPyConnection, kind: str, paths: list[Path],
                   cfg: Config | None = None, run_id: str | None = None,
                   universe: str | None = None) -> IngestReport:
    """Load catalogue files of one kind into ``landing.<kind>`` of the warehouse of ``con``
    (see the module doc); never raises for bad input. ``run_id``: the caller's run (a build);
    ``universe``: as for ``ingest_lamost`` (real data never mixes with a synthetic universe)."""
    refuse_mixing(con, universe)
    if kind not in KINDS:
        raise UsageError(f"unknown catalogue kind {kind!r}; choose one of {', '.join(KINDS)}")
    cfg = cfg or DEFAULT
    spec = KINDS[kind]
    files = expand_paths(paths)
    report = IngestReport(files_seen=len(files), outputs=[f"landing.{spec.table}"])
    own_run = run_id is None
    run_id = run_id or new_run_id()
    if own_run:
        start_run(con, cfg, run_id, f"ingest catalog {kind}")
    try:
        for path in progress(files, desc=f"catalog {kind}", unit="files"):
            _ingest_file(con, spec, path, run_id, cfg.ingest.catalog_batch_rows, report)
    except BaseException:
        if own_run:
            finish_run(con, run_id, "failed")
        raise
    if own_run:
        finish_run(con, run_id, "ok")
    return report


def column_map_markdown() -> str:
    """KINDS rendered as markdown: one table per kind (staging column, type, aliases, sentinels)."""
    lines = [
        "# Catalogue column maps",
        "",
        "Generated from `pipeline/ingest/catalog_maps.py` by `column_map_markdown()`"
        " (`python -m mgold.pipeline.ingest.catalog`); a test fails when this file drifts.",
        "",
        "`mgold ingest catalog KIND FILE...` reads FITS (first table HDU, .fits.gz too), CSV,"
        " Parquet, VOTable and whitespace `.dat` tables (PARSEC). For each staging column the"
        " first alias present in the file is used (exact case first, then case-insensitive)."
        " A missing **required** column rejects the file; a missing optional column lands as"
        " NULL. Sentinel values, NaN and +-inf become NULL; a value that cannot be cast to the"
        " type rejects its row. `landing.KIND` holds these columns plus `_file` and `_row`"
        " (0-based row in the file). Rows repeating the key are rejected, the first kept.",
        "",
    ]
    for spec in KINDS.values():
        lines += [f"## `{spec.kind}`", "", spec.doc + ".", ""]
        if spec.key:
            lines += [f"Key: {', '.join(f'`{k}`' for k in spec.key)}.", ""]
        lines += ["| staging column | type | required | aliases (first match wins) | sentinels -> NULL | note |",
                  "|---|---|---|---|---|---|"]
        for c in spec.columns:
            sentinels = ", ".join(f"{s:g}" for s in c.sentinels) if c.sentinels else "-"
            if c.dtype.upper() == "VARCHAR":
                sentinels = "empty text"
            lines.append(f"| `{c.name}` | {c.dtype} | {'yes' if c.required else ''} | "
                         f"{', '.join(f'`{a}`' for a in c.aliases)} | {sentinels} | {c.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(column_map_markdown())
    print(f"wrote {DOC_PATH}")
