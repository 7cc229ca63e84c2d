"""LASPM template chi^2 engine (paper §4; Du et al. 2021): dense GEMMs + one Numba pass.

Model. For an observed spectrum o and a template t on one rest-frame grid (the
red grid 6000-8800 AA)::

    chi2(o, t) = sum_i w_oi m_ti (f_oi - P_ot(x_i) f_ti)^2,   P_ot = sum_j c_j L_j(x),  j = 0..d

w = observation ivar (bad pixel: ivar <= 0 or a non-finite flux / ivar -> w = 0),
m_t = template mask (ivar_t > 0 and finite flux: a library that covers part of the
grid is masked there, never extrapolated), both times the grid's ``pixel_mask``
(windows left out); a spectrum whose median good flux is not positive has no usable
pixel (nothing to scale by). L_j are Legendre polynomials in x, pixel index scaled to
[-1, 1] over the whole grid. c solves the normal equations A c = b in closed form,
A_jk = sum w m f_t^2 L_j L_k, b_j = sum w m f_o f_t L_j, and chi2 = s - b.c with
s = sum w m f_o^2.

Template noise is ignored (templates are high-S/N library spectra; adding
1/ivar_t P^2 to the variance would make the weights depend on the pair and break
the GEMM form); template ivar only masks.

GEMM form. L_j L_k = sum_p alpha_jkp L_p spans only the 2d+1 Legendre functions
p = 0..2d, so per batch of observations three float32 GEMMs give every sum::

    G = W @ T2      (n_obs, (2d+1) n_tmpl)   T2[:, p n_tmpl + t] = m_t f_t^2 L_p
    B = WF @ T1     (n_obs, (d+1) n_tmpl)    T1[:, j n_tmpl + t] = m_t f_t L_j
    SN = [WF2; Q] @ M  (2 n_obs, n_tmpl)     M[:, t] = m_t: s(o, t) and n(o, t) = common good pixels

(the L_p-weighted template blocks stacked side by side)

with W = w, WF = w f_o, WF2 = w f_o^2, Q = [w > 0]. When every template covers
every used pixel (no template mask), s and n do not depend on t and the third
GEMM is skipped. Flops per observation: 2 n_pix n_tmpl (3d+2), plus 2 n_pix n_tmpl
* 2 with template masks. `screen_pairs` (one Numba pass, parallel over
observations) then builds A from G, solves it by Cholesky, forms chi2 and keeps the
``n_candidates`` best templates, never materialising per-pair matrices beyond a block of
256 templates (solved SIMD across templates).

Conditioning and precision. x in [-1, 1], Legendre basis, each observation and
template divided by its median good flux (chi2 is invariant: f -> f/s, w -> w s^2).
float32 sums still lose ~1e-6 of s, and s / chi2 ~ (S/N)^2, so float32 chi2 serve
only to *rank*: the candidates' sums are recomputed directly in float64 (`rescore`,
n_candidates x n_pix work; float64 leaves ~1e-16 (S/N)^2 relative error), and every chi2
reported is that float64 value.

Ranking statistic. Templates can cover different pixels, so templates are ranked by
chi2 rescaled to the observation's own degrees of freedom,
r = chi2 (n_o - n_c) / (n_ot - n_c) (n_o good pixels of o, n_ot common good pixels,
n_c = d+1 coefficients); with full coverage r = chi2. A pair is eligible when
n_ot >= max(n_c + 1, min_overlap_frac * n_o) and A is positive definite.

Parameters (paper §4.1 interpolation): the k best templates by r, weights
exp(-D / (2 T)) with D per ``weighting``: 'chi2' D = r - r_min (the formal likelihood);
'reduced' D = (r - r_min) / chi2_nu,best (errors rescaled so that the best fit has
chi2_nu = 1); 'signal' D = (r - r_min) / (S/N)^2, (S/N)^2 = sum w f^2 / n_o the
spectrum's mean squared S/N per pixel (f median-normalised), so D is n_o times the
difference in mean squared *fractional* residual and T does not depend on S/N;
'uniform' equal weights. The formal likelihood is far narrower than the spacing of a
discrete library (Delta chi2 between neighbours grows as (S/N)^2), so 'chi2' and
'reduced' collapse onto the best template at high S/N and interpolate nothing.
Label = weighted mean, error = weighted standard deviation of the k labels (0 for k = 1).

Flags (bits of ``flags``):
  FLAG_EDGE_OF_LIBRARY  every template of the k best that carries at least
                        ``edge_weight_min`` of the weight lies on the boundary (vertex, edge
                        or face) of the library's convex hull in label space
                        (`hull_boundary`): the star lies at or beyond the library's edge,
                        where the interpolation, a convex combination, cannot follow it
  FLAG_POOR_FIT         best reduced chi2 > ``poor_fit_chi2_nu``
  FLAG_FEW_PIXELS       n_o < ``min_good_pix_frac`` x the used grid pixels (still fitted)
  FLAG_RV_MISSING       the header RV was missing and the RV was fitted (`fit_observed`)
  FLAG_RV_FIT_POOR      the fitted RV's chi2 minimum lies at the grid edge, is not convex,
                        or is shallower than ``rv_min_depth_dchi2``
  FLAG_NO_FIT           no eligible template (e.g. ivar = 0 everywhere): NaN labels

RV (header RV missing): `rv_scan_batch` moves the few best templates to the observed
frame by each velocity of a +-``rv_halfwidth_kms`` grid (step ``rv_step_kms``; the
flux-conserving resampling of resample.py onto the spectrum's native log-lambda
pixels, which are left untouched so their noise stays independent), fits them exactly,
and keeps the curve of the smallest reduced chi2. `rv_from_curve` takes its minimum,
refines it with a parabola through the neighbours (errors rescaled to chi2_nu = 1: rv_err = 1/sqrt(curvature)) and
reports the depth (median of the curve above the minimum, in those Delta chi2 units).

Arguments named ``params`` are any object with the fields of the config section
``laspm`` (pipeline/config.py LaspmConfig), read by attribute.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .grid import doppler_dloglam
from .resample import _is_good, rest_frame_resample_batch, resample_into
from .sed_recalibrate import poly_x

FLAG_EDGE_OF_LIBRARY = 1
FLAG_POOR_FIT = 2
FLAG_FEW_PIXELS = 4
FLAG_RV_MISSING = 8
FLAG_RV_FIT_POOR = 16
FLAG_NO_FIT = 32

WEIGHTINGS = ("chi2", "reduced", "signal", "uniform")

# a Cholesky pivot below this fraction of its diagonal means A is singular to the
# precision of its sums (float32 GEMM sums / float64 direct sums)
_PIVOT_RTOL_F32 = 1e-5
_PIVOT_RTOL_F64 = 1e-12


class Library(NamedTuple):
    """A template library prepared for the engine (`prepare_library`); arrays are read-only inputs."""

    degree: int                  # Legendre degree d of the multiplicative polynomial
    grid_loglam0: float          # the templates' rest-frame grid (log10 AA)
    grid_dloglam: float
    pixel_mask: np.ndarray       # (n_pix,) bool: grid pixels used by the fit
    flux: np.ndarray             # (n_tmpl, n_pix) float64, median-normalised, 0 where masked
    mask: np.ndarray             # (n_tmpl, n_pix) bool: template good and pixel used
    t2: np.ndarray               # (n_pix, (2d+1) n_tmpl) float32: m f^2 L_p in column p n_tmpl + t
    t1: np.ndarray               # (n_pix, (d+1) n_tmpl) float32: m f L_j in column j n_tmpl + t
    tm: np.ndarray | None        # (n_pix, n_tmpl) float32 mask, None when every template covers every used pixel
    alpha: np.ndarray            # (d+1, d+1, 2d+1) float64: L_j L_k = sum_p alpha[j, k, p] L_p
    legendre: np.ndarray         # (2d+1, n_pix) float64: L_p(x_i)
    labels: np.ndarray           # (n_tmpl, n_labels) float64, e.g. teff_k, logg_dex, mh_dex
    on_hull: np.ndarray          # (n_tmpl,) bool: on the boundary of the labels' convex hull

    @property
    def n_templates(self) -> int:
        return self.flux.shape[0]

    def gemm_flops_per_spectrum(self) -> int:
        """Flops of the GEMMs per observed spectrum (multiply-add = 2)."""
        n_pix, n_t, d = self.flux.shape[1], self.flux.shape[0], self.degree
        cols = (2 * d + 1) + (d + 1) + (2 if self.tm is not None else 0)
        return 2 * n_pix * n_t * cols


class FitResult(NamedTuple):
    """Per observation (n_obs rows); k = params.k_best."""

    best_idx: np.ndarray      # (n_obs, k) int64 template rows, best first, -1 padded
    best_chi2: np.ndarray     # (n_obs, k) float64 exact chi2 of those, NaN padded
    labels: np.ndarray        # (n_obs, n_labels) float64 interpolated labels, NaN when FLAG_NO_FIT
    labels_err: np.ndarray    # (n_obs, n_labels) float64 weighted spread of the k labels
    chi2_min: np.ndarray      # (n_obs,) float64 chi2 of the best template
    chi2_nu: np.ndarray       # (n_obs,) float64 its reduced chi2, chi2 / (n_fit_pix - (d+1))
    n_good_pix: np.ndarray    # (n_obs,) int64 good observed pixels inside the pixel mask
    n_fit_pix: np.ndarray     # (n_obs,) int64 pixels of the best pair (common good pixels)
    flags: np.ndarray         # (n_obs,) int32 FLAG_* bits


class RvResult(NamedTuple):
    rv_kms: np.ndarray          # (m,) float64 fitted RV (NaN when no template could be fitted)
    rv_err_kms: np.ndarray      # (m,) float64 from the curvature, errors rescaled to chi2_nu = 1
    rv_depth_dchi2: np.ndarray  # (m,) float64 median of the curve above its minimum
    rv_ok: np.ndarray           # (m,) bool: interior, convex and deep enough


# --------------------------------------------------------------------------- basis

def legendre_products(degree: int) -> np.ndarray:
    """alpha[j, k, p] with L_j L_k = sum_p alpha[j, k, p] L_p, p = 0..2d."""
    nc = degree + 1
    alpha = np.zeros((nc, nc, 2 * degree + 1))
    for j in range(nc):
        for k in range(nc):
            prod = np.polynomial.legendre.legmul(np.eye(nc)[j], np.eye(nc)[k])
            alpha[j, k, :prod.size] = prod
    return alpha


@njit(cache=True)
def legendre_rows(x, n_funcs):
    """(n_funcs, n) L_p(x_i), p = 0..n_funcs-1, by Bonnet's recursion."""
    out = np.empty((n_funcs, x.shape[0]))
    for i in range(x.shape[0]):
        for p in range(n_funcs):
            if p == 0:
                out[p, i] = 1.0
            elif p == 1:
                out[p, i] = x[i]
            else:
                out[p, i] = ((2 * p - 1) * x[i] * out[p - 1, i] - (p - 1) * out[p - 2, i]) / p
    return out


