"""Observation effects: the fused kernel vs a slow numpy twin, S/N, noise vs ivar, masks, defects."""

from __future__ import annotations

import numpy as np
import pytest

from mgold.pipeline.synth import observe as ob
from mgold.pipeline.synth.presets import config_for
from mgold.pipeline.synth.stars import make_stars, stream

N = ob.N_PIX


@pytest.fixture(scope="module")
def universe():
    cfg = config_for("tiny", seed=5, sets=["synth.n_stars=300"]).synth
    stars = make_stars(cfg)
    return cfg, stars, ob.make_visits(cfg, stars)


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    o = ob.Observer(config_for("tiny").synth)
    rest = (1.0 + 0.3 * rng.random((n, N + 2 * ob.RV_PAD_PIX))).astype(np.float32)
    args = dict(rest=rest, dpix=rng.uniform(-3, 3, n),
                cal=rng.normal(0, 0.05, (n, o.legendre.shape[0])).astype(np.float32),
                join_ln=rng.normal(0, 0.04, n).astype(np.float32), av=rng.uniform(0, 2, n).astype(np.float32),
                depth=rng.uniform(0, 0.3, n).astype(np.float32), counts=rng.uniform(10, 1000, n).astype(np.float32),
                snr=rng.uniform(5, 200, n), sky_amp=rng.normal(0, 3, n).astype(np.float32),
                z=rng.standard_normal((n, N)).astype(np.float32))
    return o, args


def _run_kernel(o, a, z=None):
    n = a["rest"].shape[0]
    out = [np.empty((n, N), np.float32) for _ in range(3)] + [np.zeros((n, N), np.int32), np.zeros((n, 5))]
    ob._observe_kernel(a["rest"], a["dpix"], a["cal"], o.legendre, a["join_ln"], o.red_arm, a["av"], o.alam,
                       a["depth"], o.telluric, a["counts"], o.throughput, o.inv_throughput_sq, a["snr"],
                       o.i_range, o.join_range, o.sky, a["sky_amp"], o.sky_pix,
                       a["z"] if z is None else z, np.zeros(n, np.int64), np.full(n, 3), o.band_ranges, *out)
    return out


def _reference(o, a):
    """Slow, obvious numpy twin of the fused kernel."""
    n = a["rest"].shape[0]
    flux = np.empty((n, N))
    for r in range(n):
        flux[r] = np.interp(np.arange(N) + ob.RV_PAD_PIX - a["dpix"][r], np.arange(a["rest"].shape[1]),
                            a["rest"][r].astype(float))
    ln_cal = a["cal"].astype(float) @ o.legendre + a["join_ln"][:, None] * o.red_arm \
        - 0.4 * np.log(10) * a["av"][:, None] * o.alam
    flux *= np.exp(ln_cal) * (1 - a["depth"][:, None] * o.telluric) * a["counts"][:, None]
    i0, i1 = o.i_range
    floor = 0.2 * np.median(flux[:, i0:i1] * o.throughput[i0:i1], axis=1)
    var = (flux * o.throughput + floor[:, None]) / o.throughput ** 2
    k = (np.median(flux[:, i0:i1] / np.sqrt(var[:, i0:i1]), axis=1) / a["snr"]) ** 2
    var *= k[:, None]
    var[:, o.join_range[0]:o.join_range[1]] *= 2
    sig = np.sqrt(var)
    obs = flux + sig * (a["z"] + a["sky_amp"][:, None] * o.sky)
    ivar = np.where(o.sky_pix, 0.25, 1.0) / var
    return obs, ivar


def test_kernel_matches_numpy_reference():
    o, a = _inputs(20)
    flux, ivar, _, mask, _ = _run_kernel(o, a)
    ref_flux, ref_ivar = _reference(o, a)
    ref_flux[:, -3:], ref_ivar[:, -3:] = 0.0, 0.0                   # last 3 pixels: no data
    assert np.allclose(flux, ref_flux, rtol=2e-4, atol=1e-4 * np.abs(ref_flux).max())
    assert np.allclose(ivar, ref_ivar, rtol=2e-4)
    assert np.all(mask[:, -3:] & ob.PIX_NODATA) and not np.any(mask[:, :-3] & ob.PIX_NODATA)
    assert np.all((mask[:, o.sky_pix] & ob.PIX_BRIGHTSKY) > 0)


def test_header_snr_i_hits_target_and_noise_matches_ivar():
    o, a = _inputs(30, seed=1)
    flux, ivar, sigma, _, snr = _run_kernel(o, a)
    flux0, *_ = _run_kernel(o, a, z=np.zeros_like(a["z"]))
    assert np.allclose(snr[:, 3], a["snr"], rtol=1e-3)               # band order u g r i z
    clean = ~o.sky_pix
    clean[-3:] = False
    pulls = ((flux - flux0) * np.sqrt(ivar))[:, clean]
    assert np.allclose(pulls, a["z"][:, clean], atol=1e-3)
    assert 0.95 < pulls.std() < 1.05


