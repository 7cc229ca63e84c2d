"""The intrinsic-spectrum generator: contract, physics directions, speed sanity, SED mismatch."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mgold.pipeline.synth import spectra_model as sm

WAVE = sm.lamost_wave_aa()


def _depth(flux, centre_aa, half_aa, cont_aa):
    """Mean flux in a window relative to a nearby continuum window (1 - ratio)."""
    inside = np.abs(WAVE - centre_aa) < half_aa
    cont = np.abs(WAVE - cont_aa) < half_aa
    return 1.0 - flux[:, inside].mean(1) / flux[:, cont].mean(1)


def test_lamost_grid_matches_header_convention():
    assert WAVE.size == sm.N_PIX == 3909
    assert WAVE[0] == pytest.approx(10 ** 3.5682)
    assert np.allclose(np.diff(np.log10(WAVE)), 1e-4)


def test_flux_shape_dtype_finite_and_normalised():
    rng = np.random.default_rng(1)
    n = 200
    teff, logg, mh = rng.uniform(2900, 4200, n), rng.uniform(-0.3, 5.3, n), rng.uniform(-1.2, 0.8, n)
    flux = sm.intrinsic_flux(teff, logg, mh, WAVE)
    assert flux.shape == (n, sm.N_PIX) and flux.dtype == np.float32
    assert np.isfinite(flux).all() and (flux > 0).all()
    window = (WAVE >= 7400) & (WAVE <= 7500)
    assert np.allclose(np.median(flux[:, window], axis=1), 1.0, atol=0.01)


def test_scalar_labels_give_one_row_and_are_deterministic():
    a = sm.intrinsic_flux(3600.0, 4.8, 0.0, WAVE)
    b = sm.intrinsic_flux(3600.0, 4.8, 0.0, WAVE)
    assert a.shape == (1, sm.N_PIX)
    assert np.array_equal(a, b)


def test_off_grid_wavelengths_agree_with_native_grid():
    sub = WAVE[1000:1500]
    on = sm.intrinsic_flux([3500.0, 3900.0], [4.7, 1.5], [0.0, -0.3], sub)
    off = sm.intrinsic_flux([3500.0, 3900.0], [4.7, 1.5], [0.0, -0.3], sub + 1e-3)
    assert np.allclose(on, off, rtol=0.02)


def test_tio_7050_band_deepens_as_teff_falls():
    teff = np.array([4100.0, 3700.0, 3300.0, 3000.0])
    flux = sm.intrinsic_flux(teff, np.full(4, 4.8), np.zeros(4), WAVE)
    depth = _depth(flux, 7110.0, 40.0, 7030.0)
    assert np.all(np.diff(depth) > 0), depth


def test_nai_8190_deeper_for_dwarfs_than_giants():
    flux = sm.intrinsic_flux([3600.0, 3600.0], [5.0, 1.0], [0.0, 0.0], WAVE)
    depth = _depth(flux, 8191.0, 6.0, 8170.0)
    assert depth[0] > depth[1] + 0.02, depth


def test_calcium_triplet_deeper_in_giants():
    flux = sm.intrinsic_flux([3900.0, 3900.0], [1.0, 4.8], [0.0, 0.0], WAVE)
    depth = _depth(flux, 8544.4, 3.0, 8560.0)
    assert depth[0] > depth[1] + 0.01, depth


@pytest.mark.slow
def test_ten_thousand_stars_evaluate_quickly():
    rng = np.random.default_rng(2)
    n = 10_000
    args = rng.uniform(3000, 4150, n), rng.uniform(-0.3, 5.2, n), rng.uniform(-1, 0.7, n)
    sm.intrinsic_flux(*(a[:10] for a in args), WAVE)  # compile
    start = time.perf_counter()
    flux = sm.intrinsic_flux(*args, WAVE)
    assert flux.shape == (n, sm.N_PIX)
    assert time.perf_counter() - start < 10.0  # generous: shared CI cores; bench measures it


@pytest.mark.parametrize("family", sm.FAMILIES)
def test_model_sed_differs_from_generator_by_documented_mismatch(family):
    teff, logg, mh = np.array([3500.0, 3700.0]), np.array([4.9, 1.2]), np.array([0.0, -0.2])
    ratio = sm.model_sed(family, teff, logg, mh, WAVE) / sm.intrinsic_flux(teff, logg, mh, WAVE)
    expect = sm.sed_mismatch(family, teff, logg, mh, WAVE)
    ratio /= np.median(ratio, axis=1, keepdims=True)
    expect /= np.median(expect, axis=1, keepdims=True)
    assert np.allclose(ratio, expect, rtol=2e-3)


def test_marcs_like_has_blue_excess_for_dwarfs_only():
    blue = WAVE < 4000
    m = sm.sed_mismatch("marcs_like", [3500.0, 3500.0], [5.0, 1.0], [0.0, 0.0], WAVE)
    assert m[0, blue].min() > 1.15 and np.allclose(m[1], 1.0)
    assert np.allclose(m[0, WAVE > 5000], 1.0)


def test_bt_settl_like_fits_dwarfs_and_tilts_giants():
    m = sm.sed_mismatch("bt_settl_like", [3500.0, 3500.0], [5.0, 1.0], [0.0, 0.0], WAVE)
    assert np.allclose(m[0], 1.0)
    assert m[1, -1] > 1.05 and m[1, 0] < 0.95


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown SED family"):
        sm.model_sed("kurucz", 3500.0, 4.8, 0.0, WAVE)
