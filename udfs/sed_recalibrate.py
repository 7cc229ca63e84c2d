"""SED recalibration against a reference model SED (paper §2.3.2, after Du et al. 2019).

Fit a multiplicative polynomial P(x) = sum_k c_k x^k (power basis, k = 0..order)
such that flux ~= P * model, where x runs linearly in pixel index from -1 at the
first pixel to +1 at the last one. The spectra live on log-linear grids, so x is
log10(lambda) rescaled to [-1, 1] over the grid. Weighted least squares with
weights ivar; iterative rejection of lines and model mismatch: after each fit,
chi_i = (flux_i - P_i model_i) sqrt(ivar_i), s = rms(chi) over the pixels kept,
and a good pixel is kept when |chi_i| <= clip_nsigma * s. Using the rms of chi
(not 1) makes the cut scale with model mismatch as well as with noise. The
rejection is re-evaluated over all good pixels each round (pixels can return);
at most ``iterations`` rounds after the first fit, stopping early when the mask
is stable.

Output: flux / P, ivar * P^2 and the coefficients c_0..c_order (float64).
Pixels where P <= 0 get ivar 0. A failed fit (fewer usable pixels than
coefficients, or a singular system) returns NaN coefficients, the flux with
non-finite values set to 0, and ivar 0 everywhere.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def poly_x(n):
    """The scaled abscissa x in [-1, 1] of an n-pixel grid."""
    x = np.empty(n, dtype=np.float64)
    if n == 1:
        x[0] = 0.0
        return x
    for i in range(n):
        x[i] = 2.0 * i / (n - 1) - 1.0
    return x


@njit(cache=True)
def poly_eval(coeffs, x):
    """P(x) for power-basis coefficients c_0..c_order (Horner)."""
    out = np.zeros(x.shape[0], dtype=np.float64)
    for k in range(coeffs.shape[0] - 1, -1, -1):
        out = out * x + coeffs[k]
    return out


@njit(cache=True)
def _solve_weighted(x, flux, ivar, model, keep, order):
    """Weighted least squares for c: normal equations solved by Cholesky-free Gaussian elimination."""
    m = order + 1
    ata = np.zeros((m, m))
    atb = np.zeros(m)
    basis = np.empty(m)
    nkeep = 0
    for i in range(x.shape[0]):
        if not keep[i]:
            continue
        nkeep += 1
        basis[0] = model[i]
        for k in range(1, m):
            basis[k] = basis[k - 1] * x[i]
        w = ivar[i]
        for p in range(m):
            atb[p] += w * basis[p] * flux[i]
            for q in range(m):
                ata[p, q] += w * basis[p] * basis[q]
    coeffs = np.full(m, np.nan)
    if nkeep < m:
        return coeffs, False
    # partial-pivot elimination; m <= ~6 so this is cheaper than LAPACK call overhead
    for col in range(m):
        piv = col
        for r in range(col + 1, m):
            if abs(ata[r, col]) > abs(ata[piv, col]):
                piv = r
        if not (abs(ata[piv, col]) > 1e-300):
            return coeffs, False
        if piv != col:
            for q in range(m):
                ata[col, q], ata[piv, q] = ata[piv, q], ata[col, q]
            atb[col], atb[piv] = atb[piv], atb[col]
        for r in range(col + 1, m):
            fac = ata[r, col] / ata[col, col]
            for q in range(col, m):
                ata[r, q] -= fac * ata[col, q]
            atb[r] -= fac * atb[col]
    for r in range(m - 1, -1, -1):
        acc = atb[r]
        for q in range(r + 1, m):
            acc -= ata[r, q] * coeffs[q]
        coeffs[r] = acc / ata[r, r]
    for k in range(m):
        if not math.isfinite(coeffs[k]):
            return coeffs, False
    return coeffs, True


@njit(cache=True)
def sed_recalibrate_into(flux, ivar, model_flux, order, clip_nsigma, iterations, out_flux, out_ivar, out_coeffs):
    """`sed_recalibrate` writing into preallocated outputs (used by the batch driver)."""
    n = flux.shape[0]
    x = poly_x(n)
    good = np.empty(n, dtype=np.bool_)
    for i in range(n):
        good[i] = (ivar[i] > 0.0 and math.isfinite(flux[i]) and math.isfinite(ivar[i])
                   and math.isfinite(model_flux[i]) and model_flux[i] > 0.0)
    keep = good.copy()
    f64 = flux.astype(np.float64)
    iv64 = ivar.astype(np.float64)
    m64 = model_flux.astype(np.float64)
    coeffs, ok = _solve_weighted(x, f64, iv64, m64, keep, order)
    for _ in range(iterations):
        if not ok:
            break
        p = poly_eval(coeffs, x)
        s2 = 0.0
        nk = 0
        for i in range(n):
            if keep[i]:
                c = (f64[i] - p[i] * m64[i]) * math.sqrt(iv64[i])
                s2 += c * c
                nk += 1
        cut = clip_nsigma * math.sqrt(s2 / nk)
        changed = False
        for i in range(n):
            k = False
            if good[i]:
                k = abs((f64[i] - p[i] * m64[i]) * math.sqrt(iv64[i])) <= cut
            if k != keep[i]:
                changed = True
                keep[i] = k
        if not changed:
            break
        coeffs, ok = _solve_weighted(x, f64, iv64, m64, keep, order)
    for k in range(order + 1):
        out_coeffs[k] = coeffs[k] if ok else np.nan
    if not ok:
        for i in range(n):
            out_flux[i] = flux[i] if math.isfinite(flux[i]) else 0.0
            out_ivar[i] = 0.0
        return
    p = poly_eval(coeffs, x)
    for i in range(n):
        if p[i] > 0.0 and math.isfinite(flux[i]):
            out_flux[i] = flux[i] / p[i]
            out_ivar[i] = ivar[i] * p[i] * p[i] if (ivar[i] > 0.0 and math.isfinite(ivar[i])) else 0.0
        else:
            out_flux[i] = 0.0
            out_ivar[i] = 0.0


@njit(cache=True)
def sed_recalibrate(flux, ivar, model_flux, order=2, clip_nsigma=3.0, iterations=5):
    """Recalibrate one spectrum against ``model_flux`` (same grid) -> (flux float32, ivar float32, coeffs float64)."""
    n = flux.shape[0]
    out_flux = np.empty(n, dtype=np.float32)
    out_ivar = np.empty(n, dtype=np.float32)
    coeffs = np.empty(order + 1, dtype=np.float64)
    sed_recalibrate_into(flux, ivar, model_flux, order, clip_nsigma, iterations, out_flux, out_ivar, coeffs)
    return out_flux, out_ivar, coeffs


@njit(cache=True, parallel=True)
def sed_recalibrate_batch(flux, ivar, model_flux, order, clip_nsigma, iterations):
    """Rows of (m, n) flux / ivar / model on one common grid -> recalibrated (m, n) float32 + (m, order+1) coeffs."""
    m, n = flux.shape
    out_flux = np.empty((m, n), dtype=np.float32)
    out_ivar = np.empty((m, n), dtype=np.float32)
    coeffs = np.empty((m, order + 1), dtype=np.float64)
    for r in prange(m):
        sed_recalibrate_into(flux[r], ivar[r], model_flux[r], order, clip_nsigma, iterations,
                             out_flux[r], out_ivar[r], coeffs[r])
    return out_flux, out_ivar, coeffs


@njit(cache=True, parallel=True)
def sed_recalibrate_ragged(flux_values, ivar_values, model_values, offsets, model_offsets,
                           order, clip_nsigma, iterations):
    """Rows of varying length (flat values + offsets; the model has its own offsets, same lengths).

    Returns flat (flux, ivar) float32 with ``offsets`` rebased to start at 0, and (m, order+1) coeffs.
    """
    m = offsets.shape[0] - 1
    base = offsets[0]
    out_flux = np.empty(offsets[m] - base, dtype=np.float32)
    out_ivar = np.empty(offsets[m] - base, dtype=np.float32)
    coeffs = np.empty((m, order + 1), dtype=np.float64)
    for r in prange(m):
        s, e = offsets[r], offsets[r + 1]
        ms = model_offsets[r]
        sed_recalibrate_into(flux_values[s:e], ivar_values[s:e], model_values[ms:ms + (e - s)], order,
                             clip_nsigma, iterations, out_flux[s - base:e - base], out_ivar[s - base:e - base],
                             coeffs[r])
    return out_flux, out_ivar, coeffs
