"""udfs/resample.py and udfs/grid.py against the dense-overlap twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from naive import assert_close, naive_resample

from mgold.udfs.grid import common_grid
from mgold.udfs.resample import (rest_frame_resample, rest_frame_resample_batch, rest_frame_resample_ragged,
                                 resample)

DL = 1e-4


def _spectrum(rng, n, bad_rate=0.02):
    flux = rng.normal(1.0, 0.2, n).astype(np.float32)
    ivar = rng.uniform(50, 200, n).astype(np.float32)
    bad = rng.random(n) < bad_rate
    ivar[bad] = 0.0
    flux[rng.random(n) < bad_rate / 2] = np.nan
    ivar[rng.random(n) < bad_rate / 2] = -1.0
    return flux, ivar


@pytest.mark.parametrize("seed", range(12))
def test_resample_matches_naive_on_random_grids(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    flux, ivar = _spectrum(rng, n)
    l0 = 3.58 + rng.uniform(-0.01, 0.01)
    out_dl = DL * rng.choice([0.37, 1.0, 1.0, 2.0, 3.3])
    out_l0 = l0 + rng.uniform(-30, 30) * DL  # includes grids hanging over either edge
    n_out = int(rng.integers(0, 400))
    got = resample(flux, ivar, l0, DL, out_l0, out_dl, n_out)
    want = naive_resample(flux, ivar, l0, DL, out_l0, out_dl, n_out)
    assert_close(got[0], want[0], "flux")
    assert_close(got[1], want[1], "ivar")


def test_resample_onto_identical_grid_returns_input_and_keeps_edges():
    rng = np.random.default_rng(1)
    flux, ivar = _spectrum(rng, 500, bad_rate=0)
    f, iv = resample(flux, ivar, 3.6, DL, 3.6, DL, 500)
    np.testing.assert_array_equal(f, flux)
    assert_close(iv, ivar)


def test_resample_conserves_flux_integral_on_coarser_aligned_grid():
    rng = np.random.default_rng(2)
    flux, ivar = _spectrum(rng, 300, bad_rate=0)
    # output pixels of 3 input pixels, edges aligned: sum(f dloglam) is conserved exactly
    f, iv = resample(flux, ivar, 3.6, DL, 3.6 + DL, 3 * DL, 100)
    assert math.isclose(float(np.sum(f.astype(np.float64)) * 3 * DL), float(np.sum(flux.astype(np.float64)) * DL),
                        rel_tol=1e-6)
    assert np.all(iv > 0)


def test_resample_masks_output_outside_input_coverage():
    flux = np.ones(50, np.float32)
    ivar = np.ones(50, np.float32)
    f, iv = resample(flux, ivar, 3.6, DL, 3.6 - 10 * DL, DL, 70)
    assert np.all(iv[:10] == 0) and np.all(f[:10] == 0)
    assert np.all(iv[10:60] > 0)
    assert np.all(iv[60:] == 0)


def test_resample_of_empty_spectrum_is_all_bad():
    f, iv = resample(np.empty(0, np.float32), np.empty(0, np.float32), 3.6, DL, 3.6, DL, 5)
    assert np.all(iv == 0) and np.all(f == 0)


def test_nan_flux_masks_only_the_output_pixels_it_touches():
    flux = np.ones(100, np.float32)
    ivar = np.ones(100, np.float32)
    flux[50] = np.nan
    f, iv = resample(flux, ivar, 3.6, DL, 3.6 + 0.5 * DL, DL, 99)
    assert np.all(np.isfinite(f))
    assert set(np.flatnonzero(iv == 0)) == {49, 50}


def test_rest_frame_resample_is_one_resample_of_the_shifted_grid():
    rng = np.random.default_rng(3)
    flux, ivar = _spectrum(rng, 400)
    rv = 87.3
    l0_rest = math.log10(10**3.6 / (1 + rv / 299792.458))
    out_l0, n_out = common_grid(10**3.6 * 1.001, 10**3.6 * 1.08, 2 * DL)
    got = rest_frame_resample(flux, ivar, 3.6, DL, rv, out_l0, 2 * DL, n_out)
    want = naive_resample(flux, ivar, l0_rest, DL, out_l0, 2 * DL, n_out)
    assert_close(got[0], want[0], "flux")
    assert_close(got[1], want[1], "ivar")


def test_batch_and_ragged_drivers_equal_the_single_spectrum_kernel():
    rng = np.random.default_rng(4)
    specs = [_spectrum(rng, int(n)) for n in rng.integers(0, 200, 9)]
    offsets = np.concatenate([[0], np.cumsum([len(s[0]) for s in specs])]).astype(np.int64)
    fv = np.concatenate([s[0] for s in specs])
    iv = np.concatenate([s[1] for s in specs])
    l0 = rng.uniform(3.59, 3.6, 9)
    dl = np.full(9, DL)
    rv = rng.normal(0, 80, 9)
    bf, bi = rest_frame_resample_batch(fv, iv, offsets, l0, dl, rv, 3.595, DL, 120)
    out_off = np.arange(10, dtype=np.int64) * 120
    rf, ri = rest_frame_resample_ragged(fv, iv, offsets, l0, dl, rv, np.full(9, 3.595), dl, out_off)
    for r, (f, i) in enumerate(specs):
        sf, si = rest_frame_resample(f, i, l0[r], DL, rv[r], 3.595, DL, 120)
        np.testing.assert_array_equal(bf[r], sf)
        np.testing.assert_array_equal(bi[r], si)
        np.testing.assert_array_equal(rf[r * 120:(r + 1) * 120], sf)


def test_common_grid_spans_the_requested_window():
    l0, n = common_grid(3900.0, 8800.0, 1e-4)
    assert math.isclose(10**l0, 3900.0)
    last = 10 ** (l0 + (n - 1) * 1e-4)
    assert last <= 8800.0 < 10 ** (l0 + n * 1e-4)
    with pytest.raises(ValueError, match="wave_min_aa"):
        common_grid(8800.0, 3900.0, 1e-4)
