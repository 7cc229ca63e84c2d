"""Neural-net cleaning (paper §2.5) on synthetic spectra whose labels are a smooth function of them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.stages import nn

# Spectra: 1 + a smooth (linear + quadratic) function of the scaled labels per pixel, plus noise.
# The same text runs in a child process for the cross-process determinism test.
DATA_SRC = """
import numpy as np

def synth(n, p=100, seed=1, n_out=0, label_noise_k=0.0):
    rng = np.random.default_rng(seed)
    Y = np.column_stack([rng.uniform(3200, 3800, n), rng.uniform(4.2, 5.0, n), rng.uniform(-0.5, 0.3, n)])
    s = (Y - [3500, 4.6, -0.1]) / [300, 0.4, 0.4]
    A = rng.normal(size=(6, p)) * 0.05
    X = (1 + np.column_stack([s, 0.3 * s ** 2]) @ A + 0.001 * rng.normal(size=(n, p))).astype(np.float32)
    out = rng.choice(n, n_out, replace=False)
    Y[:, 0] += label_noise_k * rng.normal(size=n)        # what no net can predict
    Y[out, 0] += rng.choice([-1, 1], n_out) * 400.0     # label outliers: 400 K off
    return X, Y, np.arange(n, dtype=np.int64) + 1000, out
