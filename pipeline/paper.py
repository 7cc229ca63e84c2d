"""The values paper §2.2 quotes about each catalogue's offset from StarHorse, read from the one place
they are kept: the SQL model ``sql/marts/mart_paper_offsets.sql`` (a VALUES list, so the warehouse's
``mart_offsets`` joins them and the HTML report shows them without a warehouse).

``PAPER_OFFSETS``: ``{(catalog, class, param): what the paper says}``, in the file's order.
"""

from __future__ import annotations

import duckdb

from .sqlmodel import compile_model_sql, default_sql_root, parse_model_file

PAPER_OFFSETS_MODEL = "mart_paper_offsets"


def paper_offsets() -> dict[tuple[str, str, str], str]:
    """``{(catalog, class, param): the paper's words}`` from the model's SQL, run on an in-memory
    DuckDB (it reads no relation)."""
    m = parse_model_file(default_sql_root() / "marts" / f"{PAPER_OFFSETS_MODEL}.sql")
    con = duckdb.connect()
    try:
        rows = con.execute(f"select catalog, class, param, paper_says from ({compile_model_sql(m)})").fetchall()
    finally:
        con.close()
    return {(c, k, p): says for c, k, p, says in rows}


PAPER_OFFSETS = paper_offsets()
