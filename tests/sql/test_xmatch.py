"""xm_* models: the zones match equals astropy's search_around_sky; counterpart choice and flags."""

import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from sqltest import build, connect, empty_landing, landing, rows
from xmatch_reference import pair_set

XM = ("stg_lamost", "stg_gaia", "stg_aspcap", "stg_variables", "xm_position_requests", "xm_gaia_pairs",
      "xm_lamost_gaia")
EPOCH_MJD_2020 = 58849  # 2020-01-01 -> dt = 4 yr from the Gaia epoch


def random_sky(rng, n_req, n_gaia, radius_deg):
    """Requests anywhere incl. the RA seam and both poles; Gaia sources scattered around them plus a field."""
    ra = np.concatenate([rng.uniform(0, 360, n_req - 40), rng.uniform(359.99, 360, 10) % 360,
                         rng.uniform(0, 0.01, 10), rng.uniform(0, 360, 20)])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, n_req - 40))), rng.uniform(-5, 5, 20),
                          rng.choice([-1, 1], 20) * rng.uniform(89.99, 90, 20)])
    k = rng.integers(0, n_req, n_gaia)
    g_dec = np.clip(dec[k] + rng.normal(0, radius_deg, n_gaia), -90, 90)
    g_ra = (ra[k] + rng.normal(0, radius_deg, n_gaia) / np.maximum(np.cos(np.radians(g_dec)), 1e-3)) % 360
    return ra, dec, g_ra, g_dec


def load(con, ra, dec, g_ra, g_dec, pmra=None, pmdec=None, mjd=EPOCH_MJD_2020):
    landing(con, "lamost_headers", [
        {"obsid": i, "ra_deg": float(a), "dec_deg": float(d), "class": "STAR", "subclass": "dM1", "mjd": mjd}
        for i, (a, d) in enumerate(zip(ra, dec))])
    landing(con, "gaia", [
        {"source_id": j, "ra_deg": float(a), "dec_deg": float(d),
         "pmra_masyr": None if pmra is None else float(pmra[j]),
         "pmdec_masyr": None if pmdec is None else float(pmdec[j]), "g_mag": 15.0}
        for j, (a, d) in enumerate(zip(g_ra, g_dec))])
    empty_landing(con, "lamost_catalog", "aspcap", "variables")
    build(con, *XM)


def sql_pairs(con):
    return set(con.execute("select request_key::bigint, source_id from xm_gaia_pairs "
                           "where request_kind = 'lamost'").fetchall())


@pytest.mark.parametrize("seed", [1, 2])
def test_zones_pairs_equal_astropy_after_epoch_propagation(seed):
    rng = np.random.default_rng(seed)
    radius = DEFAULT.xmatch.radius_arcsec
    ra, dec, g_ra, g_dec = random_sky(rng, 400, 1600, radius / 3600)
    pmra, pmdec = rng.normal(0, 150, len(g_ra)), rng.normal(0, 150, len(g_ra))
    con = connect()
    load(con, ra, dec, g_ra, g_dec, pmra, pmdec)
    dt = float(con.execute("select any_value(epoch_yr) - 2016.0 from stg_lamost").fetchone()[0])
    expected = pair_set(ra, dec, g_ra, g_dec, radius, pmra, pmdec, dt)
    got = sql_pairs(con)
    assert len(expected) > 200
    assert got == expected
    # propagation matters here: without it the pair set differs
    assert pair_set(ra, dec, g_ra, g_dec, radius) != expected


def test_zones_handle_ra_seam_and_pole_explicitly():
    con = connect()
    r = 1.0 / 3600
    ra = [359.9999, 0.0001, 123.0, 0.0]
    dec = [0.0, 0.0, 89.99995, -90.0]
    g_ra = [0.00002, 359.99995, 303.0, 180.0]     # across the seam; across the north pole; at the south pole
    g_dec = [0.0, 0.0, 89.99995, -89.9999]
    load(con, ra, dec, g_ra, g_dec)
    expected = pair_set(ra, dec, g_ra, g_dec, DEFAULT.xmatch.radius_arcsec)
    assert {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (3, 3)} <= expected or r
    assert sql_pairs(con) == expected
    assert (0, 0) in expected and (2, 2) in expected and (3, 3) in expected


