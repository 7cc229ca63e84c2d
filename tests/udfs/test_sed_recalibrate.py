"""udfs/sed_recalibrate.py: multiplicative 2nd-order recalibration against a model SED (paper §2.3.2)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from naive import assert_close, naive_sed_recalibrate
from pickles import read_pickles

from mgold.pipeline.config import DEFAULT
from mgold.udfs.grid import common_grid
from mgold.udfs.sed_recalibrate import poly_eval, poly_x, sed_recalibrate, sed_recalibrate_batch

SP = DEFAULT.spectra


def _random_case(rng, n):
    x = np.linspace(-1, 1, n)
    model = 1 + 0.5 * np.sin(np.arange(n) / 9.0) ** 2
    true = np.array([1.0, rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15)])
    sigma = 0.02
    flux = model * np.polynomial.polynomial.polyval(x, true) + rng.normal(0, sigma, n)
    ivar = np.full(n, 1 / sigma**2)
    lines = rng.random(n) < 0.03
    flux[lines] += rng.uniform(0.3, 1.0, lines.sum())  # emission lines / model mismatch to reject
    ivar[rng.random(n) < 0.02] = 0
    flux[rng.random(n) < 0.01] = np.nan
    return flux.astype(np.float32), ivar.astype(np.float32), model.astype(np.float32), true


@pytest.mark.parametrize("seed", range(8))
def test_sed_recalibrate_matches_naive_on_random_spectra(seed):
    rng = np.random.default_rng(seed)
    flux, ivar, model, _ = _random_case(rng, int(rng.integers(20, 1500)))
    got = sed_recalibrate(flux, ivar, model, 2, 3.0, 5)
    want = naive_sed_recalibrate(flux, ivar, model, 2, 3.0, 5)
    assert_close(got[2], want[2], "coeffs")
    assert_close(got[0], want[0], "flux")
    assert_close(got[1], want[1], "ivar")


def test_line_rejection_keeps_the_polynomial_unbiased():
    rng = np.random.default_rng(11)
    flux, ivar, model, true = _random_case(rng, 3000)
    coeffs = sed_recalibrate(flux, ivar, model, 2, 3.0, 5)[2]
    no_clip = sed_recalibrate(flux, ivar, model, 2, 3.0, 0)[2]
    x = poly_x(3000)
    err = np.abs(poly_eval(coeffs, x) / poly_eval(true, x) - 1).max()
    err_no_clip = np.abs(poly_eval(no_clip, x) / poly_eval(true, x) - 1).max()
    assert err < 0.003 < err_no_clip


def test_failed_fit_returns_nan_coefficients_and_masks_everything():
    flux = np.array([1.0, np.nan, 2.0], np.float32)
    ivar = np.array([0.0, 1.0, 1.0], np.float32)
    f, iv, c = sed_recalibrate(flux, ivar, np.ones(3, np.float32), 2, 3.0, 5)
    assert np.all(np.isnan(c)) and c.shape == (3,)
    assert np.all(iv == 0) and np.all(np.isfinite(f))
    f, iv, c = sed_recalibrate(np.empty(0, np.float32), np.empty(0, np.float32), np.empty(0, np.float32), 2, 3.0, 5)
    assert f.size == 0 and np.all(np.isnan(c))


def test_bad_model_pixels_are_excluded_from_the_fit():
    rng = np.random.default_rng(12)
    flux, ivar, model, true = _random_case(rng, 800)
    model = model.copy()
    model[::50] = np.nan
    model[1::50] = -1
    c = sed_recalibrate(flux, ivar, model, 2, 3.0, 5)[2]
    assert np.all(np.isfinite(c))
    assert_close(c, naive_sed_recalibrate(flux, ivar, model, 2, 3.0, 5)[2])


def test_batch_equals_single_spectrum_kernel():
    rng = np.random.default_rng(13)
    cases = [_random_case(rng, 400) for _ in range(5)]
    F = np.stack([c[0] for c in cases])
    IV = np.stack([c[1] for c in cases])
    M = np.stack([c[2] for c in cases])
    bf, bi, bc = sed_recalibrate_batch(F, IV, M, 2, 3.0, 5)
    for r, (f, iv, m, _) in enumerate(cases):
        sf, si, sc = sed_recalibrate(f, iv, m, 2, 3.0, 5)
        np.testing.assert_array_equal(bf[r], sf)
        np.testing.assert_array_equal(bc[r], sc)


PICKLES_DWARFS = ("m0v", "m2v", "m4v", "m6v")
PICKLES_GIANTS = ("m0iii", "m3iii", "m6iii", "m9iii")


@pytest.mark.real
@pytest.mark.parametrize("name", PICKLES_DWARFS + PICKLES_GIANTS)
def test_recovers_injected_distortion_on_real_pickles_sed_within_one_percent(real_data, name):
    wave_aa, sed = read_pickles(real_data / "libraries" / "pickles1998_k_m" / f"{name}.dat")
    loglam0, n = common_grid(SP.cluster_wave_min_aa, SP.cluster_wave_max_aa, SP.dloglam)
    grid_aa = 10 ** (loglam0 + SP.dloglam * np.arange(n))
    model = np.interp(grid_aa, wave_aa, sed)
    positive = model > 0  # the coolest giants have zero flux in the far blue: those pixels carry no weight
    assert positive.mean() > 0.5, f"{name}: Pickles SED is mostly non-positive on the grid"
    x = poly_x(n)
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # stable across processes, unlike hash()
    worst = 0.0
    # 2nd-order distortions spanning +-10-20%: tilted, curved, both
    for true in ([1.0, 0.15, 0.0], [1.0, 0.0, -0.18], [0.95, -0.12, 0.1], [1.05, 0.1, -0.15]):
        p_true = np.polynomial.polynomial.polyval(x, true)
        snr = 30.0
        sigma = model * p_true / snr
        flux = model * p_true + rng.normal(0, 1, n) * sigma
        flux[rng.random(n) < 0.005] *= 3.0  # cosmic rays
        ivar = np.where(positive, 1 / np.where(positive, sigma, 1) ** 2, 0.0)
        coeffs = sed_recalibrate(flux.astype(np.float32), ivar.astype(np.float32), model.astype(np.float32),
                                 SP.sedcal_poly_order, SP.sedcal_clip_nsigma, SP.sedcal_iterations)[2]
        worst = max(worst, float(np.abs(poly_eval(coeffs, x) / p_true - 1).max()))
    assert worst < 0.01, f"{name}: worst polynomial error {worst:.4f}"
