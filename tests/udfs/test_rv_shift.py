"""udfs/rv_shift.py: rest-frame shift on the spectrum's own grid (paper §2.3.1)."""

from __future__ import annotations

import numpy as np
import pytest
from naive import assert_close, naive_rv_shift

from mgold.udfs.rv_shift import rv_shift, rv_shift_batch

L0, DL = 3.5682, 1e-4  # LAMOST native grid
PIX_KMS = 299792.458 * np.log(10) * DL  # ~69 km/s per pixel


def _noisy(rng, n, sigma=0.01):
    i = np.arange(n)
    clean = 1.0 + 0.3 * np.sin(i / 7.0) - 0.5 * np.exp(-0.5 * ((i - n / 2) / 2.0) ** 2)
    flux = (clean + rng.normal(0, sigma, n)).astype(np.float32)
    return clean, flux, np.full(n, 1 / sigma**2, np.float32)


@pytest.mark.parametrize("rv_kms", [-250.0, -35.0, 0.0, 12.3, 69.0, 140.7, 480.0])
def test_rv_shift_matches_naive_including_bad_pixels(rv_kms):
    rng = np.random.default_rng(int(abs(rv_kms)))
    _, flux, ivar = _noisy(rng, 300)
    ivar[rng.random(300) < 0.03] = 0
    flux[rng.random(300) < 0.02] = np.nan
    got = rv_shift(flux, ivar, L0, DL, rv_kms)
    want = naive_rv_shift(flux, ivar, L0, DL, rv_kms)
    assert_close(got[0], want[0], "flux")
    assert_close(got[1], want[1], "ivar")


def test_shift_by_plus_v_then_minus_v_returns_input_within_noise():
    rng = np.random.default_rng(5)
    sigma = 0.01
    clean, flux, ivar = _noisy(rng, 1000, sigma)
    f1, i1 = rv_shift(flux, ivar, L0, DL, 123.4)
    f2, i2 = rv_shift(f1, i1, L0, DL, -123.4)
    interior = slice(5, -5)
    assert np.all(i2[interior] > 0)
    resid = (f2[interior] - clean[interior]) / sigma
    assert np.sqrt(np.mean(resid**2)) < 1.2       # within noise, not biased by the line or the sine
    assert abs(np.mean(resid)) < 0.2


def test_positive_velocity_masks_the_red_edge_and_never_extrapolates():
    rng = np.random.default_rng(6)
    _, flux, ivar = _noisy(rng, 200)
    rv = 2.5 * PIX_KMS  # 2.5 pixels to the blue in the rest frame
    f, iv = rv_shift(flux, ivar, L0, DL, rv)
    assert np.all(iv[-3:] == 0) and np.all(iv[:-3] > 0)
    f, iv = rv_shift(flux, ivar, L0, DL, -rv)
    assert np.all(iv[:3] == 0) and np.all(iv[3:] > 0)


def test_bad_pixel_spreads_to_the_two_output_pixels_it_touches():
    flux = np.ones(100, np.float32)
    ivar = np.ones(100, np.float32)
    ivar[40] = 0
    f, iv = rv_shift(flux, ivar, L0, DL, 0.4 * PIX_KMS)
    assert set(np.flatnonzero(iv[:-1] == 0)) == {39, 40}
    assert np.all(f[:-1] == pytest.approx(1.0))


def test_line_centre_moves_by_the_doppler_shift_to_subpixel_precision():
    n = 400
    i = np.arange(n)
    centre = 200.0
    flux = (1 - 0.6 * np.exp(-0.5 * ((i - centre) / 3.0) ** 2)).astype(np.float32)
    ivar = np.ones(n, np.float32)
    rv = 0.37 * PIX_KMS
    f, _ = rv_shift(flux, ivar, L0, DL, rv)
    depth = 1 - f[150:250].astype(np.float64)
    measured = np.sum(depth * i[150:250]) / np.sum(depth)
    expected_shift_px = np.log10(1 + rv / 299792.458) / DL
    assert measured == pytest.approx(centre - expected_shift_px, abs=0.02)


def test_zero_velocity_is_identity():
    rng = np.random.default_rng(7)
    _, flux, ivar = _noisy(rng, 64)
    f, iv = rv_shift(flux, ivar, L0, DL, 0.0)
    np.testing.assert_array_equal(f, flux)
    np.testing.assert_array_equal(iv, ivar)


def test_batch_equals_single_spectrum_kernel():
    rng = np.random.default_rng(8)
    lens = [0, 1, 50, 300, 7]
    specs = [_noisy(rng, n)[1:] for n in lens]
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    fv = np.concatenate([s[0] for s in specs]).astype(np.float32)
    iv = np.concatenate([s[1] for s in specs]).astype(np.float32)
    rv = rng.normal(0, 100, len(lens))
    l0 = np.full(len(lens), L0)
    of, oi = rv_shift_batch(fv, iv, off, l0, np.full(len(lens), DL), rv)
    for r, (f, i) in enumerate(specs):
        sf, si = rv_shift(f, i, L0, DL, rv[r])
        np.testing.assert_array_equal(of[off[r]:off[r + 1]], sf)
        np.testing.assert_array_equal(oi[off[r]:off[r + 1]], si)