def hull_boundary(labels: np.ndarray) -> np.ndarray:
    """(n,) bool: rows of ``labels`` (n, q) on the boundary of their convex hull (vertex, edge or face).

    The labels are reduced to their affine span first (SVD), so a library with a
    constant label (flat in that direction) gets the boundary of its lower-dimensional
    hull; a point counts as on the boundary when it lies on a facet's hyperplane within
    1e-9 of the span's extent. Span 0 (one distinct point): every row; span 1: the two
    extremes. Hull membership is affine invariant, so the labels' units do not matter.
    """
    from scipy.spatial import ConvexHull, QhullError

    pts = np.asarray(labels, dtype=np.float64)
    n = pts.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    centred = pts - pts.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(sv > 1e-9 * max(sv.max(initial=0.0), 1e-300)))
    if rank == 0:
        return np.ones(n, dtype=bool)
    proj = centred @ vt[:rank].T
    tol = 1e-9 * float(np.ptp(proj, axis=0).max())
    if rank == 1:
        return (proj[:, 0] <= proj[:, 0].min() + tol) | (proj[:, 0] >= proj[:, 0].max() - tol)
    try:
        hull = ConvexHull(proj)
    except QhullError:   # fewer distinct points than a simplex of the span needs
        return np.ones(n, dtype=bool)
    # hull.equations: unit normal . p + offset <= 0 inside; = 0 on that facet's hyperplane
    dist = proj @ hull.equations[:, :-1].T + hull.equations[:, -1]
    return dist.max(axis=1) >= -tol


