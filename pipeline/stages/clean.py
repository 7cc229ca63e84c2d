"""DBSCAN cleaning per parameter bin (paper §2.4): the Python model ``cln_dbscan``.

Input: the ``cln_bins`` rows (top ``clean.top_n_per_bin`` by S/N of each 50 K x
0.1 x 0.1 bin) and their recalibrated clustering-grid spectra (``spc_cluster_grid``),
streamed in chunks of whole bins (``iter_bin_chunks``, ~``spectra.batch_spectra``
spectra: memory stays bounded).

Preparation (``prepare_bin``: flux y and inverse variance iv per spectrum)
-------------------------------------------------------------------------
1. Masks: pixels with ivar <= 0, the telluric bands ``clean.telluric_windows_aa``
   (atmosphere, not star) and +- ``clean.sky_halfwidth_aa`` around the strong
   night-sky lines ``clean.sky_lines_aa``, moved into each spectrum's rest frame
   with its RV (sky-subtraction residuals there exceed what ivar says).
2. Each spectrum is divided by its median over good pixels (ivar scaled alike):
   distances compare shapes, not flux levels.
3. Bin-relative recalibration (``clean.bin_recal_order``, 3; 0 = off): each spectrum
   is divided by a polynomial fitted (weights ivar) to its ratio to the bin's
   median spectrum, separately blue and red of ``clean.bin_recal_split_aa`` (the
   LAMOST arm join: a flux step there is no polynomial). §2.3.2 kept the model-SED
   polynomial at 2nd order because model mismatch in the crowded bands makes
   higher orders unsafe; the bin median shares the bin's labels, so that risk is
   absent, and what is removed is the calibration residual the 2nd order left.
   No clipping (``clean.bin_recal_clip_nsigma`` = 0): against the noisy median of
   a small bin, clipping rejects pixels by their noise and biased the extrapolated
   blue end of low-S/N spectra by ~4 in D^2 (simulated noise-only pairs). The
   polynomial's own least-squares uncertainty is added to each pixel's variance
   (``clean.bin_recal_variance``).
4. Spectra with fewer than ``clean.min_good_pix_frac`` good pixels (of those
   outside the telluric windows), a non-positive median or a failed fit are
   unusable: iv = 0 everywhere, so DBSCAN finds them no neighbour, not even
   themselves.

Distance (what eps means; udfs/spectral_distance.py)
----------------------------------------------------
For spectra a, b with variances va = 1/iv_a, vb = 1/iv_b, over the n_ab pixels
good in both (at least ``min_good_pix_frac`` of the grid, else no distance), with
w_i = 1 / (va_i + vb_i + f^2), f = ``clean.dist_weight_floor``::

    D^2 = N_ref * sum_i w_i [(a_i - b_i)^2 - (va_i + vb_i)] / sum_i w_i      (clipped at 0)

Subtracting va + vb, the expected square of the noise, makes D^2 an unbiased
estimate of N_ref times the weighted mean squared difference of the NOISE-FREE
spectra, N_ref = ``clean.dist_ref_pix`` or, when 0, the pixel count of the
3900-8800 AA grid at LAMOST sampling (3535: the grid the paper's distances were
computed on). For pairs whose pixel noise sqrt(va + vb) is well below f (S/N per
pixel well above ~70 in median-normalised flux) the weights are equal and D is
the plain Euclidean distance of the noise-free, median-normalised spectra on the
paper's grid, which is what the paper's eps referred to: its top-150-by-S/N
spectra are nearer that limit than this universe's. So
eps = 1.0 means "the two stars' normalised spectra differ by 1/sqrt(3535) = 1.7 %
rms per pixel"; photon noise no longer sets the scale, it only adds scatter:
sd(D^2) = N_ref sqrt(2 sum w^2 (va+vb)^2) / sum w for noise alone.

Why this distance, and what each preparation step contributes (measured on one demo
seed): docs/cleaning.md.

minPts rule (config ``clean.minpts_*``): min_pts = clip(n // minpts_stars_per_point,
minpts_min, minpts_max), n = number of spectra clustered in the bin, so bins of
< 12 spectra need a pair, bins of >= 20 need 5 (paper: "2 to 5 based on the number
of samples").

DBSCAN runs on the precomputed distance matrix of each bin (udfs/dbscan.py,
labels identical to ``sklearn.cluster.DBSCAN(metric='precomputed')``), parallel
over the bins of a chunk. The main cluster is the largest of the bin (ties: the lower
label, i.e. the one seeded from the higher-S/N spectrum, as rows enter DBSCAN in
S/N order). Core flags and ``nn_dist`` come from the same matrix DBSCAN used. Which
spectra are kept (core members of the main cluster by S/N, at most
``clean.cap_per_bin``) is SQL: ``cln_keep_rank``, then ``cln_kept`` with the decisions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from mgold.udfs.dbscan import block_offsets, dbscan_bins_precomputed
from mgold.udfs.sed_recalibrate import poly_eval, poly_x, sed_recalibrate_batch
from mgold.udfs.spectral_distance import debiased_distances, debiased_distances_bins

from ..config import Config
from ..pymodel import python_model

C_KMS = 299792.458

SOURCE_SQL = """
select b.bin_id, b.obsid, b.source_id, b.snr_i, b.snr_rank, b.n_clustered, s.rv_kms, s.loglam0, s.dloglam,
       s.flux, s.ivar
