"""cln_bins / cln_dbscan / cln_inspection_queue / cln_kept on literal rows (in-memory DuckDB)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.cluster import DBSCAN

from mgold.pipeline import inspect
from mgold.pipeline.config import DEFAULT
from mgold.pipeline.runner import bind_config, build_models, compile_model_sql, load_models
from mgold.pipeline.stages import clean

from cleanrows import clean_layer

NPIX = 200
LOGLAM0 = 3.83   # 6761-7083 AA: crosses the 6860-6935 AA telluric window
MODELS = load_models()
CFG = DEFAULT.with_overrides({"clean.dist_ref_pix": NPIX})   # plain Euclidean on this 200-px grid


def _spectra(rng, n: int, outlier: bool = False, scale: float = 50.0) -> np.ndarray:
    base = 1 + 0.3 * np.sin(np.linspace(0, 12, NPIX))
    f = base[None, :] * (1 + 0.005 * rng.standard_normal((n, NPIX)))
    if outlier:
        f *= 1 + 0.25 * np.sin(np.linspace(0, 60, NPIX))   # other absorption features: another object
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
    c[1] *= 1 + 0.25 * np.sin(np.linspace(0, 45, NPIX))
    c[2] *= 1 + 0.25 * np.sin(np.linspace(0, 75, NPIX))
    add(3710.0, c, [30, 20, 10])
    return rows, np.asarray(flux, dtype=np.float32)


@pytest.fixture()
def con():
    rng = np.random.default_rng(5)
    rows, flux = _stars(rng)
    t = pa.Table.from_pylist(rows).rename_columns(
        ["obsid", "source_id", "class", "teff_k", "logg_dex", "mh_dex", "snr_i", "label_source"])
    ivar = np.full_like(flux, 1.0 / (0.005 * 50.0) ** 2)   # the noise _spectra draws
    ivar[0, :5] = 0.0                                   # a masked pixel must not make a spectrum an outlier
    return clean_layer(duckdb.connect(), t, flux, ivar, CFG, LOGLAM0)


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
                       "from cln_dbscan join cln_keep_rank using (obsid, bin_id) "
                       "where bin_id like 't3500%' order by obsid").fetchall()
    assert {r[4] for r in rows} == {3}                  # 12 spectra // 4
    outliers = {110, 111}
    assert all(r[1] == -1 for r in rows if r[0] in outliers)
    assert all(r[2] for r in rows if r[0] not in outliers)
    kept = sorted((r[5] for r in rows if r[3]), reverse=True)
    assert kept == [90, 80, 70, 60, 50, 40, 30]         # the 7 highest-S/N core members


def test_labels_match_sklearn_on_the_same_distances(con):
    got = con.execute("select s.flux, s.ivar, d.cluster_label, d.is_core, d.nn_dist from cln_bins b "
                      "join spc_cluster_grid s using (obsid) join cln_dbscan d using (obsid) "
                      "where b.bin_id like 't3500%' order by b.snr_rank").fetchall()
    flux, ivar = (np.asarray([r[k] for r in got]) for k in (0, 1))
    D = clean.bin_distances(flux, ivar, CFG, LOGLAM0 + 1e-4 * np.arange(NPIX), np.full(len(got), 10.0))
    db = DBSCAN(eps=CFG.clean.dbscan_eps, min_samples=3, metric="precomputed").fit(D)
    assert list(db.labels_) == [r[2] for r in got]
    core = np.zeros(len(got), bool)
    core[db.core_sample_indices_] = True
    assert list(core) == [r[3] for r in got]
    np.testing.assert_allclose([r[4] for r in got], np.sort(D, axis=1)[:, 1])


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
    build_models(con, ["cln_decisions", "cln_kept", "cln_inspection_queue"], CFG)
    kept = dict(con.execute("select obsid, kept_by from cln_kept").fetchall())
    assert kept[112] == "inspection" and 101 not in kept
    assert set(kept) == (kept_before - {101}) | {112}
    assert con.execute("select status from cln_inspection_queue where bin_id = 't3600_g4.70_m0.00'").fetchone()[0] \
        == "decided"


def test_decide_refuses_an_obsid_of_another_bin(con):
    with pytest.raises(inspect.InspectError, match="obsid 100 is not in bin t3600"):
        inspect.decide(con, "t3600_g4.70_m0.00", keep=[100])
    with pytest.raises(inspect.InspectError, match="no bin"):
        inspect.decide(con, "t9999_g0.00_m0.00", keep=[100])


def test_min_pts_rule_spans_2_to_5():
    assert list(clean.min_pts(np.array([1, 7, 8, 12, 16, 20, 150]), DEFAULT)) == [2, 2, 2, 3, 4, 5, 5]


def test_unusable_spectra_are_noise_not_errors():
    f = np.ones((3, 50))
    iv = np.full((3, 50), 1e6)
    iv[2, :40] = 0                                      # 20% good pixels < min_good_pix_frac
    y, w = clean.prepare_bin(f, iv, DEFAULT)
    assert (w[:2] > 0).all() and (w[2] == 0).all() and np.isfinite(y).all()
    D = clean.bin_distances(f, iv, DEFAULT)
    assert np.isfinite(D[:2, :2]).all() and np.isinf(D[2]).all() and np.isinf(D[:, 2]).all()


QUIET = 1e10        # ivar of a noise-free test spectrum: distances are then the plain (scaled) Euclidean


def test_telluric_pixels_do_not_count_in_distances():
    loglam = LOGLAM0 + 1e-4 * np.arange(NPIX)
    tell = clean.telluric_mask(loglam, DEFAULT)
    assert 0 < tell.sum() < NPIX
    f = np.ones((2, NPIX)) + 0.1 * np.sin(np.arange(NPIX))[None, :]
    f[1, tell] *= 0.5                                    # deep, variable telluric absorption
    iv = np.full_like(f, QUIET)
    assert clean.bin_distances(f, iv, CFG, loglam)[0, 1] < 1e-3
    assert clean.bin_distances(f, iv, CFG, None)[0, 1] > 1


def test_sky_lines_are_masked_where_the_rv_puts_them_in_the_rest_frame():
    loglam = np.log10(5500.0) + 1e-4 * np.arange(400)     # 5500-6000 AA: [O I] 5578.9, Na D
    rv = np.array([0.0, 300.0])
    m = clean.sky_mask(loglam, rv, DEFAULT)
    wave = 10 ** loglam
    hw = DEFAULT.clean.sky_halfwidth_aa
    for i, v in enumerate(rv):
        rest = 5578.9 / (1 + v / clean.C_KMS)
        assert m[i, np.abs(wave - rest) < hw - 0.5].all()
        assert not m[i, (np.abs(wave - rest) > hw + 2) & (wave < 5800)].any()
    assert clean.sky_mask(loglam, None, DEFAULT) is None
    assert clean.sky_mask(loglam, rv, DEFAULT.with_overrides({"clean.sky_halfwidth_aa": 0.0})) is None


def test_bin_recalibration_removes_smooth_shape_but_not_a_broken_segment():
    x = np.linspace(-1, 1, NPIX)
    base = 1 + 0.3 * np.sin(np.linspace(0, 30, NPIX))
    f = np.vstack([base * (1 + 0.2 * x ** 3), base * (1 - 0.15 * x + 0.1 * x ** 2), base.copy(), base.copy()])
    f[3, 80:130] *= 0.1
    iv = np.full_like(f, QUIET)
    d = clean.bin_distances(f, iv, CFG)
    assert d[0, 1] < 0.1 and d[0, 2] < 0.1               # calibration shapes are gone
    assert d[3, 2] > 3                                   # the collapsed segment is not
    off = clean.bin_distances(f, iv, CFG.with_overrides({"clean.bin_recal_order": 0}))
    assert off[0, 2] > 1


def test_each_arm_gets_its_own_polynomial_so_a_join_step_is_removed():
    loglam = np.log10(5000.0) + 1e-4 * np.arange(3000)  # 5000-9965 AA, join at 5800
    wave = 10 ** loglam
    base = 1 + 0.3 * np.sin(np.linspace(0, 90, wave.size))
    step = 1 + 0.04 * (wave > 5800)                       # blue/red arm flux mismatch
    f = np.vstack([base, base * step])
    iv = np.full_like(f, QUIET)
    cfg = DEFAULT.with_overrides({"clean.sky_halfwidth_aa": 0.0, "clean.telluric_windows_aa": []})
    assert clean.bin_distances(f, iv, cfg, loglam)[0, 1] < 0.05
    assert clean.bin_distances(f, iv, cfg.with_overrides({"clean.bin_recal_split_aa": 0.0}), loglam)[0, 1] > 0.3


def test_distance_measures_the_stars_not_the_photon_noise():
    """Clean same-bin pairs at S/N 20 sit ~eps apart from noise alone in plain Euclidean distance;
    the debiased distance is near their noise-free distance, a broken segment or a wrong RV stays far."""
    rng = np.random.default_rng(7)
    n = 3000
    loglam = np.log10(6000.0) + 1e-4 * np.arange(n)
    wave = 10 ** loglam
    lines = sum(0.4 * np.exp(-0.5 * ((wave - c) / 3.0) ** 2) for c in np.linspace(6050, 11900, 120))
    star = 1 - lines
    shifted = 1 - sum(0.4 * np.exp(-0.5 * ((wave - c * (1 + 150 / clean.C_KMS)) / 3.0) ** 2)
                      for c in np.linspace(6050, 11900, 120))    # 150 km/s wrong RV: ~2 px
    cfg = DEFAULT.with_overrides({"clean.telluric_windows_aa": [], "clean.sky_halfwidth_aa": 0.0})
    truth = np.vstack([star, star, star, shifted])
    truth[2, 1000:1300] *= 0.15                                  # broken segment
    sig = 1 / 20.0
    f = truth + sig * rng.standard_normal(truth.shape)
    iv = np.full_like(f, 1 / sig ** 2)
    D = clean.bin_distances(f, iv, cfg, loglam, np.zeros(4))
    y, w = clean.prepare_bin(f, iv, cfg, loglam, np.zeros(4))
    n_ref = clean.reference_n_pix(cfg)
    plain = np.sqrt(((y[0] - y[1]) ** 2).sum() * n_ref / n)
    assert plain > 3 * cfg.clean.dbscan_eps                      # noise alone: eps = 1 could never join them
    assert D[0, 1] < 0.5 * cfg.clean.dbscan_eps
    assert D[0, 2] > 5 and D[0, 3] > 3


@pytest.fixture(scope="module")
def tiny(tiny_build):
    """The session's tiny build: a failure of the build fails these tests (never a skip)."""
    return tiny_build.warehouse


