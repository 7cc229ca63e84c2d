"""Noise-debiased, inverse-variance-weighted distance between spectra (paper §2.4's DBSCAN distance).

For two spectra a, b on one grid (flux y, inverse variance iv; iv <= 0 or a
non-finite value marks a bad pixel), over the pixels good in both, with
s_i^2 = 1/iva_i + 1/ivb_i and weights w_i = 1 / (s_i^2 + floor^2)::

    D^2 = n_ref * sum_i w_i [(ya_i - yb_i)^2 - s_i^2] / sum_i w_i        (clipped at 0)

E[(ya - yb)^2] = (true difference)^2 + s^2 for independent noise, so D^2 is an
unbiased estimate of n_ref times the w-weighted mean squared difference of the
NOISE-FREE spectra: with n_ref = the pixel count of a reference grid, the squared
Euclidean distance the noise-free spectra would have on that grid. Photon noise
no longer sets the scale; it only adds scatter. For noise only (no true
difference) D^2 has mean 0 and standard deviation
``n_ref * sqrt(2 * sum w^2 s^4) / sum w`` (``noise_sd``).

``floor`` (same units as y) sets the weighting: pixels noisier than ``floor``
are weighted by their inverse variance (the minimum-variance estimate of a
common squared difference), pixels more precise than ``floor`` equally, so for
high-S/N pairs D is plain Euclidean distance scaled to n_ref pixels. floor = 0 is
pure inverse-variance weighting.

A pair with fewer than ``min_common`` common good pixels gets D = inf (no
neighbours); a row with fewer than ``min_common`` good pixels also gets inf on the
diagonal, so DBSCAN does not even count it as its own neighbour.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .dbscan import block_offsets


@njit(cache=True)
def _clean_rows(Y, IV):
    """(y, var, good) float64 copies: var = 1/iv and good = 1 on good pixels; y = 0, var = 1, good = 0
    elsewhere, so the pair loop below runs branch-free on finite numbers only."""
    m, n = Y.shape
    y = np.zeros((m, n), dtype=np.float64)
    var = np.ones((m, n), dtype=np.float64)
    good = np.zeros((m, n), dtype=np.float64)
    for i in range(m):
        for k in range(n):
            a = np.float64(IV[i, k])
            v = np.float64(Y[i, k])
            if a > 0.0 and math.isfinite(a) and math.isfinite(v):
                y[i, k] = v
                var[i, k] = 1.0 / a
                good[i, k] = 1.0
    return y, var, good


# inputs are finite by construction (_clean_rows), so fastmath may vectorise the loop
@njit(cache=True, fastmath=True)
def _pair_sums(y, var, good, i, j, floor2):
    """(sum w [(d^2 - s^2)], sum w, sum w^2 s^4, sum w s^2, n common) of rows i, j."""
    swe = 0.0
    sw = 0.0
    sws = 0.0
    swv = 0.0
    nc = 0.0
    for k in range(y.shape[1]):
        g = good[i, k] * good[j, k]
        s2 = var[i, k] + var[j, k]
        w = g / (s2 + floor2)
        d = y[i, k] - y[j, k]
        ws2 = w * s2
        swe += w * d * d - ws2
        sw += w
        sws += ws2 * ws2
        swv += ws2
        nc += g
    return swe, sw, sws, swv, nc


_DEBIASED, _NOISE_SD, _WEIGHTED = 0, 1, 2


@njit(cache=True)
def _matrix_into(Y, IV, n_ref, min_common, floor, out, mode):
    m = Y.shape[0]
    floor2 = floor * floor
    need = max(min_common, 1)
    y, var, good = _clean_rows(Y, IV)
    for i in range(m):
        out[i, i] = 0.0 if good[i].sum() >= need else np.inf
        for j in range(i + 1, m):
            swe, sw, sws, swv, nc = _pair_sums(y, var, good, i, j, floor2)
            if nc < need or sw <= 0.0:
                v = np.inf
            elif mode == _NOISE_SD:
                v = n_ref * math.sqrt(2.0 * sws) / sw
            elif mode == _WEIGHTED:
                v = math.sqrt(max(n_ref * (swe + swv) / sw, 0.0))
            else:
                v = math.sqrt(max(n_ref * swe / sw, 0.0))
            out[i, j] = v
            out[j, i] = v


@njit(cache=True)
def debiased_distances(Y, IV, n_ref, min_common, floor):
    """(m, m) float64 matrix of D (module docstring) between the rows of Y (m, n) with inverse variance IV."""
    out = np.empty((Y.shape[0], Y.shape[0]), dtype=np.float64)
    _matrix_into(Y, IV, n_ref, min_common, floor, out, _DEBIASED)
    return out


@njit(cache=True)
def weighted_distances(Y, IV, n_ref, min_common, floor):
    """D with the same weights but no noise subtraction: for rows known to be noise-free (e.g. the
    synthetic truth's spectra) weighted as their observed twins with inverse variance IV."""
    out = np.empty((Y.shape[0], Y.shape[0]), dtype=np.float64)
    _matrix_into(Y, IV, n_ref, min_common, floor, out, _WEIGHTED)
    return out


@njit(cache=True)
def noise_sd(Y, IV, n_ref, min_common, floor):
    """(m, m) standard deviation of D^2 for noise only, from the ivar of each pair (diagonal 0 / inf)."""
    out = np.empty((Y.shape[0], Y.shape[0]), dtype=np.float64)
    _matrix_into(Y, IV, n_ref, min_common, floor, out, _NOISE_SD)
    return out


@njit(cache=True, parallel=True)
def debiased_distances_bins(Y, IV, bin_offsets, n_ref, min_common, floor):
    """Each bin's D matrix, row-major, one after another (the layout of ``dbscan_bins_precomputed``)."""
    nb = bin_offsets.shape[0] - 1
    boff = block_offsets(bin_offsets)
    out = np.empty(boff[nb], dtype=np.float64)
    for b in prange(nb):
        s, e = bin_offsets[b], bin_offsets[b + 1]
        m = e - s
        _matrix_into(Y[s:e], IV[s:e], n_ref, min_common, floor, out[boff[b]:boff[b + 1]].reshape((m, m)), _DEBIASED)
    return out
