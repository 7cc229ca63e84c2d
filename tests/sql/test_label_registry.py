"""Adding a label catalogue is one registry entry (labels.catalogs) plus a column map: a fourth dwarf
catalogue, ingested from CSV, flows through staging, the cross-match, the offsets and the priority transfer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT, LabelCatalog
from mgold.pipeline.ingest import catalog
from mgold.pipeline.ingest.catalog_maps import KINDS, obsid_label_kind
from mgold.pipeline.report import LabelsReport, sentence
from mgold.pipeline.runner import Project, run_tests
from mgold.pipeline.warehouse import connect as open_warehouse
from sqltest import build, rows, table

PRIMARY = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "class": "VARCHAR"}
STARS = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "lum_class_hint": "VARCHAR"}
STARHORSE = {"source_id": "BIGINT", "teff_k": "DOUBLE", "logg_dex": "DOUBLE", "mh_dex": "DOUBLE"}
OFFSET_K = 55.0


@pytest.fixture()
def with_mann15(monkeypatch):
    """The two edits a contributor makes: a column map and a registry entry (first in dwarf priority)."""
    monkeypatch.setitem(KINDS, "mann15", obsid_label_kind("mann15", "M dwarfs of Mann et al. (2015)"))
    labels = dataclasses.replace(
        DEFAULT.labels, catalogs=DEFAULT.labels.catalogs + (LabelCatalog("mann15", "Mann15", ("dwarf",)),),
        dwarf_priority=("mann15", *DEFAULT.labels.dwarf_priority))
    return dataclasses.replace(DEFAULT, labels=labels)


def test_a_fourth_dwarf_catalogue_needs_only_a_column_map_and_a_registry_entry(with_mann15, tmp_path):
    cfg = with_mann15
    rng = np.random.default_rng(4)
    n = 120
    teff = rng.uniform(3100, 3900, n)
    csv = tmp_path / "mann15.csv"
    csv.write_text("OBSID,gaia_source_id,Teff,e_Teff,logg,[M/H]\n" + "".join(
        f"{1000 + i},{i},{t + OFFSET_K + rng.normal(0, 20):.1f},20,{4.8 + rng.normal(0, 0.03):.3f},"
        f"{rng.normal(0, 0.05):.3f}\n" for i, t in enumerate(teff)))
    con = open_warehouse(tmp_path / "w.duckdb")
    report = catalog.ingest_catalog(con, "mann15", [csv], cfg)
    assert report.rows_loaded == n and report.rejected == 0
    assert con.execute("select count(*) from landing.obsid_labels where catalog = 'mann15'").fetchone()[0] == n

    from mgold.pipeline.runner import bind_config

    bind_config(con, cfg, run_id="test-run")
    for name, schema in (("stg_lamost", {"obsid": "BIGINT", "snr_i": "DOUBLE"}),
                         ("xm_lamost_gaia", {"obsid": "BIGINT", "source_id": "BIGINT"}),
                         ("xm_aspcap", {"source_id": "BIGINT", "teff_k": "DOUBLE", "teff_err_k": "DOUBLE",
                                        "logg_dex": "DOUBLE", "logg_err_dex": "DOUBLE", "mh_dex": "DOUBLE",
                                        "mh_err_dex": "DOUBLE", "apogee_snr": "DOUBLE"})):
        table(con, name, schema, [])
    table(con, "sel_primary", PRIMARY, [{"source_id": i, "obsid": 1000 + i, "snr_i": 30.0, "class": "dwarf"}
                                        for i in range(n)])
    table(con, "sel_stars", STARS, [{"source_id": i, "obsid": 1000 + i, "snr_i": 30.0, "lum_class_hint": "dwarf"}
                                    for i in range(n)])
    table(con, "stg_starhorse", STARHORSE, [{"source_id": i, "teff_k": float(t), "logg_dex": 4.8, "mh_dex": 0.0}
                                            for i, t in enumerate(teff)])
    build(con, "stg_obsid_labels", "xm_label_catalogs", "lbl_starhorse_deltas", "lbl_offsets", "lbl_offsets_wide",
          "lbl_shifted", "lbl_transfer", "lbl_supplement", "lbl_labelled_sample")

    off = rows(con, "select mean from lbl_offsets where catalog = 'mann15' and class = 'dwarf' and param = 'teff_k'")
    assert off[0]["mean"] == pytest.approx(OFFSET_K, abs=10)          # measured, never configured
    sources = rows(con, "select label_source, count(*) n from lbl_labelled_sample group by 1")
    assert sources and {r["label_source"] for r in sources} == {"mann15"}
    audits = {r.name: r for r in run_tests(con, Project.load(), select="xm_label_catalogs+", cfg=cfg)
              if r.kind == "audit"}
    assert audits["label_catalogs_registered"].passed
    rep = LabelsReport(n, [("mann15", n, 0)], [], [], [])
    assert "from Mann15" in sentence(rep, cfg.labels.catalogs)
    con.close()


def test_a_catalogue_missing_from_the_registry_fails_the_audit(with_mann15, tmp_path):
    """Without its registry entry the same rows are flagged: the registry is the one list of catalogues."""
    con = open_warehouse(tmp_path / "w.duckdb")
    from mgold.pipeline.runner import bind_config

    bind_config(con, DEFAULT)
    table(con, "xm_label_catalogs", {"catalog": "VARCHAR", "source_id": "BIGINT"}, [{"catalog": "mann15", "source_id": 1}])
    table(con, "lbl_labelled_sample", {"label_source": "VARCHAR"}, [])
    audits = {r.name: r for r in run_tests(con, Project.load(), select="xm_label_catalogs", cfg=DEFAULT)
              if r.kind == "audit"}
    assert audits["label_catalogs_registered"].rows == 1
    con.close()