@pytest.mark.slow
def test_cleaning_accuracy_on_tiny_within_scaled_tolerances(tiny):
    from mgold.pipeline.build import preset_config
    from mgold.pipeline.evaluate.clean import evaluate, format_report

    cfg = preset_config("tiny")
    con = duckdb.connect(str(tiny), read_only=True)
    try:
        m = evaluate(con, cfg)
    finally:
        con.close()
    print(format_report(m))

    def floor(p, n):                                   # target minus two binomial sigmas at this n
        return p - 2 * np.sqrt(p * (1 - p) / n)

    # issue 5's targets at tiny's size: defect recall >= 0.9, clean eligible spectra kept >= 0.8
    assert m["n_defective"] > 0 and m["defect_recall"] >= floor(0.9, m["n_defective"])
    for kind, n in m["n_by_defect"].items():
        if n:
            assert m["recall_by_defect"][kind] >= floor(0.9, n), kind
    assert m["n_eligible_clean"] > 0
    assert m["kept_fraction_eligible"] >= floor(0.8, m["n_eligible_clean"])
    if m["n_eligible_label_accurate"]:
        assert m["kept_fraction_label_accurate"] >= floor(0.8, m["n_eligible_label_accurate"])
    assert m["accepted_purity"] >= 0.9
    assert m["n_kept"] > 0 and m["kept_defective_fraction"] <= 0.1
    # the rest frame is sub-pixel right (§2.3.1): a sign or scale error in the shift would leave
    # ~2 x rv (tens of km/s) in the spectra; what the cross-correlation still sees is a fraction of a pixel
    px_kms = 299792.458 * np.log(10) * cfg.spectra.dloglam
    assert m["ccf_n"] > 0.5 * m["n_spectra"]
    assert abs(m["ccf_minus_truth_median_kms"]) < 0.1 * px_kms
    assert m["ccf_minus_truth_robust_sigma_kms"] < 0.25 * px_kms
    assert m["rv_residual_robust_sigma_kms"] < 2 * cfg.synth.rv_error_kms
