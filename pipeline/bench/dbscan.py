"""`mgold bench dbscan`: the per-bin DBSCAN loop, Numba vs scikit-learn, in the same process.

Workload shaped like paper §2.4 as the clean stage runs it: many bins of 5-150
spectra, each a ~3500-pixel float32 vector with its inverse variance; per bin the
noise-debiased distance matrix (udfs/spectral_distance.py, timed on its own),
then DBSCAN on it with eps = clean.dbscan_eps and minPts by the clean.minpts_* rule.
Baseline: sklearn.cluster.DBSCAN(metric='precomputed') called once per bin.
Contenders: mgold.udfs.dbscan.dbscan_precomputed called once per bin (serial), and
dbscan_bins_precomputed (all bins in one call, parallel over bins). Labels must
agree. The Euclidean entry points (dbscan / dbscan_bins vs metric='euclidean' on
the same vectors) are timed too, as ``euclidean_*``.
"""

from __future__ import annotations

import time

import numpy as np

from . import benchmark

NOISE = 0.02      # per-pixel noise (S/N 50 on unit flux)


def _bins(rng: np.random.Generator, n_bins: int, n_pix: int):
    sizes = rng.integers(5, 151, n_bins)
    blocks = []
    for s in sizes:
        # a few families per bin plus outliers: noise-free same-family pairs ~0.4 apart in the debiased
        # distance, families ~2.5 apart, outliers ~4 (eps 1.0); photon noise alone would put them ~1.7 apart
        fam = 1 + rng.normal(0, 0.03, (3, n_pix)).astype(np.float32)
        x = fam[rng.integers(0, 3, s)] + rng.normal(0, 0.005, (s, n_pix)).astype(np.float32)
        out = rng.random(s) < 0.1
        x[out] += rng.normal(0, 0.05, (out.sum(), n_pix)).astype(np.float32)
        x += rng.normal(0, NOISE, x.shape).astype(np.float32)
        blocks.append(x)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return np.vstack(blocks), offsets, sizes


@benchmark("dbscan")
def bench_dbscan(n_bins: int = 120, n_pix: int = 3500, seed: int = 0) -> dict:
    """Per-bin DBSCAN on precomputed distances: seconds, bins/s and ratios sklearn / Numba."""
    from sklearn.cluster import DBSCAN

    from mgold.udfs.dbscan import (block_offsets, dbscan, dbscan_bins, dbscan_bins_precomputed,
                                   dbscan_precomputed)
    from mgold.udfs.spectral_distance import debiased_distances_bins

    from ..config import DEFAULT

    c = DEFAULT.clean
    rng = np.random.default_rng(seed)
    X, offsets, sizes = _bins(rng, n_bins, n_pix)
    IV = np.full(X.shape, 1.0 / NOISE ** 2, dtype=np.float32)
    min_pts = np.clip(sizes // c.minpts_stars_per_point, c.minpts_min, c.minpts_max).astype(np.int64)
    eps = c.dbscan_eps
    n_ref, min_common, floor = float(n_pix), n_pix // 2, c.dist_weight_floor
    boff = block_offsets(offsets)
    # compile outside the timings
    D_small = debiased_distances_bins(X[:5], IV[:5], np.array([0, 5], np.int64), n_ref, min_common, floor)
    dbscan_precomputed(D_small.reshape(5, 5), eps, 2)
    dbscan_bins_precomputed(D_small, np.array([0, 5], np.int64), eps, np.array([2], np.int64))
    dbscan(X[:5], eps, 2)
    dbscan_bins(X[:5], np.array([0, 5], np.int64), eps, np.array([2], np.int64))

    t0 = time.perf_counter()
    D = debiased_distances_bins(X, IV, offsets, n_ref, min_common, floor)
    t_dist = time.perf_counter() - t0
    blocks = [D[boff[b]:boff[b + 1]].reshape(s, s) for b, s in enumerate(sizes)]

    t0 = time.perf_counter()
    ref = np.concatenate([DBSCAN(eps=eps, min_samples=int(m), metric="precomputed").fit(blocks[b]).labels_
                          for b, m in enumerate(min_pts)])
    t_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = np.concatenate([dbscan_precomputed(blocks[b], eps, int(m)) for b, m in enumerate(min_pts)])
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = dbscan_bins_precomputed(D, offsets, eps, min_pts)
    t_batch = time.perf_counter() - t0

    # Euclidean entry points on the same vectors (a different clustering: noise dominates it)
    t0 = time.perf_counter()
    e_ref = np.concatenate([DBSCAN(eps=eps, min_samples=int(m)).fit(X[offsets[b]:offsets[b + 1]]).labels_
                            for b, m in enumerate(min_pts)])
    te_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    e_loop = np.concatenate([dbscan(X[offsets[b]:offsets[b + 1]], eps, int(m)) for b, m in enumerate(min_pts)])
    te_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    e_batch = dbscan_bins(X, offsets, eps, min_pts)
    te_batch = time.perf_counter() - t0
    return {
        "bins": int(n_bins),
        "spectra": int(X.shape[0]),
        "pixels": int(n_pix),
        "labels_identical": bool(np.array_equal(ref, loop) and np.array_equal(ref, batch)),
        "clustered_fraction": round(float(np.mean(ref >= 0)), 3),
        "distance_matrices_s": round(t_dist, 4),
        "sklearn_s": round(t_sk, 4),
        "numba_loop_s": round(t_loop, 4),
        "numba_bins_s": round(t_batch, 4),
        "sklearn_bins_per_s": round(n_bins / t_sk, 1),
        "numba_bins_per_s": round(n_bins / t_batch, 1),
        "ratio_sklearn_over_numba_loop": round(t_sk / t_loop, 2),
        "ratio_sklearn_over_numba_bins": round(t_sk / t_batch, 2),
        "euclidean_labels_identical": bool(np.array_equal(e_ref, e_loop) and np.array_equal(e_ref, e_batch)),
        "euclidean_clustered_fraction": round(float(np.mean(e_ref >= 0)), 3),
        "euclidean_sklearn_s": round(te_sk, 4),
        "euclidean_numba_loop_s": round(te_loop, 4),
        "euclidean_numba_bins_s": round(te_batch, 4),
        "euclidean_ratio_sklearn_over_numba_loop": round(te_sk / te_loop, 2),
        "euclidean_ratio_sklearn_over_numba_bins": round(te_sk / te_batch, 2),
    }
