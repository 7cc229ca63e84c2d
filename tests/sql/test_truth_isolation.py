"""No pipeline model may read truth.* (the synthetic ground truth), even indirectly.

Lineage comes from the SQL itself (sqlglot): a SQL model's body and each Python
model's input queries, over the REAL ``sql/`` tree and ``mgold.pipeline.stages``.
"""

from __future__ import annotations

import duckdb

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import Project, closure, lineage, load_models, run


def test_no_model_reads_truth_directly_or_through_its_upstream():
    models = load_models()
    up, _ = lineage(models)
    leaks = {}
    for name in models:
        truth = sorted(d for d in closure([name], up) if d.lower().startswith("truth."))
        if truth:
            leaks[name] = truth
    assert leaks == {}, f"models reading truth.*: {leaks}"


def test_the_loader_refuses_a_model_reading_truth_and_the_runner_never_builds_it(tmp_path):
    """The loader itself refuses truth.* (so a build fails loudly, not just this test), even
    through a CTE or a subquery."""
    for name, body in (("stg_peek", "select * from truth.stars"),
                       ("stg_hidden", "with t as (select star_id from truth.spectra) select * from t")):
        path = tmp_path / "staging" / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"-- description: x\n-- grain: x\n-- kind: table\n-- params:\n{body}\n")
    project = Project.load(tmp_path, stages=None)
    for name in ("stg_peek", "stg_hidden"):
        assert "truth.* is for evaluation code only" in project.models[name].error
    con = duckdb.connect()
    con.execute("create schema truth")
    con.execute("create table truth.stars as select 1 star_id")
    con.execute("create table truth.spectra as select 1 star_id")
    res = {r.name: r for r in run(con, project, DEFAULT)}
    assert {r.status for r in res.values()} == {"failed"}
    assert not con.execute("select * from duckdb_tables() where schema_name = 'main'").fetchall()


def test_every_real_model_loads_with_an_honest_header():
    """Header params equal the getvariable() calls, tests parse, layers and upstreams exist."""
    broken = {n: m.error for n, m in load_models().items() if m.error}
    assert broken == {}, "\n".join(broken.values())