# --------------------------------------------------------------------------- library

@njit(cache=True)
def _row_scale(flux, ivar, pixel_mask, vals):
    """Median flux of the good used pixels of one row (0 when none; ``vals`` is work space)."""
    k = 0
    for i in range(flux.shape[0]):
        if pixel_mask[i] and _is_good(flux[i], ivar[i]):
            vals[k] = flux[i]
            k += 1
    return np.median(vals[:k]) if k > 0 else 0.0


@njit(cache=True, parallel=True)
def _normalise_rows(flux, ivar, pixel_mask):
    """(flux / median good flux, good mask) per row; good = pixel used, ivar > 0, finite.

    Rows whose median good flux is not positive are entirely masked (no scale to fit)."""
    m, n = flux.shape
    out = np.zeros((m, n), dtype=np.float64)
    good = np.zeros((m, n), dtype=np.bool_)
    for r in prange(m):
        med = _row_scale(flux[r], ivar[r], pixel_mask, np.empty(n))
        if med > 0.0:
            for i in range(n):
                if pixel_mask[i] and _is_good(flux[r, i], ivar[r, i]):
                    good[r, i] = True
                    out[r, i] = flux[r, i] / med
    return out, good


def prepare_library(flux: np.ndarray, ivar: np.ndarray, labels: np.ndarray, degree: int,
                    grid_loglam0: float, grid_dloglam: float, pixel_mask: np.ndarray | None = None) -> Library:
    """Templates ``flux, ivar`` (n_tmpl, n_pix) on the grid (grid_loglam0, grid_dloglam) + their ``labels``
    (n_tmpl, n_labels) -> the engine's `Library`. ``pixel_mask`` (n_pix,) True = pixel used (default all)."""
    flux = np.asarray(flux)
    ivar = np.asarray(ivar)
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim == 1:
        labels = labels[:, None]
    if flux.ndim != 2 or flux.shape != ivar.shape:
        raise ValueError(f"library flux {flux.shape} and ivar {ivar.shape} must be equal (n_tmpl, n_pix) arrays")
    if labels.shape[0] != flux.shape[0]:
        raise ValueError(f"library has {flux.shape[0]} templates but {labels.shape[0]} label rows")
    bad = np.flatnonzero(~np.isfinite(labels).all(axis=1))
    if bad.size:
        raise ValueError(f"library template row {bad[0]}: labels not finite ({labels[bad[0]].tolist()})")
    if degree < 0:
        raise ValueError(f"polynomial degree must be >= 0, got {degree}")
    n_t, n_pix = flux.shape
    pixel_mask = np.ones(n_pix, dtype=bool) if pixel_mask is None else np.asarray(pixel_mask, dtype=bool)
    if pixel_mask.shape != (n_pix,):
        raise ValueError(f"pixel_mask has shape {pixel_mask.shape}, the library grid {n_pix} pixels")
    f64, mask = _normalise_rows(flux, ivar, pixel_mask)
    nc, npw = degree + 1, 2 * degree + 1
    legendre = legendre_rows(poly_x(n_pix), npw)                                  # (2d+1, n_pix)
    mf = f64.T.astype(np.float32)                                                 # (n_pix, n_t), 0 where masked
    leg32 = legendre.astype(np.float32)
    t2 = np.empty((n_pix, npw, n_t), dtype=np.float32)      # block layout: column p n_t + t
    t1 = np.empty((n_pix, nc, n_t), dtype=np.float32)
    for p_ in range(npw):
        np.multiply(mf * mf, leg32[p_][:, None], out=t2[:, p_, :])
        if p_ < nc:
            np.multiply(mf, leg32[p_][:, None], out=t1[:, p_, :])
    full = bool(np.all(mask == pixel_mask[None, :]))
    tm = None if full else np.ascontiguousarray(mask.T, dtype=np.float32)
    return Library(degree=degree, grid_loglam0=float(grid_loglam0), grid_dloglam=float(grid_dloglam),
                   pixel_mask=pixel_mask, flux=f64, mask=mask, t2=t2.reshape(n_pix, npw * n_t),
                   t1=t1.reshape(n_pix, nc * n_t), tm=tm, alpha=legendre_products(degree), legendre=legendre,
                   labels=labels, on_hull=hull_boundary(labels))


# --------------------------------------------------------------------------- observations

@njit(cache=True, parallel=True)
def prepare_observations(flux, ivar, pixel_mask, need_sn):
    """Observed rows (n_obs, n_pix) on the library grid -> the GEMM operands and float64 copies.

    Returns (W, WF, L2, f64, w64, n_good, s_full): W = w, WF = w f float32 (n_obs, n_pix);
    L2 = [w f^2; w > 0] float32 (2 n_obs, n_pix) when ``need_sn`` else (0, n_pix);
    f64 / w64 the median-normalised flux and its weight w s^2 (0 on bad pixels);
    n_good the good pixels and s_full = sum w f^2 (float64) per row.
    """
    m, n = flux.shape
    W = np.empty((m, n), dtype=np.float32)
    WF = np.empty((m, n), dtype=np.float32)
    L2 = np.empty((2 * m if need_sn else 0, n), dtype=np.float32)
    f64 = np.empty((m, n), dtype=np.float64)
    w64 = np.empty((m, n), dtype=np.float64)
    n_good = np.zeros(m, dtype=np.int64)
    s_full = np.zeros(m, dtype=np.float64)
    for r in prange(m):       # one pass per row: scale, then every operand (0 on bad pixels)
        scale = _row_scale(flux[r], ivar[r], pixel_mask, np.empty(n))
        s2 = scale * scale
        cnt = 0
        acc = 0.0
        for i in range(n):
            f = 0.0
            w = 0.0
            if scale > 0.0 and pixel_mask[i] and _is_good(flux[r, i], ivar[r, i]):
                f = flux[r, i] / scale
                w = np.float64(ivar[r, i]) * s2
                cnt += 1
                acc += w * f * f
            f64[r, i] = f
            w64[r, i] = w
            W[r, i] = w
            WF[r, i] = w * f
            if need_sn:
                L2[r, i] = w * f * f
                L2[m + r, i] = 1.0 if w > 0.0 else 0.0
        n_good[r] = cnt
        s_full[r] = acc
    return W, WF, L2, f64, w64, n_good, s_full