from cln_bins b
join spc_cluster_grid s using (obsid)
order by b.bin_id, b.snr_rank
"""


def min_pts(n: np.ndarray | int, cfg: Config) -> np.ndarray:
    """minPts for a bin of ``n`` spectra (the documented rule above)."""
    c = cfg.clean
    return np.clip(np.asarray(n) // c.minpts_stars_per_point, c.minpts_min, c.minpts_max).astype(np.int64)


def _pairs(values, what: str) -> list[tuple[float, float]]:
    w = [float(x) for x in values]   # --set may give strings
    if len(w) % 2:
        raise ValueError(f"{what} needs lo/hi pairs, got {len(w)} values")
    return list(zip(w[::2], w[1::2]))


def telluric_mask(loglam: np.ndarray | None, cfg: Config) -> np.ndarray | None:
    """True on pixels inside ``clean.telluric_windows_aa`` (None when no grid is given)."""
    if loglam is None:
        return None
    wave = 10 ** np.asarray(loglam)
    mask = np.zeros(wave.shape, dtype=bool)
    for lo, hi in _pairs(cfg.clean.telluric_windows_aa, "clean.telluric_windows_aa"):
        mask |= (wave >= lo) & (wave <= hi)
    return mask


def sky_mask(loglam: np.ndarray | None, rv_kms: np.ndarray | None, cfg: Config) -> np.ndarray | None:
    """(m, n) True within ``clean.sky_halfwidth_aa`` of a ``clean.sky_lines_aa`` line in each spectrum's
    rest frame (observed wavelength / (1 + rv/c)); None without a grid, RVs or sky lines."""
    hw = float(cfg.clean.sky_halfwidth_aa)
    lines = np.array([float(x) for x in cfg.clean.sky_lines_aa])
    if loglam is None or rv_kms is None or hw <= 0 or lines.size == 0:
        return None
    loglam = np.asarray(loglam, dtype=np.float64)
    rv = np.nan_to_num(np.asarray(rv_kms, dtype=np.float64))
    rest = lines[None, :] / (1.0 + rv[:, None] / C_KMS)                     # (m, L)
    lo = np.searchsorted(loglam, np.log10(np.maximum(rest - hw, 1.0)), side="left")
    hi = np.searchsorted(loglam, np.log10(rest + hw), side="right")
    mask = np.zeros((rv.size, loglam.size), dtype=bool)
    for i in range(rv.size):
        for a, b in zip(lo[i], hi[i]):
            if b > a:
                mask[i, a:b] = True
    return mask


def n_used_pix(n: int, loglam: np.ndarray | None, cfg: Config) -> int:
    """Pixels of the clustering grid outside the telluric windows."""
    tell = telluric_mask(loglam, cfg)
    return n - (int(tell.sum()) if tell is not None else 0)


def prepare_bin(flux: np.ndarray, ivar: np.ndarray, cfg: Config, loglam: np.ndarray | None = None,
                rv_kms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(m, n) spectra of one bin -> (y, iv): median-normalised, bin-recalibrated flux and its inverse
    variance (steps 1-4 of the module docstring), float64; iv = 0 on masked pixels and on every pixel
    of an unusable spectrum, y finite everywhere."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    m, n = flux.shape
    tell = telluric_mask(loglam, cfg)
    sky = sky_mask(loglam, rv_kms, cfg)
    good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar)
    if tell is not None:
        good &= ~tell[None, :]
    if sky is not None:
        good &= ~sky
    n_used = n_used_pix(n, loglam, cfg)
    med = np.array([np.median(flux[i, good[i]]) if good[i].any() else np.nan for i in range(m)])
    usable = (good.sum(axis=1) >= cfg.clean.min_good_pix_frac * n_used) & (med > 0)
    scale = np.where(usable, med, 1.0)
    y = np.where(good, flux, 0.0) / scale[:, None]
    iv = np.where(good & usable[:, None], ivar * scale[:, None] ** 2, 0.0)
    order = cfg.clean.bin_recal_order
    if order > 0 and usable.sum() >= 2:
        rows = np.flatnonzero(usable)
        ref = _bin_median(np.where(iv > 0, y, np.nan), usable)
        clip = float(cfg.clean.bin_recal_clip_nsigma)
        iterations = cfg.spectra.sedcal_iterations if clip > 0 else 0
        for cols in _recal_segments(n, loglam, cfg):
            sub = np.ix_(rows, cols)
            _, _, coeffs = sed_recalibrate_batch(
                y[sub].astype(np.float32), iv[sub].astype(np.float32),
                np.tile(ref[cols], (rows.size, 1)).astype(np.float32),
                order, clip, iterations)
            fitted = np.isfinite(coeffs).all(axis=1)
            x = poly_x(cols.size)
            P = np.stack([poly_eval(c, x) if ok else np.ones(cols.size) for c, ok in zip(coeffs, fitted)])
            pos = P > 0
            has = pos & (iv[sub] > 0)
            var = np.where(has, 1.0 / np.where(has, iv[sub] * P * P, 1.0), 0.0)
            if cfg.clean.bin_recal_variance:
                var += _recal_variance(x, iv[sub], ref[cols], order, P)
            y[sub] = np.where(pos, y[sub] / np.where(pos, P, 1.0), 0.0)
            iv[sub] = np.where(has & (var > 0), 1.0 / np.where(has & (var > 0), var, 1.0), 0.0)
            usable[rows[~fitted]] = False
        iv[~usable] = 0.0
    y = np.where(np.isfinite(y) & (iv > 0), y, 0.0)
    return y, iv


def _recal_variance(x: np.ndarray, iv: np.ndarray, ref: np.ndarray, order: int, P: np.ndarray) -> np.ndarray:
    """(rows, pixels) variance that the fitted polynomial's own uncertainty adds to y / P.

    The weighted least-squares covariance of the coefficients, C = (B^T diag(iv) B)^-1 with
    B = x^k * ref, gives var(P) = v^T C v (v = powers of x); y / P ~ ref, so the added variance
    is ref^2 var(P) / P^2. Where the fit is poorly constrained (the faint blue end of a
    low-S/N spectrum: the polynomial is extrapolated there) this dominates, so those pixels
    weigh less and their recalibration scatter is debiased like noise.
    """
    V = np.vander(x, order + 1, increasing=True)                         # (n, k)
    M = np.einsum("ri,ij,ik->rjk", iv * ref[None, :] ** 2, V, V)          # (rows, k, k)
    with np.errstate(all="ignore"):
        C = np.linalg.pinv(M)
    var_p = np.einsum("ij,rjk,ik->ri", V, C, V)
    with np.errstate(all="ignore"):
        out = ref[None, :] ** 2 * np.clip(var_p, 0.0, None) / np.where(P > 0, P, np.inf) ** 2
    return np.where(np.isfinite(out), out, 0.0)


def _recal_segments(n: int, loglam: np.ndarray | None, cfg: Config) -> list[np.ndarray]:
    """Pixel index ranges fitted with their own recalibration polynomial (split at the arm join)."""
    split = float(cfg.clean.bin_recal_split_aa)
    idx = np.arange(n)
    if loglam is None or split <= 0:
        return [idx]
    cut = int(np.searchsorted(np.asarray(loglam), math.log10(split)))
    if cut < cfg.clean.bin_recal_order + 2 or n - cut < cfg.clean.bin_recal_order + 2:
        return [idx]
    return [idx[:cut], idx[cut:]]


def _bin_median(y: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-pixel median of the usable rows over their good pixels (NaN = bad); 1 where none is good."""
    if not usable.any():
        return np.ones(y.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # all-masked pixels: handled below
        ref = np.nanmedian(y[usable], axis=0)
    return np.where(np.isfinite(ref) & (ref > 0), ref, 1.0)


def reference_n_pix(cfg: Config) -> int:
    from .spectra import grid

    return grid(cfg, "cluster")[2]


def distance_params(cfg: Config, n: int, loglam: np.ndarray | None) -> tuple[float, int, float]:
    """(n_ref, min_common, floor) of the distance kernel for spectra of ``n`` pixels on ``loglam``."""
    n_ref = float(cfg.clean.dist_ref_pix or reference_n_pix(cfg))
    min_common = int(math.ceil(cfg.clean.min_good_pix_frac * n_used_pix(n, loglam, cfg)))
    return n_ref, min_common, float(cfg.clean.dist_weight_floor)


def bin_distances(flux: np.ndarray, ivar: np.ndarray, cfg: Config, loglam: np.ndarray | None = None,
                  rv_kms: np.ndarray | None = None) -> np.ndarray:
    """(m, m) distance matrix of one bin: what DBSCAN compares with eps (inf = no distance)."""
    y, iv = prepare_bin(flux, ivar, cfg, loglam, rv_kms)
    return debiased_distances(y, iv, *distance_params(cfg, y.shape[1], loglam))


def cluster_chunk(rows: dict[str, list], flux: list[np.ndarray], ivar: list[np.ndarray],
                  cfg: Config, eps: float | None = None) -> pa.Table:
    """DBSCAN every bin of a chunk (rows sorted by bin, then S/N rank) -> the cln_dbscan rows."""
    eps = float(cfg.clean.dbscan_eps if eps is None else eps)
    bin_id = np.asarray(rows["bin_id"], dtype=object)
    starts = np.flatnonzero(np.r_[True, bin_id[1:] != bin_id[:-1]])
    offsets = np.r_[starts, len(bin_id)].astype(np.int64)
    F, IV = np.stack(flux), np.stack(ivar)
    rv = np.asarray([np.nan if v is None else v for v in rows.get("rv_kms", [None] * len(bin_id))], dtype=np.float64)
    Y = np.empty(F.shape, dtype=np.float64)
    W = np.empty(F.shape, dtype=np.float64)
    sizes = np.diff(offsets)
    mp = min_pts(sizes, cfg)
    m = len(bin_id)
    loglam0 = None
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        loglam = rows["loglam0"][s] + rows["dloglam"][s] * np.arange(F.shape[1])
        loglam0 = loglam if loglam0 is None else loglam0
        Y[s:e], W[s:e] = prepare_bin(F[s:e], IV[s:e], cfg, loglam, rv[s:e])
    D_flat = debiased_distances_bins(Y, W, offsets, *distance_params(cfg, F.shape[1], loglam0))
    labels = dbscan_bins_precomputed(D_flat, offsets, eps, mp)
    boff = block_offsets(offsets)
    snr = np.asarray(rows["snr_i"], dtype=np.float64)
    out = {k: np.zeros(m, dtype=t) for k, t in (("is_core", bool), ("in_main_cluster", bool),
                                                  ("n_clusters", np.int64), ("nn_dist", np.float64),
                                                  ("usable", bool))}
    for b in range(len(sizes)):
        s, e = offsets[b], offsets[b + 1]
        d = D_flat[boff[b]:boff[b + 1]].reshape(e - s, e - s)
        lab = labels[s:e]
        out["usable"][s:e] = np.isfinite(np.diag(d))
        out["is_core"][s:e] = (d <= eps).sum(axis=1) >= mp[b]       # the kernel's rule, same matrix
        off = d + np.diag(np.full(e - s, np.inf))
        out["nn_dist"][s:e] = off.min(axis=1) if e - s > 1 else np.inf
        clusters, counts = np.unique(lab[lab >= 0], return_counts=True)
        out["n_clusters"][s:e] = clusters.size
        if clusters.size == 0:
            continue
        out["in_main_cluster"][s:e] = lab == clusters[np.argmax(counts)]
    return pa.table({
        "bin_id": pa.array(bin_id.tolist(), pa.string()),
        "obsid": pa.array(rows["obsid"], pa.int64()),
        "source_id": pa.array(rows["source_id"], pa.int64()),
        "snr_i": pa.array(snr),
        "snr_rank": pa.array(rows["snr_rank"], pa.int64()),
        "n_clustered": pa.array(np.repeat(sizes, sizes), pa.int64()),
        "min_pts": pa.array(np.repeat(mp, sizes)),
        "eps": pa.array(np.full(m, eps)),
        "usable": pa.array(out["usable"]),
        "cluster_label": pa.array(labels.astype(np.int64)),
        "is_core": pa.array(out["is_core"]),
        "n_clusters": pa.array(out["n_clusters"]),
        "in_main_cluster": pa.array(out["in_main_cluster"]),
        "nn_dist": pa.array(np.where(np.isfinite(out["nn_dist"]), out["nn_dist"], np.nan), from_pandas=True),
    })


def iter_bin_chunks(batches: Iterable[pa.RecordBatch], chunk_spectra: int):
    """(rows, flux, ivar) chunks of whole bins, about ``chunk_spectra`` spectra each, from record
    batches ordered by bin; ``rows`` holds every non-array column as lists."""
    rows: dict[str, list] = {}
    flux: list[np.ndarray] = []
    ivar: list[np.ndarray] = []
    for rb in batches:
        # the arrays go to numpy whole; only the scalar columns become Python lists
        d = {k: rb.column(k).to_pylist() for k in rb.schema.names if k not in ("flux", "ivar")}
        fl = rb.column("flux")
        n = fl.type.list_size
        f = fl.flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
        iv = rb.column("ivar").flatten().to_numpy(zero_copy_only=False).reshape(-1, n)
        keys = list(d)
        for i, b in enumerate(d["bin_id"]):
            # emit only at a bin boundary so a bin never straddles two chunks
            if len(flux) >= chunk_spectra and rows["bin_id"][-1] != b:
                yield rows, flux, ivar
                rows, flux, ivar = {}, [], []
            for k in keys:
                rows.setdefault(k, []).append(d[k][i])
            flux.append(f[i])
            ivar.append(iv[i])
    if flux:
        yield rows, flux, ivar


# what DBSCAN reads: the minPts rule, the preparation (prepare_bin) and the distance (distance_params);
# cln_suggestions compares with the same preparation and distance, so it declares the same keys
DBSCAN_PARAMS = ("clean.dbscan_eps", "clean.minpts_min", "clean.minpts_max", "clean.minpts_stars_per_point",
                 "clean.dist_ref_pix", "clean.dist_weight_floor", "clean.min_good_pix_frac",
                 "clean.bin_recal_order", "clean.bin_recal_split_aa", "clean.bin_recal_variance",
                 "clean.telluric_windows_aa", "clean.sky_lines_aa", "clean.sky_halfwidth_aa",
                 "clean.bin_recal_clip_nsigma", "spectra.sedcal_iterations", "spectra.batch_spectra",
                 "spectra.cluster_wave_min_aa", "spectra.cluster_wave_max_aa", "spectra.dloglam")

DBSCAN_COLUMNS = {
    "bin_id": "varchar", "obsid": "bigint", "source_id": "bigint", "snr_i": "double", "snr_rank": "bigint",
    "n_clustered": "bigint", "min_pts": "bigint", "eps": "double", "usable": "boolean",
    "cluster_label": "bigint", "is_core": "boolean", "n_clusters": "bigint", "in_main_cluster": "boolean",
    "nn_dist": "double"}


@python_model(
    name="cln_dbscan", layer="clean", columns=DBSCAN_COLUMNS, inputs={"bins": SOURCE_SQL},
    params=DBSCAN_PARAMS,
    description="DBSCAN per parameter bin on a noise-debiased distance matrix of the normalised, "
                "recalibrated spectra (paper §2.4): cluster label, core flag and main cluster of every "
                "clustered spectrum.",
    grain="one row per obsid of cln_bins",
    tests="unique(obsid); not_null(bin_id, obsid, cluster_label, in_main_cluster); range(min_pts, 1, 100)",
)
def build(ctx):
    n = ctx.cfg.spectra.batch_spectra
    for rows, flux, ivar in iter_bin_chunks(ctx.batches("bins", n), n):
        yield cluster_chunk(rows, flux, ivar, ctx.cfg)
