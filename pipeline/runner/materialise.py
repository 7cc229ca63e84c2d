"""Materialising one model: bind the config, build under a temporary name, swap it in.

SQL models: ``create table tmp as <select>`` (or ``create or replace view``). Python
models: the runner creates ``tmp`` from the declared columns, inserts every batch the
model yields (by column name: a missing or extra column is an error naming it), then
swaps. The swap (drop old, rename tmp) is one transaction, so a failure at any point
leaves the last good relation in place. Column docs become ``COMMENT ON`` statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from ..config import DEFAULT, Config
from ..model import PARTITION_VARIABLE, RUN_ID_VARIABLE, Model, ModelError
from ..progress import progress
from ..pymodel import ConfigView, declared_column_docs, declared_columns
from ..sqlmodel import compile_model_sql
from ..warehouse import quote_ident, relation_kind, set_memory_limit, transaction

BATCH_VIEW = "_mgold_model_batch"


def _sql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "DOUBLE[]"
        return "VARCHAR[]"
    return "VARCHAR"


def _literal(value: Any) -> str:
    """A SQL literal whose cast to ``_sql_type(value)`` gives back ``value`` exactly."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    text = repr(value) if isinstance(value, float) else str(value)
    return "'" + text.replace("'", "''") + "'"


def bind_config(con: duckdb.DuckDBPyConnection, cfg: Config = DEFAULT,
                run_id: str | None = None) -> dict[str, Any]:
    """Bind every ``Config.flat()`` key as a typed DuckDB variable (DOUBLE for floats,
    BIGINT ints, VARCHAR strings, DOUBLE[]/VARCHAR[] tuples) plus ``run_id``.

    Returns the flat dict that was bound.
    """
    flat = cfg.flat()
    # one multi-statement call: ~200 separate `set variable` round trips cost ~0.3 s
    sets = [f"set variable {quote_ident(k)} = cast({_literal(v)} as {_sql_type(v)})"
            for k, v in flat.items()]
    sets.append(f"set variable {quote_ident(RUN_ID_VARIABLE)} = "
                f"cast({_literal(run_id or 'adhoc')} as VARCHAR)")
    con.execute(";\n".join(sets))
    set_memory_limit(con, cfg.duckdb.memory_limit_gb)
    return flat


