"""BI access: the committed example warehouse through SQLAlchemy + duckdb_engine (what Superset and
Metabase use), read-only, as the README shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy", reason="sqlalchemy is a dev extra: pip install -e '.[dev]'")
pytest.importorskip("duckdb_engine", reason="duckdb_engine is a dev extra: pip install -e '.[dev]'")

EXAMPLE = Path(__file__).resolve().parents[2] / "warehouse.duckdb.example"


@pytest.fixture()
def engine():
    if not EXAMPLE.exists():
        pytest.skip("warehouse.duckdb.example is missing: run `make example`")
    eng = sa.create_engine(f"duckdb:///{EXAMPLE.as_posix()}?access_mode=read_only")
    yield eng
    eng.dispose()


def test_sqlalchemy_reads_the_labelled_sample_with_the_counts_duckdb_sees(engine):
    import duckdb

    with engine.connect() as c:
        got = c.execute(sa.text("select label_source, count(*) as n from lbl_labelled_sample "
                                "group by 1 order by 1")).all()
        tables = set(sa.inspect(c).get_table_names())
    engine.dispose()   # DuckDB refuses a second connection to one file with another configuration
    con = duckdb.connect(str(EXAMPLE), read_only=True)
    want = con.execute("select label_source, count(*) from lbl_labelled_sample group by 1 order by 1").fetchall()
    con.close()
    assert [tuple(r) for r in got] == want and sum(n for _, n in want) > 0
    assert {"lbl_labelled_sample", "lbl_offsets", "cln_kept"} <= tables


def test_sqlalchemy_binds_parameters_and_cannot_write(engine):
    with engine.connect() as c:
        n = c.execute(sa.text("select count(*) from lbl_labelled_sample where class = :cls and snr_i >= :snr"),
                      {"cls": "dwarf", "snr": 20}).scalar_one()
        assert n > 0
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            c.execute(sa.text("create table scratch as select 1 as x"))


def test_sqlalchemy_queries_a_mart_as_a_bi_tool_would(engine):
    with engine.connect() as c:
        kiel = c.execute(sa.text("select sample, library, count(*) as n, avg(teff_k) as teff_k from mart_kiel "
                                 "group by all order by all")).all()
        offsets = c.execute(sa.text("select catalog, class, param, unit, measured_offset, paper_says "
                                    "from mart_offsets where catalog = :cat and class = :cls"),
                            {"cat": "aspcap", "cls": "dwarf"}).mappings().all()
        tables = set(sa.inspect(c).get_table_names())
    assert {r.sample for r in kiel} == {"cleaned", "golden", "laspm"} and all(r.n > 0 for r in kiel)
    assert {r["param"]: r["unit"] for r in offsets} == {"teff_k": "K", "logg_dex": "dex", "mh_dex": "dex"}
    assert all(r["paper_says"] for r in offsets)
    assert {"mart_kiel", "mart_laspm_catalog", "mart_offsets", "mart_precision", "mart_comparisons",
            "mart_label_provenance", "mart_golden_sample"} <= tables
