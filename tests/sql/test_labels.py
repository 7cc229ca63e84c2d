"""lbl_* models on literal rows: robust offsets, shifting, delta cuts, priority transfer, supplement."""

import numpy as np
import pytest

from mgold.pipeline.config import DEFAULT
from sqltest import build, connect, rows, table

PRIMARY = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "class": "VARCHAR"}
STARS = {"source_id": "BIGINT", "obsid": "BIGINT", "snr_i": "DOUBLE", "lum_class_hint": "VARCHAR"}
LABELS = {"catalog": "VARCHAR", "source_id": "BIGINT", "obsid": "BIGINT", "lamost_snr_i": "DOUBLE",
          "teff_k": "DOUBLE", "teff_err_k": "DOUBLE", "logg_dex": "DOUBLE", "logg_err_dex": "DOUBLE",
          "mh_dex": "DOUBLE", "mh_err_dex": "DOUBLE"}
STARHORSE = {"source_id": "BIGINT", "teff_k": "DOUBLE", "logg_dex": "DOUBLE", "mh_dex": "DOUBLE"}
LBL = ("lbl_starhorse_deltas", "lbl_offsets", "lbl_shifted", "lbl_transfer", "lbl_supplement",
       "lbl_labelled_sample")


def universe(rng, injected, n=400, outlier_rate=0.05, extra_labels=(), extra_stars=()):
    """n dwarfs and n giants with StarHorse labels; each catalogue = StarHorse + injected offset + noise + outliers."""
    primary, stars, labels, sh = [], [], [], []
    for k, cls in enumerate(("dwarf", "giant")):
        for i in range(n):
            sid = k * 100000 + i
            primary.append({"source_id": sid, "obsid": sid, "snr_i": 30.0, "class": cls})
            stars.append({"source_id": sid, "obsid": sid, "snr_i": 30.0, "lum_class_hint": cls})
            t, g, m = rng.uniform(3000, 3900), rng.uniform(4.5, 5.2) if cls == "dwarf" else rng.uniform(0, 1.5), \
                rng.uniform(-1, 0.3)
            sh.append({"source_id": sid, "teff_k": t, "logg_dex": g, "mh_dex": m})
            for cat in (DEFAULT.labels.dwarf_priority if cls == "dwarf" else DEFAULT.labels.giant_priority):
                if rng.random() < 0.6:
                    off = injected[(cat, cls)]
                    bad = rng.random() < outlier_rate
                    labels.append({
                        "catalog": cat, "source_id": sid,
                        "teff_k": t + off[0] + rng.normal(0, 30) + (rng.choice([-1, 1]) * 800 if bad else 0),
                        "logg_dex": g + off[1] + rng.normal(0, 0.04), "mh_dex": m + off[2] + rng.normal(0, 0.04),
                        "teff_err_k": 50.0, "logg_err_dex": 0.1, "mh_err_dex": 0.1})
    return primary + [], stars + list(extra_stars), labels + list(extra_labels), sh


def load(con, primary, stars, labels, sh):
    table(con, "sel_primary", PRIMARY, primary)
    table(con, "sel_stars", STARS, stars)
    table(con, "xm_label_catalogs", LABELS, labels)
    table(con, "stg_starhorse", STARHORSE, sh)
    build(con, *LBL)


def draw_offsets(rng):
    cats = [(c, "dwarf") for c in DEFAULT.labels.dwarf_priority] + [(c, "giant") for c in DEFAULT.labels.giant_priority]
    return {k: (rng.uniform(-150, 150), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)) for k in cats}


@pytest.mark.parametrize("seed", [3, 17, 2024])
def test_offsets_recover_randomly_injected_bias_despite_outliers(seed):
    rng = np.random.default_rng(seed)            # random offsets, fixed seeds: a failure is reproducible
    injected = draw_offsets(rng)
    con = connect()
    load(con, *universe(rng, injected))
    got = rows(con, "select * from lbl_offsets")
    assert len(got) == 3 * len(injected)
    for r in got:
        truth = injected[(r["catalog"], r["class"])][("teff_k", "logg_dex", "mh_dex").index(r["param"])]
        # noise 30 K / 0.04 dex over ~240 stars -> standard error ~2 K / 0.003 dex; 5 sigma
        tol = {"teff_k": 12.0, "logg_dex": 0.015, "mh_dex": 0.015}[r["param"]]
        assert r["mean"] == pytest.approx(truth, abs=tol), (seed, r)
        assert r["run_id"] == "test-run" and r["method"].startswith("clipped")
    # only Teff carries the 800 K outliers: the clipping drops some there, and nothing was dropped silently
    assert all(r["n"] < r["n_matched"] for r in got if r["param"] == "teff_k")
    assert all(r["n"] <= r["n_matched"] for r in got)


def test_priority_transfer_delta_cuts_and_one_row_per_star():
    rng = np.random.default_rng(11)
    injected = draw_offsets(rng)
    con = connect()
    load(con, *universe(rng, injected, n=200))
    sample = rows(con, "select * from lbl_labelled_sample")
    ids = [r["source_id"] for r in sample]
    assert len(ids) == len(set(ids)) > 0
    shifted = rows(con, "select * from lbl_shifted where passes_delta")
    best = {}
    for r in shifted:
        if r["source_id"] not in best or r["priority_rank"] < best[r["source_id"]]["priority_rank"]:
            best[r["source_id"]] = r
    assert {r["source_id"]: r["label_source"] for r in sample} == {k: v["catalog"] for k, v in best.items()}
    lim = DEFAULT.labels
    for r in rows(con, "select * from lbl_shifted where passes_delta"):
        cut = lim.dwarf_max_dteff_k if r["class"] == "dwarf" else lim.giant_max_dteff_k
        assert abs(r["d_teff_k"]) < cut
    # the shifted label = catalogue label - measured offset
    r = rows(con, "select s.*, o.mean from lbl_shifted s join lbl_offsets o using (catalog, class) "
                  "where o.param = 'teff_k' limit 1")[0]
    assert r["offset_teff_k"] == r["mean"]
    assert not any(r["is_supplement"] for r in sample)