"""
exec(DATA_SRC)

# small networks keep each test to a few seconds; the paper-size defaults are measured in the report
SMALL = DEFAULT.with_overrides({"nn.hidden_layers": [32, 16], "nn.k_folds": 3, "nn.max_epochs": 200,
                                "nn.learning_rate": 3e-3, "nn.n_iter_no_change": 10, "nn.batch_size": 32,
                                "nn.alpha": 1e-4})   # near noise-free spectra: little penalty needed
TINY = DEFAULT.with_overrides({"nn.hidden_layers": [8], "nn.k_folds": 3, "nn.max_epochs": 15,
                               "nn.n_iter_no_change": 5})


def _run_and_hash(cfg_sets: dict, n: int, seed: int) -> str:
    from mgold.pipeline.config import DEFAULT as D
    from mgold.pipeline.stages.nn import nn_clean

    X, Y, ids, _ = synth(n, n_out=3)
    r = nn_clean(X, Y, ids, D.with_overrides(cfg_sets), seed)
    return hashlib.sha256(r.row_pred.tobytes() + r.row_star.tobytes() + r.row_removed.tobytes()).hexdigest()


LOOSE = {"nn.max_dteff_k": 1e4, "nn.max_dlogg_dex": 10.0, "nn.max_dmh_dex": 10.0}   # nobody removed
TINY_SETS = {"nn.hidden_layers": [8], "nn.k_folds": 3, "nn.max_epochs": 15, "nn.n_iter_no_change": 5}


@pytest.fixture(scope="module")
def outliers_run():
    X, Y, ids, out = synth(300, n_out=15)
    return nn.nn_clean(X, Y, ids, SMALL, seed=3), ids, out


def test_injected_label_outliers_are_removed_and_few_clean_stars_are(outliers_run):
    r, ids, out = outliers_run
    removed = set(ids[~r.kept()].tolist())
    assert set(ids[out].tolist()) <= removed                        # all 15 outliers (400 K off) go
    assert len(removed - set(ids[out].tolist())) <= 0.05 * (300 - 15)  # at most 5 % of the clean stars
    s = nn.nn_summary(r)
    assert s["n_removed"] == len(removed) and s["n_kept"] == 300 - len(removed)
    assert s["scatter"]["teff_k"]["robust_sigma"] < 30.0 and s["scatter"]["teff_k"]["paper"] == 14.0
    assert r.converged and s["removed_per_iteration"][-1] == 0


def test_each_star_has_one_held_out_prediction_per_iteration(outliers_run):
    r, ids, _ = outliers_run
    active = set(range(ids.size))
    for it in range(r.n_iterations):
        rows = np.flatnonzero(r.row_iteration == it)
        stars = r.row_star[rows]
        assert len(set(stars.tolist())) == stars.size == len(active)   # once each, every current star
        assert set(stars.tolist()) == active
        active -= set(stars[r.row_removed[rows]].tolist())            # the removed never come back
    assert np.isfinite(r.row_pred).all()
    np.testing.assert_array_equal(r.row_resid, r.row_pred - r.labels[r.row_star])


def test_folds_partition_the_stars_into_near_equal_sets():
    for n, k in ((10, 3), (11, 5), (300, 5), (5, 5)):
        fold = nn.fold_assignment(n, k, seed=7, iteration=2)
        sizes = np.bincount(fold, minlength=k)
        assert sizes.sum() == n and sizes.max() - sizes.min() <= 1 and fold.min() == 0 and fold.max() == k - 1
    assert not np.array_equal(nn.fold_assignment(300, 5, 7, 0), nn.fold_assignment(300, 5, 7, 1))


def test_fold_records_match_the_held_out_rows(outliers_run):
    r, _, _ = outliers_run
    k = SMALL.nn.k_folds
    assert len(r.folds) == k * r.n_iterations
    for f in r.folds:
        rows = (r.row_iteration == f.iteration) & (r.row_fold == f.fold)
        assert f.n_test == rows.sum() and f.n_train + f.n_test == (r.row_iteration == f.iteration).sum()
        assert f.n_epochs == f.loss_curve.size == f.validation_r2_curve.size > 0   # Fig. 7 curves kept
        assert f.best_validation_r2 == pytest.approx(f.validation_r2_curve.max())
        assert f.stopped_early == (f.n_epochs < SMALL.nn.max_epochs)


def test_a_stars_own_label_never_reaches_its_held_out_prediction():
    X, Y, ids, _ = synth(60)
    a = nn.nn_clean(X, Y, ids, TINY, seed=5)
    Y2 = Y.copy()
    Y2[17] += [900.0, 2.0, 2.0]                       # only star 17's label changes
    b = nn.nn_clean(X, Y2, ids, TINY, seed=5)
    row_a = np.flatnonzero((a.row_iteration == 0) & (a.row_star == 17))[0]
    row_b = np.flatnonzero((b.row_iteration == 0) & (b.row_star == 17))[0]
    assert np.array_equal(a.row_pred[row_a], b.row_pred[row_b])    # its fold's net never saw it
    first_a, first_b = a.row_iteration == 0, b.row_iteration == 0     # every star, in id order, in both
    others = a.row_fold[first_a] != a.row_fold[row_a]
    assert not np.array_equal(a.row_pred[first_a][others], b.row_pred[first_b][others])   # they trained on it


def test_same_inputs_and_seed_give_bit_identical_predictions_in_one_process():
    h1 = _run_and_hash(TINY_SETS, 90, 11)
    assert h1 == _run_and_hash(TINY_SETS, 90, 11)
    assert h1 != _run_and_hash(TINY_SETS, 90, 12)


def test_predictions_are_bit_identical_across_processes_and_thread_counts():
    code = (DATA_SRC + "\nimport hashlib\nfrom mgold.pipeline.config import DEFAULT as D\n"
            "from mgold.pipeline.stages.nn import nn_clean\n"
            f"X, Y, ids, _ = synth(90, n_out=3)\nr = nn_clean(X, Y, ids, D.with_overrides({TINY_SETS!r}), 11)\n"
            "print(hashlib.sha256(r.row_pred.tobytes() + r.row_star.tobytes() + r.row_removed.tobytes()).hexdigest())\n")
    # another process and thread count, the same BLAS kernel: a machine's OPENBLAS_CORETYPE (set here for
    # compatibility) picks the kernel, and a different kernel rounds differently (not what this tests)
    env = {**{k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
           "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert child.stdout.strip() == _run_and_hash(TINY_SETS, 90, 11)


def test_input_row_order_does_not_change_the_result():
    X, Y, ids, _ = synth(60, n_out=2)
    a = nn.nn_clean(X, Y, ids, TINY, seed=5)
    perm = np.random.default_rng(0).permutation(60)
    b = nn.nn_clean(X[perm], Y[perm], ids[perm], TINY, seed=5)
    for ta, tb in zip(a.to_tables(), b.to_tables()):
        assert ta.equals(tb)


def test_fewer_usable_stars_than_folds_is_a_one_line_error():
    X, Y, ids, _ = synth(4)
    with pytest.raises(ValueError, match=r"4 usable star\(s\) of 4, need at least 14 \(nn.k_folds = 5, "):
        nn.nn_clean(X, Y, ids, DEFAULT, seed=1)
    Y[:, 0] = np.nan                                        # the reasons are named
    with pytest.raises(ValueError, match="excluded: 4 nan_label"):
        nn.nn_clean(X, Y, ids, DEFAULT, seed=1)


def test_the_fewest_stars_allowed_train_without_a_sklearn_error():
    n = nn.min_stars_for(TINY.nn.k_folds, TINY.nn.validation_fraction)   # 17 for 3 folds, 10 %
    X, Y, ids, _ = synth(n)
    r = nn.nn_clean(X, Y, ids, TINY.with_overrides(LOOSE), seed=1)
    assert r.kept().sum() == n
    with pytest.raises(ValueError, match=f"{n - 1} usable star"):
        nn.nn_clean(X[1:], Y[1:], ids[1:], TINY, seed=1)


def test_bad_inputs_are_flagged_not_crashed_on():
    X, Y, ids, _ = synth(60)
    ivar = np.ones_like(X)
    X[:, 10] = 0.0                     # a constant pixel (still constant after median normalisation)
    X[3, 20:25] = np.nan               # NaN pixels: masked
    ivar[5, 40:44] = 0.0               # ivar = 0: masked
    ivar[8] = 0.0                      # no good pixel at all
    X[9, :80] = np.nan                 # too few good pixels (20 of 100 < nn.min_good_pix_frac)
    X[11] = -X[11]                     # non-positive median
    Y[13, 2] = np.nan                  # no label
    r = nn.nn_clean(X, Y, ids, TINY, seed=2, ivar=ivar)
    assert np.isfinite(r.row_pred).all()
    per_star, _ = r.to_tables()
    rows = {(o, it): (reason, pred) for o, it, reason, pred in zip(
        per_star["obsid"].to_pylist(), per_star["iteration"].to_pylist(),
        per_star["reason"].to_pylist(), per_star["teff_pred_k"].to_pylist())}
    for star, reason in ((8, "few_good_pixels"), (9, "few_good_pixels"), (11, "nonpositive_median"),
                         (13, "nan_label")):
        assert rows[(ids[star], 0)] == (reason, None)
        assert star not in r.row_star and not r.kept()[star]
    masked = dict(zip(per_star["obsid"].to_pylist(), per_star["n_masked_pix"].to_pylist()))
    assert masked[ids[3]] == 5 and masked[ids[5]] == 4 and masked[ids[0]] == 0
    assert nn.nn_summary(r)["n_excluded"] == 4


def test_duplicate_ids_and_misshapen_labels_are_refused():
    X, Y, ids, _ = synth(10)
    ids[4] = ids[2]
    with pytest.raises(ValueError, match="duplicate id 1002"):
        nn.nn_clean(X, Y, ids, TINY, seed=1)
    with pytest.raises(ValueError, match=r"labels must be \(stars, 3\)"):
        nn.nn_clean(X, Y[:, :2], np.arange(10), TINY, seed=1)


def test_iteration_stops_at_the_limit_or_when_too_few_stars_remain():
    X, Y, ids, _ = synth(60)
    tight = TINY.with_overrides({"nn.max_dteff_k": 1e-6, "nn.max_iterations": 3, "nn.limit_nsigma": 0})
    r = nn.nn_clean(X, Y, ids, tight, seed=1)          # every star exceeds 1e-6 K: all go at once
    assert r.n_iterations == 1 and r.stop_reason == "too_few_stars" and not r.kept().any()
    r = nn.nn_clean(X, Y, ids, TINY.with_overrides(LOOSE), seed=1)
    assert r.n_iterations == 1 and r.converged and r.kept().all()
    some = TINY.with_overrides({"nn.max_dteff_k": 20.0, "nn.max_iterations": 2})
    r = nn.nn_clean(X, Y, ids, some, seed=1)
    assert r.n_iterations <= 2 and (r.stop_reason == "converged") == r.converged


def test_a_net_less_precise_than_the_limits_removes_outliers_not_its_own_scatter():
    X, Y, ids, out = synth(300, n_out=15, label_noise_k=60.0)   # 60 K: 1.7 sigma to the 100 K limit
    clean = np.setdiff1d(np.arange(300), out)
    fixed = nn.nn_clean(X, Y, ids, SMALL.with_overrides({"nn.limit_nsigma": 0, "nn.max_iterations": 2}), seed=3)
    guarded = nn.nn_clean(X, Y, ids, SMALL.with_overrides({"nn.max_iterations": 2}), seed=3)
    assert (~fixed.kept()[clean]).sum() > 20                   # the paper's rule eats clean stars
    assert (~guarded.kept()[clean]).sum() <= 3 and not guarded.kept()[out].any()
    assert nn.nn_summary(guarded)["limited_by_scatter"] == ["teff_k"]
    assert (guarded.limits[:, 0] > 200.0).all() and (guarded.limits[:, 1:] == [0.2, 0.2]).all()
    assert nn.nn_summary(fixed)["limited_by_scatter"] == [] and (fixed.limits == [100.0, 0.2, 0.2]).all()


def test_removal_limits_rise_to_nsigma_robust_sigmas_only_above_the_paper_limits():
    resid = np.column_stack([np.linspace(-50, 50, 101), np.linspace(-0.01, 0.01, 101), np.zeros(101)])
    base = np.array([100.0, 0.2, 0.2])
    got = nn.removal_limits(resid, base, 4.0)
    sigma_t = 1.4826 * np.median(np.abs(resid[:, 0]))          # 1.4826 x 25 K
    np.testing.assert_allclose(got, [max(100.0, 4 * sigma_t), 0.2, 0.2])
    np.testing.assert_array_equal(nn.removal_limits(resid, base, 0.0), base)


def test_standardise_fold_matches_a_per_pixel_loop():
    rng = np.random.default_rng(3)
    tr = rng.normal(2.0, 0.5, (40, 7)).astype(np.float32)
    te = rng.normal(2.0, 0.5, (9, 7)).astype(np.float32)
    tr[rng.random(tr.shape) < 0.2] = np.nan
    te[0, :] = np.nan
    tr[:, 4] = 3.0                                       # constant pixel
    tr[:, 6] = np.nan                                    # masked in every training star
    a, b = nn.standardise_fold(tr, te)
    for j in range(7):
        good = [v for v in tr[:, j] if not np.isnan(v)]
        fill = float(np.median(good)) if good else 0.0
        col = np.array([fill if np.isnan(v) else v for v in tr[:, j]], dtype=np.float64)
        sd = col.std() if col.std() > 0 else 1.0
        np.testing.assert_allclose(a[:, j], (col - col.mean()) / sd, atol=1e-5)
        tcol = np.array([fill if np.isnan(v) else v for v in te[:, j]], dtype=np.float64)
        np.testing.assert_allclose(b[:, j], (tcol - col.mean()) / sd, atol=1e-5)
    assert np.isfinite(a).all() and np.isfinite(b).all() and a.dtype == np.float32


def test_nn_inputs_divide_each_spectrum_by_its_median_good_pixel():
    flux = np.array([[1.0, 2.0, 3.0, 100.0], [4.0, np.nan, 8.0, 6.0]])
    ivar = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    X, excluded, n_masked = nn.nn_inputs(flux, ivar, DEFAULT)
    np.testing.assert_allclose(X[0, :3], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(X[1, [0, 2, 3]], [4 / 6, 8 / 6, 1.0], rtol=1e-6)
    assert np.isnan(X[0, 3]) and np.isnan(X[1, 1]) and list(n_masked) == [1, 1] and list(excluded) == [None, None]


def test_tables_have_the_declared_duckdb_types(outliers_run):
    r, ids, _ = outliers_run
    per_star, per_fold = r.to_tables()
    for table, declared in ((per_star, nn.PREDICTION_COLUMNS), (per_fold, nn.FOLD_COLUMNS)):
        con = duckdb.connect()
        con.register("t", table)
        got = {name: typ.lower() for name, typ, *_ in con.execute("describe select * from t").fetchall()}
        assert got == declared
    assert per_star.num_rows == r.row_star.size and per_fold.num_rows == len(r.folds)
    assert per_star.column("removed").to_pylist().count(True) == nn.nn_summary(r)["n_removed"]


def test_robust_sigma_matches_scipy():
    from scipy.stats import median_abs_deviation

    x = np.random.default_rng(1).standard_t(3, 501)
    assert nn.robust_sigma(x) == pytest.approx(median_abs_deviation(x, scale="normal"), rel=1e-4)
    assert np.isnan(nn.robust_sigma(np.array([])))


def test_config_declares_every_key_the_stage_reads():
    flat = DEFAULT.flat()
    assert all(k in flat for k in nn.NN_PARAMS)
    assert set(nn.NN_PARAMS) == {k for k in flat if k.startswith("nn.")}


# --------------------------------------------------------------------------- the models on literal rows

def _kept_warehouse(X, Y, ids, ivar=None, drop_red=()):
    """An in-memory warehouse holding cln_kept (labels) and spc_red_grid (spectra) for the NN models."""
    import pyarrow as pa

    from mgold.pipeline.runner import ensure_meta

    con = duckdb.connect()
    ensure_meta(con)
    n, p = X.shape
    kept = pa.table({"bin_id": [f"b{i % 7}" for i in range(n)], "obsid": ids, "source_id": ids + 1,
                     "class": ["dwarf"] * n, "teff_k": Y[:, 0], "logg_dex": Y[:, 1], "mh_dex": Y[:, 2],
                     "snr_i": np.full(n, 50.0), "label_source": ["aspcap"] * n, "kept_by": ["dbscan"] * n})
    iv = np.ones_like(X) if ivar is None else ivar
    red = [i for i in range(n) if ids[i] not in set(drop_red)]
    spc = pa.table({"obsid": ids[red],
                    "flux": pa.FixedSizeListArray.from_arrays(pa.array(X[red].ravel()), p),
                    "ivar": pa.FixedSizeListArray.from_arrays(pa.array(iv[red].astype(np.float32).ravel()), p)})
    con.register("k", kept)
    con.register("s", spc)
    con.execute("create table cln_kept as select * from k; create table spc_red_grid as select * from s")
    return con


NN_MODELS = ["cln_nn_folds", "cln_nn_predictions", "cln_nn_kept"]


def test_the_nn_models_hold_exactly_what_nn_clean_decided():
    from mgold.pipeline.runner import build_models

    X, Y, ids, out = synth(80, n_out=4)
    Y[5, 1] = np.nan                                          # flagged, not a crash
    cfg = TINY.with_overrides({"nn.seed": 4})
    con = _kept_warehouse(X, Y, ids, drop_red=[ids[9]])       # star 9 has no red-grid spectrum
    build_models(con, NN_MODELS, cfg)
    X9 = X.copy()
    X9[9] = np.nan
    want = nn.nn_clean(X9, Y, ids, cfg, seed=4, ivar=np.ones_like(X))
    per_star, _ = want.to_tables()
    got = con.sql("select * from cln_nn_predictions order by iteration, obsid").to_arrow_table()
    assert got.sort_by([("iteration", "ascending"), ("obsid", "ascending")]).equals(
        per_star.sort_by([("iteration", "ascending"), ("obsid", "ascending")]))
    types = {n: t.lower() for n, t, *_ in con.execute("describe cln_nn_predictions").fetchall()}
    assert types == nn.PREDICTION_COLUMNS
    kept = [r[0] for r in con.execute("select obsid from cln_nn_kept order by obsid").fetchall()]
    assert kept == ids[want.kept()].tolist() and ids[5] not in kept and ids[9] not in kept
    why = dict(con.execute("select obsid, reason from cln_nn_predictions where fold is null").fetchall())
    assert why == {int(ids[5]): "nan_label", int(ids[9]): "few_good_pixels"}
    folds = con.execute("select iteration, fold, n_test, len(obsids), n_epochs, len(loss_curve) "
                        "from cln_nn_folds where fold >= 0").fetchall()
    assert len(folds) == len(want.folds) and all(n == m and e == c for _, _, n, m, e, c in folds)
    back = nn.NNResult.from_tables(got, con.sql("select * from cln_nn_folds where fold >= 0").to_arrow_table(),
                                   want.base_limits, want.converged, want.stop_reason)
    assert nn.nn_summary(back) == nn.nn_summary(want)                  # the report reads the warehouse back


def test_nn_predictions_are_identical_for_the_same_seed_and_differ_for_another():
    from mgold.pipeline.runner import build_models

    X, Y, ids, _ = synth(60, n_out=2)

    def predictions(seed):
        con = _kept_warehouse(X, Y, ids)
        build_models(con, NN_MODELS, TINY.with_overrides({"nn.seed": seed}))
        return con.execute("select * from cln_nn_predictions order by iteration, obsid").fetchall()

    assert predictions(3) == predictions(3)
    assert predictions(3) != predictions(4)


def test_an_empty_kept_sample_fails_the_nn_stage_in_one_line_and_keeps_the_last_tables():
    from mgold.pipeline.runner import Project, run

    X, Y, ids, _ = synth(40)
    con = _kept_warehouse(X, Y, ids)
    project = Project.load()
    chosen = "cln_nn_folds+"
    res = {r.name: r for r in run(con, project, TINY, select=chosen)}
    assert res["cln_nn_kept"].status == "built"
    before = con.execute("select * from cln_nn_kept order by obsid").fetchall()
    con.execute("delete from cln_kept")                     # an empty bin set upstream
    res = {r.name: r for r in run(con, project, TINY, select=chosen, full_refresh=True)}
    assert res["cln_nn_folds"].status == "failed"
    assert "0 usable star(s) of 0" in res["cln_nn_folds"].error and "\n" not in res["cln_nn_folds"].error
    assert res["cln_nn_kept"].status == "skipped"
    assert con.execute("select * from cln_nn_kept order by obsid").fetchall() == before


def test_a_result_read_back_from_its_tables_gives_the_same_summary(outliers_run):
    r, _, _ = outliers_run
    per_star, per_fold = r.to_tables()
    back = nn.NNResult.from_tables(per_star, per_fold, r.base_limits, r.converged, r.stop_reason)
    assert nn.nn_summary(back) == nn.nn_summary(r)
    for a, b in zip(back.to_tables(), r.to_tables()):
        assert a.equals(b)


def test_a_sample_too_small_for_the_folds_passes_unjudged_and_flagged():
    from mgold.pipeline.runner import build_models

    X, Y, ids, _ = synth(10)
    Y[2, 0] = np.nan
    con = _kept_warehouse(X, Y, ids)
    build_models(con, NN_MODELS, TINY)                      # 9 usable stars < 17 for 3 folds
    why = dict(con.execute("select obsid, reason from cln_nn_predictions").fetchall())
    assert why[int(ids[2])] == "nan_label" and {why[int(o)] for o in ids if o != ids[2]} == {nn.REASON_TOO_FEW}
    kept = [o for (o,) in con.execute("select obsid from cln_nn_kept order by obsid").fetchall()]
    assert kept == [int(o) for o in ids if o != ids[2]]
    assert con.execute("select stop_reason, n_iterations from cln_nn_folds").fetchall() == [("too_few_stars", 0)]
