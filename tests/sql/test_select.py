"""sel_* models on literal rows: quality cuts, extinction, the CMD fit and box."""

import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from sqltest import build, connect, empty_landing, landing, rows, table

BINS = {"class": "VARCHAR", "step": "INTEGER", "bp_rp0_lo_mag": "DOUBLE", "mean_bp_rp0_mag": "DOUBLE",
        "mean_abs_g_mag": "DOUBLE", "sigma_abs_g_mag": "DOUBLE", "n_stars": "BIGINT"}


def test_sel_stars_applies_snr_quality_variable_cuts_and_dereddens():
    cfg = DEFAULT
    con = connect(cfg)
    star = {"class": "STAR", "subclass": "dM2", "mjd": 57388}
    landing(con, "lamost_headers", [
        {"obsid": 10, "ra_deg": 10.0, "dec_deg": 0.0, "snr_i": 12.0, **star},
        {"obsid": 11, "ra_deg": 10.0, "dec_deg": 0.0, "snr_i": 30.0, **star},     # best visit of star 1
        {"obsid": 20, "ra_deg": 20.0, "dec_deg": 0.0, "snr_i": 8.0, **star},      # below S/N_i 10
        {"obsid": 30, "ra_deg": 30.0, "dec_deg": 0.0, "snr_i": 50.0, **star},     # ruwe too high
        {"obsid": 40, "ra_deg": 40.0, "dec_deg": 0.0, "snr_i": 50.0, **star},     # variable
    ])
    landing(con, "lamost_catalog", [])
    gaia = {"dec_deg": 0.0, "g_mag": 14.0, "bp_mag": 15.5, "rp_mag": 13.0, "ruwe": 1.0}
    landing(con, "gaia", [{"source_id": s, "ra_deg": ra, **gaia} for s, ra in [(1, 10.0), (2, 20.0), (4, 40.0)]]
            + [{"source_id": 3, "ra_deg": 30.0, **gaia, "ruwe": 3.0}])
    landing(con, "bailer_jones", [{"source_id": s, "r_med_photogeo_pc": 100.0} for s in (1, 2, 3, 4)])
    landing(con, "dust", [{"source_id": 1, "av_mag": 1.0}])
    landing(con, "variables", [{"source_id": 4, "survey": "ZTF"}])
    empty_landing(con, "aspcap")
    build(con, "stg_lamost", "stg_gaia", "stg_aspcap", "stg_variables", "stg_bailer_jones", "stg_dust",
          "xm_position_requests", "xm_gaia_pairs", "xm_lamost_gaia", "xm_variables", "sel_stars")
    got = {r["source_id"]: r for r in rows(con, "select * from sel_stars")}
    assert got[1]["obsid"] == 11 and got[1]["n_spectra"] == 2
    s = cfg.select
    assert got[1]["abs_g_mag"] == pytest.approx(14.0 - 5 * np.log10(100.0) + 5 - s.a_g_per_av)
    assert got[1]["bp_rp0_mag"] == pytest.approx(2.5 - (s.a_bp_per_av - s.a_rp_per_av))
    assert [got[i]["is_candidate"] for i in (1, 2, 3, 4)] == [True, False, False, False]
    assert (got[2]["passes_snr"], got[3]["passes_photometry"], got[4]["is_variable"]) == (False, False, True)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_cmd_fit_recovers_polynomial_of_any_configured_order(order):
    rng = np.random.default_rng(order)
    coef = rng.normal(0, 1, order + 1)                 # c0..c_order, random each run
    x = np.arange(1.5, 4.5, 0.5)
    y = sum(c * x ** k for k, c in enumerate(coef))
    sig = rng.uniform(0.3, 1.0, len(x))
    n = rng.integers(5, 500, len(x))
    con = connect(DEFAULT.with_overrides({"select.giant_fit_order": order}))
    table(con, "sel_cmd_bins", BINS, [
        {"class": "giant", "step": i, "mean_bp_rp0_mag": float(a), "mean_abs_g_mag": float(b),
         "sigma_abs_g_mag": float(c), "n_stars": int(k)} for i, (a, b, c, k) in enumerate(zip(x, y, sig, n))])
    table(con, "sel_cmd_eligible", {"source_id": "BIGINT", "class": "VARCHAR", "bp_rp0_mag": "DOUBLE",
                                    "abs_g_mag": "DOUBLE"}, [])   # no stars: the curve alone
    build(con, "sel_cmd_fit", "sel_cmd_curve")
    fit = rows(con, "select * from sel_cmd_fit")[0]
    got = [fit["c0"], fit["c1"], fit["c2"], fit["c3"]]
    assert got == pytest.approx(list(coef) + [0.0] * (3 - order), abs=1e-8)
    # the mean 1-sigma as the stars see it: a sparse edge step must not narrow the box like a full one
    assert fit["width_mag"] == pytest.approx(np.average(sig, weights=n))
    curve = rows(con, "select * from sel_cmd_curve order by bp_rp0_mag")
    assert len(curve) == 101 and curve[0]["bp_rp0_mag"] == pytest.approx(1.5)
    assert curve[-1]["abs_g_lower_mag"] - curve[-1]["abs_g_fit_mag"] == pytest.approx(np.average(sig, weights=n))


