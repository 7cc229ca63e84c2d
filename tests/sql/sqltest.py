"""Literal-row harness for SQL model unit tests: typed landing tables from a few dicts, models built in order."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from mgold.pipeline.config import DEFAULT, Config
from mgold.pipeline.ingest.catalog_maps import KINDS
from mgold.pipeline.runner import bind_config, compile_model_sql, load_models, relation_kind

LAMOST_HEADERS = {
    "obsid": "BIGINT", "designation": "VARCHAR", "ra_deg": "DOUBLE", "dec_deg": "DOUBLE",
    "class": "VARCHAR", "subclass": "VARCHAR", "z": "DOUBLE", "z_err": "DOUBLE", "rv_kms": "DOUBLE",
    "rv_source": "VARCHAR", "snr_u": "DOUBLE", "snr_g": "DOUBLE", "snr_r": "DOUBLE", "snr_i": "DOUBLE",
    "snr_z": "DOUBLE", "lmjd": "INTEGER", "mjd": "INTEGER", "planid": "VARCHAR", "spid": "INTEGER",
    "fiberid": "INTEGER", "data_v": "VARCHAR", "n_pixels": "INTEGER", "wave_min_aa": "DOUBLE",
    "wave_max_aa": "DOUBLE", "is_star": "BOOLEAN", "layout": "VARCHAR", "file": "VARCHAR",
    "file_sha256": "VARCHAR", "run_id": "VARCHAR",
}

_MODELS = None


def models():
    global _MODELS
    if _MODELS is None:
        _MODELS = load_models()
    return _MODELS


def schema_of(kind: str) -> dict[str, str]:
    if kind == "lamost_headers":
        return LAMOST_HEADERS
    cols = {c.name: c.dtype for c in KINDS[kind].columns}
    tag = {"catalog": "VARCHAR"} if KINDS[kind].shared else {}
    return {**cols, **tag, "_file": "VARCHAR", "_row": "BIGINT"}


def connect(cfg: Config = DEFAULT) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    bind_config(con, cfg, run_id="test-run")
    con.execute("create schema landing")
    return con


def landing(con, kind: str, rows: list[dict]) -> None:
    """Create ``landing.<kind>`` with its full contract schema; columns a row omits are NULL."""
    schema = schema_of(kind)
    unknown = {k for r in rows for k in r} - set(schema)
    assert not unknown, f"landing.{kind} has no column(s) {unknown}"
    cols = ", ".join(f'"{c}" {t}' for c, t in schema.items())
    spec = KINDS.get(kind)
    if spec is not None and spec.shared:       # kinds sharing a landing table: replace only this kind's rows
        con.execute(f"create table if not exists landing.{spec.table} ({cols})")
        con.execute(f"delete from landing.{spec.table} where catalog = ?", [kind])
        rows = [{"catalog": kind, **r} for r in rows]
        kind = spec.table
    else:
        con.execute(f"create or replace table landing.{kind} ({cols})")
    if "_file" in schema:
        rows = [{"_file": "test", "_row": i, **r} for i, r in enumerate(rows)]
    _insert(con, f"landing.{kind}", schema, rows)


def table(con, name: str, schema: dict[str, str], rows: list[dict]) -> None:
    """A stand-in for an upstream model: a table with exactly these typed columns."""
    cols = ", ".join(f'"{c}" {t}' for c, t in schema.items())
    con.execute(f"create or replace table {name} ({cols})")
    _insert(con, name, schema, rows)


def _insert(con, name: str, schema: dict[str, str], rows: list[dict]) -> None:
    # one columnar insert: row-by-row executemany costs seconds for a few thousand rows
    if not rows:
        return
    batch = pa.table({c: [r.get(c) for r in rows] for c in schema})  # noqa: F841 (read by DuckDB)
    casts = ", ".join(f'cast("{c}" as {t})' for c, t in schema.items())
    con.execute(f"insert into {name} select {casts} from batch")


def build(con, *names: str) -> None:
    """Build the named models in order; an upstream model that does not exist yet is built first
    (so a test names the models it is about, not every helper model between them)."""
    for n in names:
        m = models()[n]
        assert m.error is None, m.error
        for up in m.upstream_models:
            if relation_kind(con, up) is None and up not in names:
                build(con, up)
        con.execute(f"create or replace table {n} as {compile_model_sql(m)}")


def rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def empty_landing(con, *kinds: str) -> None:
    for k in kinds:
        landing(con, k, [])
