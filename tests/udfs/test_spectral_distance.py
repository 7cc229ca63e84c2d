"""udfs/spectral_distance.py against a slow numpy twin, and the statistics it promises (unbiased, noise sd)."""

from __future__ import annotations

import numpy as np
import pytest
from naive import assert_close

from mgold.udfs.spectral_distance import (debiased_distances, debiased_distances_bins, noise_sd,
                                          weighted_distances)


def twin(Y, IV, n_ref, min_common, floor, mode="debiased"):
    """Pair by pair with boolean masks, as the module docstring writes it."""
    Y = np.asarray(Y, dtype=np.float64)
    IV = np.asarray(IV, dtype=np.float64)
    m = Y.shape[0]
    with np.errstate(all="ignore"):
        good = (IV > 0) & np.isfinite(IV) & np.isfinite(Y)
    need = max(min_common, 1)
    out = np.full((m, m), np.inf)
    for i in range(m):
        out[i, i] = 0.0 if good[i].sum() >= need else np.inf
        for j in range(m):
            if i == j:
                continue
            g = good[i] & good[j]
            if g.sum() < need:
                continue
            s2 = 1 / IV[i, g] + 1 / IV[j, g]
            w = 1 / (s2 + floor ** 2)
            d2 = (Y[i, g] - Y[j, g]) ** 2
            if mode == "sd":
                out[i, j] = n_ref * np.sqrt(2 * np.sum(w ** 2 * s2 ** 2)) / w.sum()
            elif mode == "weighted":
                out[i, j] = np.sqrt(max(n_ref * np.sum(w * d2) / w.sum(), 0))
            else:
                out[i, j] = np.sqrt(max(n_ref * np.sum(w * (d2 - s2)) / w.sum(), 0))
    return out