def test_cmd_fit_of_noisy_line_matches_numpy_polyfit():
    rng = np.random.default_rng(7)
    x = np.arange(0.25, 4.0, 0.5)
    y = 2.0 * x + 3.0 + rng.normal(0, 0.3, len(x))
    con = connect()
    table(con, "sel_cmd_bins", BINS, [
        {"class": "dwarf", "step": i, "mean_bp_rp0_mag": float(a), "mean_abs_g_mag": float(b),
         "sigma_abs_g_mag": 0.8, "n_stars": 10} for i, (a, b) in enumerate(zip(x, y))])
    build(con, "sel_cmd_fit")
    fit = rows(con, "select * from sel_cmd_fit")[0]
    c1, c0 = np.polyfit(x, y, 1)
    assert (fit["c0"], fit["c1"], fit["c2"], fit["c3"]) == pytest.approx((c0, c1, 0.0, 0.0), abs=1e-9)


def test_cmd_bins_and_box_keep_stars_within_one_mean_sigma_of_the_line():
    con = connect()
    stars = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "lum_class_hint": "VARCHAR",
             "dist_pc": "DOUBLE", "abs_g_mag": "DOUBLE", "bp_rp0_mag": "DOUBLE", "is_candidate": "BOOLEAN"}
    rng = np.random.default_rng(3)
    n = 400
    x = rng.uniform(1.5, 3.5, n)
    resid = rng.normal(0, 0.5, n)
    rows_in = [{"source_id": i, "obsid": i, "snr_i": 20.0, "dist_pc": 300.0, "lum_class_hint": "dwarf", "bp_rp0_mag": float(a),
                "abs_g_mag": float(2.0 * a + 4.0 + r), "is_candidate": True} for i, (a, r) in enumerate(zip(x, resid))]
    table(con, "sel_stars", stars, rows_in)
    build(con, "sel_cmd_bins", "sel_cmd_fit", "sel_primary")
    fit = rows(con, "select * from sel_cmd_fit where class = 'dwarf'")[0]
    assert fit["c1"] == pytest.approx(2.0, abs=0.15) and fit["width_mag"] == pytest.approx(0.5, abs=0.08)
    kept = rows(con, "select * from sel_primary")
    assert all(r["class"] == "dwarf" and abs(r["cmd_resid_mag"]) <= fit["width_mag"] for r in kept)
    line = fit["c0"] + fit["c1"] * x
    inside = (np.abs(2.0 * x + 4.0 + resid - line) <= fit["width_mag"]) & (2.0 * x + 4.0 + resid >= 7.0) \
        & (2.0 * x + 4.0 + resid <= 12.0)
    assert len(kept) == int(inside.sum())