def test_rv_shift_moves_a_line_by_the_doppler_pixels():
    o, a = _inputs(1, seed=2)
    a["rest"][:] = 1.0
    a["rest"][0, 2000 + ob.RV_PAD_PIX] = 0.0
    a["dpix"][:] = 2.0
    for k in ("cal", "join_ln", "av", "depth", "sky_amp"):
        a[k][:] = 0
    flux, *_ = _run_kernel(o, a, z=np.zeros_like(a["z"]))
    assert np.argmin(flux[0]) == 2002


def test_ccm89_law_known_values():
    alam = ob.ccm89_alam_over_av(np.array([5495.0, 4405.0, 8060.0]))
    assert alam[0] == pytest.approx(1.0, abs=0.02)
    assert alam[1] == pytest.approx(1.32, abs=0.03)
    assert alam[2] < 0.7
    with pytest.raises(ValueError):
        ob.ccm89_alam_over_av(np.array([2000.0]))


def test_observed_batch_masks_bad_pixels_and_injects_defects(universe):
    cfg, stars, v = universe
    obs = ob.Observer(cfg)
    idx = np.arange(v["obsid"].size)
    res = obs.observe(stars, v, idx, stream(cfg, "spectra", 0))
    bad = (res["pixmask"] & (ob.PIX_BADCCD | ob.PIX_NODATA)) > 0
    assert bad.any() and np.all(res["ivar"][bad] == 0) and np.all(res["ivar"][~bad] > 0)
    assert np.isfinite(res["flux"]).all()
    clean_v = dict(v, defect=np.full(v["defect"].size, "none"))
    ref = obs.observe(stars, clean_v, idx, stream(cfg, "spectra", 0))
    for r in np.flatnonzero(v["defect"] == "broken_segment"):    # one collapsed stretch of >= 100 px
        low = res["flux"][r] < 0.2001 * ref["flux"][r] + 1e-6
        assert 100 <= low.sum() and np.array_equal(res["ivar"][r], ref["ivar"][r])
    for r in np.flatnonzero(v["defect"] == "cosmic_ray"):        # a few spikes of >= 20 sigma
        spikes = (res["flux"][r] - ref["flux"][r]) * np.sqrt(ref["ivar"][r] + 1e-30)
        assert 1 <= np.sum(spikes > 5) <= 10
    same = v["defect"] == "none"
    assert np.array_equal(res["flux"][same], ref["flux"][same])


def test_defect_rates_follow_config_and_swaps_point_elsewhere():
    cfg = config_for("tiny", seed=9, sets=["synth.n_stars=3000", "synth.defect_wrong_rv_rate=0.2",
                                           "synth.defect_swapped_labels_rate=0.1"]).synth
    stars = make_stars(cfg)
    v = ob.make_visits(cfg, stars)
    assert 0.17 < np.mean(v["defect"] == "wrong_rv") < 0.23
    sw = v["defect"] == "swapped_labels"
    assert 0.08 < sw.mean() < 0.12 and np.all(v["labels_of_star_id"][sw] != v["star_id"][sw])
    assert np.all(np.abs(v["rv_kms"] - v["rv_true_kms"])[v["defect"] == "wrong_rv"] > 50)
    assert len(np.unique(v["obsid"])) == v["obsid"].size
    plate = np.char.add(np.char.add(v["planid"], v["spid"].astype(str)), np.char.add("-", v["fiberid"].astype(str)))
    assert len(np.unique(plate)) == plate.size                     # unique file names


def test_defect_rates_above_one_are_refused():
    cfg = config_for("tiny", sets=["synth.defect_wrong_rv_rate=0.9", "synth.defect_cosmic_ray_rate=0.5"]).synth
    with pytest.raises(ValueError, match="defect rates"):
        ob.make_visits(cfg, make_stars(cfg))


def test_rv_failures_follow_the_configured_rate_and_truth_keeps_the_true_rv():
    cfg = config_for("tiny", seed=4).synth
    v = ob.make_visits(cfg, make_stars(cfg))
    failed, n, p = v["rv_failed"], v["obsid"].size, cfg.rv_failure_rate
    assert abs(failed.sum() - n * p) < 4 * np.sqrt(n * p * (1 - p))      # binomial, 4 sigma
    assert np.all(v["rv_kms"][failed] == ob.RV_FAILED) and np.all(v["rv_err_kms"][failed] == ob.RV_FAILED)
    assert not np.any(v["rv_kms"][~failed] == ob.RV_FAILED)
    assert np.all(np.abs(v["rv_true_kms"][failed]) < 1000)                # a star's velocity


def test_rv_failure_rate_moves_no_other_draw_of_the_universe():
    none = config_for("tiny", seed=4, sets=["synth.n_stars=400", "synth.rv_failure_rate=0"]).synth
    some = config_for("tiny", seed=4, sets=["synth.n_stars=400", "synth.rv_failure_rate=0.3"]).synth
    a, b = (ob.make_visits(c, make_stars(c)) for c in (none, some))
    assert not a["rv_failed"].any() and b["rv_failed"].any()
    ok = ~b["rv_failed"]
    for key in a:
        if key in ("rv_kms", "rv_err_kms", "rv_failed"):
            assert np.array_equal(a[key][ok], b[key][ok]), key
        else:
            assert np.array_equal(a[key], b[key]), key