# --------------------------------------------------------------------------- per-pair algebra

@njit(cache=True)
def _cholesky_chi2(A, b, s, n, rtol, y, diag, bad, chi2):
    """Many small systems at once, SIMD across the last axis (the first ``n`` of it): A (nc, nc, L) lower
    triangles, b (nc, L), s (L) -> chi2 (L) = s - |L^-1 b|^2 clipped at 0, where A = L L^T; inf where A
    is not positive definite (a pivot below ``rtol`` of its diagonal). A, y (nc, L), diag, bad (L) are
    work space (A is overwritten by its factor, with 1 / L_jj on the diagonal)."""
    nc = A.shape[0]
    for t in range(n):
        bad[t] = False
        chi2[t] = s[t]
    for j in range(nc):
        for t in range(n):
            diag[t] = A[j, j, t]
        for k in range(j):
            for t in range(n):
                A[j, j, t] -= A[j, k, t] * A[j, k, t]
        for t in range(n):   # branch-free, so the loop vectorises; A[j, j] holds 1 / L_jj
            d = A[j, j, t]
            ok = d > rtol * diag[t]
            bad[t] |= not ok
            A[j, j, t] = 1.0 / math.sqrt(max(d, 1e-300))
        for i in range(j + 1, nc):
            for k in range(j):
                for t in range(n):
                    A[i, j, t] -= A[i, k, t] * A[j, k, t]
            for t in range(n):
                A[i, j, t] *= A[j, j, t]
    for j in range(nc):
        for t in range(n):
            y[j, t] = b[j, t]
        for k in range(j):
            for t in range(n):
                y[j, t] -= A[j, k, t] * y[k, t]
        for t in range(n):
            y[j, t] *= A[j, j, t]
            chi2[t] -= y[j, t] * y[j, t]
    for t in range(n):
        chi2[t] = np.inf if bad[t] else max(chi2[t], 0.0)


@njit(cache=True)
def _normal_matrix(G, alpha, A, t):
    """A[j, k, t] = sum_p alpha[j, k, p] G[p] for j >= k (L_j L_k = sum_p alpha_jkp L_p)."""
    nc = alpha.shape[0]
    for j in range(nc):
        for k in range(j + 1):
            v = 0.0
            for p in range(j - k, j + k + 1, 2):      # alpha[j, k, p] = 0 otherwise
                v += alpha[j, k, p] * G[p]
            A[j, k, t] = v


@njit(cache=True)
def _insert(best_r, best_i, r, t):
    """Insert (r, t) into the ascending arrays best_r / best_i (fixed length), dropping the worst."""
    k = best_r.shape[0] - 1
    while k > 0 and best_r[k - 1] > r:
        best_r[k] = best_r[k - 1]
        best_i[k] = best_i[k - 1]
        k -= 1
    best_r[k] = r
    best_i[k] = t


@njit(cache=True)
def _min_pair_pixels(n_obs_good, nc, min_overlap_frac):
    return max(nc + 1.0, min_overlap_frac * n_obs_good)


_SCREEN_CHUNK = 256   # templates per SIMD block of the screen (work space stays in L1/L2)


@njit(cache=True, parallel=True)
def screen_pairs(G, B, SN, s_full, n_good, alpha, n_cand, min_overlap_frac):
    """One pass over the GEMM outputs: per observation the ``n_cand`` best templates by rank statistic r.

    G (n_obs, (2d+1) n_tmpl) and B (n_obs, (d+1) n_tmpl) in block layout (column p n_tmpl + t),
    SN (2 n_obs, n_tmpl), or (0, n_tmpl) for full coverage (then s = s_full, n = n_good). The small
    systems are solved in blocks of templates, SIMD across templates. Returns (cand_idx int64,
    cand_r float64), both (n_obs, n_cand), ascending r (float32 precision), -1 / inf padded.
    """
    m = G.shape[0]
    nc = alpha.shape[0]
    n_t = B.shape[1] // nc
    has_sn = SN.shape[0] > 0
    cand_idx = np.full((m, n_cand), -1, dtype=np.int64)
    cand_r = np.full((m, n_cand), np.inf, dtype=np.float64)
    ch = _SCREEN_CHUNK
    for o in prange(m):
        A = np.zeros((nc, nc, ch))
        b = np.empty((nc, ch))
        y = np.empty((nc, ch))
        s = np.empty(ch)
        n_ot = np.empty(ch)
        diag = np.empty(ch)
        bad = np.empty(ch, dtype=np.bool_)
        chi2 = np.empty(ch)
        n_o = n_good[o]
        min_n = _min_pair_pixels(n_o, nc, min_overlap_frac)
        dof_o = n_o - nc
        for t0 in range(0, n_t, ch):
            n = min(ch, n_t - t0)
            for j in range(nc):
                for k in range(j + 1):
                    for t in range(n):
                        A[j, k, t] = 0.0
                    for p in range(j - k, j + k + 1, 2):      # alpha[j, k, p] = 0 otherwise
                        a = alpha[j, k, p]
                        base = p * n_t + t0
                        for t in range(n):
                            A[j, k, t] += a * G[o, base + t]
                for t in range(n):
                    b[j, t] = B[o, j * n_t + t0 + t]
            for t in range(n):
                s[t] = SN[o, t0 + t] if has_sn else s_full[o]
                n_ot[t] = SN[m + o, t0 + t] if has_sn else n_o
            _cholesky_chi2(A, b, s, n, _PIVOT_RTOL_F32, y, diag, bad, chi2)
            for t in range(n):
                if n_ot[t] >= min_n and chi2[t] < np.inf:
                    r = chi2[t] * dof_o / (n_ot[t] - nc)
                    if r < cand_r[o, n_cand - 1]:
                        _insert(cand_r[o], cand_idx[o], r, t0 + t)
    return cand_idx, cand_r


