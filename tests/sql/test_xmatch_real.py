"""The zones match on the real LAMOST x Gaia rows of ../shared/data/real (skips when absent)."""

import duckdb
import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from sqltest import build, connect, empty_landing, landing, rows
from xmatch_reference import pair_set_per_epoch

CSV = "catalogs/gaia_lamost_larger_velocity_features.csv"


@pytest.mark.real
def test_real_lamost_gaia_pairs_equal_astropy_and_recover_the_published_counterpart(real_data):
    src = duckdb.sql(f"select * from read_csv_auto('{real_data / CSV}')").fetchnumpy()
    n = len(src["source_id"])
    con = connect()
    landing(con, "lamost_headers", [
        {"obsid": i, "ra_deg": float(src["ra_lamost"][i]), "dec_deg": float(src["dec_lamost"][i]),
         "class": "STAR", "subclass": "dM0", "mjd": int(src["combined_mjd"][i])} for i in range(n)])
    # one Gaia row per source; the same star may have several LAMOST visits
    _, first = np.unique(src["source_id"], return_index=True)
    landing(con, "gaia", [
        {"source_id": int(src["source_id"][j]), "ra_deg": float(src["ra_gaia"][j]),
         "dec_deg": float(src["dec_gaia"][j]), "pmra_masyr": float(src["pmra"][j]),
         "pmdec_masyr": float(src["pmdec"][j]), "g_mag": float(src["phot_g_mean_mag"][j])} for j in first])
    empty_landing(con, "lamost_catalog", "aspcap", "variables")
    build(con, "stg_lamost", "stg_gaia", "stg_aspcap", "stg_variables", "xm_position_requests", "xm_gaia_pairs",
          "xm_lamost_gaia")

    lam = rows(con, "select obsid, ra_deg, dec_deg, epoch_yr from stg_lamost order by obsid")
    gaia_ids = src["source_id"][first]
    expected_idx = pair_set_per_epoch(
        [r["ra_deg"] for r in lam], [r["dec_deg"] for r in lam], [r["epoch_yr"] for r in lam],
        src["ra_gaia"][first], src["dec_gaia"][first], src["pmra"][first], src["pmdec"][first], 2016.0,
        DEFAULT.xmatch.radius_arcsec)
    expected = {(lam[i]["obsid"], int(gaia_ids[j])) for i, j in expected_idx}
    got = set(con.execute("select request_key::bigint, source_id from xm_gaia_pairs").fetchall())
    assert len(expected) >= 0.99 * n
    assert got == expected
    best = dict(con.execute("select obsid, source_id from xm_lamost_gaia").fetchall())
    recovered = np.mean([best[i] == int(src["source_id"][i]) for i in range(n)])
    assert recovered > 0.99
