"""Data tests: the declarative header tests of each model and the audits in ``sql/audits/``.
A check is a query returning the offending rows: 0 rows = pass."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ..config import DEFAULT, Config
from ..model import ModelError, TestSpec
from ..warehouse import quote_ident, relation_kind
from .dag import select_models
from .materialise import bind_config
from .project import Project


@dataclass
class TestResult:
    name: str                   # e.g. "unique(source_id)" or the audit's file stem
    model: str | None           # the model tested (None for audits)
    kind: str                   # "test" | "audit"
    sql: str
    rows: int = 0               # offending rows
    sample: list[tuple] | None = None
    columns: list[str] | None = None
    error: str | None = None
    description: str = ""

    __test__ = False            # not a pytest class

    @property
    def passed(self) -> bool:
        return self.error is None and self.rows == 0


def compile_test(model: str, spec: TestSpec) -> str:
    """A declarative header test as SQL returning the offending rows."""
    rel = quote_ident(model)
    a = spec.args
    if spec.kind == "unique":
        cols = ", ".join(a)
        return f"select {cols}, count(*) as n_rows from {rel} group by {cols} having count(*) > 1"
    if spec.kind == "not_null":
        return f"select * from {rel} where " + " or ".join(f"{c} is null" for c in a)
    if spec.kind == "range":
        col, lo, hi = a
        conds = [f"{col} < {lo}" for _ in [0] if lo.lower() not in ("null", "none", "")]
        conds += [f"{col} > {hi}" for _ in [0] if hi.lower() not in ("null", "none", "")]
        return f"select * from {rel} where " + (" or ".join(conds) or "false")
    if spec.kind == "accepted":
        col, values = a[0], ", ".join(a[1:])
        return f"select * from {rel} where {col} is not null and {col} not in ({values})"
    raise ModelError(f"unknown test {spec.kind!r}")


def _execute_check(con: duckdb.DuckDBPyConnection, res: TestResult, sample_rows: int) -> TestResult:
    try:
        res.rows = con.execute(f"select count(*) from ({res.sql})").fetchone()[0]
        if res.rows:
            cur = con.execute(f"select * from ({res.sql}) limit {int(sample_rows)}")
            res.columns = [d[0] for d in cur.description]
            res.sample = cur.fetchall()
    except duckdb.Error as e:
        res.error = str(e).splitlines()[0]
    return res


def run_tests(con: duckdb.DuckDBPyConnection, project: Project, select: str | None = None,
              cfg: Config | None = None, sample_rows: int = 5) -> list[TestResult]:
    """Run the header tests of the selected models and every audit (``sql/audits/*.sql``)
    touching them (all audits when ``select`` is None). A check passes when it returns
    no rows; a check that cannot run (missing relation, bad SQL) fails with ``error``."""
    models = project.models
    chosen = select_models(models, select)
    bind_config(con, cfg or DEFAULT)
    results: list[TestResult] = []
    for name in project.order:
        if name not in chosen:
            continue
        m = models[name]
        if m.error:
            results.append(TestResult("model", name, "test", "", error=m.error))
            continue
        if m.tests and relation_kind(con, name) is None:
            results.append(TestResult("exists", name, "test", "",
                                      error=f"{name}: relation missing; run `mgold sql run` first"))
            continue
        for spec in m.tests:
            results.append(_execute_check(con, TestResult(str(spec), name, "test",
                                                          compile_test(name, spec)), sample_rows))
    for audit in project.audits:
        if select and not (set(audit.depends_on) & chosen):
            continue
        res = TestResult(audit.name, None, "audit", audit.sql, description=audit.description,
                         error=audit.error)
        results.append(res if audit.error else _execute_check(con, res, sample_rows))
    return results