# finite inputs only (masked pixels are zeros), so fastmath may reassociate and vectorise the sums
@njit(cache=True, fastmath=True)
def _pair_moments(ft, mt, U, V, wf2, g, Gp, Bj):
    """One pair's float64 moments: Gp[p] = sum ft^2 U[p], Bj[j] = sum ft V[j]; returns
    (sum mt wf2, sum mt g). U = w L_p, V = w f L_j, wf2 = w f^2, g = [w > 0] of the
    observation; ft is 0 and mt False where the template is masked."""
    n_pix = ft.shape[0]
    for p in range(U.shape[0]):
        acc = 0.0
        for i in range(n_pix):
            acc += ft[i] * ft[i] * U[p, i]
        Gp[p] = acc
    for j in range(V.shape[0]):
        acc = 0.0
        for i in range(n_pix):
            acc += ft[i] * V[j, i]
        Bj[j] = acc
    s = 0.0
    n = 0.0
    for i in range(n_pix):
        m = 1.0 if mt[i] else 0.0
        s += m * wf2[i]
        n += m * g[i]
    return s, n


@njit(cache=True)
def _observation_moments(fo, wo, legendre, nc, U, V, wf2, g):
    """Fill the observation side of `_pair_moments` from flux ``fo`` and weight ``wo`` (0 = bad pixel)."""
    for i in range(fo.shape[0]):
        w = wo[i]
        for p in range(legendre.shape[0]):
            U[p, i] = w * legendre[p, i]
        for j in range(nc):
            V[j, i] = w * fo[i] * legendre[j, i]
        wf2[i] = w * fo[i] * fo[i]
        g[i] = 1.0 if w > 0.0 else 0.0


@njit(cache=True, parallel=True)
def rescore(f64, w64, lib_flux, lib_mask, legendre, alpha, cand_idx):
    """Exact float64 chi2 and common good pixels of each candidate pair: (n_obs, n_cand) each
    (direct float64 sums of the same normal equations; inf / 0 for -1 candidates or singular pairs)."""
    m, n_cand = cand_idx.shape
    nc = alpha.shape[0]
    npw, n_pix = legendre.shape
    chi2 = np.full((m, n_cand), np.inf)
    n_pair = np.zeros((m, n_cand), dtype=np.int64)
    for o in prange(m):
        U = np.empty((npw, n_pix))
        V = np.empty((nc, n_pix))
        wf2 = np.empty(n_pix)
        g = np.empty(n_pix)
        _observation_moments(f64[o], w64[o], legendre, nc, U, V, wf2, g)
        A = np.zeros((nc, nc, n_cand))
        b = np.zeros((nc, n_cand))
        s = np.zeros(n_cand)
        Gp = np.empty(npw)
        Bj = np.empty(nc)
        for q in range(n_cand):
            t = cand_idx[o, q]
            if t < 0:
                continue
            s[q], npair = _pair_moments(lib_flux[t], lib_mask[t], U, V, wf2, g, Gp, Bj)
            n_pair[o, q] = np.int64(npair)
            _normal_matrix(Gp, alpha, A, q)
            for j in range(nc):
                b[j, q] = Bj[j]
        y = np.empty((nc, n_cand))
        diag = np.empty(n_cand)
        bad = np.empty(n_cand, dtype=np.bool_)
        out = np.empty(n_cand)
        _cholesky_chi2(A, b, s, n_cand, _PIVOT_RTOL_F64, y, diag, bad, out)
        for q in range(n_cand):
            if cand_idx[o, q] >= 0 and n_pair[o, q] > nc:
                chi2[o, q] = out[q]
    return chi2, n_pair


# --------------------------------------------------------------------------- parameters

@njit(cache=True, parallel=True)
def interpolate_labels(cand_idx, chi2, n_pair, n_good, s_full, labels, on_hull, k_best, nc, weighting, temperature,
                       edge_weight_min, min_overlap_frac, n_pix_used, min_good_pix_frac, poor_fit_chi2_nu):
    """From exact candidate chi2 to the k best, the interpolated labels and the flags.

    ``weighting``: index into WEIGHTINGS (0 chi2, 1 reduced, 2 signal, 3 uniform); ``s_full`` (n_obs,) the
    observation's sum w f^2 over its good pixels (f median-normalised). Returns
    (best_idx, best_chi2, labels, labels_err, chi2_min, chi2_nu, n_fit_pix, flags)."""
    m, n_cand = cand_idx.shape
    n_lab = labels.shape[1]
    best_idx = np.full((m, k_best), -1, dtype=np.int64)
    best_chi2 = np.full((m, k_best), np.nan)
    lab = np.full((m, n_lab), np.nan)
    lab_err = np.full((m, n_lab), np.nan)
    chi2_min = np.full(m, np.nan)
    chi2_nu = np.full(m, np.nan)
    n_fit = np.zeros(m, dtype=np.int64)
    flags = np.zeros(m, dtype=np.int32)
    for o in prange(m):
        n_o = n_good[o]
        if n_o < min_good_pix_frac * n_pix_used:
            flags[o] |= FLAG_FEW_PIXELS
        min_n = _min_pair_pixels(n_o, nc, min_overlap_frac)
        r = np.full(n_cand, np.inf)
        for q in range(n_cand):
            if chi2[o, q] < np.inf and n_pair[o, q] >= min_n:
                r[q] = chi2[o, q] * (n_o - nc) / (n_pair[o, q] - nc)
        order = np.argsort(r, kind="mergesort")        # stable: ties keep the screening order
        k = 0
        while k < k_best and r[order[k]] < np.inf:
            k += 1
        if k == 0:
            flags[o] |= FLAG_NO_FIT
            continue
        q0 = order[0]
        r_min = r[q0]
        chi2_min[o] = chi2[o, q0]
        n_fit[o] = n_pair[o, q0]
        chi2_nu[o] = chi2[o, q0] / (n_pair[o, q0] - nc)
        if chi2_nu[o] > poor_fit_chi2_nu:
            flags[o] |= FLAG_POOR_FIT
        scale = 2.0 * temperature
        if weighting == 1:
            nu_best = r_min / (n_o - nc)
            scale *= nu_best if nu_best > 0.0 else 1.0
        elif weighting == 2:
            scale *= s_full[o] / n_o
        w = np.empty(k)
        for a in range(k):
            q = order[a]
            best_idx[o, a] = cand_idx[o, q]
            best_chi2[o, a] = chi2[o, q]
            w[a] = 1.0 if weighting == 3 else math.exp(-(r[q] - r_min) / scale)
        sw = w.sum()
        all_hull = True
        for a in range(k):
            if w[a] >= edge_weight_min * sw and not on_hull[best_idx[o, a]]:
                all_hull = False
        if all_hull:
            flags[o] |= FLAG_EDGE_OF_LIBRARY
        for j in range(n_lab):
            mu = 0.0
            for a in range(k):
                mu += w[a] * labels[best_idx[o, a], j]
            mu /= sw
            var = 0.0
            for a in range(k):
                d = labels[best_idx[o, a], j] - mu
                var += w[a] * d * d
            lab[o, j] = mu
            lab_err[o, j] = math.sqrt(var / sw)
    return best_idx, best_chi2, lab, lab_err, chi2_min, chi2_nu, n_fit, flags


