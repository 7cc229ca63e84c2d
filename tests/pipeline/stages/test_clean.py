"""cln_bins / cln_dbscan / cln_inspection_queue / cln_kept on literal rows (in-memory DuckDB)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.cluster import DBSCAN

from mgold.pipeline import inspect
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import bind_config, ensure_meta
from mgold.pipeline.sqlmodel import compile_model_sql, load_models
from mgold.pipeline.stages import clean

NPIX = 200
MODELS = load_models()
CFG = DEFAULT.with_overrides({"clean.dist_ref_pix": NPIX})   # plain Euclidean on this 200-px grid


def _spectra(rng, n: int, outlier: bool = False, scale: float = 50.0) -> np.ndarray:
    base = 1 + 0.3 * np.sin(np.linspace(0, 12, NPIX))
    f = base[None, :] * (1 + 0.005 * rng.standard_normal((n, NPIX)))
    if outlier:
        f[:, 60:110] += 0.3
    return scale * f


def _stars(rng):
    """Bin A: 10 alike + 2 outliers; bin B: one star; bin C: 3 mutually different spectra."""
    rows, flux = [], []
    def add(teff, spec, snr):
        for s, q in zip(spec, snr):
            rows.append(dict(obsid=len(rows) + 100, source_id=len(rows) + 1, class_="dwarf", teff_k=teff,
                             logg_dex=4.75, mh_dex=0.05, snr_i=q, label_source="aspcap"))
            flux.append(s)
    add(3510.0, np.vstack([_spectra(rng, 10), _spectra(rng, 2, outlier=True)]),
        [20, 90, 30, 80, 40, 70, 50, 60, 11, 12, 95, 99])
    add(3610.0, _spectra(rng, 1), [40])
    c = _spectra(rng, 3)
    c[1, :100] *= 1.4
    c[2, 100:] *= 0.6
    add(3710.0, c, [30, 20, 10])
    return rows, np.asarray(flux, dtype=np.float32)


@pytest.fixture()
def con():
    rng = np.random.default_rng(5)
    rows, flux = _stars(rng)
    con = duckdb.connect()
    bind_config(con, CFG)
    ensure_meta(con)
    t = pa.Table.from_pylist(rows).rename_columns(
        ["obsid", "source_id", "class", "teff_k", "logg_dex", "mh_dex", "snr_i", "label_source"])
    con.register("t", t)
    con.execute("create table lbl_labelled_sample as select * from t")
    ivar = np.full_like(flux, 1.0)
    ivar[0, :5] = 0.0                                   # a masked pixel must not make a spectrum an outlier
    spc = pa.table({"obsid": t["obsid"], "n_good_pix": (ivar > 0).sum(axis=1), "n_pix": [NPIX] * len(rows),
                    "flux": pa.FixedSizeListArray.from_arrays(pa.array(flux.ravel()), NPIX),
                    "ivar": pa.FixedSizeListArray.from_arrays(pa.array(ivar.ravel()), NPIX)})
    con.register("spc", spc)
    con.execute("create table spc_cluster_grid as select * from spc")
    models = MODELS
    con.execute(f"create table cln_bins as {compile_model_sql(models['cln_bins'])}")
    clean.build(con, CFG, "cln_dbscan")
    for name in ("cln_inspection_queue", "cln_kept"):
        con.execute(f"create or replace table {name} as {compile_model_sql(models[name])}")
    return con


def test_bins_follow_the_grid_and_rank_by_snr(con):
    got = con.execute("select bin_id, count(*), max(snr_rank), any_value(n_in_bin) from cln_bins "
                      "group by 1 order by 1").fetchall()
    assert got == [("t3500_g4.70_m0.00", 12, 12, 12), ("t3600_g4.70_m0.00", 1, 1, 1),
                   ("t3700_g4.70_m0.00", 3, 3, 3)]
    top = con.execute("select obsid from cln_bins where snr_rank = 1 and bin_id like 't3500%'").fetchone()[0]
    assert top == 111                                   # S/N 99


def test_top_n_per_bin_limits_what_is_clustered():
    con = duckdb.connect()
    bind_config(con, CFG.with_overrides({"clean.top_n_per_bin": 5}))
    con.execute("create table lbl_labelled_sample as select i::bigint obsid, i::bigint source_id, 'dwarf' class, "
                "3510.0 teff_k, 4.75 logg_dex, 0.05 mh_dex, i::double snr_i, 'x' label_source from range(20) t(i)")
    con.execute("create table spc_cluster_grid as select i::bigint obsid, 1 n_good_pix, 1 n_pix from range(20) t(i)")
    con.execute(f"create table b as {compile_model_sql(MODELS['cln_bins'])}")
    assert sorted(r[0] for r in con.execute("select obsid from b").fetchall()) == [15, 16, 17, 18, 19]


def test_dbscan_drops_outliers_and_caps_the_main_cluster(con):
    rows = con.execute("select obsid, cluster_label, in_main_cluster, is_kept, min_pts, snr_i "
                       "from cln_dbscan where bin_id like 't3500%' order by obsid").fetchall()
    assert {r[4] for r in rows} == {3}                  # 12 spectra // 4
    outliers = {110, 111}
    assert all(r[1] == -1 for r in rows if r[0] in outliers)
    assert all(r[2] for r in rows if r[0] not in outliers)
    kept = sorted((r[5] for r in rows if r[3]), reverse=True)
    assert kept == [90, 80, 70, 60, 50, 40, 30]         # the 7 highest-S/N core members


def test_labels_match_sklearn_on_the_same_embedding(con):
    flux = np.asarray([r[0] for r in con.execute(
        "select s.flux from cln_bins b join spc_cluster_grid s using (obsid) "
        "where bin_id like 't3500%' order by snr_rank").fetchall()])
    X = clean.embed_bin(flux, np.ones_like(flux), CFG, NPIX)
    want = DBSCAN(eps=CFG.clean.dbscan_eps, min_samples=3).fit_predict(X)
    got = [r[0] for r in con.execute("select cluster_label from cln_dbscan where bin_id like 't3500%' "
                                     "order by snr_rank").fetchall()]
    assert list(want) == got


def test_unsettled_bins_go_to_the_inspection_queue(con):
    q = {r["bin_id"]: r for r in inspect.queue(con)}
    assert q["t3600_g4.70_m0.00"]["reason"] == "single_sample"
    assert q["t3700_g4.70_m0.00"]["reason"] == "no_cluster"
    assert "t3500_g4.70_m0.00" not in q
    assert {r["status"] for r in q.values()} == {"pending"}


def test_decisions_add_and_remove_kept_spectra_and_change_the_fingerprint(con):
    kept_before = {r[0] for r in con.execute("select obsid from cln_kept").fetchall()}
    assert len(kept_before) == 7
    inspect.decide(con, "t3600_g4.70_m0.00", keep=[112])
    sha1 = con.execute("select file_sha256 from meta.ingested_files where kind = 'inspection_decisions'").fetchall()
    inspect.decide(con, "t3500_g4.70_m0.00", reject=[101], note="bad sky")
    sha2 = con.execute("select file_sha256 from meta.ingested_files where kind = 'inspection_decisions'").fetchall()
    assert len(sha1) == len(sha2) == 1 and sha1 != sha2
    con.execute(f"create or replace table cln_kept as {compile_model_sql(MODELS['cln_kept'])}")
    kept = dict(con.execute("select obsid, kept_by from cln_kept").fetchall())
    assert kept[112] == "inspection" and 101 not in kept
    assert set(kept) == (kept_before - {101}) | {112}
    con.execute(f"create or replace table q as {compile_model_sql(MODELS['cln_inspection_queue'])}")
    assert con.execute("select status from q where bin_id = 't3600_g4.70_m0.00'").fetchone()[0] == "decided"


def test_decide_refuses_an_obsid_of_another_bin(con):
    with pytest.raises(inspect.InspectError, match="obsid 100 is not in bin t3600"):
        inspect.decide(con, "t3600_g4.70_m0.00", keep=[100])
    with pytest.raises(inspect.InspectError, match="no bin"):
        inspect.decide(con, "t9999_g0.00_m0.00", keep=[100])


def test_min_pts_rule_spans_2_to_5():
    assert list(clean.min_pts(np.array([1, 7, 8, 12, 16, 20, 150]), DEFAULT)) == [2, 2, 2, 3, 4, 5, 5]


def test_unusable_spectra_are_noise_not_errors():
    f = np.ones((3, 50))
    iv = np.ones((3, 50))
    iv[2, :40] = 0                                      # 20% good pixels < min_good_pix_frac
    X = clean.embed_bin(f, iv, DEFAULT, 50)
    assert np.isfinite(X[:2]).all() and np.isnan(X[2]).all()
