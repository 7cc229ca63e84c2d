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


def _laspm_good(flux, ivar, pixel_mask):
    """Good pixels of each row (ivar > 0, finite, used); rows whose median good flux is not positive: none."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar) & pixel_mask[None, :]
    for r in range(flux.shape[0]):
        if not good[r].any() or not np.median(flux[r, good[r]]) > 0:
            good[r] = False
    return good


def naive_laspm_chi2(obs_flux, obs_ivar, tmpl_flux, tmpl_ivar, degree, pixel_mask=None):
    """chi2 (n_obs, n_tmpl) and common good pixels of every pair: numpy.linalg.lstsq per pair on the
    sqrt(ivar)-weighted design [L_j(x) f_t], raw (unnormalised) fluxes, residuals summed explicitly."""
    obs_flux = np.asarray(obs_flux, dtype=np.float64)
    tmpl_flux = np.asarray(tmpl_flux, dtype=np.float64)
    n = obs_flux.shape[1]
    pm = np.ones(n, bool) if pixel_mask is None else np.asarray(pixel_mask, bool)
    x = np.linspace(-1, 1, n) if n > 1 else np.zeros(n)
    V = np.polynomial.legendre.legvander(x, degree)
    go = _laspm_good(obs_flux, obs_ivar, pm)
    gt = _laspm_good(tmpl_flux, tmpl_ivar, pm)
    w_all = np.asarray(obs_ivar, dtype=np.float64)
    chi2 = np.full((obs_flux.shape[0], tmpl_flux.shape[0]), np.inf)
    n_pair = np.zeros(chi2.shape, dtype=np.int64)
    for o in range(chi2.shape[0]):
        for t in range(chi2.shape[1]):
            g = go[o] & gt[t]
            n_pair[o, t] = g.sum()
            if g.sum() <= degree + 1:
                continue
            sw = np.sqrt(w_all[o, g])
            design = V[g] * tmpl_flux[t, g][:, None]
            c, *_ = np.linalg.lstsq(design * sw[:, None], obs_flux[o, g] * sw, rcond=None)
            chi2[o, t] = np.sum(w_all[o, g] * (obs_flux[o, g] - design @ c) ** 2)
    return chi2, n_pair, go.sum(axis=1)


def naive_laspm_fit(obs_flux, obs_ivar, tmpl_flux, tmpl_ivar, labels, degree, k_best, weighting="reduced",
                    temperature=1.0, min_overlap_frac=0.5, pixel_mask=None):
    """The documented ranking and interpolation of udfs/laspm.py over every pair (no screening):
    r = chi2 (n_o - n_c) / (n_ot - n_c) over eligible pairs, the k best by r, exp(-dr / (2 T unit)) weights,
    unit 1 / best chi2_nu / mean ivar f^2 (raw fluxes: the S/N is scale-free) or equal weights.
    Returns (best_idx (n_obs, k) -1 padded, best_chi2, labels, labels_err)."""
    chi2, n_pair, n_o = naive_laspm_chi2(obs_flux, obs_ivar, tmpl_flux, tmpl_ivar, degree, pixel_mask)
    pm = np.ones(np.shape(obs_flux)[1], bool) if pixel_mask is None else np.asarray(pixel_mask, bool)
    nc = degree + 1
    labels = np.asarray(labels, dtype=np.float64).reshape(len(tmpl_flux), -1)
    m = chi2.shape[0]
    best = np.full((m, k_best), -1)
    best_chi2 = np.full((m, k_best), np.nan)
    lab = np.full((m, labels.shape[1]), np.nan)
    err = np.full((m, labels.shape[1]), np.nan)
    for o in range(m):
        ok = (n_pair[o] >= max(nc + 1, min_overlap_frac * n_o[o])) & np.isfinite(chi2[o])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(ok, chi2[o] * (n_o[o] - nc) / (n_pair[o] - nc), np.inf)
        order = np.argsort(r, kind="stable")[:k_best]
        order = order[np.isfinite(r[order])]
        if order.size == 0:
            continue
        best[o, :order.size] = order
        best_chi2[o, :order.size] = chi2[o, order]
        dr = r[order] - r[order[0]]
        good = _laspm_good(obs_flux[o:o + 1], obs_ivar[o:o + 1], pm)[0]
        f = np.asarray(obs_flux[o], np.float64)[good]
        snr2 = np.sum(np.asarray(obs_ivar[o], np.float64)[good] * f**2) / good.sum()
        unit = {"chi2": 1.0, "reduced": r[order[0]] / (n_o[o] - nc), "signal": snr2, "uniform": np.inf}[weighting]
        w = np.exp(-dr / (2 * temperature * unit)) if np.isfinite(unit) else np.ones(order.size)
        lab[o] = np.average(labels[order], axis=0, weights=w)
        err[o] = np.sqrt(np.average((labels[order] - lab[o]) ** 2, axis=0, weights=w))
    return best, best_chi2, lab, err


def naive_hull_boundary(points):
    """p is on the (relative) boundary of the hull iff a supporting hyperplane touches it: some u with
    u.(q - p) <= 0 for every point q and u.(p - centroid) = 1 (scipy linprog feasibility)."""
    from scipy.optimize import linprog

    pts = np.asarray(points, dtype=np.float64)
    centroid = pts.mean(axis=0)
    out = np.zeros(pts.shape[0], dtype=bool)
    for i, p in enumerate(pts):
        if np.allclose(p, centroid, rtol=0, atol=1e-12):
            out[i] = np.allclose(pts, centroid, rtol=0, atol=1e-12)   # one distinct point: all boundary
            continue
        res = linprog(np.zeros(pts.shape[1]), A_ub=pts - p, b_ub=np.zeros(len(pts)),
                      A_eq=(p - centroid)[None, :], b_eq=[1.0], bounds=(None, None), method="highs")
        out[i] = res.status == 0
    return out


def naive_rv_curve(flux, ivar, loglam0, dloglam, tmpl_flux, tmpl_ivar, grid_loglam0, grid_dloglam, velocities_kms,
                   degree):
    """Smallest reduced chi2 over the templates moved to the observed frame (lambda_obs = lambda_rest (1 + v/c))
    and resampled (dense overlap) onto the spectrum's own pixels: those whose whole extent stays inside
    the shifted template grid for every velocity."""
    tmpl_flux = np.asarray(tmpl_flux, dtype=np.float64)
    n_grid = tmpl_flux.shape[1]
    edges = loglam0 + (np.arange(len(flux))[:, None] + np.array([-0.5, 0.5])) * dloglam
    inside = np.ones(len(flux), bool)
    for v in (min(velocities_kms), max(velocities_kms)):
        rest = edges - np.log10(1 + v / C_KMS)
        inside &= (rest[:, 0] >= grid_loglam0 - 0.5 * grid_dloglam - 1e-12) & \
            (rest[:, 1] <= grid_loglam0 + (n_grid - 0.5) * grid_dloglam + 1e-12)
    sel = np.flatnonzero(inside)
    fo, io = np.asarray(flux)[sel][None], np.asarray(ivar)[sel][None]
    out = []
    for v in velocities_kms:
        shifted = [naive_resample(tmpl_flux[t], tmpl_ivar[t], grid_loglam0 + np.log10(1 + v / C_KMS), grid_dloglam,
                                  loglam0 + sel[0] * dloglam, dloglam, sel.size) for t in range(len(tmpl_flux))]
        chi2, n_pair, _ = naive_laspm_chi2(fo, io, np.array([f for f, _ in shifted]),
                                           np.array([i for _, i in shifted]), degree)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.min(np.where(n_pair[0] > degree + 1, chi2[0] / (n_pair[0] - degree - 1), np.inf)))
    return np.array(out)