# --------------------------------------------------------------------------- drivers

def _weighting_code(params) -> int:
    if params.weighting not in WEIGHTINGS:
        raise ValueError(f"laspm.weighting must be one of {', '.join(WEIGHTINGS)}, got {params.weighting!r}")
    return WEIGHTINGS.index(params.weighting)


def _empty_fit(k: int, n_lab: int) -> FitResult:
    return FitResult(np.empty((0, k), np.int64), np.empty((0, k)), np.empty((0, n_lab)), np.empty((0, n_lab)),
                     np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64),
                     np.empty(0, np.int32))


def without_excluded(cand_idx: np.ndarray, exclude: np.ndarray, n_cand: int) -> np.ndarray:
    """(m, n_cand) candidates with each row's ``exclude[o]`` template removed (-1: none), order kept, -1 padded."""
    keep = (cand_idx != exclude[:, None]) & (cand_idx >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n_cand]     # kept ones first, in their order
    out = np.take_along_axis(cand_idx, order, axis=1)
    out[~np.take_along_axis(keep, order, axis=1)] = -1
    return out


def fit_batch(flux: np.ndarray, ivar: np.ndarray, lib: Library, params,
              exclude: np.ndarray | None = None) -> FitResult:
    """Fit rest-frame spectra ``flux, ivar`` (n_obs, n_pix) on the library grid against every template.

    Runs in chunks of ``params.batch_spectra`` observations: three float32 GEMMs, `screen_pairs`,
    `rescore` of the ``params.n_candidates`` best in float64, `interpolate_labels`. ``exclude``
    (n_obs,) int: a template row each observation must not be fitted with (-1: none), e.g. the
    observation itself when a library is fitted against itself (leave-one-out); the screen keeps
    one candidate more and drops it. The edge-of-library flag still uses the whole library's hull.
    """
    flux = np.asarray(flux)
    ivar = np.asarray(ivar)
    n_pix = lib.flux.shape[1]
    if flux.ndim != 2 or flux.shape != ivar.shape or flux.shape[1] != n_pix:
        raise ValueError(f"observed flux {flux.shape} / ivar {ivar.shape} must be (n_obs, {n_pix}) on the library grid")
    if params.poly_degree != lib.degree:
        raise ValueError(f"laspm.poly_degree is {params.poly_degree} but the library was prepared for "
                         f"degree {lib.degree}")
    k = int(params.k_best)
    if k < 1:
        raise ValueError(f"laspm.k_best must be >= 1, got {k}")
    n_cand = max(1, min(max(int(params.n_candidates), k), lib.n_templates))
    wcode = _weighting_code(params)
    if flux.shape[0] == 0:
        return _empty_fit(k, lib.labels.shape[1])
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (flux.shape[0],):
            raise ValueError(f"exclude has shape {exclude.shape}, need one template row per observation "
                             f"({flux.shape[0]},)")
    n_screen = min(n_cand + 1, lib.n_templates) if exclude is not None else n_cand
    step = max(int(params.batch_spectra), 1)
    n_used = int(lib.pixel_mask.sum())
    parts = []
    for lo in range(0, flux.shape[0], step):
        fo, io = flux[lo:lo + step], ivar[lo:lo + step]
        W, WF, L2, f64, w64, n_good, s_full = prepare_observations(fo, io, lib.pixel_mask, lib.tm is not None)
        G = W @ lib.t2
        B = WF @ lib.t1
        SN = L2 @ lib.tm if lib.tm is not None else np.empty((0, lib.n_templates), np.float32)
        cand_idx, _ = screen_pairs(G, B, SN, s_full, n_good, lib.alpha, n_screen, float(params.min_overlap_frac))
        if exclude is not None:
            cand_idx = without_excluded(cand_idx, exclude[lo:lo + step], n_cand)
        del G, B, SN
        chi2, n_pair = rescore(f64, w64, lib.flux, lib.mask, lib.legendre, lib.alpha, cand_idx)
        out = interpolate_labels(cand_idx, chi2, n_pair, n_good, s_full, lib.labels, lib.on_hull, min(k, n_cand),
                                 lib.degree + 1, wcode, float(params.temperature), float(params.edge_weight_min),
                                 float(params.min_overlap_frac), n_used, float(params.min_good_pix_frac),
                                 float(params.poor_fit_chi2_nu))
        best_idx, best_chi2 = out[0], out[1]
        if best_idx.shape[1] < k:   # fewer templates than k: pad
            pad = k - best_idx.shape[1]
            best_idx = np.pad(best_idx, ((0, 0), (0, pad)), constant_values=-1)
            best_chi2 = np.pad(best_chi2, ((0, 0), (0, pad)), constant_values=np.nan)
        parts.append(FitResult(best_idx, best_chi2, out[2], out[3], out[4], out[5], n_good, out[6], out[7]))
    return FitResult(*(np.concatenate(cols) for cols in zip(*parts)))


def rv_grid_kms(params) -> np.ndarray:
    """The trial velocities: -halfwidth..+halfwidth in steps of ``rv_step_kms`` (symmetric, includes 0)."""
    half, step = float(params.rv_halfwidth_kms), float(params.rv_step_kms)
    if not (half >= 0 and step > 0):
        raise ValueError(f"laspm.rv_halfwidth_kms must be >= 0 and laspm.rv_step_kms > 0, got {half}, {step}")
    n = int(math.floor(half / step + 1e-9))
    return np.arange(-n, n + 1) * step


