"""Recovery on the synthetic universe: offsets drawn at random are injected, the pipeline must measure them.

Offsets are never typed in: each run draws new ones (seed printed on failure) and passes them to the
universe with Config.with_overrides on synth.<catalog>.<class>.<param>.
"""

import duckdb
import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT

# the catalogue x class pairs the paper transfers (dwarfs ASPCAP > Ding22 > LASPM, giants ASPCAP > Qiu23)
PAIRS = [(c, "dwarf") for c in DEFAULT.labels.dwarf_priority] + [(c, "giant") for c in DEFAULT.labels.giant_priority]
SCALE = {"teff_k": 150.0, "logg_dex": 0.3, "mh_dex": 0.3}          # range of the random draws
FLOOR = {"teff_k": 3.0, "logg_dex": 0.006, "mh_dex": 0.006}         # systematics allowed on top of noise


@pytest.fixture(scope="module")
def injected_build(tmp_path_factory):
    from mgold.pipeline.build import build, preset_config

    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    injected = {(c, k, p): float(rng.uniform(-s, s)) for c, k in PAIRS for p, s in SCALE.items()}
    cfg = preset_config("tiny").with_overrides({f"synth.{c}.{k}.{p}": v for (c, k, p), v in injected.items()})
    wh = tmp_path_factory.mktemp("tiny_injected") / "w.duckdb"
    build(wh, preset="tiny", cfg=cfg, until="labels", echo=lambda _m: None)
    return seed, injected, duckdb.connect(str(wh), read_only=True)


@pytest.mark.slow
def test_offsets_recover_random_injected_offsets_within_their_standard_error(injected_build):
    seed, injected, con = injected_build
    got = {(c, k, p): (m, s, n) for c, k, p, m, s, n in
           con.execute("select catalog, class, param, mean, sigma, n from lbl_offsets").fetchall()}
    measured = [key for key in injected if key in got and got[key][0] is not None]
    assert len(measured) >= len(injected) // 2, (seed, sorted(got))
    for key in measured:
        mean, sigma, n = got[key]
        tol = 5 * sigma / np.sqrt(n) + FLOOR[key[2]]
        assert abs(mean - injected[key]) < tol, (seed, key, mean, injected[key], tol)


@pytest.mark.slow
def test_labelled_sample_is_unbiased_against_truth(injected_build):
    seed, _, con = injected_build
    res = con.execute("""
        select count(*), avg(l.teff_k - t.teff_k), stddev_samp(l.teff_k - t.teff_k),
               avg(l.logg_dex - t.logg_dex), stddev_samp(l.logg_dex - t.logg_dex),
               avg(l.mh_dex - t.mh_dex), stddev_samp(l.mh_dex - t.mh_dex)
        from lbl_labelled_sample l join truth.stars t using (source_id)""").fetchone()
    n = res[0]
    assert n > 50, seed
    for (bias, sd), floor in zip([(res[1], res[2]), (res[3], res[4]), (res[5], res[6])], FLOOR.values()):
        assert abs(bias) < 5 * sd / np.sqrt(n) + 3 * floor, (seed, res)