def test_supplement_takes_bright_precise_aspcap_stars_outside_the_box():
    rng = np.random.default_rng(5)
    injected = draw_offsets(rng)
    lab = {"teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0}
    tight = {"teff_err_k": 5.0, "logg_err_dex": 0.01, "mh_err_dex": 0.01}
    extra_stars = [{"source_id": 900001, "obsid": 1, "snr_i": 80.0, "lum_class_hint": None},
                   {"source_id": 900002, "obsid": 2, "snr_i": 40.0, "lum_class_hint": None},   # S/N too low
                   {"source_id": 900003, "obsid": 3, "snr_i": 80.0, "lum_class_hint": "giant"}]
    extra_labels = [{"catalog": "aspcap", "source_id": 900001, **lab, **tight},
                    {"catalog": "aspcap", "source_id": 900002, **lab, **tight},
                    {"catalog": "aspcap", "source_id": 900003, **lab, **tight, "logg_err_dex": 0.2},  # loose
                    {"catalog": "ding22", "source_id": 900001, **lab, **tight}]
    con = connect()
    load(con, *universe(rng, injected, n=150, extra_labels=extra_labels, extra_stars=extra_stars))
    sup = rows(con, "select * from lbl_labelled_sample where is_supplement")
    assert [r["source_id"] for r in sup] == [900001]
    off = {r["param"]: r["mean"] for r in rows(con, "select * from lbl_offsets "
                                                     "where catalog = 'aspcap' and class = 'dwarf'")}
    assert sup[0]["class"] == "dwarf" and sup[0]["label_source"] == "aspcap"
    assert sup[0]["teff_k"] == pytest.approx(3500.0 - off["teff_k"])
    assert sup[0]["offset_mh_dex"] == pytest.approx(off["mh_dex"])


def test_offsets_left_unmeasured_when_too_few_stars_and_catalogue_then_unused():
    con = connect(DEFAULT.with_overrides({"labels.offset_min_stars": 10}))
    primary = [{"source_id": i, "obsid": i, "snr_i": 30.0, "class": "dwarf"} for i in range(5)]
    sh = [{"source_id": i, "teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0} for i in range(5)]
    labels = [{"catalog": "laspm", "source_id": i, "teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0}
              for i in range(5)]
    load(con, primary, [], labels, sh)
    assert {r["mean"] for r in rows(con, "select * from lbl_offsets")} == {None}
    assert rows(con, "select * from lbl_labelled_sample") == []


def test_supplement_class_comes_from_aspcap_logg_not_the_lamost_hint_and_outliers_vs_starhorse_drop():
    rng = np.random.default_rng(21)
    injected = draw_offsets(rng)
    tight = {"teff_err_k": 5.0, "logg_err_dex": 0.01, "mh_err_dex": 0.01}
    extra_stars = [{"source_id": 900011, "obsid": 11, "snr_i": 80.0, "lum_class_hint": "dwarf"},  # a giant called dM
                   {"source_id": 900012, "obsid": 12, "snr_i": 80.0, "lum_class_hint": "dwarf"},
                   {"source_id": 900013, "obsid": 13, "snr_i": 80.0, "lum_class_hint": "dwarf"}]
    sh = {"teff_k": 3500.0, "logg_dex": 4.8, "mh_dex": 0.0}
    off = injected[("aspcap", "dwarf")]
    consistent = {"teff_k": sh["teff_k"] + off[0], "logg_dex": sh["logg_dex"] + off[1], "mh_dex": sh["mh_dex"] + off[2]}
    extra_labels = [
        {"catalog": "aspcap", "source_id": 900011, "teff_k": 3600.0, "logg_dex": 0.8, "mh_dex": -0.2, **tight},
        # precise-looking but 900 K off StarHorse: a catastrophic outlier its small errors do not reveal
        {"catalog": "aspcap", "source_id": 900012, **consistent, "teff_k": consistent["teff_k"] + 900.0, **tight},
        {"catalog": "aspcap", "source_id": 900013, **consistent, **tight}]
    primary, stars, labels, starhorse = universe(rng, injected, n=150, extra_labels=extra_labels,
                                                 extra_stars=extra_stars)
    starhorse += [{"source_id": s, **sh} for s in (900012, 900013)]
    con = connect()
    load(con, primary, stars, labels, starhorse)
    sup = {r["source_id"]: r for r in rows(con, "select * from lbl_labelled_sample where is_supplement")}
    assert sorted(sup) == [900011, 900013]
    giant_off = {r["param"]: r["mean"] for r in rows(con, "select * from lbl_offsets "
                                                          "where catalog = 'aspcap' and class = 'giant'")}
    assert sup[900011]["class"] == "giant"
    assert sup[900011]["teff_k"] == pytest.approx(3600.0 - giant_off["teff_k"])
    assert sup[900011]["logg_dex"] == pytest.approx(0.8 - giant_off["logg_dex"])
    assert sup[900013]["class"] == "dwarf"