@njit(cache=True)
def rv_pixel_range(loglam0, dloglam, n_native, grid_loglam0, grid_dloglam, n_grid, rv_min_kms, rv_max_kms):
    """(i0, i1): the native pixels [i0, i1) whose whole extent, moved to the rest frame by any velocity in
    [rv_min_kms, rv_max_kms], lies inside the template grid's extent (so every trial velocity sees the
    same observed pixels, each fully covered by the shifted templates)."""
    lo = grid_loglam0 - 0.5 * grid_dloglam + doppler_dloglam(rv_max_kms)
    hi = grid_loglam0 + (n_grid - 0.5) * grid_dloglam + doppler_dloglam(rv_min_kms)
    i0 = max(int(math.ceil((lo - loglam0) / dloglam + 0.5 - 1e-9)), 0)
    i1 = min(int(math.floor((hi - loglam0) / dloglam - 0.5 + 1e-9)) + 1, n_native)
    return i0, max(i1, i0)


@njit(cache=True, parallel=True)
def rv_scan_batch(flux_values, ivar_values, offsets, loglam0, dloglam, template_idx, tmpl_flux, tmpl_maskf,
                  grid_loglam0, grid_dloglam, alpha, rv_kms_grid):
    """Reduced-chi2 curves (m, n_v) and their dof (m, n_v) int64 of native-grid spectra (flat values +
    Arrow-style offsets) against templates moved to the observed frame by each trial velocity.

    The observation stays on its own pixels (its noise stays independent; resampling it would correlate
    neighbours and make chi2 depend on the pixel phase); each template row ``template_idx[r, q]`` of
    ``tmpl_flux`` / ``tmpl_maskf`` (float 1 = good, 0 = masked) on the grid (grid_loglam0, grid_dloglam)
    is shifted by v and resampled (resample.py) onto the native pixels of `rv_pixel_range`. The
    polynomial's x runs over those pixels (``alpha`` = legendre_products(d)). Curve value = min over the
    row's templates; inf where none fits.
    """
    m = offsets.shape[0] - 1
    n_grid = tmpl_flux.shape[1]
    nc = alpha.shape[0]
    n_v = rv_kms_grid.shape[0]
    v_lo, v_hi = rv_kms_grid.min(), rv_kms_grid.max()
    curve = np.full((m, n_v), np.inf)
    dof = np.zeros((m, n_v), dtype=np.int64)
    for r in prange(m):
        s, e = offsets[r], offsets[r + 1]
        i0, i1 = rv_pixel_range(loglam0[r], dloglam[r], e - s, grid_loglam0, grid_dloglam, n_grid, v_lo, v_hi)
        n = i1 - i0
        if n <= nc:
            continue
        fo = np.zeros(n)
        wo = np.zeros(n)
        for i in range(n):
            if _is_good(flux_values[s + i0 + i], ivar_values[s + i0 + i]):
                fo[i] = flux_values[s + i0 + i]
                wo[i] = ivar_values[s + i0 + i]
        npw = alpha.shape[2]
        legendre = legendre_rows(poly_x(n), npw)
        U = np.empty((npw, n))
        V = np.empty((nc, n))
        wf2 = np.empty(n)
        g = np.empty(n)
        _observation_moments(fo, wo, legendre, nc, U, V, wf2, g)
        n_rv = template_idx.shape[1]
        tf = np.empty(n)
        tmv = np.empty(n)
        tm = np.empty(n, dtype=np.bool_)
        A = np.zeros((nc, nc, n_rv))
        b = np.zeros((nc, n_rv))
        ss = np.zeros(n_rv)
        n_fit = np.zeros(n_rv)
        Gp = np.empty(npw)
        Bj = np.empty(nc)
        y = np.empty((nc, n_rv))
        diag = np.empty(n_rv)
        bad = np.empty(n_rv, dtype=np.bool_)
        chi2 = np.empty(n_rv)
        out_l0 = loglam0[r] + i0 * dloglam[r]
        for v in range(n_v):
            shift = doppler_dloglam(rv_kms_grid[v])
            for q in range(n_rv):
                t = template_idx[r, q]
                n_fit[q] = 0.0
                if t < 0:
                    continue
                resample_into(tmpl_flux[t], tmpl_maskf[t], grid_loglam0 + shift, grid_dloglam, out_l0, dloglam[r],
                              tf, tmv)
                for i in range(n):
                    tm[i] = tmv[i] > 0.0
                    if not tm[i]:
                        tf[i] = 0.0
                ss[q], n_fit[q] = _pair_moments(tf, tm, U, V, wf2, g, Gp, Bj)
                _normal_matrix(Gp, alpha, A, q)
                for j in range(nc):
                    b[j, q] = Bj[j]
            _cholesky_chi2(A, b, ss, n_rv, _PIVOT_RTOL_F64, y, diag, bad, chi2)
            for q in range(n_rv):
                if n_fit[q] > nc and chi2[q] / (n_fit[q] - nc) < curve[r, v]:
                    curve[r, v] = chi2[q] / (n_fit[q] - nc)
                    dof[r, v] = np.int64(n_fit[q]) - nc
    return curve, dof


@njit(cache=True)
def rv_from_curve(curve, dof, rv_kms_grid, min_depth_dchi2):
    """(rv_kms, rv_err_kms, depth_dchi2, ok) per row of reduced-chi2 curves (see the module docstring)."""
    m, n_v = curve.shape
    rv = np.full(m, np.nan)
    err = np.full(m, np.nan)
    depth = np.full(m, np.nan)
    ok = np.zeros(m, dtype=np.bool_)
    for r in range(m):
        j = np.argmin(curve[r])
        nu = curve[r, j]
        if not nu < np.inf:
            continue
        rv[r] = rv_kms_grid[j]
        unit = dof[r, j] / nu if nu > 0.0 else 0.0       # reduced chi2 -> Delta chi2 at chi2_nu = 1
        finite = curve[r][curve[r] < np.inf]
        depth[r] = (np.median(finite) - nu) * unit
        if j == 0 or j == n_v - 1 or not (curve[r, j - 1] < np.inf and curve[r, j + 1] < np.inf):
            continue
        step = rv_kms_grid[j + 1] - rv_kms_grid[j]
        dm, d0, dp = curve[r, j - 1] * unit, nu * unit, curve[r, j + 1] * unit
        curv = dm - 2.0 * d0 + dp
        if not curv > 0.0:
            continue
        rv[r] = rv_kms_grid[j] + 0.5 * step * (dm - dp) / curv
        err[r] = step * math.sqrt(2.0 / curv)
        ok[r] = depth[r] >= min_depth_dchi2
    return rv, err, depth, ok


