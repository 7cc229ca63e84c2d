"""Cross-match benchmark: the SQL zones match (xm_gaia_pairs) vs astropy search_around_sky."""

from __future__ import annotations

import time

import duckdb
import numpy as np

from . import benchmark

GAIA_COLS = ("source_id", "ra_deg", "dec_deg", "ref_epoch_yr", "pmra_masyr", "pmdec_masyr", "g_mag")


def _sky(n_requests: int, n_gaia: int, radius_arcsec: float, seed: int):
    """Gaia uniform on the sphere; each request sits within ~the radius of a random Gaia source."""
    rng = np.random.default_rng(seed)
    g_ra = rng.uniform(0, 360, n_gaia)
    g_dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n_gaia)))
    k = rng.integers(0, n_gaia, n_requests)
    step = radius_arcsec / 3600 * 0.7
    r_dec = np.clip(g_dec[k] + rng.normal(0, step, n_requests), -90, 90)
    r_ra = (g_ra[k] + rng.normal(0, step, n_requests) / np.maximum(np.cos(np.radians(r_dec)), 1e-6)) % 360
    return r_ra, r_dec, g_ra, g_dec


@benchmark("xmatch")
def bench_xmatch(n_requests: int = 100_000, n_gaia: int = 1_000_000, seed: int = 0) -> dict:
    """LAMOST x Gaia zones match in SQL: pairs/s and ratio to astropy search_around_sky (same sky)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from ..config import DEFAULT
    from ..runner import bind_config, compile_model_sql, load_models

    radius = DEFAULT.xmatch.radius_arcsec
    r_ra, r_dec, g_ra, g_dec = _sky(n_requests, n_gaia, radius, seed)
    con = duckdb.connect()
    bind_config(con, DEFAULT, run_id="bench")
    gaia = {"source_id": np.arange(n_gaia), "ra_deg": g_ra, "dec_deg": g_dec,  # noqa: F841 (read by DuckDB)
            "ref_epoch_yr": np.full(n_gaia, 2016.0), "pmra_masyr": np.zeros(n_gaia),
            "pmdec_masyr": np.zeros(n_gaia), "g_mag": np.full(n_gaia, 15.0)}
    requests = {"request_kind": np.full(n_requests, "lamost"),  # noqa: F841
                "request_key": np.arange(n_requests).astype(str), "ra_deg": r_ra, "dec_deg": r_dec,
                "epoch_yr": np.full(n_requests, 2016.0), "radius_arcsec": np.full(n_requests, radius)}
    # stand-ins for the upstream models, so only the match itself is timed
    con.execute("create table stg_gaia as select * from gaia")
    con.execute("create table xm_position_requests as select * from requests")
    sql = compile_model_sql(load_models()["xm_gaia_pairs"])

    t0 = time.perf_counter()
    con.execute(f"create table pairs as {sql}")
    t_sql = time.perf_counter() - t0
    n_sql = con.execute("select count(*) from pairs").fetchone()[0]

    t0 = time.perf_counter()
    req = SkyCoord(r_ra * u.deg, r_dec * u.deg)
    cat = SkyCoord(g_ra * u.deg, g_dec * u.deg)
    idx_cat, idx_req, _, _ = req.search_around_sky(cat, radius * u.arcsec)
    t_astropy = time.perf_counter() - t0
    n_astropy = len(idx_req)

    return {
        "n_requests": n_requests, "n_gaia": n_gaia, "radius_arcsec": radius,
        "pairs_sql": int(n_sql), "pairs_astropy": int(n_astropy), "pairs_equal_count": n_sql == n_astropy,
        "seconds_sql": round(t_sql, 3), "seconds_astropy": round(t_astropy, 3),
        "pairs_per_s_sql": round(n_sql / t_sql), "pairs_per_s_astropy": round(n_astropy / t_astropy),
        "speed_ratio_sql_vs_astropy": round(t_astropy / t_sql, 3),
    }
