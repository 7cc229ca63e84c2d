"""warehouse.duckdb.example: committed, self-contained, and in step with the models."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from mgold.pipeline.example import write_example
from mgold.pipeline.runner import load_models

EXAMPLE = Path(__file__).resolve().parents[2] / "warehouse.duckdb.example"


def _relations(con) -> set[str]:
    rows = con.execute("select schema_name, table_name from duckdb_tables() union all "
                       "select schema_name, view_name from duckdb_views() where not internal").fetchall()
    return {f"{s}.{n}" for s, n in rows}


def test_committed_example_holds_every_model_and_answers_queries():
    assert EXAMPLE.exists(), "warehouse.duckdb.example is missing: run `make example`"
    con = duckdb.connect(str(EXAMPLE), read_only=True)
    try:
        have = _relations(con)
        missing = sorted(m for m in load_models() if f"main.{m}" not in have)
        assert not missing, f"example lacks model(s) {missing}: run `make example`"
        # views were recreated over the copied tables, not left pointing at Parquet
        assert con.execute("select count(*) from stg_lamost").fetchone()[0] > 0
        assert con.execute("select count(*) from lbl_labelled_sample").fetchone()[0] > 0
        cut = dict(con.execute("select relation, rows_kept from meta.example").fetchall())
        assert "landing.lamost_spectra" in cut
    finally:
        con.close()


@pytest.mark.slow
def test_write_example_keeps_tables_whole_and_cuts_only_spectra(tiny_build, tmp_path):
    dst = tmp_path / "ex.duckdb"
    cut = write_example(tiny_build.warehouse, dst, keep_spectra=5)
    assert {"landing.lamost_spectra", "main.spc_cluster_grid"} <= set(cut)
    assert all(kept == 5 < full for kept, full in cut.values())
    src = duckdb.connect(str(tiny_build.warehouse), read_only=True)
    ex = duckdb.connect(str(dst), read_only=True)
    try:
        assert _relations(ex) >= _relations(src)
        for rel in ("landing.gaia", "main.sel_primary", "main.lbl_offsets", "truth.stars", "meta.model_runs"):
            q = f"select count(*) from {rel}"
            assert ex.execute(q).fetchone() == src.execute(q).fetchone(), rel
        assert ex.execute("select count(*) from landing.lamost_spectra").fetchone()[0] == 5
        assert ex.execute("select count(*) from stg_lamost").fetchone()[0] > 5   # headers, not spectra
    finally:
        src.close()
        ex.close()
    assert not dst.with_name(dst.name + ".tmp").exists()