def fit_rv_batch(flux_values, ivar_values, offsets, loglam0, dloglam, template_idx, lib: Library,
                 params) -> RvResult:
    """Fit the RV of native-grid spectra (flat values + offsets) against each row's few best templates
    ``template_idx`` (m, n_rv) int64 (-1 = none) over `rv_grid_kms` (params)."""
    grid = rv_grid_kms(params)
    template_idx = np.asarray(template_idx, dtype=np.int64)
    m = len(offsets) - 1
    if template_idx.shape[0] != m:
        raise ValueError(f"template_idx has {template_idx.shape[0]} rows for {m} spectra")
    used = np.unique(template_idx[template_idx >= 0])        # copy only the templates the rows need
    local = np.where(template_idx >= 0, np.searchsorted(used, template_idx), -1)
    curve, dof = rv_scan_batch(flux_values, ivar_values, np.asarray(offsets, np.int64),
                               np.asarray(loglam0, np.float64), np.asarray(dloglam, np.float64),
                               np.ascontiguousarray(local), lib.flux[used], lib.mask[used].astype(np.float64),
                               lib.grid_loglam0, lib.grid_dloglam, lib.alpha, grid)
    return RvResult(*rv_from_curve(curve, dof, grid, float(params.rv_min_depth_dchi2)))


_RV_ROUNDS = 2   # RV fit + refit rounds of fit_observed


class ObservedFit(NamedTuple):
    fit: FitResult
    rv_used_kms: np.ndarray   # (m,) float64 the RV the spectrum was shifted by
    rv_fitted: np.ndarray     # (m,) bool: the header RV was missing and this one was fitted
    rv_err_kms: np.ndarray    # (m,) float64 error of a fitted RV (NaN for header RVs)


def fit_observed(flux_values, ivar_values, offsets, loglam0, dloglam, rv_kms, lib: Library, params) -> ObservedFit:
    """Spectra as observed (flat values + Arrow-style offsets, per-row native log grid) -> LASPM fit.

    Rows with a finite ``rv_kms`` are shifted by it onto the library grid (resample.py) and fitted.
    Rows without (NaN; the caller maps LAMOST's -9999 to NaN) are first fitted at rv = 0; then, twice,
    their RV is fitted against their ``params.rv_n_templates`` best templates and they are refitted at
    that RV (the second round uses the templates chosen at the first RV: at +-500 km/s, 7 pixels, the
    rv = 0 choice can be poor). They carry FLAG_RV_MISSING, plus FLAG_RV_FIT_POOR when the last RV
    minimum is poor. A fitted RV that is NaN (no template fits) leaves the spectrum at rv = 0.
    """
    offsets = np.asarray(offsets, np.int64)
    loglam0 = np.asarray(loglam0, np.float64)
    dloglam = np.asarray(dloglam, np.float64)
    rv = np.asarray(rv_kms, np.float64).copy()
    m = len(offsets) - 1
    n_pix = lib.flux.shape[1]
    missing = ~np.isfinite(rv)
    rv_err = np.full(m, np.nan)
    flat_f, flat_i = np.asarray(flux_values), np.asarray(ivar_values)
    f, iv = rest_frame_resample_batch(flat_f, flat_i, offsets, loglam0, dloglam, np.where(missing, 0.0, rv),
                                      lib.grid_loglam0, lib.grid_dloglam, n_pix)
    fit = fit_batch(f, iv, lib, params)
    rows = np.flatnonzero(missing)
    if rows.size:
        n_rv = max(1, min(int(params.rv_n_templates), fit.best_idx.shape[1]))
        sub_off = np.concatenate([[0], np.cumsum(offsets[rows + 1] - offsets[rows])])
        take = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
        sf, si, l0, dl = flat_f[take], flat_i[take], loglam0[rows], dloglam[rows]
        refit = FitResult(*(c[rows] for c in fit))
        for _ in range(_RV_ROUNDS):
            res = fit_rv_batch(sf, si, sub_off, l0, dl, refit.best_idx[:, :n_rv], lib, params)
            f2, iv2 = rest_frame_resample_batch(sf, si, sub_off, l0, dl, np.nan_to_num(res.rv_kms),
                                                lib.grid_loglam0, lib.grid_dloglam, n_pix)
            refit = fit_batch(f2, iv2, lib, params)
        cols = [np.array(c, copy=True) for c in fit]
        for c, new in zip(cols, refit):
            c[rows] = new
        flags = cols[-1]
        flags[rows] |= FLAG_RV_MISSING
        flags[rows[~res.rv_ok]] |= FLAG_RV_FIT_POOR
        fit = FitResult(*cols)
        rv[rows] = res.rv_kms
        rv_err[rows] = res.rv_err_kms
    return ObservedFit(fit, rv, missing, rv_err)


def pixel_mask_outside(grid_loglam0: float, grid_dloglam: float, n_pix: int, windows_aa) -> np.ndarray:
    """(n_pix,) bool: True on grid pixels whose centre lies outside every [lo, hi] AA window (lo/hi pairs)."""
    w = np.asarray([float(v) for v in windows_aa], dtype=np.float64)
    if w.size % 2:
        raise ValueError(f"laspm.mask_windows_aa needs lo/hi pairs, got {w.size} values")
    wave = 10.0 ** (grid_loglam0 + grid_dloglam * np.arange(n_pix))
    inside = ((wave[:, None] >= w[0::2][None, :]) & (wave[:, None] <= w[1::2][None, :])).any(axis=1)
    return ~inside
