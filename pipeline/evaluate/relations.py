"""Whether the relations a figure, number or accuracy section reads exist and hold rows."""

from __future__ import annotations

import re

_RELATION = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def relation_state(con, name: str) -> str | None:
    """None when ``name`` (``model`` or ``schema.table``) exists and has a row; else why not:
    'missing', 'empty' or 'unreadable: <cause>'. A name that is not a relation (a stage still to
    be written, e.g. 'gold_* (...)') is 'missing'."""
    if not _RELATION.match(name):
        return "missing"
    schema, _, table = name.rpartition(".")
    found = con.execute("select count(*) from information_schema.tables where table_name = ? "
                        "and table_schema = ?", [table, schema or "main"]).fetchone()[0]
    if not found:
        return "missing"
    try:
        row = con.execute(f"select 1 from {name} limit 1").fetchall()   # fetchall: no result left open
    except Exception as e:  # noqa: BLE001 - e.g. a view over Parquet files that are not there
        return f"unreadable: {str(e).splitlines()[0]}"
    return None if row else "empty"


def unmet(con, needs: tuple[str, ...]) -> list[str]:
    """'relation (why)' for each relation of ``needs`` that is missing, empty or unreadable."""
    out = []
    for n in needs:
        why = relation_state(con, n)
        if why is not None:
            out.append(f"{n} ({why})")
    return out
