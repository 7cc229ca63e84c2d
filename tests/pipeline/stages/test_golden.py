"""The golden layer (paper §3): gold_loo on literal rows, the hull distance against a sampling twin, and
gold_sample / gold_history / failure / determinism on the tiny synthetic build."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import Project, build_models, ensure_meta, run
from mgold.pipeline.stages import golden
from mgold.pipeline.stages.spectra import grid
from mgold.udfs import laspm

N_PIX = grid(DEFAULT, "red")[2]
CFG = DEFAULT.with_overrides({"laspm.k_best": 4, "laspm.n_candidates": 12})


def _spectra(labels: np.ndarray) -> np.ndarray:
    """Red-grid spectra that are a smooth function of (Teff, log g, [M/H]): TiO-like bands deepening as Teff falls."""
    x = np.linspace(0, 1, N_PIX)[None, :]
    t = (labels[:, :1] - 3500.0) / 500.0
    g = (labels[:, 1:2] - 4.5) / 0.5
    m = labels[:, 2:3] / 0.5
    out = 1.0 + 0.3 * x
    for k, centre in enumerate(np.linspace(0.05, 0.95, 25)):
        depth = 0.25 - 0.1 * t * np.cos(k) + 0.03 * g * np.sin(2 * k) + 0.05 * m * np.cos(3 * k + 1)
        out = out - depth * np.exp(-0.5 * ((x - centre) / 0.008) ** 2)
    return out


def _stars(n_side: int = 4, rng=None):
    rng = rng or np.random.default_rng(3)
    g = np.meshgrid(np.linspace(3300, 3700, n_side), np.linspace(4.3, 4.9, n_side), np.linspace(-0.4, 0.2, n_side),
                    indexing="ij")
    labels = np.column_stack([a.ravel() for a in g]) + rng.normal(0, [5, 0.01, 0.01], (n_side ** 3, 3))
    flux = _spectra(labels) * (1 + rng.normal(0, 0.005, (len(labels), N_PIX)))
    return labels, flux.astype(np.float32), np.full(flux.shape, 0.005 ** -2, np.float32)


def _golden_input(con, labels, flux, ivar):
    ensure_meta(con)
    n = len(labels)
    ids = np.arange(n, dtype=np.int64) + 500
    con.register("g", pa.table({"obsid": ids, "class": ["dwarf"] * n, "teff_k": labels[:, 0],
                                "logg_dex": labels[:, 1], "mh_dex": labels[:, 2]}))
    con.register("r", pa.table({"obsid": ids,
                                "flux": pa.FixedSizeListArray.from_arrays(pa.array(flux.ravel()), N_PIX),
                                "ivar": pa.FixedSizeListArray.from_arrays(pa.array(ivar.ravel()), N_PIX)}))
    con.execute("create or replace table cln_nn_kept as select * from g; "
                "create or replace table spc_red_grid as select * from r")
    return ids


def test_gold_loo_fits_every_star_against_all_the_others():
    labels, flux, ivar = _stars()
    con = duckdb.connect()
    ids = _golden_input(con, labels, flux, ivar)
    build_models(con, ["gold_loo"], CFG)
    got = con.execute("select obsid, best_obsids, teff_loo_k, dteff_loo_k, teff_k, hull_dist_steps, flags "
                      "from gold_loo order by obsid").fetchall()
    assert [r[0] for r in got] == ids.tolist()
    assert all(o not in best and len(best) == 4 for o, best, *_ in got)          # never itself
    fit = golden.leave_one_out(flux, ivar, labels, CFG)                          # the model is the pure function
    np.testing.assert_array_equal([r[2] for r in got], fit.labels[:, 0])
    np.testing.assert_allclose([r[3] for r in got], np.array([r[2] - r[4] for r in got]))
    inner = np.array([r[5] for r in got]) > 0.5                                   # half a step inside the hull
    assert inner.sum() >= 8 and np.abs(np.array([r[3] for r in got])[inner]).max() < 60.0
    edge = np.array([r[6] & laspm.FLAG_EDGE_OF_LIBRARY > 0 for r in got])
    assert edge.any() and not edge[inner].all()


def test_a_library_of_one_star_is_flagged_not_a_crash():
    labels, flux, ivar = _stars(2)
    con = duckdb.connect()
    _golden_input(con, labels[:1], flux[:1], ivar[:1])
    build_models(con, ["gold_loo"], CFG)
    (flags, teff, best), = con.execute("select flags, teff_loo_k, best_obsids from gold_loo").fetchall()
    assert flags & laspm.FLAG_NO_FIT and teff is None and best == []


def test_a_spectrum_with_no_good_red_pixel_is_flagged_and_fits_nobody():
    labels, flux, ivar = _stars(2)
    ivar[3] = 0.0
    con = duckdb.connect()
    ids = _golden_input(con, labels, flux, ivar)
    build_models(con, ["gold_loo"], CFG)
    rows = dict(con.execute("select obsid, flags from gold_loo").fetchall())
    assert rows[ids[3]] & laspm.FLAG_NO_FIT
    assert all(ids[3] not in b for (b,) in con.execute("select best_obsids from gold_loo").fetchall())


def test_hull_distance_matches_a_sampling_twin():
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(5)
    steps = np.array([50.0, 0.1, 0.1])
    pts = rng.uniform([3000, 4.0, -0.5], [3500, 5.0, 0.5], (60, 3))
    d = golden.hull_distance_steps(pts, steps)
    x = pts / steps
    tri = Delaunay(x)
    u = rng.normal(size=(4000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for i in np.flatnonzero(d > 0.2)[:10]:                     # inside: the ball of radius d fits, a larger one not
        assert (tri.find_simplex(x[i] + 0.98 * d[i] * u) >= 0).all()
        assert (tri.find_simplex(x[i] + 1.05 * d[i] * u) < 0).any()
    assert (d >= 0).all() and (d == 0).sum() >= 4                # the hull's vertices
    assert np.isnan(golden.hull_distance_steps(pts[:3], steps)).all()
    flat = pts.copy()
    flat[:, 2] = 0.1                                             # labels spanning a plane: no 3-D hull
    assert np.isnan(golden.hull_distance_steps(flat, steps)).all()


# --------------------------------------------------------------------------- on the tiny build

@pytest.mark.slow
def test_gold_sample_is_the_nn_survivors_with_their_provenance(tiny_build):
    con = duckdb.connect(str(tiny_build.warehouse), read_only=True)
    gold = con.execute("select obsid from gold_sample order by obsid").fetchall()
    assert gold and gold == con.execute("select obsid from cln_nn_kept order by obsid").fetchall()
    bad = con.execute("""select count(*) from gold_sample g join lbl_labelled_sample l using (obsid)
                         where g.teff_k <> l.teff_k or g.offset_teff_k <> l.offset_teff_k
                            or g.source_id <> l.source_id or g.designation is null""").fetchone()[0]
    assert bad == 0
    assert con.execute("select count(*) from gold_sample where teff_loo_k is null").fetchone()[0] == 0


@pytest.mark.slow
def test_gold_history_explains_every_labelled_star_in_one_query(tiny_build):
    con = duckdb.connect(str(tiny_build.warehouse), read_only=True)
    rows = con.execute("select source_id, stage_order, stage, outcome, in_golden from gold_history "
                       "order by source_id, stage_order").fetchall()
    by_star: dict[int, list] = {}
    for sid, order, stage, outcome, in_golden in rows:
        by_star.setdefault(sid, []).append((order, stage, outcome, in_golden))
    labelled = {r[0] for r in con.execute("select source_id from lbl_labelled_sample").fetchall()}
    golden_ids = {r[0] for r in con.execute("select source_id from gold_sample").fetchall()}
    assert labelled <= set(by_star)
    for sid, stages in by_star.items():
        orders = [s[0] for s in stages]
        assert orders[0] == 1 and orders == sorted(orders)
        assert all(o in ("kept", "queued") for _, _, o, _ in stages[:-1]), (sid, stages)   # stops at a removal
        last = stages[-1]
        assert (last[1] == "golden" and last[2] == "kept") == (sid in golden_ids) == last[3]
        if last[1] != "golden":
            assert last[2] == "removed", (sid, stages)


@pytest.mark.slow
def test_a_failed_golden_stage_keeps_the_last_tables_and_a_rerun_gives_the_same_sample(tiny_build, tmp_path):
    wh = tmp_path / "copy.duckdb"
    shutil.copy(tiny_build.warehouse, wh)
    files = tiny_build.warehouse.parent / (tiny_build.warehouse.stem + "_files")
    if files.exists():
        shutil.copytree(files, tmp_path / "copy_files")
    from mgold.pipeline.runner import recorded_config

    con = duckdb.connect(str(wh))
    cfg = recorded_config(con, "gold_sample")
    project = Project.load()
    before = con.execute("select * from gold_sample order by obsid").fetchall()
    loo_before = con.execute("select * from gold_loo order by obsid").fetchall()
    con.execute("update cln_nn_kept set teff_k = 'nan'::double where obsid = (select min(obsid) from cln_nn_kept)")
    golden_layer = "gold_loo gold_sample gold_history"
    res = {r.name: r for r in run(con, project, cfg, select=golden_layer, full_refresh=True)}
    assert res["gold_loo"].status == "failed" and "not finite" in res["gold_loo"].error
    assert res["gold_sample"].status == "skipped"
    assert con.execute("select * from gold_sample order by obsid").fetchall() == before
    assert con.execute("select * from gold_loo order by obsid").fetchall() == loo_before
    res = {r.name: r for r in run(con, project, cfg, full_refresh=True,
                                  select="cln_nn_folds cln_nn_predictions cln_nn_kept " + golden_layer)}
    assert res["gold_sample"].status == "built", res
    assert con.execute("select * from gold_sample order by obsid").fetchall() == before   # same seed, same sample
    con.close()