class ModelContext:
    """What a Python model's ``build(ctx)`` sees: its guarded config and its declared inputs."""

    def __init__(self, con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, run_id: str,
                 partition: str | None = None):
        self._con, self._model, self._cfg = con, m, cfg
        self.name = m.name
        self.run_id = run_id
        self.partition = partition          # the partition being built (partitioned models), else None
        self.cfg = ConfigView(cfg, frozenset(m.params), m.name)
        self._inputs = dict(m.inputs)

    def _sql(self, name: str) -> str:
        if name not in self._inputs:
            raise ModelError(f"{self.name}: reads input {name!r} it does not declare "
                             f"(inputs: {', '.join(self._inputs) or 'none'})")
        return self._inputs[name]

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A second cursor (the runner inserts on the first), with the config and paths bound."""
        cur = self._con.cursor()
        path = self._con.execute("select current_setting('file_search_path')").fetchall()[0][0]
        if path:
            cur.execute(f"set file_search_path = '{path}'")
        bind_config(cur, self._cfg, self.run_id)
        if self.partition is not None:
            cur.execute(f"set variable {PARTITION_VARIABLE} = ?", [self.partition])
        return cur

    def table(self, name: str) -> pa.Table:
        """The whole result of input ``name`` (for small inputs: a library, a bin list)."""
        cur = self._cursor()
        try:
            return cur.sql(self._sql(name)).to_arrow_table()
        finally:
            cur.close()

    def scalar(self, sql: str, *params):
        """One value of a SELECT over this model's own declared inputs' relations (token functions)."""
        cur = self._cursor()
        try:
            row = cur.execute(sql, list(params)).fetchone()
        finally:
            cur.close()
        return None if row is None else row[0]

    def count(self, name: str) -> int:
        cur = self._cursor()
        try:
            return cur.execute(f"select count(*) from ({self._sql(name)})").fetchone()[0]
        finally:
            cur.close()

    def batches(self, name: str, rows: int, desc: str | None = None) -> Iterator[pa.RecordBatch]:
        """Input ``name`` as record batches of about ``rows`` rows (bounded memory), with a progress bar."""
        total = self.count(name)
        cur = self._cursor()
        try:
            reader = cur.sql(self._sql(name)).to_arrow_reader(int(rows))
            yield from progress(_batches_of(reader), total=max(1, -(-total // max(1, int(rows)))),
                                desc=desc or self.name, unit="batches")
        finally:
            cur.close()


def _batches_of(reader) -> Iterator[pa.RecordBatch]:
    for rb in reader:
        if rb.num_rows:
            yield rb


def _create_from_columns(con: duckdb.DuckDBPyConnection, tmp: str, cols: dict[str, str]) -> None:
    body = ",\n    ".join(f"{quote_ident(c)} {t}" for c, t in cols.items())
    con.execute(f"create table {quote_ident(tmp)} (\n    {body})")


def _insert_batch(con: duckdb.DuckDBPyConnection, m: Model, tmp: str, batch: Any, cols: dict[str, str]) -> None:
    if isinstance(batch, pa.RecordBatch):
        batch = pa.Table.from_batches([batch])
    if not isinstance(batch, pa.Table):
        raise ModelError(f"{m.name}: build() yielded {type(batch).__name__}; yield pyarrow RecordBatch or Table")
    got = set(batch.column_names)
    missing, extra = [c for c in cols if c not in got], sorted(got - set(cols))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"undeclared {', '.join(extra)}"] if extra else [])
        raise ModelError(f"{m.name}: a yielded batch does not match the declared columns: {'; '.join(parts)}")
    if batch.num_rows == 0:
        return
    con.register(BATCH_VIEW, batch)
    try:
        con.execute(f"insert into {quote_ident(tmp)} by name select * from {BATCH_VIEW}")
    finally:
        con.unregister(BATCH_VIEW)


def _comment(con: duckdb.DuckDBPyConnection, m: Model, docs: tuple[tuple[str, str], ...]) -> None:
    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    target = quote_ident(m.name)
    if m.description:
        con.execute(f"comment on {'view' if relation_kind(con, m.name) == 'view' else 'table'} "
                    f"{target} is {lit(m.description)}")
    for col, doc in docs:
        con.execute(f"comment on column {target}.{quote_ident(col)} is {lit(doc)}")


class single_threaded:
    """Run a model's SQL on one thread: DuckDB's parallel aggregates add floating-point values in
    whatever order the threads finish, so avg / stddev / regr_slope differed in the last bits from
    run to run (measured on demo: 13 of 36 models). One thread makes every table bit-identical for
    the same inputs and config; the SQL layers are a few seconds of a build."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def __enter__(self):
        self.threads = self.con.execute("select current_setting('threads')").fetchone()[0]
        self.con.execute("set threads = 1")

    def __exit__(self, *exc) -> bool:
        self.con.execute(f"set threads = {int(self.threads)}")
        return False


def _fill(con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, run_id: str, tmp: str,
          partition: str | None = None) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """Create ``tmp`` from a Python model's declared columns and insert every batch it yields."""
    ctx = ModelContext(con, m, cfg, run_id, partition)
    cols = declared_columns(m, ctx.cfg)
    _create_from_columns(con, tmp, cols)
    for batch in m.fn(ctx) or ():
        _insert_batch(con, m, tmp, batch, cols)
    return declared_column_docs(m, ctx.cfg), cols


def partition_token(con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, partition: str) -> str | None:
    """The value of the model's ``partition_token`` SELECT for one partition (None without one)."""
    if not m.partition_token:
        return None
    ctx = ModelContext(con, m, cfg, "adhoc", partition)
    if callable(m.partition_token):
        try:
            return str(m.partition_token(ctx))
        except (duckdb.Error, ModelError):
            return None                      # its inputs are not built yet: the partition is stale anyway
    cur = ctx._cursor()
    try:
        row = cur.execute(m.partition_token).fetchone()
    except duckdb.Error:
        return None
    finally:
        cur.close()
    return None if row is None else str(row[0])


def present_partitions(con: duckdb.DuckDBPyConnection, m: Model) -> list[str]:
    if relation_kind(con, m.name) != "table":
        return []
    return [r[0] for r in con.execute(f"select distinct {quote_ident(m.partition_by)} from {quote_ident(m.name)} "
                                      "order by 1").fetchall()]


