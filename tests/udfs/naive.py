"""Slow, obvious reference twins of the udfs/ kernels (numpy / scipy / scikit-learn), and the shared tolerance.

Each twin follows the documented contract of its kernel by a different route
(dense overlap matrices, lstsq, scikit-learn), so agreement checks the contract.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN

# the one tolerance for every kernel-vs-twin comparison (outputs are float32)
RTOL = 2e-5
ATOL = 1e-6
C_KMS = 299792.458


def assert_close(actual, desired, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64),
                               rtol=RTOL, atol=ATOL, err_msg=what)


def naive_resample(flux, ivar, loglam0, dloglam, out_loglam0, out_dloglam, n_out):
    """Dense overlap matrix W[i, j] = length (in log lambda) shared by output pixel i and input pixel j."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    n_in = flux.size
    in_lo = loglam0 + (np.arange(n_in) - 0.5) * dloglam
    in_hi = in_lo + dloglam
    out_lo = out_loglam0 + (np.arange(n_out) - 0.5) * out_dloglam
    out_hi = out_lo + out_dloglam
    w = np.clip(np.minimum(out_hi[:, None], in_hi[None, :]) - np.maximum(out_lo[:, None], in_lo[None, :]), 0, None)
    w[w <= 1e-6 * dloglam] = 0.0  # edges that touch within rounding are not an overlap
    with np.errstate(all="ignore"):
        good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
        wg = w * good
        sw = wg.sum(axis=1)
        f_out = np.where(sw > 0, (wg @ np.where(good, flux, 0)) / sw, 0.0)
        var = np.where(good, 1.0 / np.where(good, ivar, 1.0), 0.0)
        touches_bad = (w * ~good).sum(axis=1) > 0
        covered = (n_in > 0) & (out_lo >= in_lo[0] - 1e-6 * dloglam if n_in else False) & \
            (out_hi <= in_hi[-1] + 1e-6 * dloglam if n_in else False)
        iv_out = np.where(covered & ~touches_bad & (sw > 0), sw**2 / ((wg**2) @ var), 0.0)
    return f_out.astype(np.float32), iv_out.astype(np.float32)


def naive_rv_shift(flux, ivar, loglam0, dloglam, rv_kms):
    """Rest frame on the same grid: lambda_rest = lambda_obs / (1 + v/c), then the overlap average."""
    lam0_obs = 10.0 ** loglam0
    lam0_rest = lam0_obs / (1.0 + rv_kms / C_KMS)
    return naive_resample(flux, ivar, np.log10(lam0_rest), dloglam, loglam0, dloglam, len(flux))


def naive_sed_recalibrate(flux, ivar, model, order=2, clip_nsigma=3.0, iterations=5):
    """lstsq on sqrt(ivar)-weighted rows, rms(chi) clipping, as documented in udfs/sed_recalibrate.py."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    n = flux.size
    x = np.linspace(-1, 1, n) if n > 1 else np.zeros(n)
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar) & np.isfinite(model) & (model > 0)
    basis = np.vander(x, order + 1, increasing=True) * np.where(good, model, 0)[:, None]

    def fit(keep):
        if keep.sum() < order + 1:
            return None
        sw = np.sqrt(ivar[keep])
        c, *_ = np.linalg.lstsq(basis[keep] * sw[:, None], flux[keep] * sw, rcond=None)
        return c

    keep = good.copy()
    c = fit(keep)
    for _ in range(iterations):
        if c is None:
            break
        p = np.polynomial.polynomial.polyval(x, c)
        with np.errstate(all="ignore"):
            chi = np.where(good, (flux - p * model) * np.sqrt(np.where(good, ivar, 0)), np.inf)
        s = np.sqrt(np.mean(chi[keep] ** 2))
        new = good & (np.abs(chi) <= clip_nsigma * s)
        if np.array_equal(new, keep):
            break
        keep = new
        c = fit(keep)
    if c is None:
        return np.where(np.isfinite(flux), flux, 0).astype(np.float32), np.zeros(n, np.float32), \
            np.full(order + 1, np.nan)
    p = np.polynomial.polynomial.polyval(x, c)
    ok = (p > 0) & np.isfinite(flux)
    with np.errstate(all="ignore"):
        f_out = np.where(ok, flux / p, 0.0)
        iv_ok = ok & (ivar > 0) & np.isfinite(ivar)
        iv_out = np.where(iv_ok, ivar * p * p, 0.0)
    return f_out.astype(np.float32), iv_out.astype(np.float32), c


def naive_dbscan(X, eps, min_samples):
    """scikit-learn itself (the labels the kernel must reproduce exactly)."""
    X = np.asarray(X)
    if X.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="euclidean").fit(X).labels_.astype(np.int64)