def test_cmd_bins_ignore_stars_with_a_wrong_subclass_hint():
    con = connect()
    stars = {"source_id": "BIGINT", "lum_class_hint": "VARCHAR", "dist_pc": "DOUBLE", "abs_g_mag": "DOUBLE",
             "bp_rp0_mag": "DOUBLE", "is_candidate": "BOOLEAN"}
    rng = np.random.default_rng(9)
    giants = [{"abs_g_mag": float(rng.normal(-1.5, 0.5)), "bp_rp0_mag": float(rng.uniform(1.3, 1.7))}
              for _ in range(200)]
    dwarfs_called_giants = [{"abs_g_mag": float(rng.normal(8.5, 0.5)), "bp_rp0_mag": float(rng.uniform(1.3, 1.7))}
                            for _ in range(40)]
    table(con, "sel_stars", stars, [{"source_id": i, "lum_class_hint": "giant", "dist_pc": 500.0,
                                     "is_candidate": True, **r} for i, r in enumerate(giants + dwarfs_called_giants)])
    build(con, "sel_cmd_bins")
    (n, mean, sigma), = con.execute("select n_stars, mean_abs_g_mag, sigma_abs_g_mag from sel_cmd_bins").fetchall()
    assert n <= 200 and abs(mean + 1.5) < 0.15 and abs(sigma - 0.5) < 0.1


def test_cmd_bins_follow_giants_where_mis_hinted_dwarfs_outnumber_them_in_a_colour_step():
    # red steps hold few true giants (the parallax cut), so dwarfs LAMOST called gM can be most of a step
    con = connect()
    stars = {"source_id": "BIGINT", "lum_class_hint": "VARCHAR", "dist_pc": "DOUBLE", "abs_g_mag": "DOUBLE",
             "bp_rp0_mag": "DOUBLE", "is_candidate": "BOOLEAN"}
    rng = np.random.default_rng(12)

    def group(n, hint, mg, lo, hi):
        return [{"lum_class_hint": hint, "abs_g_mag": float(rng.normal(mg, 0.4)),
                 "bp_rp0_mag": float(rng.uniform(lo, hi))} for _ in range(n)]

    rows_in = (group(200, "giant", -1.5, 1.3, 1.7) + group(20, "giant", 8.0, 1.3, 1.7)       # step 0: giants
               + group(12, "giant", -1.8, 2.3, 2.7) + group(40, "giant", 10.0, 2.3, 2.7)     # step 2: dwarfs win
               + group(300, "dwarf", 9.0, 1.6, 2.9))
    table(con, "sel_stars", stars, [{"source_id": i, "dist_pc": 500.0, "is_candidate": True, **r}
                                    for i, r in enumerate(rows_in)])
    build(con, "sel_cmd_bins")
    giant = {r["step"]: r for r in rows(con, "select * from sel_cmd_bins where class = 'giant'")}
    assert sorted(giant) == [0, 2]
    assert giant[2]["n_stars"] == 12 and abs(giant[2]["mean_abs_g_mag"] + 1.8) < 0.4
    assert giant[0]["n_stars"] <= 200 and abs(giant[0]["mean_abs_g_mag"] + 1.5) < 0.15
    dwarf_n = con.execute("select sum(n_stars) from sel_cmd_bins where class = 'dwarf'").fetchone()[0]
    assert dwarf_n > 290                                  # the dwarfs' own statistics are untouched


@pytest.mark.parametrize("n_steps", [1, 2, 3])
def test_cmd_fit_with_fewer_steps_than_the_order_needs_passes_through_the_steps(n_steps):
    # tiny universes give the giants two or three colour steps for a third-order fit
    rng = np.random.default_rng(30 + n_steps)
    x = 1.5 + 0.4 * np.arange(n_steps) + rng.uniform(0, 0.05, n_steps)
    y = rng.normal(-1.5, 0.5, n_steps)
    con = connect()
    table(con, "sel_cmd_bins", BINS, [
        {"class": "giant", "step": i, "mean_bp_rp0_mag": float(a), "mean_abs_g_mag": float(b),
         "sigma_abs_g_mag": 0.5, "n_stars": 10} for i, (a, b) in enumerate(zip(x, y))])
    build(con, "sel_cmd_fit")
    f = rows(con, "select * from sel_cmd_fit")[0]
    fitted = f["c0"] + f["c1"] * x + f["c2"] * x ** 2 + f["c3"] * x ** 3
    assert fitted == pytest.approx(y, abs=1e-6)
    assert f["c3"] == 0.0 and (n_steps == 3 or f["c2"] == 0.0) and max(map(abs, (f["c0"], f["c1"]))) < 1e3