def build_partition(con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, run_id: str, partition: str) -> int:
    """Build one partition of ``m`` and swap its rows in (delete the old partition, insert the new, in
    one transaction); a table whose columns no longer match the declaration is replaced. Returns the
    partition's rows."""
    _check_buildable(con, m)
    tmp = tmp_name(m, run_id) + "_part"
    drop_relation(con, tmp)
    target = quote_ident(m.name)
    try:
        docs, cols = _fill(con, m, cfg, run_id, tmp, partition)
        col = quote_ident(m.partition_by)
        rows, stray = con.execute(f"select count(*), count(*) filter (where {col} is distinct from ?) "
                                  f"from {quote_ident(tmp)}", [partition]).fetchone()
        if stray:
            raise ModelError(f"{m.name}: {stray} yielded row(s) of partition {partition!r} carry another "
                             f"{m.partition_by}")
        existing = [(r[0], r[1].upper()) for r in con.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = 'main' and table_name = ? "
            "order by column_index", [m.name]).fetchall()]
        fresh_schema = [(r[0], r[1].upper()) for r in con.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = 'main' and table_name = ? "
            "order by column_index", [tmp]).fetchall()]
        with transaction(con):
            if existing and existing != fresh_schema:
                con.execute(f"drop table {target}")          # the declaration changed: every partition rebuilds
                existing = []
            if not existing:
                drop_relation(con, m.name)
                con.execute(f"alter table {quote_ident(tmp)} rename to {target}")
                _comment(con, m, docs)
            else:
                con.execute(f"delete from {target} where {col} = ?", [partition])
                con.execute(f"insert into {target} select * from {quote_ident(tmp)}")
                con.execute(f"drop table {quote_ident(tmp)}")
        return rows
    except BaseException:
        drop_relation(con, tmp)
        raise


def drop_partition(con: duckdb.DuckDBPyConnection, m: Model, partition: str) -> int:
    """Delete one partition's rows; returns how many went."""
    n = con.execute(f"select count(*) from {quote_ident(m.name)} where {quote_ident(m.partition_by)} = ?",
                    [partition]).fetchone()[0]
    con.execute(f"delete from {quote_ident(m.name)} where {quote_ident(m.partition_by)} = ?", [partition])
    return n


def _check_buildable(con: duckdb.DuckDBPyConnection, m: Model) -> None:
    if m.error:
        raise ModelError(m.error)
    for source in m.sources:
        if source in m.token_only:
            continue                         # read only by the partitions that need it, if at all
        if relation_kind(con, *reversed(source.split(".", 1))) is None:
            raise ModelError(f"{source} is missing: ingest it first (mgold ingest ...)")


def tmp_name(m: Model, run_id: str) -> str:
    return f"{m.name}__tmp_{re.sub(r'[^0-9A-Za-z_]', '_', run_id)}"


def build_one(con: duckdb.DuckDBPyConnection, m: Model, cfg: Config, run_id: str) -> int | None:
    """Create ``m`` atomically; returns its row count (None for SQL views)."""
    _check_buildable(con, m)
    target = quote_ident(m.name)
    existing = relation_kind(con, m.name)
    if m.kind == "view" and not m.is_python:
        sql = compile_model_sql(m)
        with transaction(con):
            if existing == "table":
                con.execute(f"drop table {target}")
            con.execute(f"create or replace view {target} as {sql}")
            _comment(con, m, m.column_docs)
        return None
    tmp = tmp_name(m, run_id)
    drop_relation(con, tmp)
    try:
        if m.is_python:
            docs, _ = _fill(con, m, cfg, run_id, tmp)
        else:
            with single_threaded(con):
                con.execute(f"create table {quote_ident(tmp)} as {compile_model_sql(m)}")
            docs = m.column_docs
        rows = con.execute(f"select count(*) from {quote_ident(tmp)}").fetchone()[0]
        with transaction(con):
            if existing:
                con.execute(f"drop {existing} {target}")
            con.execute(f"alter table {quote_ident(tmp)} rename to {target}")
            _comment(con, m, docs)
        return rows
    except BaseException:
        drop_relation(con, tmp)
        raise


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    kind = relation_kind(con, name)
    if kind:
        con.execute(f"drop {kind} {quote_ident(name)}")
