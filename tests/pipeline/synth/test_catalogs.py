"""Label catalogues: injected offsets, StarHorse noise and grid, ASPCAP sentinels/flags/supplement."""

from __future__ import annotations

import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from mgold.pipeline.synth import catalogs as cat
from mgold.pipeline.synth.observe import make_visits
from mgold.pipeline.synth.presets import config_for
from mgold.pipeline.synth.stars import make_stars


@pytest.fixture(scope="module")
def universe():
    cfg = config_for("tiny", seed=21, sets=["synth.n_stars=6000"]).synth
    stars = make_stars(cfg)
    return cfg, stars, make_visits(cfg, stars)


def _by_source(stars, source_id):
    order = np.argsort(stars["source_id"])
    return order[np.searchsorted(stars["source_id"][order], source_id)]


def test_starhorse_is_unbiased_noisy_and_on_its_metallicity_grid(universe):
    cfg, stars, _ = universe
    sh = cat.starhorse_table(cfg, stars)
    i = _by_source(stars, sh["source_id"])
    d = sh["teff50"] - stars["teff_k"][i]
    bright = stars["g_mag"][i] < 14.5
    assert abs(np.median(d)) < 15
    assert 100 < np.std(d[bright]) < 180 and np.std(d[~bright]) > np.std(d[bright])
    steps = sh["met50"] / cfg.starhorse_mh_grid_step_dex
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    assert np.all(sh["teff16"] < sh["teff50"]) and np.all(sh["teff50"] < sh["teff84"])


@pytest.mark.parametrize("name,cls,param", [("ding22", "dwarf", "mh_dex"), ("laspm", "dwarf", "logg_dex"),
                                            ("qiu23", "giant", "teff_k")])
def test_obsid_catalogues_carry_their_injected_offset(universe, name, cls, param):
    cfg, stars, visits = universe
    table, truth = cat.obsid_label_table(cfg, name, (cls,), stars, visits)
    col = cat.LABEL_COLUMNS[name][0][param]
    lab = visits["labels_of_star_id"][np.searchsorted(visits["obsid"], table["obsid"])]
    d = np.asarray(table[col]) - stars[param][lab]
    expected = getattr(getattr(getattr(cfg, name), cls), param)
    tolerance = {"teff_k": 10.0, "logg_dex": 0.03, "mh_dex": 0.03}[param]
    assert abs(np.median(d) - expected) < tolerance
    assert np.all(stars["class"][truth["star_id"]] == cls)


def test_label_catalogues_also_cover_faint_and_out_of_box_stars(universe):
    cfg, stars, visits = universe
    table, truth = cat.obsid_label_table(cfg, "laspm", ("dwarf",), stars, visits)
    rows = np.searchsorted(visits["obsid"], table["obsid"])
    assert np.mean(visits["snr_i_target"][rows] < 10) > 0.02
    assert np.mean(stars["dist_pc"][truth["star_id"]] > 2000) + np.mean(stars["is_binary"][truth["star_id"]]) > 0.03


def test_aspcap_has_sentinels_bad_flags_and_a_precise_bright_supplement(universe):
    cfg, stars, visits = universe
    a, truth = cat.aspcap_table(cfg, stars)
    assert np.any(a["TEFF"] == -9999) and np.any(a["ASPCAPFLAG"] & cat.ASPCAP_STAR_BAD)
    precise = (a["TEFF_ERR"] > 0) & (a["TEFF_ERR"] < 10) & (a["LOGG_ERR"] < 0.05) & (a["M_H_ERR"] < 0.02)
    best = np.zeros(stars["star_id"].size)
    np.maximum.at(best, visits["star_id"], visits["snr_i_target"])
    supplement = precise & (best[truth["star_id"]] > 50)
    assert 0.005 < supplement.mean() < 0.2
    bright_share = np.mean(stars["g_mag"][truth["star_id"]] < 15) / np.mean(stars["g_mag"] < 15)
    assert bright_share > 1.0                                       # APOGEE favours brighter stars


def test_injected_offsets_table_lists_every_catalogue_class_param(universe):
    cfg, *_ = universe
    off = cat.injected_offsets(cfg, DEFAULT.labels.catalogs)
    assert len(off["catalog"]) == (2 + 1 + 1 + 1) * 3
    i = np.flatnonzero((off["catalog"] == "aspcap") & (off["class"] == "dwarf") & (off["param"] == "teff_k"))[0]
    assert off["offset_value"][i] == cfg.aspcap.dwarf.teff_k
