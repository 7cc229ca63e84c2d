"""What the warehouse's relations are, as the warehouse itself documents them (``mgold catalog``).

The runner writes each model's description as ``COMMENT ON TABLE`` / ``VIEW`` and its
``columns:`` header as ``COMMENT ON COLUMN``; this module reads them back from
``duckdb_tables()`` / ``duckdb_views()`` / ``duckdb_columns()``, so what a BI tool shows is what
is listed here, not what the files say now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from .runner import Project
from .warehouse import quote_ident


@dataclass
class Relation:
    name: str
    layer: str
    kind: str | None                  # 'table' / 'view' as built; None when not built
    comment: str | None = None
    rows: int | None = None           # tables only
    columns: list[tuple[str, str, str | None]] = field(default_factory=list)   # (name, type, comment)


def documented_relations(con: duckdb.DuckDBPyConnection, project: Project, layers: tuple[str, ...] | None = ("marts",),
                         names: list[str] | None = None) -> list[Relation]:
    """The models of ``layers`` (None: every layer) or the named ones, in build order, with their
    comments as the warehouse holds them."""
    built = {n: (k, c) for n, k, c in con.execute(
        "select table_name, 'table', comment from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'main' union all select view_name, 'view', comment from duckdb_views() "
        "where database_name = current_database() and schema_name = 'main' and not internal").fetchall()}
    out = []
    for name in project.order:
        m = project.models[name]
        if (names and name not in names) or (not names and layers is not None and m.layer not in layers):
            continue
        kind, comment = built.get(name, (None, None))
        rel = Relation(name, m.layer, kind, comment)
        if kind is not None:
            rel.columns = con.execute("select column_name, data_type, comment from duckdb_columns() where "
                                      "database_name = current_database() and schema_name = 'main' and "
                                      "table_name = ? order by column_index", [name]).fetchall()
        if kind == "table":
            rel.rows = con.execute(f"select count(*) from {quote_ident(name)}").fetchone()[0]
        out.append(rel)
    return out
