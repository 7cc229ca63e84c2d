"""mart_* models on literal rows: decoded LASPM flags, provenance outcomes, precision ranges, the long
comparisons, offsets beside the paper's words; and the contract every mart keeps for BI tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgold.pipeline.paper import PAPER_OFFSETS
from mgold.udfs import laspm as kernel
from sqltest import build, connect, models, rows, table

RESULTS = {"library": "VARCHAR", "obsid": "BIGINT", "teff_k": "DOUBLE", "logg_dex": "DOUBLE", "mh_dex": "DOUBLE",
           "teff_err_k": "DOUBLE", "logg_err_dex": "DOUBLE", "mh_err_dex": "DOUBLE", "chi2_min": "DOUBLE",
           "chi2_nu": "DOUBLE", "best_template_ids": "BIGINT[]", "rv_used_kms": "DOUBLE", "rv_source": "VARCHAR",
           "rv_err_kms": "DOUBLE", "n_good_pix": "BIGINT", "snr_i": "DOUBLE", "flags": "INTEGER", "run_id": "VARCHAR"}
LAMOST = {"obsid": "BIGINT", "designation": "VARCHAR", "ra_deg": "DOUBLE", "dec_deg": "DOUBLE"}
GAIA = {"obsid": "BIGINT", "source_id": "BIGINT", "match_method": "VARCHAR"}
# each mart_laspm_catalog boolean and the kernel's bit it decodes (is_fitted is the bit clear)
FLAG_COLUMNS = {"is_edge_of_library": kernel.FLAG_EDGE_OF_LIBRARY, "is_poor_fit": kernel.FLAG_POOR_FIT,
                "is_few_pixels": kernel.FLAG_FEW_PIXELS, "is_rv_missing": kernel.FLAG_RV_MISSING,
                "is_rv_fit_poor": kernel.FLAG_RV_FIT_POOR}
EXAMPLE = Path(__file__).resolve().parents[2] / "warehouse.duckdb.example"
MARTS = sorted(n for n, m in models().items() if m.layer == "marts")


def _result(obsid: int, flags: int, library: str = "golden") -> dict:
    fitted = not flags & kernel.FLAG_NO_FIT
    return {"library": library, "obsid": obsid, "flags": flags, "best_template_ids": [7, 3],
            "teff_k": 3500.0 if fitted else None, "logg_dex": 4.8 if fitted else None,
            "mh_dex": -0.1 if fitted else None, "snr_i": 20.0, "rv_source": "header", "run_id": "r"}


def test_laspm_catalog_decodes_each_kernel_flag_into_its_own_boolean():
    con = connect()
    bits = [*FLAG_COLUMNS.values(), kernel.FLAG_NO_FIT]
    table(con, "lsp_results", RESULTS, [_result(i + 1, b) for i, b in enumerate(bits)] + [_result(99, 0)])
    table(con, "stg_lamost", LAMOST, [{"obsid": 1, "designation": "J1", "ra_deg": 10.0, "dec_deg": 20.0}])
    table(con, "xm_lamost_gaia", GAIA, [{"obsid": 1, "source_id": 555, "match_method": "gaia_id"}])
    build(con, "mart_laspm_catalog")
    got = {r["obsid"]: r for r in rows(con, "select * from mart_laspm_catalog")}
    for i, bit in enumerate(bits):
        r = got[i + 1]
        assert {c for c in FLAG_COLUMNS if r[c]} == {c for c, b in FLAG_COLUMNS.items() if b == bit}, bit
        assert r["is_fitted"] == (bit != kernel.FLAG_NO_FIT)
    assert not any(got[99][c] for c in FLAG_COLUMNS) and got[99]["is_fitted"]
    assert (got[1]["designation"], got[1]["source_id"], got[1]["best_template_id"]) == ("J1", 555, 7)
    assert got[2]["source_id"] is None and got[2]["designation"] is None      # unmatched spectra stay


def test_kiel_holds_the_cleaned_sample_and_only_fitted_laspm_points():
    con = connect()
    table(con, "mart_laspm_catalog", {"library": "VARCHAR", "obsid": "BIGINT", "source_id": "BIGINT",
                                      "teff_k": "DOUBLE", "logg_dex": "DOUBLE", "mh_dex": "DOUBLE",
                                      "snr_i": "DOUBLE", "is_fitted": "BOOLEAN"},
          [{"library": "golden", "obsid": 1, "teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0, "is_fitted": True},
           {"library": "golden", "obsid": 2, "is_fitted": False}])
    table(con, "cln_kept", {"obsid": "BIGINT", "source_id": "BIGINT", "class": "VARCHAR", "teff_k": "DOUBLE",
                            "logg_dex": "DOUBLE", "mh_dex": "DOUBLE", "snr_i": "DOUBLE"},
          [{"obsid": 1, "source_id": 9, "class": "dwarf", "teff_k": 3510.0, "logg_dex": 4.7, "mh_dex": 0.1}])
    table(con, "gold_sample", {"obsid": "BIGINT", "source_id": "BIGINT", "class": "VARCHAR", "teff_k": "DOUBLE",
                               "logg_dex": "DOUBLE", "mh_dex": "DOUBLE", "snr_i": "DOUBLE"},
          [{"obsid": 1, "source_id": 9, "class": "dwarf", "teff_k": 3510.0, "logg_dex": 4.7, "mh_dex": 0.1}])
    build(con, "mart_kiel")
    got = rows(con, "select sample, library, obsid, class from mart_kiel order by sample")
    assert got == [{"sample": "cleaned", "library": None, "obsid": 1, "class": "dwarf"},
                   {"sample": "golden", "library": None, "obsid": 1, "class": "dwarf"},
                   {"sample": "laspm", "library": "golden", "obsid": 1, "class": None}]


def test_golden_sample_mart_marks_the_laspm_templates_and_the_edge_fits():
    con = connect()
    table(con, "gold_sample", {"obsid": "BIGINT", "source_id": "BIGINT", "loo_flags": "INTEGER"},
          [{"obsid": 1, "source_id": 11, "loo_flags": 0}, {"obsid": 2, "source_id": 12, "loo_flags": 3}])
    table(con, "lsp_library", {"library": "VARCHAR", "template_id": "BIGINT"},
          [{"library": "golden", "template_id": 2}, {"library": "model_grid", "template_id": 1}])
    build(con, "mart_golden_sample")
    got = rows(con, "select obsid, is_laspm_template, is_loo_edge_of_library from mart_golden_sample order by 1")
    assert got == [{"obsid": 1, "is_laspm_template": False, "is_loo_edge_of_library": False},
                   {"obsid": 2, "is_laspm_template": True, "is_loo_edge_of_library": True}]


def test_label_provenance_names_what_the_cleaning_did_with_each_star():
    con = connect()
    labelled = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "class": "VARCHAR",
                "teff_k": "DOUBLE", "logg_dex": "DOUBLE", "mh_dex": "DOUBLE", "label_source": "VARCHAR",
                "offset_teff_k": "DOUBLE", "offset_logg_dex": "DOUBLE", "offset_mh_dex": "DOUBLE",
                "is_supplement": "BOOLEAN"}
    star = {"class": "dwarf", "teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0, "label_source": "ding22",
            "offset_teff_k": -40.0, "offset_logg_dex": 0.1, "offset_mh_dex": -0.2, "is_supplement": False}
    table(con, "lbl_labelled_sample", labelled, [{"source_id": s, "obsid": s, **star} for s in range(1, 6)])
    table(con, "lbl_shifted", {"source_id": "BIGINT", "catalog": "VARCHAR", "priority_rank": "INTEGER",
                               "passes_delta": "BOOLEAN"},
          [{"source_id": 1, "catalog": "laspm", "priority_rank": 3, "passes_delta": True},
           {"source_id": 1, "catalog": "ding22", "priority_rank": 2, "passes_delta": True},
           {"source_id": 1, "catalog": "aspcap", "priority_rank": 1, "passes_delta": False}])
    # 1 kept by DBSCAN, 2 kept by a person, 3 DBSCAN's choice a person rejected, 4 dropped, 5 never clustered
    table(con, "cln_bins", {"obsid": "BIGINT", "bin_id": "VARCHAR"}, [{"obsid": s, "bin_id": "b"} for s in range(1, 5)])
    table(con, "cln_keep_rank", {"obsid": "BIGINT", "keep_rank": "BIGINT", "is_kept": "BOOLEAN"},
          [{"obsid": 1, "keep_rank": 1, "is_kept": True}, {"obsid": 2, "keep_rank": 0, "is_kept": False},
           {"obsid": 3, "keep_rank": 2, "is_kept": True}, {"obsid": 4, "keep_rank": 0, "is_kept": False}])
    table(con, "cln_kept", {"obsid": "BIGINT", "kept_by": "VARCHAR"},
          [{"obsid": 1, "kept_by": "dbscan"}, {"obsid": 2, "kept_by": "inspection"}])
    build(con, "mart_label_provenance")
    got = {r["source_id"]: r for r in rows(con, "select * from mart_label_provenance")}
    assert {s: r["clean_outcome"] for s, r in got.items()} == {
        1: "kept_by_dbscan", 2: "kept_by_inspection", 3: "rejected_by_inspection", 4: "dropped_by_dbscan",
        5: "not_clustered"}
    assert sorted(s for s, r in got.items() if r["is_kept"]) == [1, 2]
    assert (got[1]["n_catalogs"], got[1]["catalogs"]) == (2, ["ding22", "laspm"])
    assert got[5]["n_catalogs"] == 0 and got[5]["bin_id"] is None
    # the catalogue's own value is the transferred one plus the offset that was subtracted
    assert (got[1]["catalog_teff_k"], got[1]["catalog_mh_dex"]) == (3460.0, -0.2)


def test_precision_gives_every_row_its_snr_range_and_a_unit():
    con = connect()
    table(con, "lsp_precision", {"library": "VARCHAR", "param": "VARCHAR", "snr_lo": "DOUBLE", "n": "BIGINT",
                                 "sigma": "DOUBLE", "std": "DOUBLE"},
          [{"library": "golden", "param": "teff_k", "snr_lo": 15.0, "n": 10, "sigma": 60.0, "std": 70.0},
           {"library": "golden", "param": "teff_k", "snr_lo": None, "n": 40, "sigma": 65.0, "std": 80.0},
           {"library": "golden", "param": "mh_dex", "snr_lo": 15.0, "n": 10, "sigma": 0.1, "std": 0.2}])
    build(con, "mart_precision")
    got = rows(con, "select param, unit, snr_lo, snr_hi, is_summary from mart_precision order by all")
    step, lo = connect().execute("select getvariable('laspm.precision_snr_step'), "
                                 "getvariable('laspm.precision_snr_min')").fetchone()
    assert got == [{"param": "mh_dex", "unit": "dex", "snr_lo": 15.0, "snr_hi": 15.0 + step, "is_summary": False},
                   {"param": "teff_k", "unit": "K", "snr_lo": lo, "snr_hi": None, "is_summary": True},
                   {"param": "teff_k", "unit": "K", "snr_lo": 15.0, "snr_hi": 15.0 + step, "is_summary": False}]


def test_comparisons_put_starhorse_and_apogee_in_one_long_table():
    con = connect()
    cols = {"library": "VARCHAR", "param": "VARCHAR", "n": "BIGINT", "n_stars": "BIGINT", "bias": "DOUBLE",
            "scatter": "DOUBLE"}
    table(con, "lsp_vs_starhorse", {**cols, "mean_diff": "DOUBLE"},
          [{"library": "golden", "param": "logg_dex", "n": 5, "n_stars": 4, "bias": 0.02, "scatter": 0.1,
            "mean_diff": 0.03}])
    table(con, "lsp_vs_apogee", {**cols, "class": "VARCHAR"},
          [{"library": "golden", "class": "giant", "param": "teff_k", "n": 3, "n_stars": 3, "bias": 5.0,
            "scatter": 23.0}])
    build(con, "mart_comparisons")
    got = rows(con, "select reference, class, param, unit, bias, mean_diff from mart_comparisons order by 1")
    assert got == [{"reference": "apogee", "class": "giant", "param": "teff_k", "unit": "K", "bias": 5.0,
                    "mean_diff": None},
                   {"reference": "starhorse", "class": "all", "param": "logg_dex", "unit": "dex", "bias": 0.02,
                    "mean_diff": 0.03}]


def test_offsets_sit_beside_the_papers_words_and_say_when_unmeasured():
    con = connect()
    table(con, "lbl_offsets", {"catalog": "VARCHAR", "class": "VARCHAR", "param": "VARCHAR", "mean": "DOUBLE",
                               "sigma": "DOUBLE", "n": "BIGINT", "n_matched": "BIGINT", "iterations": "INTEGER",
                               "method": "VARCHAR", "run_id": "VARCHAR"},
          [{"catalog": "aspcap", "class": "dwarf", "param": "teff_k", "mean": 90.0, "sigma": 100.0, "n": 25,
            "n_matched": 30, "iterations": 3, "method": "m", "run_id": "r"},
           {"catalog": "ding22", "class": "dwarf", "param": "mh_dex", "mean": None, "sigma": 0.2, "n": 2,
            "n_matched": 2, "iterations": 1, "method": "m", "run_id": "r"}])
    build(con, "mart_offsets")
    got = {r["catalog"]: r for r in rows(con, "select * from mart_offsets")}
    a, d = got["aspcap"], got["ding22"]
    assert (a["is_measured"], a["offset_se"], a["paper_offset"], a["unit"]) == (True, 20.0, 87.0, "K")
    assert a["paper_says"] == PAPER_OFFSETS[("aspcap", "dwarf", "teff_k")]
    assert (d["is_measured"], d["measured_offset"], d["paper_offset"], d["unit"]) == (False, None, None, "dex")


def test_paper_offsets_cover_every_catalogue_class_and_label_the_report_shows():
    from mgold.pipeline.config import DEFAULT

    want = {(c, "dwarf", p) for c in DEFAULT.labels.dwarf_priority for p in ("teff_k", "logg_dex", "mh_dex")} | \
           {(c, "giant", p) for c in DEFAULT.labels.giant_priority for p in ("teff_k", "logg_dex", "mh_dex")}
    assert set(PAPER_OFFSETS) == want


@pytest.mark.parametrize("name", MARTS)
def test_every_mart_is_a_documented_table(name):
    m = models()[name]
    assert m.error is None, m.error
    # a view would evaluate getvariable() at query time: empty rows from a plain duckdb client
    assert m.kind == "table", f"{name}: marts must be tables"
    assert m.description and m.grain and m.column_docs, f"{name}: description, grain and columns: header"


def test_every_mart_column_of_the_example_warehouse_carries_its_comment():
    import duckdb

    if not EXAMPLE.exists():
        pytest.skip("warehouse.duckdb.example is missing: run `make example`")
    con = duckdb.connect(str(EXAMPLE), read_only=True)
    try:
        tables = dict(con.execute("select table_name, comment from duckdb_tables() where schema_name = 'main' "
                                  "and starts_with(table_name, 'mart_')").fetchall())
        bare = con.execute("select table_name || '.' || column_name from duckdb_columns() where schema_name = 'main' "
                           "and starts_with(table_name, 'mart_') and coalesce(comment, '') = '' "
                           "order by 1").fetchall()
    finally:
        con.close()
    assert set(tables) == set(MARTS), "run `make example`"
    assert all(tables.values()), [t for t, c in tables.items() if not c]
    assert not bare, f"columns without a comment (add them to the model's columns: header): {bare}"