def _spectra(rng, m, n, bad=True):
    base = 1 + 0.3 * np.sin(np.linspace(0, 20, n))
    sig = rng.uniform(0.005, 0.1, (m, 1)) * rng.uniform(0.5, 2, n)[None, :]
    Y = base[None, :] * (1 + rng.normal(0, 0.01, (m, 1))) + sig * rng.standard_normal((m, n))
    IV = 1 / sig ** 2
    if bad:
        IV[rng.random((m, n)) < 0.05] = 0.0
        Y[rng.random((m, n)) < 0.01] = np.nan
        IV[rng.random((m, n)) < 0.01] = np.inf
        IV[rng.random((m, n)) < 0.01] = -1.0
    return Y, IV


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("floor", [0.0, 0.02])
def test_matches_the_twin_with_masks_nan_and_inf(seed, floor):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 12)), int(rng.integers(20, 300))
    Y, IV = _spectra(rng, m, n)
    if m > 2:
        IV[1, :] = 0.0                      # an unusable row: inf to all, even itself
        IV[2, : n // 2 + 5] = 0.0           # too few common pixels with most others
    args = (Y, IV, 1000.0, n // 2, floor)
    for got, mode in ((debiased_distances(*args), "debiased"), (noise_sd(*args), "sd"),
                      (weighted_distances(*args), "weighted")):
        want = twin(*args, mode=mode)
        assert (np.isinf(got) == np.isinf(want)).all(), mode
        fin = np.isfinite(want)
        assert_close(got[fin], want[fin], mode)


def test_empty_and_one_row():
    assert debiased_distances(np.empty((0, 5)), np.empty((0, 5)), 10.0, 1, 0.0).shape == (0, 0)
    assert debiased_distances(np.ones((1, 5)), np.ones((1, 5)), 10.0, 1, 0.0).tolist() == [[0.0]]
    assert debiased_distances(np.ones((1, 5)), np.zeros((1, 5)), 10.0, 1, 0.0).tolist() == [[np.inf]]


def test_noise_alone_averages_to_zero_with_the_promised_spread():
    """Two noisy copies of one spectrum: E[D^2] = 0 (unclipped) and sd(D^2) = noise_sd."""
    rng = np.random.default_rng(3)
    n, n_ref, reps = 400, 3500.0, 4000
    base = 1 + 0.3 * np.sin(np.linspace(0, 20, n))
    sig = np.vstack([np.full(n, 0.05), np.linspace(0.02, 0.2, n)])
    IV = 1 / sig ** 2
    d2 = np.empty(reps)
    for r in range(reps):
        Y = base + sig * rng.standard_normal((2, n))
        w = 1 / (sig[0] ** 2 + sig[1] ** 2)
        d2[r] = n_ref * np.sum(w * ((Y[0] - Y[1]) ** 2 - 1 / w)) / w.sum()       # unclipped D^2
    sd = noise_sd(np.vstack([base, base]), IV, n_ref, 1, 0.0)[0, 1]
    assert abs(d2.mean()) < 4 * sd / np.sqrt(reps)
    assert d2.std() == pytest.approx(sd, rel=0.05)
    # the kernel's D for one realisation is the clipped square root of the same quantity
    Y = base + sig * rng.standard_normal((2, n))
    w = 1 / (sig[0] ** 2 + sig[1] ** 2)
    want = np.sqrt(max(n_ref * np.sum(w * ((Y[0] - Y[1]) ** 2 - 1 / w)) / w.sum(), 0))
    assert debiased_distances(Y, IV, n_ref, 1, 0.0)[0, 1] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_recovers_the_noise_free_distance_not_the_noise():
    """Two different spectra at S/N ~20: plain Euclidean distance is dominated by noise, D is not."""
    rng = np.random.default_rng(4)
    n = 3000
    a = 1 + 0.3 * np.sin(np.linspace(0, 40, n))
    b = a * (1 + 0.03 * np.sin(np.linspace(0, 7, n)))             # true D^2 ~1.5, sd(D^2) from noise ~0.4
    true = np.sqrt(np.sum((a - b) ** 2))
    sig = 0.05
    IV = np.full((2, n), 1 / sig ** 2)
    vals, plain = [], []
    for _ in range(200):
        Y = np.vstack([a, b]) + sig * rng.standard_normal((2, n))
        vals.append(debiased_distances(Y, IV, float(n), 1, 0.0)[0, 1] ** 2)
        plain.append(np.sum((Y[0] - Y[1]) ** 2))
    assert np.mean(plain) > 5 * true ** 2                           # noise alone: 2 n sigma^2 = 15
    assert np.mean(vals) == pytest.approx(true ** 2, abs=3 * np.std(vals) / np.sqrt(200))


def test_high_snr_with_a_floor_is_plain_euclidean_on_n_ref_pixels():
    rng = np.random.default_rng(5)
    n = 500
    Y = 1 + 0.1 * rng.standard_normal((3, n))
    IV = np.full((3, n), 1e12) * rng.uniform(0.1, 10, (3, n))      # S/N ~1e6, very uneven
    D = debiased_distances(Y, IV, 2000.0, 1, 0.02)
    want = np.sqrt(((Y[:, None, :] - Y[None, :, :]) ** 2).sum(-1) * 2000.0 / n)
    assert_close(D, want)
    # without the floor the uneven ivar still weighs the pixels: not Euclidean
    assert not np.allclose(debiased_distances(Y, IV, 2000.0, 1, 0.0), want, rtol=1e-3)


def test_bins_equal_per_bin_matrices():
    rng = np.random.default_rng(6)
    sizes = [3, 0, 1, 7, 2]
    Y, IV = _spectra(rng, sum(sizes), 120)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat = debiased_distances_bins(Y, IV, offsets, 500.0, 30, 0.01)
    pos = 0
    for b, s in enumerate(sizes):
        want = debiased_distances(Y[offsets[b]:offsets[b + 1]], IV[offsets[b]:offsets[b + 1]], 500.0, 30, 0.01)
        np.testing.assert_array_equal(flat[pos:pos + s * s].reshape(s, s), want)
        pos += s * s
    assert pos == flat.size
