"""The star population: paper ranges, distances, binaries, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from mgold.pipeline.synth.presets import config_for
from mgold.pipeline.synth.stars import make_stars, position_at


@pytest.fixture(scope="module")
def stars():
    return make_stars(config_for("tiny", seed=3, sets=["synth.n_stars=4000"]).synth)


def test_labels_span_the_paper_ranges(stars):
    assert 2990 < stars["teff_k"].min() and stars["teff_k"].max() < 4160
    assert stars["logg_dex"].min() >= -0.3 and stars["logg_dex"].max() <= 5.2
    assert stars["mh_dex"].min() >= -1.0 and stars["mh_dex"].max() <= 0.7
    assert 0.01 < np.mean(stars["mh_dex"] < -0.5) < 0.12          # metal-poor stars are rare
    dwarf = stars["class"] == "dwarf"
    assert stars["logg_dex"][dwarf].min() >= 4.5


def test_dwarfs_are_near_and_giants_reach_beyond_5_kpc(stars):
    dwarf = stars["class"] == "dwarf"
    assert np.mean(stars["dist_pc"][dwarf] < 2000) > 0.95
    assert np.mean(stars["dist_pc"][~dwarf] > 5000) > 0.05


def test_unresolved_binaries_are_overluminous_and_wobble(stars):
    from mgold.pipeline.synth.isochrones import relation
    dwarf = stars["class"] == "dwarf"
    resid = stars["abs_g_mag"] - relation("abs_g", "dwarf", stars["teff_k"], stars["mh_dex"])
    b = stars["is_binary"] & dwarf
    assert np.median(resid[b]) < np.median(resid[dwarf & ~stars["is_binary"]]) - 0.2
    assert np.median(stars["ruwe"][b]) > np.median(stars["ruwe"][~stars["is_binary"]])


def test_nearby_dwarfs_move_enough_to_need_epoch_propagation(stars):
    ra, dec = position_at(stars, np.arange(stars["star_id"].size), np.full(stars["star_id"].size, 2024.0))
    sep_arcsec = np.hypot((ra - stars["ra_deg"]) * np.cos(np.radians(dec)), dec - stars["dec_deg"]) * 3600
    assert np.mean(sep_arcsec > 1.5) > 0.004   # beyond the 1.5" match radius without propagation


def test_same_seed_same_stars_other_seed_differs():
    a = make_stars(config_for("tiny", seed=1).synth)
    b = make_stars(config_for("tiny", seed=1).synth)
    c = make_stars(config_for("tiny", seed=2).synth)
    assert np.array_equal(a["teff_k"], b["teff_k"]) and not np.array_equal(a["teff_k"], c["teff_k"])


def test_unblended_stars_pass_the_pipelines_bp_rp_excess_cut_at_every_colour(stars):
    """The generator's C(BP-RP) and stg_gaia's Riello et al. (2021) polynomial agree on all three
    colour ranges: well-behaved red stars (M giants reach BP-RP ~ 4) must not look blended."""
    import duckdb

    from mgold.pipeline.runner import compile_model_sql
    from mgold.pipeline.runner import load_models

    con = duckdb.connect()
    con.execute("create schema landing")
    con.register("s", {"source_id": stars["source_id"], "g_mag": stars["g_mag"], "bp_mag": stars["bp_mag"],
                       "rp_mag": stars["rp_mag"], "bp_rp_excess_factor": stars["bp_rp_excess_factor"]})
    con.execute("""create table landing.gaia as select source_id, 0.0 ra_deg, 0.0 dec_deg, null::double ref_epoch_yr,
                   1.0 parallax_mas, 0.1 parallax_error_mas, 0.0 pmra_masyr, 0.0 pmdec_masyr, g_mag, bp_mag, rp_mag,
                   1.0 ruwe, bp_rp_excess_factor from s""")
    rows = con.execute(f"""select floor(bp_rp_mag) as colour_bin, count(*),
                              avg((abs(c_star) < 3 * c_star_sigma)::int)
                           from ({compile_model_sql(load_models()['stg_gaia'])}) group by 1 order by 1""").fetchall()
    for colour_bin, n, passing in rows:
        if n >= 50:
            # 2% of the universe is blended by construction (pipeline/synth/stars.py)
            assert passing > 0.95, (colour_bin, n, passing)
