"""Literal-row tests of the staging models."""

from sqltest import build, connect, landing, rows


def test_stg_lamost_flags_m_type_and_luminosity_hint_from_subclass():
    con = connect()
    landing(con, "lamost_headers", [
        {"obsid": 1, "class": "STAR", "subclass": "dM2", "mjd": 57388, "snr_i": 20.0},
        {"obsid": 2, "class": "STAR", "subclass": "gM0", "lmjd": 57388},
        {"obsid": 3, "class": "STAR", "subclass": "M5"},
        {"obsid": 4, "class": "STAR", "subclass": "K7"},
        {"obsid": 5, "class": "QSO", "subclass": "M1"},
        {"obsid": 6, "class": "star", "subclass": "sdM1"},
    ])
    landing(con, "lamost_catalog", [{"obsid": 3, "gaia_source_id": 99, "snr_i": 33.0}])
    build(con, "stg_lamost")
    got = {r["obsid"]: r for r in rows(con, "select * from stg_lamost")}
    assert [got[i]["is_m_type"] for i in range(1, 7)] == [True, True, True, False, False, True]
    assert [got[i]["lum_class_hint"] for i in range(1, 7)] == ["dwarf", "giant", None, None, None, "dwarf"]
    assert got[3]["gaia_source_id"] == 99 and got[3]["snr_i"] == 33.0
    # MJD 57388 is 2016-01-01: Julian epoch ~2016.0; no date at all falls back to the configured epoch
    assert abs(got[1]["epoch_yr"] - 2016.0) < 0.01
    assert got[4]["epoch_yr"] == 2016.0


def test_stg_aspcap_vetoes_rows_by_flag_mask_and_missing_labels():
    con = connect()
    landing(con, "aspcap", [
        {"apogee_id": "a", "teff_k": 3500.0, "logg_dex": 4.7, "mh_dex": 0.0, "aspcapflag": 0},
        {"apogee_id": "b", "teff_k": 3500.0, "logg_dex": 4.7, "mh_dex": 0.0, "aspcapflag": 1 << 23},
        {"apogee_id": "c", "teff_k": 3500.0, "logg_dex": None, "mh_dex": 0.0},
        {"apogee_id": "d", "teff_k": 3500.0, "logg_dex": 4.7, "mh_dex": 0.0, "aspcapflag": 1 << 3},
    ])
    build(con, "stg_aspcap")
    got = dict(con.execute("select apogee_id, is_usable from stg_aspcap").fetchall())
    assert got == {"a": True, "b": False, "c": False, "d": True}


def test_stg_gaia_corrected_excess_is_zero_on_the_riello_locus():
    con = connect()
    bp_rp = 2.5
    expected = 1.162004 + 0.011464 * bp_rp + 0.049255 * bp_rp ** 2 - 0.005879 * bp_rp ** 3
    landing(con, "gaia", [
        {"source_id": 1, "ra_deg": 1.0, "dec_deg": 2.0, "g_mag": 15.0, "bp_mag": 16.0, "rp_mag": 13.5,
         "bp_rp_excess_factor": expected, "parallax_mas": 2.0, "parallax_error_mas": 0.1},
        {"source_id": 2, "ra_deg": 1.0, "dec_deg": 2.0, "ref_epoch_yr": 2015.5},
    ])
    build(con, "stg_gaia")
    got = {r["source_id"]: r for r in rows(con, "select * from stg_gaia")}
    assert abs(got[1]["c_star"]) < 1e-9 and got[1]["parallax_over_error"] == 20.0
    assert got[2]["ref_epoch_yr"] == 2015.5 and got[1]["ref_epoch_yr"] == 2016.0


def test_stg_dust_converts_ebv_when_av_is_missing():
    con = connect()
    landing(con, "dust", [{"source_id": 1, "ebv_mag": 0.1}, {"source_id": 2, "av_mag": 0.5, "ebv_mag": 9.0}])
    build(con, "stg_dust")
    got = dict(con.execute("select source_id, av_mag from stg_dust").fetchall())
    assert abs(got[1] - 0.31) < 1e-12 and got[2] == 0.5