def test_lamost_gaia_prefers_id_then_nearest_and_flags_ambiguous_and_unmatched():
    con = connect()
    a = 1.0 / 3600
    landing(con, "lamost_headers", [
        {"obsid": 1, "ra_deg": 10.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1"},
        {"obsid": 2, "ra_deg": 20.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1"},
        {"obsid": 3, "ra_deg": 30.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1"},
        {"obsid": 4, "ra_deg": 40.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1"},
        {"obsid": 5, "ra_deg": 50.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1"},
    ])
    landing(con, "lamost_catalog", [{"obsid": 1, "gaia_source_id": 101}, {"obsid": 5, "gaia_source_id": 999}])
    landing(con, "gaia", [
        {"source_id": 101, "ra_deg": 10.0 + 1.2 * a, "dec_deg": 0.0, "g_mag": 14.0},   # id wins over nearer 102
        {"source_id": 102, "ra_deg": 10.0, "dec_deg": 0.1 * a, "g_mag": 14.0},
        {"source_id": 201, "ra_deg": 20.0, "dec_deg": 0.5 * a, "g_mag": 14.0},     # nearest; 202 similar G
        {"source_id": 202, "ra_deg": 20.0, "dec_deg": 1.0 * a, "g_mag": 14.5},
        {"source_id": 301, "ra_deg": 30.0, "dec_deg": 0.5 * a, "g_mag": 14.0},     # 302 far fainter: not ambiguous
        {"source_id": 302, "ra_deg": 30.0, "dec_deg": 1.0 * a, "g_mag": 19.0},
        {"source_id": 401, "ra_deg": 40.0, "dec_deg": 5.0 * a, "g_mag": 14.0},     # beyond the radius
        {"source_id": 501, "ra_deg": 50.0, "dec_deg": 0.2 * a, "g_mag": 14.0},     # id 999 unknown -> position
    ])
    empty_landing(con, "aspcap", "variables")
    build(con, *XM)
    got = {r["obsid"]: r for r in rows(con, "select * from xm_lamost_gaia")}
    assert (got[1]["source_id"], got[1]["match_method"]) == (101, "gaia_id")
    assert (got[2]["source_id"], got[2]["is_ambiguous"], got[2]["n_candidates"]) == (201, True, 2)
    assert (got[3]["source_id"], got[3]["is_ambiguous"]) == (301, False)
    assert (got[4]["source_id"], got[4]["match_method"], got[4]["is_matched"]) == (None, "none", False)
    assert (got[5]["source_id"], got[5]["match_method"]) == (501, "position")
    assert abs(got[5]["sep_arcsec"] - 0.2) < 1e-6


def test_label_catalogs_reach_gaia_through_obsid_and_keep_the_best_visit():
    con = connect()
    landing(con, "lamost_headers", [
        {"obsid": 1, "ra_deg": 10.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1", "snr_i": 15.0},
        {"obsid": 2, "ra_deg": 10.0, "dec_deg": 0.0, "class": "STAR", "subclass": "dM1", "snr_i": 40.0},
    ])
    landing(con, "lamost_catalog", [])
    landing(con, "gaia", [{"source_id": 7, "ra_deg": 10.0, "dec_deg": 0.0, "g_mag": 14.0},
                          {"source_id": 8, "ra_deg": 50.0, "dec_deg": 0.0, "g_mag": 14.0}])
    lab = {"teff_k": 3400.0, "logg_dex": 4.8, "mh_dex": -0.1}
    landing(con, "ding22", [{"obsid": 1, **lab}, {"obsid": 2, **lab, "teff_k": 3500.0}])
    landing(con, "qiu23", [{"obsid": 77, "source_id": 8, **lab}])
    landing(con, "laspm", [{"obsid": 1, **lab, "logg_dex": None}])
    landing(con, "aspcap", [{"apogee_id": "2M1", "ra_deg": 10.0, "dec_deg": 0.0, **lab}])
    empty_landing(con, "variables")
    build(con, *XM, "stg_obsid_labels", "xm_aspcap", "xm_label_catalogs")
    got = {(r["catalog"], r["source_id"]): r for r in rows(con, "select * from xm_label_catalogs")}
    assert set(got) == {("ding22", 7), ("qiu23", 8), ("aspcap", 7)}
    assert got[("ding22", 7)]["obsid"] == 2 and got[("ding22", 7)]["teff_k"] == 3500.0
